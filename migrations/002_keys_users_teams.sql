-- 002_keys_users_teams: virtual keys, users and teams (LiteLLM's
-- VerificationToken, UserTable and TeamTable, trimmed to what llmgw uses).
-- Keys are stored only as the lowercase hex SHA-256 of the whole raw key
-- ("sk-..." included), so a LiteLLM key table can be imported as is.

CREATE TABLE teams (
    team_id               text PRIMARY KEY CHECK (team_id <> ''),
    team_alias            text,
    models                text[] NOT NULL DEFAULT '{}',
    max_budget            double precision CHECK (max_budget >= 0),
    spend                 double precision NOT NULL DEFAULT 0,
    budget_duration       text,
    budget_reset_at       timestamptz,
    tpm_limit             bigint CHECK (tpm_limit >= 0),
    rpm_limit             bigint CHECK (rpm_limit >= 0),
    max_parallel_requests integer CHECK (max_parallel_requests >= 0),
    metadata              jsonb NOT NULL DEFAULT '{}',
    blocked               boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    user_id               text PRIMARY KEY CHECK (user_id <> ''),
    user_alias            text,
    user_email            text,
    user_role             text NOT NULL DEFAULT 'internal_user',
    team_id               text REFERENCES teams (team_id) ON DELETE SET NULL,
    models                text[] NOT NULL DEFAULT '{}',
    max_budget            double precision CHECK (max_budget >= 0),
    spend                 double precision NOT NULL DEFAULT 0,
    budget_duration       text,
    budget_reset_at       timestamptz,
    tpm_limit             bigint CHECK (tpm_limit >= 0),
    rpm_limit             bigint CHECK (rpm_limit >= 0),
    max_parallel_requests integer CHECK (max_parallel_requests >= 0),
    metadata              jsonb NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE keys (
    token                 text PRIMARY KEY CHECK (token ~ '^[0-9a-f]{64}$'),
    key_name              text NOT NULL,
    key_alias             text UNIQUE,
    user_id               text REFERENCES users (user_id) ON DELETE CASCADE,
    team_id               text REFERENCES teams (team_id) ON DELETE RESTRICT,
    models                text[] NOT NULL DEFAULT '{}',
    max_budget            double precision CHECK (max_budget >= 0),
    spend                 double precision NOT NULL DEFAULT 0,
    budget_duration       text,
    budget_reset_at       timestamptz,
    expires               timestamptz,
    tpm_limit             bigint CHECK (tpm_limit >= 0),
    rpm_limit             bigint CHECK (rpm_limit >= 0),
    max_parallel_requests integer CHECK (max_parallel_requests >= 0),
    metadata              jsonb NOT NULL DEFAULT '{}',
    blocked               boolean NOT NULL DEFAULT false,
    created_by            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX keys_user_team_idx ON keys (user_id, team_id);
CREATE INDEX keys_team_idx ON keys (team_id);
CREATE INDEX keys_budget_reset_idx ON keys (budget_reset_at, expires);

-- Audit copies of deleted keys (as LiteLLM's DeletedVerificationToken).
CREATE TABLE deleted_keys (
    token       text NOT NULL,
    key_name    text NOT NULL,
    key_alias   text,
    user_id     text,
    team_id     text,
    spend       double precision NOT NULL,
    row_data    jsonb NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    deleted_by  text
);
CREATE INDEX deleted_keys_token_idx ON deleted_keys (token);

-- Every change that can alter an authentication decision is announced on
-- channel llmgw_auth, so each worker drops its cached copy within
-- milliseconds (on every host sharing this database).
CREATE FUNCTION llmgw_auth_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'keys' THEN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            PERFORM pg_notify('llmgw_auth', 'key:' || OLD.token);
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.token <> OLD.token) THEN
            PERFORM pg_notify('llmgw_auth', 'key:' || NEW.token);
        END IF;
    ELSIF TG_TABLE_NAME = 'teams' THEN
        PERFORM pg_notify('llmgw_auth', 'team:' || COALESCE(NEW.team_id, OLD.team_id));
    ELSE
        PERFORM pg_notify('llmgw_auth', 'user:' || COALESCE(NEW.user_id, OLD.user_id));
    END IF;
    RETURN NULL;
END $$;

-- Spend moves on every request: only the columns auth depends on notify.
CREATE TRIGGER keys_auth_notify
    AFTER INSERT OR DELETE OR UPDATE OF token, models, blocked, expires,
        max_budget, team_id, user_id, key_alias, metadata, tpm_limit, rpm_limit,
        max_parallel_requests, budget_duration
    ON keys FOR EACH ROW EXECUTE FUNCTION llmgw_auth_notify();
CREATE TRIGGER teams_auth_notify
    AFTER INSERT OR DELETE OR UPDATE OF models, blocked, max_budget, tpm_limit,
        rpm_limit, max_parallel_requests
    ON teams FOR EACH ROW EXECUTE FUNCTION llmgw_auth_notify();
CREATE TRIGGER users_auth_notify
    AFTER DELETE OR UPDATE OF models, max_budget, user_role, tpm_limit,
        rpm_limit, max_parallel_requests
    ON users FOR EACH ROW EXECUTE FUNCTION llmgw_auth_notify();
