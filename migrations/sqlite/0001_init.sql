-- mailcast schema, version 1 (SQLite).
-- Times are INTEGER microseconds since the Unix epoch (UTC); ids are UUID text;
-- JSON columns hold JSON text.  The PostgreSQL twin is migrations/pg/0001_init.sql.
--
-- Counts (recipient_lists.recipient_count/active_count, campaigns.*_count) are
-- kept by triggers that add or subtract one per changed row: O(1) per row,
-- never a recount of the parent.

CREATE TABLE server_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    plan        TEXT NOT NULL DEFAULT 'free',
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX idx_tenants_created ON tenants (created_at);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    scopes       TEXT NOT NULL DEFAULT '["read","write"]',
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX idx_api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE recipient_lists (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT,
    recipient_count INTEGER NOT NULL DEFAULT 0,
    active_count    INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX idx_recipient_lists_tenant ON recipient_lists (tenant_id, created_at);

-- email keeps the address as given (domain lowercased); email_lc is its
-- lowercase form, computed by mailcast, and carries the uniqueness.
CREATE TABLE recipients (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    recipient_list_id TEXT NOT NULL REFERENCES recipient_lists (id) ON DELETE CASCADE,
    email             TEXT NOT NULL,
    email_lc          TEXT NOT NULL,
    name              TEXT,
    first_name        TEXT,
    last_name         TEXT,
    status            TEXT NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained')),
    attributes        TEXT NOT NULL DEFAULT '{}',
    subscribed_at     INTEGER NOT NULL,
    unsubscribed_at   INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (recipient_list_id, email_lc)
);
CREATE INDEX idx_recipients_tenant_email ON recipients (tenant_id, email_lc);
CREATE INDEX idx_recipients_list_created ON recipients (recipient_list_id, created_at);

CREATE TRIGGER recipients_count_ins AFTER INSERT ON recipients BEGIN
    UPDATE recipient_lists
       SET recipient_count = recipient_count + 1,
           active_count = active_count + (NEW.status = 'active')
     WHERE id = NEW.recipient_list_id;
END;
CREATE TRIGGER recipients_count_del AFTER DELETE ON recipients BEGIN
    UPDATE recipient_lists
       SET recipient_count = recipient_count - 1,
           active_count = active_count - (OLD.status = 'active')
     WHERE id = OLD.recipient_list_id;
END;
CREATE TRIGGER recipients_count_upd AFTER UPDATE OF status, recipient_list_id ON recipients
WHEN OLD.status IS NOT NEW.status OR OLD.recipient_list_id IS NOT NEW.recipient_list_id BEGIN
    UPDATE recipient_lists
       SET recipient_count = recipient_count - 1,
           active_count = active_count - (OLD.status = 'active')
     WHERE id = OLD.recipient_list_id;
    UPDATE recipient_lists
       SET recipient_count = recipient_count + 1,
           active_count = active_count + (NEW.status = 'active')
     WHERE id = NEW.recipient_list_id;
END;

CREATE TABLE campaigns (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    description           TEXT,
    subject               TEXT NOT NULL,
    from_address          TEXT NOT NULL,
    from_name             TEXT,
    reply_to              TEXT,
    html_body             TEXT,
    text_body             TEXT,
    recipient_list_id     TEXT REFERENCES recipient_lists (id) ON DELETE SET NULL,
    scheduled_at          INTEGER,
    rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute > 0),
    rate_limit_per_hour   INTEGER CHECK (rate_limit_per_hour > 0),
    status                TEXT NOT NULL DEFAULT 'draft'
                          CHECK (status IN ('draft', 'scheduled', 'sending', 'paused',
                                            'completed', 'cancelled', 'failed')),
    total_recipients      INTEGER NOT NULL DEFAULT 0,
    pending_count         INTEGER NOT NULL DEFAULT 0,
    sending_count         INTEGER NOT NULL DEFAULT 0,
    sent_count            INTEGER NOT NULL DEFAULT 0,
    delivered_count       INTEGER NOT NULL DEFAULT 0,
    bounced_count         INTEGER NOT NULL DEFAULT 0,
    failed_count          INTEGER NOT NULL DEFAULT 0,
    cancelled_count       INTEGER NOT NULL DEFAULT 0,
    suppressed_count      INTEGER NOT NULL DEFAULT 0,
    opened_count          INTEGER NOT NULL DEFAULT 0,
    clicked_count         INTEGER NOT NULL DEFAULT 0,
    tags                  TEXT NOT NULL DEFAULT '[]',
    metadata              TEXT NOT NULL DEFAULT '{}',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    started_at            INTEGER,
    completed_at          INTEGER
);
CREATE INDEX idx_campaigns_tenant ON campaigns (tenant_id, created_at);
CREATE INDEX idx_campaigns_status ON campaigns (status);
CREATE INDEX idx_campaigns_list ON campaigns (recipient_list_id);

-- One row per (campaign, recipient).  The body is rendered at send time from
-- the campaign's template, never stored per message.  A claim sets status
-- 'sending' with a lease (owner, expiry); results are fenced on owner and
-- attempts.
CREATE TABLE scheduled_messages (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id      TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    recipient_id     TEXT REFERENCES recipients (id) ON DELETE SET NULL,
    to_address       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'bounced',
                                       'failed', 'cancelled', 'suppressed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_attempt_at  INTEGER,
    last_error       TEXT,
    last_reply_code  INTEGER,
    message_id       TEXT,
    relay_queue_id   TEXT,
    sent_at          INTEGER,
    delivered_at     INTEGER,
    bounced_at       INTEGER,
    bounce_type      TEXT,
    bounce_reason    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (campaign_id, recipient_id)
);
CREATE INDEX idx_scheduled_messages_due ON scheduled_messages (campaign_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_scheduled_messages_lease ON scheduled_messages (lease_expires_at)
    WHERE status = 'sending';
CREATE INDEX idx_scheduled_messages_tenant_addr ON scheduled_messages (tenant_id, to_address);

CREATE TRIGGER scheduled_messages_count_ins AFTER INSERT ON scheduled_messages BEGIN
    UPDATE campaigns SET
        pending_count    = pending_count    + (NEW.status = 'pending'),
        sending_count    = sending_count    + (NEW.status = 'sending'),
        sent_count       = sent_count       + (NEW.status = 'sent'),
        delivered_count  = delivered_count  + (NEW.status = 'delivered'),
        bounced_count    = bounced_count    + (NEW.status = 'bounced'),
        failed_count     = failed_count     + (NEW.status = 'failed'),
        cancelled_count  = cancelled_count  + (NEW.status = 'cancelled'),
        suppressed_count = suppressed_count + (NEW.status = 'suppressed')
     WHERE id = NEW.campaign_id;
END;
CREATE TRIGGER scheduled_messages_count_del AFTER DELETE ON scheduled_messages BEGIN
    UPDATE campaigns SET
        pending_count    = pending_count    - (OLD.status = 'pending'),
        sending_count    = sending_count    - (OLD.status = 'sending'),
        sent_count       = sent_count       - (OLD.status = 'sent'),
        delivered_count  = delivered_count  - (OLD.status = 'delivered'),
        bounced_count    = bounced_count    - (OLD.status = 'bounced'),
        failed_count     = failed_count     - (OLD.status = 'failed'),
        cancelled_count  = cancelled_count  - (OLD.status = 'cancelled'),
        suppressed_count = suppressed_count - (OLD.status = 'suppressed')
     WHERE id = OLD.campaign_id;
END;
CREATE TRIGGER scheduled_messages_count_upd AFTER UPDATE OF status ON scheduled_messages
WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE campaigns SET
        pending_count    = pending_count    + (NEW.status = 'pending')    - (OLD.status = 'pending'),
        sending_count    = sending_count    + (NEW.status = 'sending')    - (OLD.status = 'sending'),
        sent_count       = sent_count       + (NEW.status = 'sent')       - (OLD.status = 'sent'),
        delivered_count  = delivered_count  + (NEW.status = 'delivered')  - (OLD.status = 'delivered'),
        bounced_count    = bounced_count    + (NEW.status = 'bounced')    - (OLD.status = 'bounced'),
        failed_count     = failed_count     + (NEW.status = 'failed')     - (OLD.status = 'failed'),
        cancelled_count  = cancelled_count  + (NEW.status = 'cancelled')  - (OLD.status = 'cancelled'),
        suppressed_count = suppressed_count + (NEW.status = 'suppressed') - (OLD.status = 'suppressed')
     WHERE id = NEW.campaign_id;
END;

-- A missing row means the defaults 100/5000/50000, enabled.
CREATE TABLE tenant_rate_limits (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL UNIQUE REFERENCES tenants (id) ON DELETE CASCADE,
    per_minute  INTEGER NOT NULL DEFAULT 100 CHECK (per_minute > 0),
    per_hour    INTEGER NOT NULL DEFAULT 5000 CHECK (per_hour > 0),
    per_day     INTEGER NOT NULL DEFAULT 50000 CHECK (per_day > 0),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE rate_limit_counters (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    window_type  TEXT NOT NULL CHECK (window_type IN ('minute', 'hour', 'day')),
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    limit_value  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, window_type, window_start)
);

-- The tenant's suppression list; uniqueness is case-insensitive through email_lc.
CREATE TABLE unsubscribes (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    email_lc        TEXT NOT NULL,
    source          TEXT NOT NULL
                    CHECK (source IN ('manual', 'link', 'bounce', 'complaint', 'import')),
    campaign_id     TEXT REFERENCES campaigns (id) ON DELETE SET NULL,
    reason          TEXT,
    unsubscribed_at INTEGER NOT NULL,
    UNIQUE (tenant_id, email_lc)
);
CREATE INDEX idx_unsubscribes_campaign ON unsubscribes (campaign_id);
