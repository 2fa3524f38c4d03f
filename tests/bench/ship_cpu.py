#!/usr/bin/python3
"""PostgreSQL's cost per shipped spend row (not part of make check).

    make all && /usr/bin/python3 tests/bench/ship_cpu.py [--rows N] [--ship-rows N]
        [--rounds N] [--keys N] [--batch-rows N] [--ddl SQL] [--stats] [--keep]

A private cluster (deploy/llmgwctl pg-start + migrate, as bench.py) gets
--rows spend_logs rows and their aggregates (spend_analytics.load), then
ships --ship-rows fresh spooled rows per round through gw_shipper_ship
(tests/bench/ship_batches.c, --batch-rows a batch: 500, as [spend]
batch_rows): rows as bench.py (e) makes them (--keys 1: one key, no user
or team, one model) or as spend_analytics.py does (--keys 200). Per
round it prints the ms per batch and what the cluster spent per row: CPU
of every postgres process (the shipping backend through the postmaster's
cutime once it has been reaped, counted once; the background share
beside: the processes alive throughout, and autovacuum workers sampled
while they run), and WAL bytes (pg_current_wal_lsn before and after).
A fresh connection per round prepares and plans the statement again
(under 1 % of the backend's CPU here; once for a writer's long-lived
connection). --ddl runs SQL after the load (to compare index sets);
--stats loads pg_stat_statements and prints the batch statement's
buffers and WAL. To compare with another commit, copy this file into its
tree (git archive, make all) and run it there.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import spend_analytics as sa  # noqa: E402


def pg_cpu_s(pg):
    """CPU seconds of the cluster (live processes, and the children the
    postmaster reaped: bench.cpu_ticks counts each process's cutime
    already), and {pid: (own ticks, reaped children's)} of the live ones."""
    pm = bench.read_pidfile(os.path.join(pg.dir, "data", "postmaster.pid"))
    live = {}
    for p in bench.tree([pm]):
        try:
            with open("/proc/%d/stat" % p) as f:
                v = f.read().rsplit(")", 1)[1].split()
            live[p] = (int(v[11]) + int(v[12]), int(v[13]) + int(v[14]))
        except (OSError, IndexError, ValueError):
            pass
    return sum(a + b for a, b in live.values()) / bench.TICK, live


def background_s(live0, live1):
    """CPU seconds of the processes alive at both samples (walwriter,
    checkpointer, autovacuum launcher...), their own only: not the
    shipping backend, nor an autovacuum worker (reaped: the postmaster's
    children's)."""
    return sum(t[0] - live0[p][0] for p, t in live1.items() if p in live0) / bench.TICK


def ship(pg, live0, args):
    """Run the shipping tool: its stdout, and the CPU seconds of the
    autovacuum workers the postmaster started meanwhile (sampled every
    50 ms while alive: once reaped, their CPU is the postmaster's
    children's). Returns when the backends started since live0 have been
    reaped (up to 2 s after the tool), so that the shipping backend is
    counted once."""
    pm = bench.read_pidfile(os.path.join(pg.dir, "data", "postmaster.pid"))
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, until = {}, None
    while True:
        # The postmaster's children (cheaper than a walk of /proc: this
        # runs beside what it measures).
        with open("/proc/%d/task/%d/children" % (pm, pm)) as f:
            new = [int(q) for q in f.read().split() if int(q) not in live0]
        for q in new:
            try:
                with open("/proc/%d/cmdline" % q) as f:
                    title = f.read()
                with open("/proc/%d/stat" % q) as f:
                    v = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seen[q] = ("autovacuum" in title, int(v[11]) + int(v[12]))
        if p.poll() is not None:
            until = until or time.time() + 2
            if not new or time.time() > until:
                break
        time.sleep(0.05)
    out, err = p.communicate()
    if p.returncode != 0:
        raise bench.SetupError("%s failed (%d): %s" % (args[0], p.returncode, err))
    return out, sum(t for av, t in seen.values() if av) / bench.TICK


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
    ap.add_argument("--batch-rows", type=int, default=500,
                    help="rows per batch, as [spend] batch_rows [500]")
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
            line, workers = ship(pg, live0, [tool, sa.conninfo(pg, "llmgw"), spool,
                                             str(a.batch_rows)])
            line = line.split()
            c1, live1 = pg_cpu_s(pg)
            wal = int(sa.psql(pg, "SELECT pg_current_wal_lsn() - '%s'" % lsn0))
            rows = int(line[0])
            res = {"rows": rows, "batch_ms": float(line[2]), "p50": float(line[3]),
                   "cpu_ms_row": 1000 * (c1 - c0) / rows, "wal_b_row": wal / rows,
                   "bg_ms_row": 1000 * (background_s(live0, live1) + workers) / rows}
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
