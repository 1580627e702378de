-- Version 22: the global index of pending deliveries by due time goes.  The
-- webhook claim has found each endpoint's due deliveries through
-- idx_webhook_deliveries_endpoint_due since version 20, and nothing else
-- reads pending deliveries in due order; the index cost every webhook an
-- entry when queued and left a dead one when claimed.
DROP INDEX IF EXISTS idx_webhook_deliveries_due;
