-- 010_shared_limits: per-key, per-user and per-team rpm, tpm and
-- max_parallel_requests held across hosts (issue 16, 4). Each host keeps
-- admitting from shared memory; it comes here only when the slice of a
-- window it was granted runs out, to send the tokens it counted, and once
-- a second (its heartbeat) for its parallel leases. An entity is the pair
-- of 64-bit hashes the host's shared memory knows it by (ratelimit.c), so
-- no key, user or team id is stored here.

-- One row per entity and minute window (minutes since the epoch): the
-- requests granted to hosts so far and the tokens hosts have reported.
CREATE TABLE llmgw_rl_window (
    h1 bigint NOT NULL,
    h2 bigint NOT NULL,
    win bigint NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (h1, h2, win)
);
CREATE INDEX llmgw_rl_window_win ON llmgw_rl_window (win);

-- The parallel slots a host holds for an entity, until expires_at: a host
-- that dies stops renewing them and they no longer count.
CREATE TABLE llmgw_rl_parallel (
    h1 bigint NOT NULL,
    h2 bigint NOT NULL,
    host text NOT NULL,
    held integer NOT NULL,
    expires_at timestamptz NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (h1, h2, host)
);

-- Take a slice of window p_win for a host: at most p_slice requests, at
-- most a p_div-th of what is left (at least 1), never beyond p_rpm in
-- all (p_rpm < 0 or p_slice = 0: none). p_tokens are the host's tokens
-- counted since it last came. got: the requests granted; tokens: the
-- window's tokens over all hosts.
CREATE FUNCTION llmgw_rl_take(p_h1 bigint, p_h2 bigint, p_win bigint,
    p_rpm bigint, p_slice bigint, p_div bigint, p_tokens bigint,
    OUT got bigint, OUT tokens bigint)
LANGUAGE plpgsql AS $$
DECLARE
    used bigint;
BEGIN
    INSERT INTO llmgw_rl_window (h1, h2, win) VALUES (p_h1, p_h2, p_win)
        ON CONFLICT DO NOTHING;
    SELECT w.requests INTO used FROM llmgw_rl_window w
        WHERE w.h1 = p_h1 AND w.h2 = p_h2 AND w.win = p_win FOR UPDATE;
    got := 0;
    IF p_rpm >= 0 AND p_slice > 0 AND used < p_rpm THEN
        got := LEAST(p_slice, GREATEST((p_rpm - used) / GREATEST(p_div, 1), 1),
            p_rpm - used);
    END IF;
    UPDATE llmgw_rl_window w
        SET requests = w.requests + got, tokens = w.tokens + GREATEST(p_tokens, 0)
        WHERE w.h1 = p_h1 AND w.h2 = p_h2 AND w.win = p_win
        RETURNING w.tokens INTO tokens;
END $$;

-- A host with p_keep requests of an entity in flight needs p_need slots: it
-- gets them when the other hosts' live leases leave room under p_limit,
-- plus a p_div-th of the room left beyond; else it keeps what it held (at
-- least p_keep). A take never lowers a host's lease (two of its threads
-- may ask at once, the later with an older view): only its heartbeat does.
-- Returns what it holds now, for p_ttl_s seconds. Hosts of one entity are
-- serialised by an advisory lock (class 'llmr', the entity's first hash).
CREATE FUNCTION llmgw_rl_par_take(p_h1 bigint, p_h2 bigint, p_host text,
    p_keep integer, p_need integer, p_limit integer, p_div integer,
    p_ttl_s integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    others bigint;
    mine integer;
    held integer;
BEGIN
    PERFORM pg_advisory_xact_lock(1819045234, (p_h1 & 2147483647)::integer);
    SELECT COALESCE(sum(p.held), 0) INTO others FROM llmgw_rl_parallel p
        WHERE p.h1 = p_h1 AND p.h2 = p_h2 AND p.host <> p_host
          AND p.expires_at > now();
    SELECT p.held INTO mine FROM llmgw_rl_parallel p
        WHERE p.h1 = p_h1 AND p.h2 = p_h2 AND p.host = p_host
          AND p.expires_at > now();
    mine := COALESCE(mine, 0);
    IF mine >= p_need THEN
        held := mine;
    ELSIF others + p_need <= p_limit THEN
        held := p_need + ((p_limit - others - p_need) / GREATEST(p_div, 1));
    ELSE
        held := GREATEST(mine, p_keep);
    END IF;
    INSERT INTO llmgw_rl_parallel AS p (h1, h2, host, held, expires_at)
        VALUES (p_h1, p_h2, p_host, held, now() + make_interval(secs => p_ttl_s))
        ON CONFLICT (h1, h2, host) DO UPDATE
        SET held = EXCLUDED.held, expires_at = EXCLUDED.expires_at,
            taken_at = now();
    RETURN held;
END $$;

-- A host's heartbeat: its leases become (p_h1[i], p_h2[i], p_held[i]), what
-- it has in flight, for p_ttl_s more seconds, and the others are dropped;
-- but a lease taken in the last 2 seconds keeps what it was taken for
-- (the take may have come after the host counted what it had). The tokens
-- it counted since it last came are added to their windows; windows ended
-- over two minutes before p_win are pruned.
CREATE FUNCTION llmgw_rl_beat(p_host text, p_h1 bigint[], p_h2 bigint[],
    p_held integer[], p_ttl_s integer, p_th1 bigint[], p_th2 bigint[],
    p_twin bigint[], p_tokens bigint[], p_win bigint)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM llmgw_rl_parallel p WHERE p.host = p_host
        AND p.taken_at < now() - interval '2 s'
        AND NOT EXISTS (SELECT 1 FROM unnest(p_h1, p_h2, p_held) v(h1, h2, held)
            WHERE v.h1 = p.h1 AND v.h2 = p.h2 AND v.held > 0);
    UPDATE llmgw_rl_parallel p
        SET held = CASE WHEN p.taken_at >= now() - interval '2 s'
                        THEN GREATEST(p.held, v.held) ELSE v.held END,
            expires_at = now() + make_interval(secs => p_ttl_s)
        FROM unnest(p_h1, p_h2, p_held) v(h1, h2, held)
        WHERE p.host = p_host AND p.h1 = v.h1 AND p.h2 = v.h2
          AND (v.held > 0 OR p.taken_at >= now() - interval '2 s');
    INSERT INTO llmgw_rl_window AS w (h1, h2, win, tokens)
        SELECT * FROM unnest(p_th1, p_th2, p_twin, p_tokens)
        ON CONFLICT (h1, h2, win) DO UPDATE SET tokens = w.tokens + EXCLUDED.tokens;
    DELETE FROM llmgw_rl_window w WHERE w.win < p_win - 2;
    DELETE FROM llmgw_rl_parallel p WHERE p.expires_at < now() - interval '1 hour';
END $$;
