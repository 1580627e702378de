-- Version 21: the prune of old attempt tallies (DELETE ... WHERE second < $1,
-- every lease sweep) finds them by index instead of scanning the table.
CREATE INDEX idx_shaping_attempts_second ON shaping_attempts (second);
