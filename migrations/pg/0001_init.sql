-- mailcast schema, version 1 (PostgreSQL 13+).
-- The SQLite twin is migrations/sqlite/0001_init.sql: same tables, columns and
-- rules.  Counts (recipient_lists.recipient_count/active_count,
-- campaigns.*_count) are kept by statement-level triggers over transition
-- tables: one UPDATE per parent per statement, adding the statement's net
-- change, never a recount.  No index predicate calls a non-IMMUTABLE
-- function (the original's NOW() predicate failed here).

CREATE TABLE server_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        VARCHAR(63) NOT NULL UNIQUE,
    status      VARCHAR(20) NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleted')),
    plan        VARCHAR(50) NOT NULL DEFAULT 'free',
    settings    JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_tenants_created ON tenants (created_at);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    scopes       JSONB NOT NULL DEFAULT '["read","write"]',
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE recipient_lists (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT,
    recipient_count INTEGER NOT NULL DEFAULT 0,
    active_count    INTEGER NOT NULL DEFAULT 0,
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_recipient_lists_tenant ON recipient_lists (tenant_id, created_at);

CREATE TABLE recipients (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    recipient_list_id UUID NOT NULL REFERENCES recipient_lists (id) ON DELETE CASCADE,
    email             VARCHAR(254) NOT NULL,
    email_lc          VARCHAR(254) NOT NULL,
    name              TEXT,
    first_name        TEXT,
    last_name         TEXT,
    status            VARCHAR(20) NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained')),
    attributes        JSONB NOT NULL DEFAULT '{}',
    subscribed_at     TIMESTAMPTZ NOT NULL,
    unsubscribed_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (recipient_list_id, email_lc)
);
CREATE INDEX idx_recipients_tenant_email ON recipients (tenant_id, email_lc);
CREATE INDEX idx_recipients_list_created ON recipients (recipient_list_id, created_at);

CREATE FUNCTION recipients_count_apply(d_list UUID[], d_all INTEGER[], d_active INTEGER[])
RETURNS void LANGUAGE sql AS $$
    UPDATE recipient_lists l
       SET recipient_count = l.recipient_count + d.n,
           active_count = l.active_count + d.a
      FROM (SELECT u.list_id, SUM(u.n)::int AS n, SUM(u.a)::int AS a
              FROM unnest(d_list, d_all, d_active) AS u(list_id, n, a)
             GROUP BY u.list_id) d
     WHERE l.id = d.list_id AND (d.n <> 0 OR d.a <> 0);
$$;

CREATE FUNCTION recipients_count_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM recipients_count_apply(array_agg(recipient_list_id), array_agg(1),
                                   array_agg((status = 'active')::int))
       FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION recipients_count_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM recipients_count_apply(array_agg(recipient_list_id), array_agg(-1),
                                   array_agg(-(status = 'active')::int))
       FROM old_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION recipients_count_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM recipients_count_apply(array_agg(list_id), array_agg(n), array_agg(a))
       FROM (SELECT recipient_list_id AS list_id, -1 AS n, -(status = 'active')::int AS a
               FROM old_rows
             UNION ALL
             SELECT recipient_list_id, 1, (status = 'active')::int FROM new_rows) x;
    RETURN NULL;
END $$;

CREATE TRIGGER recipients_count_ins AFTER INSERT ON recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION recipients_count_ins();
CREATE TRIGGER recipients_count_del AFTER DELETE ON recipients
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION recipients_count_del();
CREATE TRIGGER recipients_count_upd AFTER UPDATE ON recipients
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recipients_count_upd();

CREATE TABLE campaigns (
    id                    UUID PRIMARY KEY,
    tenant_id             UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    description           TEXT,
    subject               TEXT NOT NULL,
    from_address          VARCHAR(254) NOT NULL,
    from_name             TEXT,
    reply_to              VARCHAR(254),
    html_body             TEXT,
    text_body             TEXT,
    recipient_list_id     UUID REFERENCES recipient_lists (id) ON DELETE SET NULL,
    scheduled_at          TIMESTAMPTZ,
    rate_limit_per_minute INTEGER CHECK (rate_limit_per_minute > 0),
    rate_limit_per_hour   INTEGER CHECK (rate_limit_per_hour > 0),
    status                VARCHAR(20) NOT NULL DEFAULT 'draft'
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
    tags                  JSONB NOT NULL DEFAULT '[]',
    metadata              JSONB NOT NULL DEFAULT '{}',
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    started_at            TIMESTAMPTZ,
    completed_at          TIMESTAMPTZ
);
CREATE INDEX idx_campaigns_tenant ON campaigns (tenant_id, created_at);
CREATE INDEX idx_campaigns_status ON campaigns (status);
CREATE INDEX idx_campaigns_list ON campaigns (recipient_list_id);

CREATE TABLE scheduled_messages (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id      UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    recipient_id     UUID REFERENCES recipients (id) ON DELETE SET NULL,
    to_address       VARCHAR(254) NOT NULL,
    status           VARCHAR(20) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'bounced',
                                       'failed', 'cancelled', 'suppressed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 5,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_attempt_at  TIMESTAMPTZ,
    last_error       TEXT,
    last_reply_code  INTEGER,
    message_id       TEXT,
    relay_queue_id   TEXT,
    sent_at          TIMESTAMPTZ,
    delivered_at     TIMESTAMPTZ,
    bounced_at       TIMESTAMPTZ,
    bounce_type      VARCHAR(50),
    bounce_reason    TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (campaign_id, recipient_id)
);
CREATE INDEX idx_scheduled_messages_due ON scheduled_messages (campaign_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_scheduled_messages_lease ON scheduled_messages (lease_expires_at)
    WHERE status = 'sending';
CREATE INDEX idx_scheduled_messages_tenant_addr ON scheduled_messages (tenant_id, to_address);

CREATE FUNCTION campaign_counts_apply(rows_campaign UUID[], rows_status TEXT[], rows_sign INTEGER[])
RETURNS void LANGUAGE sql AS $$
    UPDATE campaigns c SET
        pending_count    = c.pending_count    + d.pending,
        sending_count    = c.sending_count    + d.sending,
        sent_count       = c.sent_count       + d.sent,
        delivered_count  = c.delivered_count  + d.delivered,
        bounced_count    = c.bounced_count    + d.bounced,
        failed_count     = c.failed_count     + d.failed,
        cancelled_count  = c.cancelled_count  + d.cancelled,
        suppressed_count = c.suppressed_count + d.suppressed
      FROM (SELECT u.cid,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'pending'), 0)::int    AS pending,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'sending'), 0)::int    AS sending,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'sent'), 0)::int       AS sent,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'delivered'), 0)::int  AS delivered,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'bounced'), 0)::int    AS bounced,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'failed'), 0)::int     AS failed,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'cancelled'), 0)::int  AS cancelled,
                   COALESCE(SUM(u.sg) FILTER (WHERE u.st = 'suppressed'), 0)::int AS suppressed
              FROM unnest(rows_campaign, rows_status, rows_sign) AS u(cid, st, sg)
             GROUP BY u.cid) d
     WHERE c.id = d.cid
       AND (d.pending <> 0 OR d.sending <> 0 OR d.sent <> 0 OR d.delivered <> 0
            OR d.bounced <> 0 OR d.failed <> 0 OR d.cancelled <> 0 OR d.suppressed <> 0);
$$;

CREATE FUNCTION scheduled_messages_count_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM campaign_counts_apply(array_agg(campaign_id), array_agg(status::text), array_agg(1))
       FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION scheduled_messages_count_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM campaign_counts_apply(array_agg(campaign_id), array_agg(status::text), array_agg(-1))
       FROM old_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION scheduled_messages_count_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM campaign_counts_apply(array_agg(cid), array_agg(st), array_agg(sg))
       FROM (SELECT o.campaign_id AS cid, o.status::text AS st, -1 AS sg
               FROM old_rows o JOIN new_rows n ON n.id = o.id
              WHERE o.status <> n.status
             UNION ALL
             SELECT n.campaign_id, n.status::text, 1
               FROM old_rows o JOIN new_rows n ON n.id = o.id
              WHERE o.status <> n.status) x;
    RETURN NULL;
END $$;

CREATE TRIGGER scheduled_messages_count_ins AFTER INSERT ON scheduled_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION scheduled_messages_count_ins();
CREATE TRIGGER scheduled_messages_count_del AFTER DELETE ON scheduled_messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION scheduled_messages_count_del();
CREATE TRIGGER scheduled_messages_count_upd AFTER UPDATE ON scheduled_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION scheduled_messages_count_upd();

CREATE TABLE tenant_rate_limits (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL UNIQUE REFERENCES tenants (id) ON DELETE CASCADE,
    per_minute  INTEGER NOT NULL DEFAULT 100 CHECK (per_minute > 0),
    per_hour    INTEGER NOT NULL DEFAULT 5000 CHECK (per_hour > 0),
    per_day     INTEGER NOT NULL DEFAULT 50000 CHECK (per_day > 0),
    enabled     BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE rate_limit_counters (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    window_type  VARCHAR(20) NOT NULL CHECK (window_type IN ('minute', 'hour', 'day')),
    window_start TIMESTAMPTZ NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    limit_value  INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, window_type, window_start)
);

CREATE TABLE unsubscribes (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email           VARCHAR(254) NOT NULL,
    email_lc        VARCHAR(254) NOT NULL,
    source          VARCHAR(50) NOT NULL
                    CHECK (source IN ('manual', 'link', 'bounce', 'complaint', 'import')),
    campaign_id     UUID REFERENCES campaigns (id) ON DELETE SET NULL,
    reason          TEXT,
    unsubscribed_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, email_lc)
);
CREATE INDEX idx_unsubscribes_campaign ON unsubscribes (campaign_id);
