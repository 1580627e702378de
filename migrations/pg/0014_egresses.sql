-- Version 14 (issue 15, item 5): egresses and egress pools.
--
-- An egress is one way out: a relay (a URL as --relay takes it), the EHLO
-- name to give it, an optional local address to bind and a cap on its
-- connections (per process).  'default' is the configuration's --relay:
-- its row holds no relay (NULL: the configuration's) and the API neither
-- changes nor deletes it.
CREATE TABLE egresses (
    name            TEXT PRIMARY KEY,
    relay           TEXT,
    ehlo_name       TEXT,
    source_address  TEXT,
    max_connections INTEGER CHECK (max_connections > 0),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- A pool is a weighted set of egresses; a tenant's mail leaves only
-- through its pool's members, each taking its weight's share of it while
-- it answers (a member that cannot be reached gives its share to the
-- others until it answers again).
CREATE TABLE egress_pools (
    name       TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE egress_pool_members (
    pool   TEXT NOT NULL REFERENCES egress_pools (name) ON DELETE CASCADE,
    egress TEXT NOT NULL REFERENCES egresses (name),
    weight INTEGER NOT NULL CHECK (weight > 0),
    PRIMARY KEY (pool, egress)
);
CREATE INDEX idx_egress_pool_members_egress ON egress_pool_members (egress);

INSERT INTO egresses (name, created_at, updated_at) VALUES ('default', now(), now());
INSERT INTO egress_pools (name, created_at, updated_at) VALUES ('default', now(), now());
INSERT INTO egress_pool_members (pool, egress, weight) VALUES ('default', 'default', 1);

-- The pool a tenant's mail leaves through (a pool in use cannot be deleted).
ALTER TABLE tenants ADD COLUMN egress_pool TEXT NOT NULL DEFAULT 'default';
