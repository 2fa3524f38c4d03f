"""Faults under load (issue 16, point 5): while clients keep sending, the
upstream is killed and restarted, PostgreSQL restarts, a worker is killed
with SIGKILL, lighttpd restarts gracefully and every family reloads on
SIGHUP. For each fault: errors only while it lasts, none once it is over,
and at the end one spend row per answered request (rows with status 200 =
the upstream's answered calls), no file descriptor or memory growth.

The short version runs in `make check`; `make faults` runs the same faults
longer (LLMGW_FAULTS_S seconds of load around each, default 2 here) and
prints the table that BENCHMARKS.md records."""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import TREE, bearer, free_port, new_key, post

HOLD = float(os.environ.get("LLMGW_FAULTS_S", "1.0"))  # load before/after
GRACE = 1.0    # a fault's after-effects allowed once it is over (s)
CLIENTS = 6    # concurrent keep-alive clients
THREADS = 16   # per worker process
PRICE = "prices.qwen3-30b-a3b=1.5 2.5"
BODY = json.dumps({"model": "gpt-4",
                   "messages": [{"role": "user", "content": "hello there friend"}]})


class OwnMock:
    """A mock upstream of this test's own, on a fixed port, so it can be
    killed and started again where the gateway expects it."""

    def __init__(self, base):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(base, "faults-mock.log"), "ab")
        self.proc = None
        self.answered = 0  # chat answers of earlier processes
        self.gap = (0.0, 0.0)
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [os.path.join(TREE, "bin", "mock-upstream"), "--port", str(self.port),
             "--quiet"], stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mock upstream did not start")

    def stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", "/__stats")
        out = json.loads(c.getresponse().read())
        c.close()
        return out

    def kill(self):
        # Its count first: a killed process takes its counters along, and
        # what it answers between the two is not counted (the test allows
        # for the client's 200s in that window, self.gap).
        t = time.monotonic()
        self.answered += self.stats()["chat"]
        self.proc.kill()
        self.gap = (t, time.monotonic())
        self.proc.wait()

    def chat_calls(self):
        return self.answered + self.stats()["chat"]

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Load:
    """CLIENTS threads sending chats over keep-alive connections; every
    answer is recorded as (monotonic time, status), 0 for a connection
    that failed before an answer."""

    def __init__(self, port, key):
        self.port, self.key = port, key
        self.events = []
        self.retried = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(CLIENTS)]

    def run(self):
        conn = None
        hdr = dict(bearer(self.key), **{"Content-Type": "application/json"})
        while not self.stop.is_set():
            status, reused = 0, False
            for attempt in range(2):
                try:
                    reused = conn is not None
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                    conn.request("POST", "/v1/chat/completions", BODY, hdr)
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    # A kept-alive connection the server closed before it
                    # read the request (RemoteDisconnected, reset, broken
                    # pipe): sent again on a new one, as HTTP clients do.
                    stale = reused and attempt == 0 and isinstance(
                        e, (http.client.RemoteDisconnected, ConnectionResetError,
                            BrokenPipeError))
                    if stale:
                        with self.lock:
                            self.retried += 1
                        continue
                    time.sleep(0.01)
                    break
            with self.lock:
                self.events.append((time.monotonic(), status))
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def between(self, t0, t1):
        with self.lock:
            return [(t, s) for t, s in self.events if t0 <= t < t1]


def proc_usage(pids):
    """{pid: (descriptors that are not sockets, sockets, resident KiB)}."""
    out = {}
    for p in pids:
        try:
            files = socks = 0
            for n in os.listdir("/proc/%d/fd" % p):
                try:
                    t = os.readlink("/proc/%d/fd/%s" % (p, n))
                except OSError:
                    continue
                if t.startswith("socket:"):
                    socks += 1
                else:
                    files += 1
            with open("/proc/%d/status" % p) as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            out[p] = (files, socks, rss)
        except (OSError, StopIteration):
            pass
    return out


def fd_targets(pid):
    out = []
    for n in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, n)))
        except OSError:
            pass
    return sorted(out)


def totals(usage):
    return (sum(v[0] + v[1] for v in usage.values()),
            sum(v[2] for v in usage.values()))


FAMILIES = ["chat", "embeddings", "keys", "spend", "health"]


def worker_pids(stack):
    return [p for fam in FAMILIES for p in stack.children(fam)]


def wait_ready(stack, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if stack.get("/health/readiness", timeout=5).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)


def inject(stack, mock, pg, name):
    """Cause fault name; return once it is over (recovery done)."""
    if name == "upstream killed":
        mock.kill()
        time.sleep(1.0)
        mock.start()
    elif name == "PostgreSQL restarted":
        pg.stop()
        time.sleep(1.0)
        pg.start()
    elif name == "worker kill -9":
        os.kill(stack.children("chat")[0], signal.SIGKILL)
    elif name == "front graceful restart":
        # SIGUSR1 is a graceful restart for lighttpd and Apache alike.
        os.kill(stack.pid(stack.front), signal.SIGUSR1)
    elif name == "SIGHUP every family":
        for fam in FAMILIES:
            os.kill(stack.pid(fam), signal.SIGHUP)
    else:
        raise AssertionError(name)


FAULTS = ["upstream killed", "PostgreSQL restarted", "worker kill -9",
          "front graceful restart", "SIGHUP every family"]


@pytest.fixture
def faults_env(make_stack, base_dir, pg, front):
    m = OwnMock(base_dir)
    s = make_stack("faults", m.url, [PRICE, "gateway.threads=%d" % THREADS,
                                     "upstream.connect_timeout_ms=500"], front=front)
    yield s, m
    s.stop()
    m.close()


def test_faults_under_load(faults_env, pg):
    stack, mock = faults_env
    k = new_key(stack)
    report = []
    with Load(stack.port, k["key"]) as load:
        # Warm-up: every worker thread has its connections, the allocator
        # its arenas.
        time.sleep(2 * HOLD)
        use0 = proc_usage(worker_pids(stack))
        for name in FAULTS:
            t0 = time.monotonic()
            time.sleep(HOLD)
            before = load.between(t0, time.monotonic())
            f0 = time.monotonic()
            inject(stack, mock, pg, name)
            f1 = time.monotonic()
            time.sleep(GRACE + HOLD)
            during = load.between(f0, f1 + GRACE)
            after = load.between(f1 + GRACE, time.monotonic())
            bad = [t for t, s in during if s != 200]
            report.append({
                "fault": name,
                "before": len(before), "before_errors": sum(s != 200 for _, s in before),
                "during": len(during), "during_errors": len(bad),
                "error_s": round(bad[-1] - bad[0], 3) if bad else 0.0,
                "after": len(after), "after_errors": sum(s != 200 for _, s in after),
                "statuses": sorted({s for _, s in during if s != 200}),
            })
        wait_ready(stack)
        time.sleep(HOLD)
        use1 = proc_usage(worker_pids(stack))
    (fds0, rss0), (fds1, rss1) = totals(use0), totals(use1)
    print("\n[%s]" % stack.front)
    print("fault | requests before (errors) | during (errors, seconds) | after (errors) | error statuses")
    for r in report:
        print("%s | %d (%d) | %d (%d, %.3f s) | %d (%d) | %s" % (
            r["fault"], r["before"], r["before_errors"], r["during"], r["during_errors"],
            r["error_s"], r["after"], r["after_errors"], r["statuses"]))
    print("workers: fds %d -> %d, RSS %d -> %d KiB; %d stale keep-alive connections "
          "retried" % (fds0, fds1, rss0, rss1, load.retried))
    with open(os.path.join(stack.var, "faults.json"), "w") as f:
        json.dump({"faults": report, "fds": [fds0, fds1], "rss_kib": [rss0, rss1]}, f)

    for r in report:
        assert r["before_errors"] == 0, r
        assert r["after"] > 0 and r["after_errors"] == 0, r
    # Faults the clients must not see at all.
    for r in report:
        if r["fault"] in ("PostgreSQL restarted", "SIGHUP every family",
                          "front graceful restart"):
            assert r["during_errors"] == 0, r
    up = next(r for r in report if r["fault"] == "upstream killed")
    assert set(up["statuses"]) <= {502, 503}, up

    # Every answered request has its row; the 200s are the upstream's calls.
    answered = [s for _, s in load.events if s != 0]
    ok = sum(s == 200 for s in answered)
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s'" % k["token"]))
        if rows >= len(answered):
            break
        time.sleep(0.2)
    rows_ok = int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s' "
                          "AND status = 200" % k["token"]))
    killed = next(r for r in report if r["fault"] == "worker kill -9")
    # A request the killed worker was answering has no row (it had none to
    # lose yet); there are at most its in-flight requests, seen as errors.
    assert len(answered) - killed["during_errors"] <= rows <= len(answered)
    # A request the killed worker had answered and spooled can still reach
    # its client as an error (the answer lost with the process): a 200 row
    # for an error the client saw, at most one per error of the kill.
    assert ok <= rows_ok <= ok + killed["during_errors"], (rows_ok, ok)
    uncounted = sum(s == 200 for _, s in load.between(mock.gap[0], mock.gap[1] + 0.2))
    assert ok - uncounted <= mock.chat_calls() <= ok + killed["during_errors"], uncounted
    assert pg.psql("SELECT count(*) = count(DISTINCT request_id) FROM spend_logs "
                   "WHERE api_key = '%s'" % k["token"]) == "t"
    # No growth in a process that lived through every fault: descriptors
    # other than sockets within 2; sockets within 8 (each thread opens its
    # database connection when it first needs one, and libcurl's
    # connection cache follows the concurrency: both bounded; a leak grows
    # with the requests, thousands here); memory within 15 % and 2 MiB (malloc's
    # per-thread arenas still settle in a short run; the soak holds RSS
    # to 5 % over 30 minutes, valgrind and ASan find no leak). The worker
    # started in place of the killed one holds no more than the most any
    # other had before, by the same rules.
    most = (max(v[0] for v in use0.values()), max(v[1] for v in use0.values()), None)
    for pid, (files, socks, rss) in use1.items():
        base = use0.get(pid, most)
        assert files <= base[0] + 2, (pid, base, (files, socks), fd_targets(pid))
        assert socks <= max(base[1], THREADS) + 8, (pid, base, (files, socks))
        if base[2] is not None:
            assert rss <= base[2] * 1.15 + 2048, (pid, base, rss)
