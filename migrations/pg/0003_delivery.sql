-- Version 3: delivery (see migrations/sqlite/0003).
CREATE INDEX idx_scheduled_messages_tenant_attempt
    ON scheduled_messages (tenant_id, last_attempt_at) WHERE last_attempt_at IS NOT NULL;
CREATE INDEX idx_scheduled_messages_campaign_attempt
    ON scheduled_messages (campaign_id, last_attempt_at) WHERE last_attempt_at IS NOT NULL;
