-- Version 23: nothing on SQLite (PostgreSQL: the counters' trigger plans
-- with nested loops allowed; see migrations/pg/0023).
SELECT 1;
