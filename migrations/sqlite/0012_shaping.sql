-- Version 12 (issue 15): pacing, destination sites and shaping rules.
--
-- rate_pace holds each paced scope's theoretical arrival time (GCRA): the
-- moment, in Unix microseconds, from which its next message may go without
-- a burst.  A scope is a tenant's or a campaign's id, or 'site:EGRESS/SITE'.
-- Claims read and advance it inside their transaction, so every worker
-- sharing the database paces one shared sequence of slots.  A limit
-- changed rescales what lies ahead (core/pace.c).
CREATE TABLE rate_pace (
    scope_id TEXT PRIMARY KEY,
    tat      INTEGER NOT NULL,
    interval_us INTEGER NOT NULL DEFAULT 0  -- the interval tat was kept under
) WITHOUT ROWID;

-- A tenant's per-second limit (NULL: none); it joins the minute, hour and day.
ALTER TABLE tenant_rate_limits ADD COLUMN per_second INTEGER CHECK (per_second > 0);

-- The destination site of a message, set when it is created (NULL for
-- messages created before version 12: they have no site's limits).
ALTER TABLE scheduled_messages ADD COLUMN site TEXT;

CREATE TABLE site_domains (
    domain TEXT PRIMARY KEY,
    site   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE shaping_rules (
    egress             TEXT NOT NULL,
    site               TEXT NOT NULL,
    max_connections    INTEGER CHECK (max_connections > 0),
    max_per_connection INTEGER CHECK (max_per_connection > 0),
    per_second         INTEGER CHECK (per_second > 0),
    per_minute         INTEGER CHECK (per_minute > 0),
    PRIMARY KEY (egress, site)
) WITHOUT ROWID;

-- Automation on receivers' replies (issue 15): rules of the shaping
-- document, matched against the relay's replies to delivery attempts.
-- position is the rule's index in the document.  A rule matches a reply
-- whose code equals match_code (NULL: any), whose enhanced status starts
-- with match_enhanced (NULL: any) and whose text matches match_regex (a
-- POSIX extended expression, case-insensitive; NULL: any).  It fires when
-- trigger_count matching replies fall within trigger_period_s (1 and 0:
-- at once), and then puts its action in force for duration_s.
CREATE TABLE shaping_automation (
    position         INTEGER PRIMARY KEY,
    egress           TEXT NOT NULL,
    site             TEXT NOT NULL,
    match_code       INTEGER,
    match_enhanced   TEXT,
    match_regex      TEXT,
    trigger_count    INTEGER NOT NULL CHECK (trigger_count > 0),
    trigger_period_s INTEGER NOT NULL CHECK (trigger_period_s >= 0),
    action           TEXT NOT NULL CHECK (action IN ('set_rate', 'suspend_site',
                                                     'suspend_tenant')),
    per_second       INTEGER CHECK (per_second > 0),
    per_minute       INTEGER CHECK (per_minute > 0),
    duration_s       INTEGER NOT NULL CHECK (duration_s > 0)
);

-- Matching replies not yet spent on a trigger (times in Unix microseconds).
CREATE TABLE shaping_hits (
    position   INTEGER NOT NULL,
    egress     TEXT NOT NULL,
    site       TEXT NOT NULL,
    tenant_key TEXT NOT NULL,  -- the tenant's id for suspend_tenant rules, else ''
    at         BIGINT NOT NULL
);
CREATE INDEX idx_shaping_hits ON shaping_hits (position, egress, site, tenant_key, at);

-- What automation has put in force, until when and why.  Claims obey every
-- row whose until_at is in the future; expired rows are deleted by the
-- lease sweep.  tenant_key '' means every tenant.
CREATE TABLE shaping_state (
    id          TEXT PRIMARY KEY,
    egress      TEXT NOT NULL,
    site        TEXT NOT NULL,
    tenant_key  TEXT NOT NULL,
    action      TEXT NOT NULL,
    per_second  INTEGER,
    per_minute  INTEGER,
    position    INTEGER NOT NULL,
    last_reply  TEXT NOT NULL,
    since_at    BIGINT NOT NULL,
    until_at    BIGINT NOT NULL,
    UNIQUE (egress, site, tenant_key, action)
);

-- Built-in destination sites (issue 15): a recipient's domain, or its parent
-- domain, found here gives the message's site; any other domain is its own
-- site.  Data, not code: the operator replaces the table with PUT
-- /api/v1/shaping or `mailcast serve --shaping FILE`.
INSERT INTO site_domains (domain, site) VALUES
    ('gmail.com', 'google'), ('googlemail.com', 'google'),
    ('yahoo.com', 'yahoo'), ('yahoo.co.uk', 'yahoo'), ('yahoo.fr', 'yahoo'),
    ('yahoo.de', 'yahoo'), ('yahoo.co.jp', 'yahoo'), ('ymail.com', 'yahoo'),
    ('rocketmail.com', 'yahoo'), ('aol.com', 'yahoo'), ('aim.com', 'yahoo'),
    ('outlook.com', 'microsoft'), ('hotmail.com', 'microsoft'),
    ('hotmail.co.uk', 'microsoft'), ('hotmail.fr', 'microsoft'), ('hotmail.de', 'microsoft'),
    ('live.com', 'microsoft'), ('live.co.uk', 'microsoft'), ('msn.com', 'microsoft'),
    ('icloud.com', 'apple'), ('me.com', 'apple'), ('mac.com', 'apple'),
    ('gmx.com', 'united-internet'), ('gmx.de', 'united-internet'),
    ('gmx.net', 'united-internet'), ('web.de', 'united-internet'),
    ('mail.com', 'united-internet'),
    ('yandex.ru', 'yandex'), ('yandex.com', 'yandex'), ('ya.ru', 'yandex'),
    ('mail.ru', 'mailru'), ('bk.ru', 'mailru'), ('inbox.ru', 'mailru'), ('list.ru', 'mailru'),
    ('comcast.net', 'comcast'),
    ('orange.fr', 'orange'), ('wanadoo.fr', 'orange'),
    ('proton.me', 'proton'), ('protonmail.com', 'proton'),
    ('zoho.com', 'zoho');

-- Default shaping per (egress, site); see README.md, "Shaping", for where each
-- number comes from.  NULL: no limit of that kind.
INSERT INTO shaping_rules (egress, site, max_connections, max_per_connection, per_second,
                           per_minute) VALUES
    ('default', 'google', 10, 50, 20, NULL),
    ('default', 'yahoo', 5, 20, 10, NULL),
    ('default', 'microsoft', 10, 100, 20, NULL),
    ('default', 'apple', 5, 50, 10, NULL);
