-- Version 10: the event log and webhooks.
--
-- events is an outbox: every row is written in the transaction of the
-- change it records, so an event exists exactly when its change committed.
-- Ids are time-ordered (UUID version 7), so the primary key is also the
-- cursor of GET .../events and the retention sweep's bound.  No column
-- carries a foreign key: the log outlives what it talks about (tenants are
-- only ever soft-deleted), and this table takes a row per message sent, so
-- it pays for no per-row check.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    type         TEXT NOT NULL,
    campaign_id  TEXT,
    message_id   TEXT,
    recipient_id TEXT,
    email_lc     TEXT,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX idx_events_tenant ON events (tenant_id, id);
CREATE INDEX idx_events_campaign ON events (tenant_id, campaign_id, id)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX idx_events_email ON events (tenant_id, email_lc, id) WHERE email_lc IS NOT NULL;

-- A tenant's receivers.  event_types is '*' or the subscribed types between
-- commas (",message.sent,campaign.completed,"), so one LIKE matches a type.
-- The secret signs; previous_secret also signs until previous_expires_at
-- (rotation's grace period).
CREATE TABLE webhook_endpoints (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                 TEXT NOT NULL,
    description         TEXT,
    event_types         TEXT NOT NULL,
    enabled             INTEGER NOT NULL DEFAULT 1,
    disabled_reason     TEXT,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_expires_at INTEGER,
    failing_since       INTEGER,
    last_success_at     INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX idx_webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

-- The delivery outbox: one row per (event, endpoint), claimed with a lease
-- like scheduled_messages; results are fenced on (id, lease_owner, attempts).
-- Written with the events, a row per message sent, so without foreign keys:
-- deleting an endpoint deletes its deliveries in the same transaction, and
-- the retention sweep deletes deliveries (ids time-ordered too) before events.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_attempt_at  INTEGER,
    last_status_code INTEGER,
    last_latency_ms  INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER
);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_webhook_deliveries_lease ON webhook_deliveries (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX idx_webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
