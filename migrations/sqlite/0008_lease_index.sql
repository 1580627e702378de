-- Version 8: the lease index keyed on the lease alone, as for PostgreSQL
-- (see migrations/pg/0008): a message has a lease exactly while it is
-- 'sending', and a result update's status test no longer matches the index.
DROP INDEX idx_scheduled_messages_lease;
CREATE INDEX idx_scheduled_messages_lease ON scheduled_messages (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
