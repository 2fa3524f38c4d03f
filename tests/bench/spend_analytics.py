#!/usr/bin/python3
"""Spend analytics benchmark (issue 14; not part of make check).

    make all && /usr/bin/python3 tests/bench/spend_analytics.py [--rows N] [--keep]

1. A private PostgreSQL cluster (deploy/llmgwctl pg-start + migrate, as
   bench.py) gets --rows spend_logs rows (1,000,000) over 90 days, 200 keys,
   50 users, 10 teams, 5 models, tags on two rows in three, and their daily
   aggregates (spend_daily, spend_daily_tags). A second database, migrated
   with the base commit's migrations (--base, default: git merge-base HEAD
   main), gets the same rows.
2. Shipping: tests/bench/ship_batches.c is built twice, against this tree's
   libllmgw.a and against the base commit's (built from `git archive`), and
   ships the same spool file of --ship-rows rows (batch_rows 500, the
   default) through gw_shipper_ship, the writer's own statement, into its
   database: before (base) and after (this tree), alternating, --rounds
   times each. Printed: ms per batch (mean, p50, p90) and after/before.
3. Reports: llmgw (every family + lighttpd, llmgwctl) in front of the first
   database; a 30-day /global/spend/report (each group_by), a
   /user/daily/activity and a /team/daily/activity page, /global/spend/tags,
   each asked 3 times to warm up and then 15 times with the master key:
   median and max ms, HTTP included. Target: <= 200 ms each.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Harness, Pg, Stack, run, call)

TREE = bench.TREE
CFLAGS = ["-O2", "-g", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE"]
LIBS = ["-lcurl", "-ljson-c", "-lpq", "-ljwt", "-lcrypto", "-lfcgi", "-lpthread", "-lm"]


def say(*a):
    print(*a, flush=True)


def psql(pg, sql, db="llmgw"):
    return bench.run(["psql", "-h", os.path.join(pg.dir, "run"), "-U", "llmgw", "-d", db,
                      "-tAX", "-v", "ON_ERROR_STOP=1", "-c", sql], timeout=1800).stdout.strip()


def conninfo(pg, db):
    return "host=%s user=llmgw dbname=%s" % (os.path.join(pg.dir, "run"), db)


def load(pg, db, rows, analytics):
    """rows spend_logs rows over the last 90 days, and what they need."""
    tags = ((", request_tags", ", CASE g % 3 WHEN 0 THEN '[\"prod\"]' WHEN 1 THEN "
             "'[\"dev\", \"batch\"]' ELSE '[]' END::jsonb") if analytics else ("", ""))
    psql(pg, """
INSERT INTO teams (team_id, team_alias)
    SELECT 'bt-' || i, 'bench team ' || i FROM generate_series(0, 9) i;
INSERT INTO users (user_id, team_id)
    SELECT 'bu-' || i, 'bt-' || (i %% 10) FROM generate_series(0, 49) i;
CREATE TABLE bkeys AS SELECT i, encode(sha256(('bk-' || i)::bytea), 'hex') AS token
    FROM generate_series(0, 199) i;
INSERT INTO keys (token, key_name, key_alias, user_id, team_id)
    SELECT token, 'sk-...' || i, 'bench-key-' || i, 'bu-' || (i %% 50), 'bt-' || (i %% 10)
    FROM bkeys;
INSERT INTO spend_logs (request_id, api_key, key_alias, user_id, team_id, model,
    actual_model, call_type, prompt_tokens, completion_tokens, total_tokens, spend,
    start_time, end_time, status, metadata %s)
SELECT 'bench-' || g, k.token, 'bench-key-' || k.i, 'bu-' || (k.i %% 50),
    'bt-' || (k.i %% 10), 'model-' || m, 'model-' || m, 'chat',
    g %% 500, g %% 300, g %% 500 + g %% 300, (g %% 800) * 1e-6,
    t, t + interval '1 second', CASE WHEN g %% 50 = 0 THEN 500 ELSE 200 END,
    CASE WHEN g %% 10 = 0 THEN jsonb_build_object('end_user', 'cust-' || (g %% 20))
         ELSE '{}' END %s
FROM generate_series(1, %d) g
CROSS JOIN LATERAL (SELECT abs(hashint4(g)) %% 200 AS ki,
    abs(hashint4(-g)) %% 5 AS m) h
JOIN bkeys k ON k.i = h.ki
CROSS JOIN LATERAL (SELECT date_trunc('day', now()) - ((g %% 90) || ' days')::interval
    + ((g * 37) %% 86400) * interval '1 second' AS t) tt;
DROP TABLE bkeys;
""" % (tags + (rows,)), db)
    if analytics:
        psql(pg, """
INSERT INTO spend_daily
SELECT (start_time AT TIME ZONE 'UTC')::date, api_key, model, coalesce(user_id, ''),
    coalesce(team_id, ''), coalesce(metadata->>'end_user', ''), sum(prompt_tokens),
    sum(completion_tokens), sum(total_tokens), sum(spend), count(*),
    count(*) FILTER (WHERE status BETWEEN 200 AND 299),
    count(*) FILTER (WHERE status NOT BETWEEN 200 AND 299)
FROM spend_logs GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO spend_daily_tags
SELECT (start_time AT TIME ZONE 'UTC')::date, t, api_key, coalesce(user_id, ''),
    coalesce(team_id, ''), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
    sum(spend), count(*), count(*) FILTER (WHERE status BETWEEN 200 AND 299),
    count(*) FILTER (WHERE status NOT BETWEEN 200 AND 299)
FROM spend_logs, jsonb_array_elements_text(request_tags) t GROUP BY 1, 2, 3, 4, 5;
""", db)
    psql(pg, "VACUUM ANALYZE", db)


def spool_file(path, n, tag):
    """n spooled lines as relay.c writes them: requests of the last minute (what
    a writer ships), over 200 keys (uniform) and 5 models."""
    rnd = random.Random(14)
    now = int(time.time())
    with open(path, "w") as f:
        for i in range(n):
            k = rnd.randrange(200)
            t = now - rnd.randrange(60)
            ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))
            te = time.strftime("%Y-%m-%dT%H:%M:%S.250Z", time.gmtime(t))
            row = {"request_id": "ship-%s-%d" % (tag, i),
                   "api_key": bench_token(k), "key_alias": "bench-key-%d" % k,
                   "user_id": "bu-%d" % (k % 50), "team_id": "bt-%d" % (k % 10),
                   "model": "model-%d" % (i % 5), "actual_model": "model-%d" % (i % 5),
                   "call_type": "chat", "prompt_tokens": 30, "completion_tokens": 50,
                   "total_tokens": 80, "spend": 0.00017, "usage_estimated": False,
                   "start_time": ts, "end_time": te, "completion_start_time": None,
                   "ttft_ms": None, "status": 200, "error_type": None, "stream": False,
                   "client_disconnected": False, "metadata": {},
                   "response_id": "chatcmpl-%s-%d" % (tag, i),
                   "request_tags": ["prod"] if i % 3 == 0 else []}
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


_tokens = {}


def bench_token(i):
    if i not in _tokens:
        import hashlib
        _tokens[i] = hashlib.sha256(("bk-%d" % i).encode()).hexdigest()
    return _tokens[i]


def build_tool(h, libdir, name):
    out = os.path.join(h.tmp, name)
    bench.run(["cc", *CFLAGS, "-I" + os.path.join(libdir, "lib"), "-I/usr/include/postgresql",
               "-I/usr/include/json-c", "-o", out,
               os.path.join(TREE, "tests", "bench", "ship_batches.c"),
               os.path.join(libdir, "lib", "libllmgw.a"), *LIBS], timeout=300)
    return out


def base_tree(h, base):
    d = os.path.join(h.tmp, "base")
    os.makedirs(d)
    arch = subprocess.run(["git", "-C", TREE, "archive", base], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", d], input=arch.stdout, check=True)
    bench.run(["make", "-C", d, "-j2", "lib/libllmgw.a", "bin/llmgw-migrate"], timeout=900)
    return d


def timed(port, path, n=15, warm=3):
    hdr = {"Authorization": "Bearer " + bench.MASTER_KEY}
    for _ in range(warm):
        st, body = bench.call(port, "GET", path, headers=hdr)
        if st != 200:
            raise bench.SetupError("%s answered %d: %s" % (path, st, body[:300]))
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        st, body = bench.call(port, "GET", path, headers=hdr)
        ms.append((time.perf_counter() - t) * 1000)
        assert st == 200
    return statistics.median(ms), max(ms), len(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--ship-rows", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--base", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    base = a.base or subprocess.run(["git", "-C", TREE, "merge-base", "HEAD", "main"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    h = bench.Harness(a.keep)
    try:
        say("base commit %s; building its libllmgw.a" % base[:9])
        bt = base_tree(h, base)
        after_tool = build_tool(h, TREE, "ship_after")
        before_tool = build_tool(h, bt, "ship_before")
        pg = bench.Pg(h)
        psql(pg, "CREATE DATABASE llmgw_before", "postgres")
        bench.run([os.path.join(bt, "bin", "llmgw-migrate"), "-d", conninfo(pg, "llmgw_before"),
                   "-m", os.path.join(bt, "migrations")])
        t = time.time()
        load(pg, "llmgw", a.rows, True)
        load(pg, "llmgw_before", a.rows, False)
        say("loaded %d rows into each database in %.0f s" % (a.rows, time.time() - t))
        say("spend_daily rows: %s, spend_daily_tags rows: %s" % (
            psql(pg, "SELECT count(*) FROM spend_daily"),
            psql(pg, "SELECT count(*) FROM spend_daily_tags")))
        res = {"before": [], "after": []}
        for r in range(a.rounds):
            for which, tool, db in (("before", before_tool, "llmgw_before"),
                                    ("after", after_tool, "llmgw")):
                f = os.path.join(h.tmp, "%s-%d.spool" % (which, r))
                spool_file(f, a.ship_rows, "%s%d" % (which, r))
                out = bench.run([tool, conninfo(pg, db), f, "500"], timeout=1800).stdout.split()
                rows, batches, mean, p50, p90 = int(out[0]), int(out[1]), *map(float, out[2:])
                say("ship %-6s round %d: %d rows in %d batches, ms/batch mean %.2f p50 %.2f "
                    "p90 %.2f" % (which, r + 1, rows, batches, mean, p50, p90))
                res[which].append(mean)
                os.unlink(f)
        b, af = statistics.mean(res["before"]), statistics.mean(res["after"])
        say("shipping a 500-row batch: before %.2f ms, after %.2f ms: after/before %.3f "
            "(target <= 1.20)" % (b, af, af / b))
        psql(pg, "VACUUM ANALYZE")
        st = bench.Stack(h, pg, "an", "http://127.0.0.1:9", []).start()
        d1 = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 29 * 86400))
        d2 = time.strftime("%Y-%m-%d", time.gmtime())
        rng = "start_date=%s&end_date=%s" % (d1, d2)
        for path in ("/global/spend/report?group_by=team&" + rng,
                     "/global/spend/report?group_by=customer&" + rng,
                     "/global/spend/report?group_by=api_key&" + rng,
                     "/user/daily/activity?" + rng,
                     "/user/daily/activity?page_size=30&" + rng,
                     "/team/daily/activity?" + rng,
                     "/global/spend/tags?" + rng):
            med, mx, size = timed(st.port, path)
            say("%-50s median %6.1f ms  max %6.1f ms  %7d bytes  %s" % (
                path.split("&start_date")[0].split("?start_date")[0], med, mx, size,
                "PASS" if med <= 200 else "FAIL"))
    except bench.SetupError as e:
        say("setup failed: %s" % e)
        h.keep = True
        return 1
    finally:
        h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
