-- 003_spend: one row per request, budget resets, and a helper turning
-- "30s", "15m", "1h", "30d", "2w", "1mo" into an interval.

CREATE FUNCTION llmgw_interval(d text) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN d ~ '^[0-9]+mo$' THEN (substring(d FROM '^[0-9]+') || ' months')::interval
        WHEN d ~ '^[0-9]+[smhdw]$' THEN (substring(d FROM '^[0-9]+') || ' ' ||
            CASE right(d, 1) WHEN 's' THEN 'seconds' WHEN 'm' THEN 'minutes'
                WHEN 'h' THEN 'hours' WHEN 'd' THEN 'days' ELSE 'weeks' END)::interval
    END
$$;

-- Written in batches from each worker's spool; request_id makes a replay
-- of the spool harmless (ON CONFLICT DO NOTHING).
CREATE TABLE spend_logs (
    request_id           text PRIMARY KEY,
    api_key              text NOT NULL DEFAULT '',   -- the key's SHA-256, '' for the master key
    key_alias            text,
    user_id              text,
    team_id              text,
    model                text NOT NULL DEFAULT '',   -- as the client asked (alias)
    actual_model         text,                       -- what the upstream served
    call_type            text NOT NULL,              -- chat, completion, embedding
    prompt_tokens        integer NOT NULL DEFAULT 0,
    completion_tokens    integer NOT NULL DEFAULT 0,
    total_tokens         integer NOT NULL DEFAULT 0,
    spend                double precision NOT NULL DEFAULT 0,  -- USD
    usage_estimated      boolean NOT NULL DEFAULT false,
    start_time           timestamptz NOT NULL,
    end_time             timestamptz NOT NULL,
    completion_start_time timestamptz,
    ttft_ms              double precision,
    status               integer NOT NULL,
    error_type           text,
    stream               boolean NOT NULL DEFAULT false,
    client_disconnected  boolean NOT NULL DEFAULT false,
    metadata             jsonb NOT NULL DEFAULT '{}',
    logged_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spend_logs_start_idx ON spend_logs (start_time);
CREATE INDEX spend_logs_key_idx ON spend_logs (api_key, start_time);
CREATE INDEX spend_logs_user_idx ON spend_logs (user_id, start_time);

-- Every scheduled budget reset, with the spend it cleared.
CREATE TABLE budget_resets (
    entity_type   text NOT NULL CHECK (entity_type IN ('key', 'user', 'team')),
    entity_id     text NOT NULL,
    spend_before  double precision NOT NULL,
    reset_at      timestamptz NOT NULL DEFAULT now(),
    next_reset_at timestamptz
);
CREATE INDEX budget_resets_entity_idx ON budget_resets (entity_type, entity_id, reset_at);
