-- Version 8: the lease index was partial on status = 'sending', so the planner
-- took it for every fenced result update (... AND status = 'sending') and
-- walked all its entries, dead ones included, instead of probing the primary
-- key: recording a flush's outcomes cost milliseconds.  A message has a lease
-- exactly while it is 'sending'; keyed on that, the index still finds the
-- expired leases and matches no status test.
DROP INDEX idx_scheduled_messages_lease;
CREATE INDEX idx_scheduled_messages_lease ON scheduled_messages (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
