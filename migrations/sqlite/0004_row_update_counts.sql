-- Version 4: nothing changes for SQLite (its recipients UPDATE trigger was
-- already row-level and conditional); the PostgreSQL twin moves to the same
-- design.  Kept so that both stores share version numbers.
SELECT 1;
