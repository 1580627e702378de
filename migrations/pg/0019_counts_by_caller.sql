-- Version 19: nothing changes for PostgreSQL, whose count trigger is
-- statement-level already (version 4); the SQLite twin lets the delivery
-- hot path count its own status changes.  Kept so that both stores share
-- version numbers.
SELECT 1;
