-- Version 9: bounces and complaints (see migrations/sqlite/0009_bounces.sql).
CREATE TABLE bounces (
    id            UUID PRIMARY KEY,
    tenant_id     UUID REFERENCES tenants (id) ON DELETE CASCADE,
    message_id    UUID,
    campaign_id   UUID REFERENCES campaigns (id) ON DELETE SET NULL,
    recipient_id  UUID,
    email         TEXT,
    email_lc      TEXT,
    kind          VARCHAR(20) NOT NULL
                  CHECK (kind IN ('dsn', 'arf', 'auto_reply', 'other', 'not_bounce', 'api')),
    class         VARCHAR(20) NOT NULL
                  CHECK (class IN ('hard', 'soft', 'block', 'complaint', 'auto_reply',
                                   'undetermined')),
    status        TEXT,
    action        TEXT,
    diagnostic    TEXT,
    reporting_mta TEXT,
    remote_mta    TEXT,
    feedback_type TEXT,
    source        VARCHAR(10) NOT NULL CHECK (source IN ('smtp', 'pipe', 'api')),
    outcome       TEXT NOT NULL,
    raw           TEXT,
    raw_truncated BOOLEAN NOT NULL DEFAULT false,
    received_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_bounces_tenant ON bounces (tenant_id, received_at);
CREATE INDEX idx_bounces_received ON bounces (received_at);
CREATE INDEX idx_bounces_message ON bounces (message_id);
CREATE INDEX idx_bounces_address ON bounces (tenant_id, email_lc, received_at);
CREATE INDEX idx_bounces_campaign ON bounces (campaign_id, received_at);

CREATE TABLE bounce_policies (
    tenant_id          UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    soft_limit         INTEGER NOT NULL,
    soft_window_days   INTEGER NOT NULL,
    soft_suppress_days INTEGER NOT NULL,
    bounce_domain      TEXT,
    updated_at         TIMESTAMPTZ NOT NULL
);

ALTER TABLE unsubscribes ADD COLUMN cause VARCHAR(20) NOT NULL DEFAULT 'manual'
    CHECK (cause IN ('unsubscribed', 'hard_bounce', 'soft_bounce', 'complaint', 'manual'));
ALTER TABLE unsubscribes ADD COLUMN message_id UUID;
ALTER TABLE unsubscribes ADD COLUMN expires_at TIMESTAMPTZ;
UPDATE unsubscribes SET cause = CASE source WHEN 'link' THEN 'unsubscribed'
    WHEN 'bounce' THEN 'hard_bounce' WHEN 'complaint' THEN 'complaint' ELSE 'manual' END;

CREATE VIEW suppressions AS
    SELECT * FROM unsubscribes WHERE expires_at IS NULL OR expires_at > now();

CREATE FUNCTION unsubscribes_replace_expired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM unsubscribes
    WHERE tenant_id = NEW.tenant_id AND email_lc = NEW.email_lc AND expires_at IS NOT NULL
      AND expires_at <= now();
    RETURN NEW;
END $$;
CREATE TRIGGER unsubscribes_replace_expired BEFORE INSERT ON unsubscribes
    FOR EACH ROW EXECUTE FUNCTION unsubscribes_replace_expired();

ALTER TABLE campaigns ADD COLUMN bounced_hard_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN bounced_soft_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN complained_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN blocked_count INTEGER NOT NULL DEFAULT 0;
