-- Version 2: what the campaign engine needs (see migrations/sqlite/0002).
ALTER TABLE campaigns ADD COLUMN materialized_at TIMESTAMPTZ;
ALTER TABLE campaigns ADD COLUMN materialize_cursor UUID;
CREATE INDEX idx_recipients_list_id ON recipients (recipient_list_id, id);
CREATE INDEX idx_scheduled_messages_sent ON scheduled_messages (campaign_id, sent_at)
    WHERE sent_at IS NOT NULL;
