-- Version 17 (issue 15, automation): two more actions and a trigger on the
-- share of deferred attempts.
--
-- set_connections caps the connections each process opens to a site
-- (max_connections) while in force; scale_rate multiplies the site's rate
-- in force by factor_ppm / 1,000,000.  A rule with deferral_ratio_ppm set
-- fires when, among at least min_attempts of the relay's replies to
-- attempts at one site within trigger_period_s, more than
-- deferral_ratio_ppm / 1,000,000 were deferrals (4xx); its trigger_count
-- is then 1 and unused.
ALTER TABLE shaping_automation DROP CONSTRAINT shaping_automation_action_check;
ALTER TABLE shaping_automation ADD CONSTRAINT shaping_automation_action_check
    CHECK (action IN ('set_rate', 'suspend_site', 'suspend_tenant', 'set_connections',
                      'scale_rate'));
ALTER TABLE shaping_automation
    ADD COLUMN deferral_ratio_ppm INTEGER CHECK (deferral_ratio_ppm BETWEEN 1 AND 999999),
    ADD COLUMN min_attempts INTEGER CHECK (min_attempts > 0),
    ADD COLUMN max_connections INTEGER CHECK (max_connections > 0),
    ADD COLUMN factor_ppm INTEGER CHECK (factor_ppm BETWEEN 1 AND 999999);

-- What a set_connections put in force, and the counts a deferral ratio fired on.
ALTER TABLE shaping_state
    ADD COLUMN max_connections INTEGER,
    ADD COLUMN attempts INTEGER,
    ADD COLUMN deferrals INTEGER;

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
);
