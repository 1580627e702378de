-- Version 9: bounces and complaints.
--
-- - bounces: every report taken in (DSN, feedback report, auto-reply, a
--   provider's webhook), one row per recipient it names, with the raw
--   message (up to 256 KB, as text: bytes that are not UTF-8 replaced) for
--   the operator; tenant_id NULL when no valid signed reference named a
--   message (kept for the operator only, changing nothing).
--   Pruned after bounce_retention_days.
-- - bounce_policies: a tenant's policy; no row means the defaults.
-- - unsubscribes gain a cause, the message that caused the entry and an
--   optional expiry.  suppressions is the view of the entries in force: every
--   "is this address suppressed?" reads it (or, on the bulk paths, the same
--   test with the statement's own time), so an expired entry stops
--   suppressing everywhere at once; a new entry for the address replaces an
--   expired one (trigger), so every existing INSERT keeps working.
-- - campaigns count hard and soft bounces, complaints and blocks.
CREATE TABLE bounces (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    message_id    TEXT,
    campaign_id   TEXT REFERENCES campaigns (id) ON DELETE SET NULL,
    recipient_id  TEXT,
    email         TEXT,
    email_lc      TEXT,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('dsn', 'arf', 'auto_reply', 'other', 'not_bounce', 'api')),
    class         TEXT NOT NULL
                  CHECK (class IN ('hard', 'soft', 'block', 'complaint', 'auto_reply',
                                   'undetermined')),
    status        TEXT,
    action        TEXT,
    diagnostic    TEXT,
    reporting_mta TEXT,
    remote_mta    TEXT,
    feedback_type TEXT,
    source        TEXT NOT NULL CHECK (source IN ('smtp', 'pipe', 'api')),
    outcome       TEXT NOT NULL,
    raw           TEXT,
    raw_truncated INTEGER NOT NULL DEFAULT 0,
    received_at   INTEGER NOT NULL
);
CREATE INDEX idx_bounces_tenant ON bounces (tenant_id, received_at);
CREATE INDEX idx_bounces_received ON bounces (received_at);
CREATE INDEX idx_bounces_message ON bounces (message_id);
CREATE INDEX idx_bounces_address ON bounces (tenant_id, email_lc, received_at);
CREATE INDEX idx_bounces_campaign ON bounces (campaign_id, received_at);

CREATE TABLE bounce_policies (
    tenant_id          TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    soft_limit         INTEGER NOT NULL,
    soft_window_days   INTEGER NOT NULL,
    soft_suppress_days INTEGER NOT NULL,
    bounce_domain      TEXT,
    updated_at         INTEGER NOT NULL
);

ALTER TABLE unsubscribes ADD COLUMN cause TEXT NOT NULL DEFAULT 'manual'
    CHECK (cause IN ('unsubscribed', 'hard_bounce', 'soft_bounce', 'complaint', 'manual'));
ALTER TABLE unsubscribes ADD COLUMN message_id TEXT;
ALTER TABLE unsubscribes ADD COLUMN expires_at INTEGER;
UPDATE unsubscribes SET cause = CASE source WHEN 'link' THEN 'unsubscribed'
    WHEN 'bounce' THEN 'hard_bounce' WHEN 'complaint' THEN 'complaint' ELSE 'manual' END;

CREATE VIEW suppressions AS
    SELECT * FROM unsubscribes
    WHERE expires_at IS NULL
       OR expires_at > CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER);

CREATE TRIGGER unsubscribes_replace_expired BEFORE INSERT ON unsubscribes
BEGIN
    DELETE FROM unsubscribes
    WHERE tenant_id = NEW.tenant_id AND email_lc = NEW.email_lc AND expires_at IS NOT NULL
      AND expires_at <= CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER);
END;

ALTER TABLE campaigns ADD COLUMN bounced_hard_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN bounced_soft_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN complained_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN blocked_count INTEGER NOT NULL DEFAULT 0;
