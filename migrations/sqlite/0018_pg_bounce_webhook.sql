-- Version 18 (issues 10 and 11, PostgreSQL's cost of bounces and webhooks).
--
-- The bounce intake checks each report for a duplicate (a record of the same
-- class about the same message and address that is not itself a duplicate)
-- inside the statement that writes the duplicate's record, for a whole
-- group-committed batch at once (store_bounces.c, dup_prewrite).  This
-- partial index is exactly that check: one probe per report, however many
-- duplicates of the message there are already (an MTA retrying after a lost
-- 250, or a benchmark sending one report thousands of times).
CREATE INDEX idx_bounces_dedup ON bounces (message_id, class, email_lc)
    WHERE outcome <> 'duplicate';
--
-- The same index on SQLite: its duplicate check runs one statement per report
-- (round trips cost nothing there) with the same predicate.
