-- Version 17 (issue 15, automation): two more actions and a trigger on the
-- share of deferred attempts.
--
-- set_connections caps the connections each process opens to a site
-- (max_connections) while in force; scale_rate multiplies the site's rate
-- in force by factor_ppm / 1,000,000.  A rule with deferral_ratio_ppm set
-- fires when, among at least min_attempts of the relay's replies to
-- attempts at one site within trigger_period_s, more than
-- deferral_ratio_ppm / 1,000,000 were deferrals (4xx); its trigger_count
-- is then 1 and unused.  SQLite cannot change a CHECK constraint: the
-- table is made again with the rules it holds.
CREATE TABLE shaping_automation_v17 (
    position           INTEGER PRIMARY KEY,
    egress             TEXT NOT NULL,
    site               TEXT NOT NULL,
    match_code         INTEGER,
    match_enhanced     TEXT,
    match_regex        TEXT,
    trigger_count      INTEGER NOT NULL CHECK (trigger_count > 0),
    trigger_period_s   INTEGER NOT NULL CHECK (trigger_period_s >= 0),
    deferral_ratio_ppm INTEGER CHECK (deferral_ratio_ppm BETWEEN 1 AND 999999),
    min_attempts       INTEGER CHECK (min_attempts > 0),
    action             TEXT NOT NULL CHECK (action IN ('set_rate', 'suspend_site',
                                                       'suspend_tenant', 'set_connections',
                                                       'scale_rate')),
    per_second         INTEGER CHECK (per_second > 0),
    per_minute         INTEGER CHECK (per_minute > 0),
    max_connections    INTEGER CHECK (max_connections > 0),
    factor_ppm         INTEGER CHECK (factor_ppm BETWEEN 1 AND 999999),
    duration_s         INTEGER NOT NULL CHECK (duration_s > 0)
);
INSERT INTO shaping_automation_v17 (position, egress, site, match_code, match_enhanced,
                                    match_regex, trigger_count, trigger_period_s, action,
                                    per_second, per_minute, duration_s)
    SELECT position, egress, site, match_code, match_enhanced, match_regex, trigger_count,
           trigger_period_s, action, per_second, per_minute, duration_s
    FROM shaping_automation;
DROP TABLE shaping_automation;
ALTER TABLE shaping_automation_v17 RENAME TO shaping_automation;

-- What a set_connections put in force, and the counts a deferral ratio fired on.
ALTER TABLE shaping_state ADD COLUMN max_connections INTEGER;
ALTER TABLE shaping_state ADD COLUMN attempts INTEGER;
ALTER TABLE shaping_state ADD COLUMN deferrals INTEGER;

-- The relay's replies to delivery attempts per (egress, site) and second
-- (Unix seconds), added up per group commit: attempts, and how many of
-- them were deferred.  Kept only for sites a deferral-ratio or scale_rate
-- rule covers, for at most an hour (the longest ratio period).  A ratio
-- rule's last firing is a row of shaping_hits (tenant_key ''): attempts
-- before it count no more for that rule.
CREATE TABLE shaping_attempts (
    egress    TEXT NOT NULL,
    site      TEXT NOT NULL,
    second    BIGINT NOT NULL,
    attempts  INTEGER NOT NULL,
    deferrals INTEGER NOT NULL,
    PRIMARY KEY (egress, site, second)
) WITHOUT ROWID;
