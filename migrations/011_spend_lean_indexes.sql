-- 011_spend_lean_indexes: spend_logs keeps only indexes that are cheap to
-- grow, since every shipped row adds an entry to each (issue: PostgreSQL
-- CPU and WAL per spend row). The reads they serve are GET /spend/logs'
-- filters (lib/spend_api.c); reports read spend_daily, never spend_logs.
-- Rebuilding them takes a lock that makes the shippers wait meanwhile
-- (their spools keep the rows).

-- Rows arrive in start_time order, near enough: a BRIN index (a few pages
-- for millions of rows, nothing to do per row until a range fills) finds
-- a date range as well as the btree did.
DROP INDEX spend_logs_start_idx;
CREATE INDEX spend_logs_start_brin ON spend_logs USING brin (start_time)
    WITH (autosummarize = on);

-- Only rows with a user: a request without one (a key of no user, the
-- master key) adds nothing. user_id = $3 implies it, so lookups use it.
DROP INDEX spend_logs_user_idx;
CREATE INDEX spend_logs_user_idx ON spend_logs (user_id, start_time)
    WHERE user_id IS NOT NULL;

-- Looked up by equality only (request_id = $5 OR response_id = $5): a hash
-- entry is 4 bytes of hash, where the btree kept the whole id and sorted
-- it among the others.
DROP INDEX spend_logs_response_idx;
CREATE INDEX spend_logs_response_idx ON spend_logs USING hash (response_id)
    WHERE response_id IS NOT NULL;

-- spend_logs_key_idx (api_key, start_time) stays: a key reads its own
-- logs, newest first. spend_logs_session_idx stays (partial: few rows).
