-- Version 5: DKIM signing keys (see migrations/sqlite/0005).
CREATE TABLE dkim_keys (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain          VARCHAR(253) NOT NULL,
    selector        VARCHAR(63) NOT NULL,
    algorithm       VARCHAR(20) NOT NULL DEFAULT 'rsa-sha256',
    key_bits        INTEGER NOT NULL,
    private_key_enc TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, domain, selector)
);
CREATE INDEX idx_dkim_keys_domain ON dkim_keys (tenant_id, domain, created_at);
