-- Version 3: delivery.  Rate limits count the messages handed to the relay in
-- a sliding window (last_attempt_at is stamped at every claim); these indexes
-- keep each count proportional to the window's traffic, not to a campaign.
CREATE INDEX idx_scheduled_messages_tenant_attempt
    ON scheduled_messages (tenant_id, last_attempt_at) WHERE last_attempt_at IS NOT NULL;
CREATE INDEX idx_scheduled_messages_campaign_attempt
    ON scheduled_messages (campaign_id, last_attempt_at) WHERE last_attempt_at IS NOT NULL;
