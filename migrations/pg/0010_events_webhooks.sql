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
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL,
    type         TEXT NOT NULL,
    campaign_id  UUID,
    message_id   UUID,
    recipient_id UUID,
    email_lc     TEXT,
    data         JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
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
    id                  UUID PRIMARY KEY,
    tenant_id           UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                 TEXT NOT NULL,
    description         TEXT,
    event_types         TEXT NOT NULL,
    enabled             BOOLEAN NOT NULL DEFAULT true,
    disabled_reason     TEXT,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_expires_at TIMESTAMPTZ,
    failing_since       TIMESTAMPTZ,
    last_success_at     TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

-- The delivery outbox: one row per (event, endpoint), claimed with a lease
-- like scheduled_messages; results are fenced on (id, lease_owner, attempts).
-- Written with the events, a row per message sent, so without foreign keys:
-- deleting an endpoint deletes its deliveries in the same transaction, and
-- the retention sweep deletes deliveries (ids time-ordered too) before events.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL,
    endpoint_id      UUID NOT NULL,
    event_id         UUID NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER,
    last_latency_ms  INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    completed_at     TIMESTAMPTZ
);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX idx_webhook_deliveries_lease ON webhook_deliveries (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX idx_webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
