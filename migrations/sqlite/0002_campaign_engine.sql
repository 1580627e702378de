-- Version 2: what the campaign engine needs.
-- materialized_at: when every message of the campaign exists (NULL while the
-- engine is still creating them in batches); materialize_cursor: the last
-- recipient id done.  The (list, id) index drives that keyset walk; the
-- (campaign, sent_at) index answers "sent in the last minute" without
-- reading the whole campaign.
ALTER TABLE campaigns ADD COLUMN materialized_at INTEGER;
ALTER TABLE campaigns ADD COLUMN materialize_cursor TEXT;
CREATE INDEX idx_recipients_list_id ON recipients (recipient_list_id, id);
CREATE INDEX idx_scheduled_messages_sent ON scheduled_messages (campaign_id, sent_at)
    WHERE sent_at IS NOT NULL;
