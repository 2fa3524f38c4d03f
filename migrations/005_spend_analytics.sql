-- 005_spend_analytics: rows findable by the upstream's completion id, request
-- tags, and daily aggregates kept up to date by the statement that ships a
-- spool batch (lib/shipper.c), so that reports never scan spend_logs.

-- The answer's "id" (a stream's first chunk's), beside our request_id.
ALTER TABLE spend_logs ADD COLUMN response_id text;
-- metadata.tags and the x-litellm-tags header, as a JSON array of strings.
ALTER TABLE spend_logs ADD COLUMN request_tags jsonb NOT NULL DEFAULT '[]';
CREATE INDEX spend_logs_response_idx ON spend_logs (response_id)
    WHERE response_id IS NOT NULL;

-- One row per UTC day x key x model (as the client asked) x user x team x
-- end user (the request's "user"); '' stands for none, so that the primary
-- key is the upsert's conflict target.
CREATE TABLE spend_daily (
    day                 date NOT NULL,
    api_key             text NOT NULL,
    model               text NOT NULL,
    user_id             text NOT NULL DEFAULT '',
    team_id             text NOT NULL DEFAULT '',
    end_user            text NOT NULL DEFAULT '',
    prompt_tokens       bigint NOT NULL DEFAULT 0,
    completion_tokens   bigint NOT NULL DEFAULT 0,
    total_tokens        bigint NOT NULL DEFAULT 0,
    spend               double precision NOT NULL DEFAULT 0,
    api_requests        bigint NOT NULL DEFAULT 0,
    successful_requests bigint NOT NULL DEFAULT 0,
    failed_requests     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, api_key, model, user_id, team_id, end_user)
) WITH (fillfactor = 70);
-- Only the primary key: every report reads a range of days (its leading
-- column), and a batch's upserts then update rows in place (HOT: no
-- indexed column changes, room left on the page) instead of adding index
-- entries.

-- The same per tag (a request with two tags counts in both).
CREATE TABLE spend_daily_tags (
    day                 date NOT NULL,
    tag                 text NOT NULL,
    api_key             text NOT NULL,
    user_id             text NOT NULL DEFAULT '',
    team_id             text NOT NULL DEFAULT '',
    prompt_tokens       bigint NOT NULL DEFAULT 0,
    completion_tokens   bigint NOT NULL DEFAULT 0,
    total_tokens        bigint NOT NULL DEFAULT 0,
    spend               double precision NOT NULL DEFAULT 0,
    api_requests        bigint NOT NULL DEFAULT 0,
    successful_requests bigint NOT NULL DEFAULT 0,
    failed_requests     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tag, api_key, user_id, team_id)
) WITH (fillfactor = 70);

-- Rows shipped before this migration.
INSERT INTO spend_daily
SELECT (start_time AT TIME ZONE 'UTC')::date, api_key, model,
    coalesce(user_id, ''), coalesce(team_id, ''),
    coalesce(metadata->>'end_user', ''), sum(prompt_tokens),
    sum(completion_tokens), sum(total_tokens), sum(spend), count(*),
    count(*) FILTER (WHERE status BETWEEN 200 AND 299),
    count(*) FILTER (WHERE status NOT BETWEEN 200 AND 299)
FROM spend_logs GROUP BY 1, 2, 3, 4, 5, 6;
