-- 001_init: the gateway's own bookkeeping.
-- schema_migrations itself is created by llmgw-migrate before any file runs.
-- Migrations run inside a transaction opened by llmgw-migrate: no BEGIN/COMMIT here.

CREATE TABLE llmgw_meta (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE llmgw_meta IS 'llmgw: installation facts (key/value)';

INSERT INTO llmgw_meta (key, value) VALUES ('installed_at', now()::text);
