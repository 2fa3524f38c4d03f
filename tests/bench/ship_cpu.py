#!/usr/bin/python3
"""PostgreSQL's cost per shipped spend row (not part of make check).

    make all && /usr/bin/python3 tests/bench/ship_cpu.py [--rows N] [--ship-rows N]
        [--rounds N] [--keys N] [--ddl SQL] [--stats] [--keep]

A private cluster (deploy/llmgwctl pg-start + migrate, as bench.py) gets
--rows spend_logs rows and their aggregates (spend_analytics.load), then
ships --ship-rows fresh spooled rows per round through gw_shipper_ship
(tests/bench/ship_batches.c, batch_rows 500): rows as bench.py (e) makes
them (--keys 1: one key, no user or team, one model) or as
spend_analytics.py does (--keys 200). Per round it prints the ms per batch
and what the cluster spent per row: CPU of every postgres process (the
shipping backend through the postmaster's cutime once it exited; the
background processes' share beside), and WAL bytes (pg_current_wal_lsn
before and after). --ddl runs SQL after the load (to compare index sets);
--stats loads pg_stat_statements and prints the batch statement's
buffers and WAL. To compare with another commit, copy this file into its
tree (git archive, make all) and run it there.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import spend_analytics as sa  # noqa: E402


def pg_cpu_s(pg):
    """CPU seconds of the cluster (live processes, and reaped children),
    and {pid: ticks} of the live ones."""
    pm = bench.read_pidfile(os.path.join(pg.dir, "data", "postmaster.pid"))
    live = bench.cpu_ticks(bench.tree([pm]))
    with open("/proc/%d/stat" % pm) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (sum(live.values()) + int(v[13]) + int(v[14])) / bench.TICK, live


def background_s(live0, live1):
    """CPU seconds of the processes alive at both samples (walwriter,
    checkpointer, autovacuum launcher...): not the shipping backend."""
    return sum(t - live0[p] for p, t in live1.items() if p in live0) / bench.TICK


def bench_spool(path, n, tag):
    """n lines as bench.py (e) spools them: one key (no user, no team), one
    model, a response id, no tags."""
    now = time.time()
    with open(path, "w") as f:
        for i in range(n):
            t = now - 60 + 60.0 * i / n
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (t * 1000 % 1000)
            row = {"request_id": "ship-%s-%08d" % (tag, i), "api_key": sa.bench_token(0),
                   "key_alias": "bench", "user_id": None, "team_id": None, "model": "gpt-4",
                   "actual_model": "qwen3-30b-a3b", "call_type": "chat", "prompt_tokens": 1,
                   "completion_tokens": 5, "total_tokens": 6, "spend": 0.000012,
                   "usage_estimated": False, "start_time": ts, "end_time": ts,
                   "completion_start_time": None, "ttft_ms": None, "status": 200,
                   "error_type": None, "stream": False, "client_disconnected": False,
                   "metadata": {}, "response_id": "chatcmpl-mock-%s-%d" % (tag, i),
                   "request_tags": [], "session_id": None}
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--ship-rows", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1,
                    help="1: bench.py (e)'s rows (one key, no user or team, one model); "
                    "more: spend_analytics' (200 keys, 50 users, 10 teams, 5 models, tags)")
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("--ddl", default=None, help="SQL run after the load (to compare schemas)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    h = bench.Harness(a.keep)
    try:
        tool = sa.build_tool(h, bench.TREE, "ship_batches")
        pg = bench.Pg(h)
        if a.stats:
            with open(os.path.join(pg.dir, "data", "postgresql.conf"), "a") as f:
                f.write("shared_preload_libraries = 'pg_stat_statements'\n"
                        "track_io_timing = on\n")
            bench.run([bench.CTL, "pg-stop"], env=pg.env)
            bench.run([bench.CTL, "pg-start"], env=pg.env)
            sa.psql(pg, "CREATE EXTENSION pg_stat_statements")
        sa.load(pg, "llmgw", a.rows, True)
        if a.ddl:
            sa.psql(pg, a.ddl)
        sa.psql(pg, "VACUUM ANALYZE")
        sa.psql(pg, "CHECKPOINT")
        out = []
        for r in range(a.rounds):
            spool = os.path.join(h.tmp, "spool-%d" % r)
            (sa.spool_file if a.keys > 1 else bench_spool)(spool, a.ship_rows, "r%d" % r)
            if a.stats:
                sa.psql(pg, "SELECT pg_stat_statements_reset()")
            lsn0 = sa.psql(pg, "SELECT pg_current_wal_lsn()")
            c0, live0 = pg_cpu_s(pg)
            line = bench.run([tool, sa.conninfo(pg, "llmgw"), spool, "500"],
                             timeout=1800).stdout.split()
            c1, live1 = pg_cpu_s(pg)
            wal = int(sa.psql(pg, "SELECT pg_current_wal_lsn() - '%s'" % lsn0))
            rows = int(line[0])
            res = {"rows": rows, "batch_ms": float(line[2]), "p50": float(line[3]),
                   "cpu_ms_row": 1000 * (c1 - c0) / rows, "wal_b_row": wal / rows,
                   "bg_ms_row": 1000 * background_s(live0, live1) / rows}
            out.append(res)
            sa.say("round %d: %d rows in %s batches, %.2f ms/batch (p50 %.2f), "
                   "postgres CPU %.4f ms/row (%.4f of it background), WAL %.0f B/row"
                   % (r, rows, line[1], res["batch_ms"], res["p50"], res["cpu_ms_row"],
                      res["bg_ms_row"], res["wal_b_row"]))
            if a.stats:
                sa.say(sa.psql(pg, "SELECT calls, round(total_exec_time::numeric / calls, 2) "
                               "AS ms, shared_blks_hit / calls AS hit, shared_blks_dirtied / "
                               "calls AS dirtied, wal_records / calls AS wal_rec, wal_fpi / "
                               "calls AS fpi, wal_bytes / calls AS wal_b FROM "
                               "pg_stat_statements WHERE query LIKE 'WITH src%' OR "
                               "query LIKE '%spend_logs%' ORDER BY total_exec_time DESC "
                               "LIMIT 3"))
        sa.say("median: %.2f ms/batch, postgres CPU %.4f ms/row, WAL %.0f B/row" % (
            statistics.median(o["batch_ms"] for o in out),
            statistics.median(o["cpu_ms_row"] for o in out),
            statistics.median(o["wal_b_row"] for o in out)))
        sa.say("table sizes: " + sa.psql(pg, "SELECT string_agg(relname || ' ' || "
                                          "pg_size_pretty(pg_relation_size(oid)), ', ' "
                                          "ORDER BY relname) FROM pg_class WHERE relname "
                                          "LIKE 'spend_logs%'"))
    finally:
        h.close()


if __name__ == "__main__":
    main()
