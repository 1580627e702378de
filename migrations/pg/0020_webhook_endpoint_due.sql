-- Version 20: each endpoint's due deliveries, oldest first, found by one
-- probe: the webhook claim takes every enabled endpoint's own oldest ones
-- (store_webhooks.c, sql_claim_*), so one endpoint's backlog cannot keep
-- another's deliveries waiting.
CREATE INDEX idx_webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
