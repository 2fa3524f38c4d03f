#!/usr/bin/python3
"""The shipping statement's results against a base commit's (not part of
make check): what a change to lib/shipper.c or lib/spoolcols.c must keep.

    make all && /usr/bin/python3 tests/bench/ship_equiv.py [--base COMMIT] [--keep]

Builds the base commit's libllmgw.a (git archive; default: git merge-base
HEAD main) and tests/bench/ship_batches.c against it and against this
tree's, migrates two databases of one private cluster with this tree's
migrations and loads both alike (spend_analytics.load), then ships the
same spool files into each, 500 lines a batch: rows over 210 keys (the
master key's '' and unknown keys among them), users and teams that exist
or not, around a UTC midnight, end users and tags (repeated, non-ASCII
raw and as \\u escapes, not arrays, elements that are not strings),
Langfuse payloads, a batch replayed among new rows, a line twice in one
batch, lines the columns decline (the JSON statement). It prints which
statement ran how often (pg_stat_statements) and compares every table
the statement writes (spend_logs, request_payloads, keys, users, teams,
spend_daily, spend_daily_tags; exact text, spend included). Exit 1 when
any differs.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import spend_analytics as sa  # noqa: E402

TREE = bench.TREE


def tool(h, tree, name):
    out = os.path.join(h.tmp, name)
    bench.run(["cc", *sa.CFLAGS, "-I" + os.path.join(tree, "lib"), "-I/usr/include/postgresql",
               "-I/usr/include/json-c", "-o", out,
               os.path.join(TREE, "tests", "bench", "ship_batches.c"),
               os.path.join(tree, "lib", "libllmgw.a"), *sa.LIBS], timeout=300)
    return out


def ts(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def line(rnd, rid, json_path=False, ascii=True, exotic=False, pay=0.2):
    """A spooled line; ascii: non-ASCII as \\u escapes (the writer's roll-ups
    then leave the batch to PostgreSQL's grouping)."""
    k = rnd.randrange(210)
    key = "" if k == 205 else sa.bench_token(k) if k < 200 else "nokey-%d" % k
    t = 1767225600 + rnd.randrange(-7200, 7200) + rnd.random()  # 2026-01-01 00:00 UTC
    row = {"request_id": rid, "api_key": key, "key_alias": rnd.choice([None, "al"]),
           "user_id": rnd.choice([None, "bu-%d" % (k % 50), "new-user-%d" % (k % 7)]),
           "team_id": rnd.choice([None, "bt-%d" % (k % 10), "no-team"]),
           "model": rnd.choice(["gpt-4", "m2", ""]), "actual_model": rnd.choice([None, "qwen"]),
           "call_type": rnd.choice(["chat", "embedding"]),
           "prompt_tokens": rnd.randrange(1000), "completion_tokens": rnd.randrange(1000),
           "total_tokens": rnd.randrange(2000), "spend": rnd.random() / 1000,
           "usage_estimated": rnd.random() < 0.1, "start_time": ts(t), "end_time": ts(t + 1),
           "completion_start_time": rnd.choice([None, ts(t + 0.5)]),
           "ttft_ms": rnd.choice([None, 12.5]),
           "status": rnd.choice([200, 200, 500, 429, 299, 300]),
           "error_type": rnd.choice([None, "upstream"]), "stream": rnd.random() < 0.5,
           "client_disconnected": rnd.random() < 0.1,
           "metadata": rnd.choice([{}, {}, {"end_user": "c-%d" % rnd.randrange(4)},
                                   {"end_user": "c\u00e9\"x"}, {"a": [1, {"b": 2}]}]),
           "response_id": rnd.choice([None, "chatcmpl-" + rid]),
           "request_tags": rnd.choice([[], [], ["a"], ["a", "a", "b"], ["b", "c\u00e9"],
                                       "notarray", {"x": 1}]),
           "session_id": rnd.choice([None, None, "s-%d" % rnd.randrange(5)])}
    if rnd.random() < pay:
        row.update({"lf_mode": "full", "lf_input": {"messages": [rid]}, "lf_output": {"o": 1},
                    "lf_trace": rnd.choice([{"name": "t"}, [1], None])})
    if rnd.random() < 0.3:
        del row["session_id"]
    if json_path:
        row["start_time"] = row["start_time"][:19] + "Z"  # the columns decline it
    if exotic and rnd.random() < 0.05:
        row["request_tags"] = rnd.choice([[1, "a"], ["x", True, {"k": 1}]])
    return json.dumps(row, separators=(",", ":"), ensure_ascii=ascii)


def spools(rnd):
    f1 = [line(rnd, "r1-%d" % i) for i in range(1500)]
    f2 = f1[:700] + [line(rnd, "r2-%d" % i) for i in range(300)]
    rnd.shuffle(f2)
    f3 = [line(rnd, "r3-%d" % i) for i in range(200)]
    f3 = f3 + f3[50:51] + [line(rnd, "r3b-%d" % i) for i in range(100)]
    f4 = [line(rnd, "r4-%d" % i, json_path=(i % 2 == 0)) for i in range(600)]
    f5 = [line(rnd, "r5-%d" % i) for i in range(400)] + f4[:5]
    f6 = [line(rnd, "r6-%d" % i, exotic=True) for i in range(1000)]
    f7 = [line(rnd, "r7-%d" % i, ascii=False) for i in range(2000)]
    f8 = [line(rnd, "r8-%d" % i, ascii=False, pay=0) for i in range(2000)]
    f9 = f8[1500:1700] + [line(rnd, "r9-%d" % i, ascii=False, pay=0) for i in range(800)]
    return [f1, f2, f3, f4, f5, f6, f7, f8, f9]


TABLES = {
    "spend_logs": "SELECT request_id, api_key, key_alias, user_id, team_id, model, "
                  "actual_model, call_type, prompt_tokens, completion_tokens, total_tokens, "
                  "spend, usage_estimated, start_time, end_time, completion_start_time, "
                  "ttft_ms, status, error_type, stream, client_disconnected, metadata, "
                  "response_id, request_tags, session_id FROM spend_logs ORDER BY request_id",
    "request_payloads": "SELECT request_id, record_mode, input, output, trace "
                        "FROM request_payloads ORDER BY request_id",
    "keys": "SELECT token, spend FROM keys ORDER BY token",
    "users": "SELECT user_id, spend FROM users ORDER BY user_id",
    "teams": "SELECT team_id, spend FROM teams ORDER BY team_id",
    "spend_daily": "SELECT * FROM spend_daily ORDER BY 1, 2, 3, 4, 5, 6",
    "spend_daily_tags": "SELECT * FROM spend_daily_tags ORDER BY 1, 2, 3, 4, 5",
}

# Which statement a pg_stat_statements entry is.
KIND = ("CASE WHEN query LIKE '%%json_to_recordset%%' THEN 'json' WHEN query LIKE "
        "'%%DO NOTHING RETURNING request_id, api_key%%' THEN 'columns, ON CONFLICT' "
        "WHEN query LIKE '%%$60%%' THEN 'columns, new rows, writer''s roll-ups' "
        "ELSE 'columns' END")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    base = a.base or subprocess.run(["git", "-C", TREE, "merge-base", "HEAD", "main"],
                                    capture_output=True, text=True, check=True).stdout.strip()
    h = bench.Harness(a.keep)
    try:
        sa.say("base commit %s; building its libllmgw.a" % base[:9])
        tools = {"base": tool(h, sa.base_tree(h, base), "ship_base"),
                 "this": tool(h, TREE, "ship_this")}
        pg = bench.Pg(h)
        with open(os.path.join(pg.dir, "data", "postgresql.conf"), "a") as f:
            f.write("shared_preload_libraries = 'pg_stat_statements'\n")
        bench.run([bench.CTL, "pg-stop"], env=pg.env)
        bench.run([bench.CTL, "pg-start"], env=pg.env)
        dbs = {"base": "llmgw_base", "this": "llmgw_this"}
        for db in dbs.values():
            sa.psql(pg, "CREATE DATABASE %s" % db)
            bench.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d", sa.conninfo(pg, db),
                       "-m", os.path.join(TREE, "migrations")])
            sa.load(pg, db, 2000, True)
            sa.psql(pg, "CREATE EXTENSION pg_stat_statements", db)
        for n, lines in enumerate(spools(random.Random(7))):
            p = os.path.join(h.tmp, "spool-%d" % n)
            with open(p, "w") as f:
                f.write("\n".join(lines) + "\n")
            for side, db in dbs.items():
                out = bench.run([tools[side], sa.conninfo(pg, db), p, "500"]).stdout.split()
                sa.say("%s: spool %d, %s lines in %s batches" % (side, n, out[0], out[1]))
        for side, db in dbs.items():
            sa.say("%s ran: %s" % (side, sa.psql(pg, (
                "SELECT string_agg(calls || ' ' || k, ', ' ORDER BY k) FROM (SELECT "
                "sum(calls) AS calls, %s AS k FROM pg_stat_statements s JOIN pg_database d "
                "ON d.oid = s.dbid WHERE datname = '%s' AND query LIKE 'WITH rows%%' "
                "GROUP BY 2) x") % (KIND, db), db)))
        bad = 0
        for name, q in TABLES.items():
            x, y = (sa.psql(pg, q, db) for db in dbs.values())
            bad += x != y
            sa.say("%-17s %s (%d rows)" % (name, "same" if x == y else "DIFFERENT",
                                          len(x.splitlines())))
            if x != y:
                xs, ys = set(x.splitlines()), set(y.splitlines())
                sa.say("  only base: %s\n  only this: %s" % (sorted(xs - ys)[:3],
                                                            sorted(ys - xs)[:3]))
        sys.exit(1 if bad else 0)
    finally:
        h.close()


if __name__ == "__main__":
    main()
