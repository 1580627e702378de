-- Version 6: nothing changes for SQLite; its driver defines mc_uuid7() on
-- every connection (PostgreSQL gets the function from migrations/pg/0006).
SELECT 1;
