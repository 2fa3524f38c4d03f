#!/usr/bin/python3
"""Scenario (s) of tests/bench/bench.py (issue 17): swap-aware admission.

8 concurrent clients, each issuing the interleaved pattern A B A A C A B C
(client i starting at offset i) over three models, as 20-chunk streams,
against bin/mock-upstream --swap-ms 2000 (llama-swap's one model at a time;
every load costs 2 s), with [scheduler] off and on, under both swap
policies of the mock: wait (llama-swap) and abort (llama.cpp's router
aborts the running model's requests). Measured: the mock's swaps, the wall
time, p50/p95 latency per model, failed (aborted) requests, and the longest
queue wait the spend rows record.

    make bench BENCH_ARGS="--only s"
    /usr/bin/python3 tests/bench/swap_sched.py [--passes N] [--keep]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Harness, Pg, Stack, call, ...)

SWAP_MS = 2000
PATTERN = "ABAACABC"
MODELS = {"A": "orchestrator-a", "B": "worker-b", "C": "worker-c"}
CLIENTS = 8
MAX_WAIT_S = 20
# Each answer: 20 chunks, 25 ms apart (0.5 s of generation).
MOCK_OPTS = {"chunks": 20, "chunk_delay_ms": 25}


def start_swap_mock(h, name, policy):
    pf = os.path.join(h.tmp, name + ".port")
    p = h.popen([os.path.join(bench.TREE, "bin", "mock-upstream"), "--port", "0",
                 "--port-file", pf, "--quiet", "--swap-ms", str(SWAP_MS),
                 "--swap-policy", policy], name + ".log")
    bench.wait_until(lambda: os.path.exists(pf) and open(pf).read().strip(), 10, "swap mock")
    port = int(open(pf).read())
    st, body = bench.call(port, "POST", "/__control", json.dumps(MOCK_OPTS),
                          {"Content-Type": "application/json"})
    if st != 200:
        raise bench.SetupError("mock /__control: %d %s" % (st, body[:200]))
    return port, p


def one(port, model):
    """One streamed chat; (ok, seconds, request id)."""
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "plan the next step"}]})
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    rid, ok = None, False
    try:
        c.request("POST", "/v1/chat/completions", body=body,
                  headers={"Authorization": "Bearer " + bench.MASTER_KEY,
                           "Content-Type": "application/json"})
        r = c.getresponse()
        rid = r.getheader("x-request-id")
        data = r.read()
        ok = (r.status == 200 and b"data: [DONE]" in data and b'"error"' not in data)
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        c.close()
    return ok, time.monotonic() - t0, rid


def workload(port, passes):
    """CLIENTS threads, each the pattern from its own offset, passes times."""
    out = []  # (letter, ok, seconds, rid)
    lock = threading.Lock()

    def client(i):
        for p in range(passes):
            for k in range(len(PATTERN)):
                letter = PATTERN[(i + k) % len(PATTERN)]
                ok, s, rid = one(port, MODELS[letter])
                with lock:
                    out.append((letter, ok, s, rid))

    t0 = time.monotonic()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out, time.monotonic() - t0


def pct(v, q):
    v = sorted(v)
    if not v:
        return None
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def max_queue_wait(pg, rids):
    rids = [r for r in rids if r]
    if not rids:
        return None
    deadline = time.time() + 15
    while True:
        out = pg.psql("SELECT count(*), coalesce(max((metadata->>'queue_time_seconds')::float8), 0) "
                      "FROM spend_logs WHERE request_id IN (%s)"
                      % ",".join("'%s'" % r for r in rids))
        n, q = out.split("|")
        if int(n) >= len(rids) or time.time() > deadline:
            return {"rows": int(n), "max_s": float(q)}
        time.sleep(0.2)


def one_run(h, pg, policy, sched, passes):
    name = "swap-%s-%s" % (policy, "on" if sched else "off")
    port, mp = start_swap_mock(h, name + "-mock", policy)
    over = ["gateway.processes=2", "gateway.threads=16",
            "upstream.first_byte_timeout_s=600", "upstream.idle_timeout_s=120",
            "upstream.stream_keepalive_s=5", "upstream.retries=0"]
    if sched:
        over += ["scheduler.enabled=on", "scheduler.max_wait_s=%d" % MAX_WAIT_S]
    st = bench.Stack(h, pg, name, "http://127.0.0.1:%d" % port, over).start()
    bench.say("  %s: %d clients x %d requests, swap %d ms" % (name, CLIENTS, passes * len(PATTERN), SWAP_MS))
    out, wall = workload(st.port, passes)
    stats = json.loads(bench.call(port, "GET", "/__stats")[1])
    qw = max_queue_wait(pg, [rid for _, _, _, rid in out])
    st.stop()
    bench.stop_popen(mp)
    r = {"policy": policy, "scheduler": "on" if sched else "off", "wall_s": wall,
         "requests": len(out), "failed": sum(1 for x in out if not x[1]),
         "swaps": stats["swaps"], "loads": stats["loads"], "aborted": stats["swap_aborted"],
         "queue_wait": qw, "per_model": {}}
    for letter in sorted(MODELS):
        lat = [s for lt, ok, s, _ in out if lt == letter and ok]
        r["per_model"][letter] = {"n": sum(1 for x in out if x[0] == letter),
                                  "ok": len(lat), "p50": pct(lat, 0.5), "p95": pct(lat, 0.95)}
    bench.say("    %.1f s, swaps %d (+%d first load), failed %d, aborted by the upstream %d, "
              "longest queue wait %s s"
              % (wall, r["swaps"], r["loads"], r["failed"], r["aborted"],
                 bench.fmt(qw and qw["max_s"])))
    return r


def fmt_s(v):
    return "-" if v is None else "%.2f" % v


def run(h, pg, res, passes=1):
    bench.say("(s) swap-aware admission: %s x %d clients, 3 models, swap %d ms, 20-chunk streams"
              % (PATTERN, CLIENTS, SWAP_MS))
    rows = []
    for policy in ("wait", "abort"):
        for sched in (False, True):
            rows.append(one_run(h, pg, policy, sched, passes))
    res["swap_scheduler"] = rows
    bench.say("")
    bench.say("| policy | scheduler | swaps | total s | A p50/p95 s | B p50/p95 s | C p50/p95 s "
              "| failed | aborted | max queue wait s |")
    bench.say("|---|---|---:|---:|---|---|---|---:|---:|---:|")
    for r in rows:
        pm = r["per_model"]
        bench.say("| %s | %s | %d | %.1f | %s | %s | %s | %d/%d | %d | %s |" % (
            r["policy"], r["scheduler"], r["swaps"], r["wall_s"],
            *["%s / %s" % (fmt_s(pm[k]["p50"]), fmt_s(pm[k]["p95"])) for k in "ABC"],
            r["failed"], r["requests"], r["aborted"],
            fmt_s(r["queue_wait"] and r["queue_wait"]["max_s"])))
    bench.say("")
    by = {(r["policy"], r["scheduler"]): r for r in rows}
    w_off, w_on = by[("wait", "off")], by[("wait", "on")]
    a_on = by[("abort", "on")]
    ratio = w_off["swaps"] / w_on["swaps"] if w_on["swaps"] else float("inf")
    p95_off = max(w_off["per_model"][k]["p95"] or 0 for k in "ABC")
    p95_on = max(w_on["per_model"][k]["p95"] or 0 for k in "ABC")
    bound = MAX_WAIT_S + SWAP_MS / 1000.0
    worst = max((r["queue_wait"] or {}).get("max_s", 0) for r in rows if r["scheduler"] == "on")
    checks = [
        ("(s) >= 3 x fewer swaps (wait)", ratio >= 3, "%.1f x (%d vs %d)" % (ratio, w_off["swaps"], w_on["swaps"])),
        ("(s) lower p95 (wait, worst model)", p95_on < p95_off, "%.2f s vs %.2f s" % (p95_on, p95_off)),
        ("(s) 0 aborted (abort policy, on)", a_on["aborted"] == 0 and a_on["failed"] == 0,
         "%d aborted, %d failed" % (a_on["aborted"], a_on["failed"])),
        ("(s) no wait > max_wait_s + 1 swap", worst <= bound, "%.2f s (bound %.1f s)" % (worst, bound)),
    ]
    for label, ok, what in checks:
        bench.say("%s  %-38s %s" % (bench.verdict(ok), label, what))
    res.setdefault("targets", {})["swap_scheduler"] = {label: ok for label, ok, _ in checks}
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=1, help="times each client runs the pattern [1]")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    bench.ensure_tools()
    h = bench.Harness(args.keep)
    res = {"machine": bench.machine()}
    try:
        pg = bench.Pg(h)
        rc = run(h, pg, res, args.passes)
    finally:
        h.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
