-- Version 5: DKIM signing keys, per tenant and domain.  The private key is
-- stored encrypted (AES-256-GCM under the server's key-encryption key, as
-- base64 of nonce | tag | ciphertext); the public key is what the DNS record
-- publishes.  The newest key of a (tenant, domain) signs.
CREATE TABLE dkim_keys (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain          TEXT NOT NULL,
    selector        TEXT NOT NULL,
    algorithm       TEXT NOT NULL DEFAULT 'rsa-sha256',
    key_bits        INTEGER NOT NULL,
    private_key_enc TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, domain, selector)
);
CREATE INDEX idx_dkim_keys_domain ON dkim_keys (tenant_id, domain, created_at);
