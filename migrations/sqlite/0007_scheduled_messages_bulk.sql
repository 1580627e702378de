-- Version 7: what bulk materialisation and fast delivery need.
--
-- scheduled_messages is rebuilt (SQLite cannot drop a constraint) without
-- two foreign keys and one index:
-- - recipient_id no longer references recipients: ON DELETE SET NULL had no
--   index to find a deleted recipient's messages, so deleting a list scanned
--   every message once per recipient.  A message whose recipient is gone is
--   suppressed at claim, as one whose recipient is inactive; its row keeps
--   the id for the record.
-- - tenant_id no longer references tenants: the campaign's key (ON DELETE
--   CASCADE) already removes the messages with their campaign and tenant.
-- - no query reads messages by (tenant, address); that index cost every
--   materialised message a random index insert.
-- The claim-stamp indexes go too: rate windows are counted in rate_usage
-- (below), not from the messages.
CREATE TABLE scheduled_messages_new (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    campaign_id      TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    recipient_id     TEXT,
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
INSERT INTO scheduled_messages_new SELECT * FROM scheduled_messages;
DROP TABLE scheduled_messages;
ALTER TABLE scheduled_messages_new RENAME TO scheduled_messages;
CREATE INDEX idx_scheduled_messages_due ON scheduled_messages (campaign_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_scheduled_messages_lease ON scheduled_messages (lease_expires_at)
    WHERE status = 'sending';

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
CREATE INDEX idx_scheduled_messages_sent ON scheduled_messages (campaign_id, sent_at)
    WHERE sent_at IS NOT NULL;

-- Rate windows are counted from rate_usage, not from the messages' claim
-- stamps: a claim adds its messages to a 1-second, a 1-minute and a
-- 10-minute bucket of its tenant (and of its campaign when the campaign has
-- limits), and reads at most a few hundred bucket rows, however many
-- messages the window holds.  (Counting the stamps read a day's worth of
-- index entries on every claim.)  bucket is the bucket's start in Unix
-- seconds, a multiple of width.  Old buckets are deleted by the workers'
-- lease-recovery sweep.
CREATE TABLE rate_usage (
    scope_id TEXT NOT NULL,    -- a tenant's or a campaign's id
    width    INTEGER NOT NULL CHECK (width IN (1, 60, 600)),
    bucket   INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (scope_id, width, bucket)
) WITHOUT ROWID;

-- Never used: the original system's fixed-window counters.
DROP TABLE rate_limit_counters;
