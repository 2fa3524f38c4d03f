"""The health family through lighttpd: /health, liveliness, readiness,
/metrics, unknown routes, concurrency, reload, restart and stop."""
import glob
import json
import os
import re
import signal
import subprocess
import threading
import time
from datetime import datetime

from conftest import AUTH, TREE, FakeUpstream, assert_openai_error, free_port

VERSION = open(os.path.join(TREE, "VERSION")).read().strip()
N_MIGRATIONS = len(glob.glob(os.path.join(TREE, "migrations", "*.sql")))
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def parse_rfc3339(s):
    assert s.endswith("Z"), s
    return datetime.fromisoformat(s[:-1] + "+00:00")


def test_health_reports_db_and_upstream(stack, fake_upstream):
    before = len(fake_upstream.seen)
    r = stack.get("/health", headers=AUTH)
    assert r.status == 200, r
    body = r.json()
    assert body["status"] == "healthy"
    assert body["version"] == VERSION
    ts = parse_rfc3339(body["timestamp"])
    assert abs(time.time() - ts.timestamp()) < 60
    assert body["checks"]["database"]["status"] == "ok"
    up = body["checks"]["upstream"]
    assert up["status"] == "ok" and up["http_status"] == 200
    assert up["url"] == fake_upstream.url + "/health"
    # The probe is GET /health upstream, never a completion.
    assert fake_upstream.seen[before:] == [("GET", "/health")]


def test_health_degraded_when_upstream_down(make_stack):
    s = make_stack("noupstream", "http://127.0.0.1:%d" % free_port())
    r = s.get("/health", headers=AUTH)
    assert r.status == 200, r
    body = r.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["upstream"]["status"] == "error"
    assert "connect" in body["checks"]["upstream"]["error"].lower()
    # Readiness is about the gateway itself: still ready.
    assert s.get("/health/readiness").status == 200
    s.stop()


def test_health_details_are_for_admins_only(make_stack):
    """Issue #15, 7: the upstream's address, latencies and libpq's or
    libcurl's errors go to an admin only; anyone gets the statuses (and
    never a 401 from a health route)."""
    s = make_stack("healthleak", "http://127.0.0.1:%d" % free_port())
    for headers in ({}, {"Authorization": "Bearer sk-not-a-key"},
                    {"Authorization": "Basic eDp5"}):
        r = s.get("/health", headers=headers)
        assert r.status == 200, r
        body = r.json()
        assert body["status"] == "degraded"
        assert set(body) == {"status", "version", "timestamp", "checks"}
        assert body["checks"] == {"database": {"status": "ok"},
                                  "upstream": {"status": "error"}}
        assert "127.0.0.1" not in r.body.decode()
    full = s.get("/health", headers=AUTH).json()["checks"]
    assert full["upstream"]["url"].startswith("http://127.0.0.1:")
    assert "error" in full["upstream"] and "latency_ms" in full["database"]
    s.stop()


def test_liveliness(stack):
    r = stack.get("/health/liveliness")
    assert r.status == 200
    assert r.json() == {"status": "healthy"}
    assert r.headers["content-type"] == "application/json"
    assert stack.request("HEAD", "/health/liveliness").status == 200


def test_readiness_ready(stack):
    r = stack.get("/health/readiness")
    assert r.status == 200, r
    body = r.json()
    assert body["status"] == "ready"
    assert body["database"] == "connected"
    assert body["migrations"] == {"applied": N_MIGRATIONS, "expected": N_MIGRATIONS}


def test_readiness_waits_for_migrations(make_stack, pg, fake_upstream):
    pg.createdb("llmgw_fresh")
    s = make_stack("fresh", fake_upstream.url, db="llmgw_fresh")
    r = s.get("/health/readiness")
    assert r.status == 503, r
    body = r.json()
    assert body["status"] == "not_ready"
    assert body["reason"] == "migrations pending: 0 of %d applied" % N_MIGRATIONS
    out = subprocess.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d",
                          pg.conninfo("llmgw_fresh"), "-m",
                          os.path.join(TREE, "migrations")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # Same workers, no restart: ready now.
    r = s.get("/health/readiness")
    assert r.status == 200, r
    s.stop()


def test_metrics_text(stack):
    r = stack.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert ('llmgw_build_info{version="%s"} 1' % VERSION) in r.body.decode()


def test_unknown_routes_are_openai_404(stack):
    for path in ("/nope", "/health/nope", "/v2/whatever?x=1"):
        r = stack.get(path)
        err = assert_openai_error(r, 404, "not_found_error")
        assert path.split("?")[0] in err["message"]
        assert err["param"] is None


def test_wrong_method_is_405(stack):
    r = stack.request("POST", "/health/readiness", body="{}",
                      headers={"Content-Type": "application/json"})
    assert_openai_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, HEAD"
    r = stack.request("DELETE", "/health")
    assert_openai_error(r, 405)


def test_request_id_headers_and_access_log(stack):
    ids = set()
    for _ in range(5):
        r = stack.get("/health/liveliness")
        rid = r.headers["x-request-id"]
        assert UUID.match(rid), rid
        assert r.headers["x-litellm-call-id"] == rid
        ids.add(rid)
        # UUIDv7: the first 48 bits are the time in ms.
        assert abs(int(rid.replace("-", "")[:12], 16) / 1000 - time.time()) < 60
    assert len(ids) == 5
    deadline = time.time() + 5
    while time.time() < deadline and rid not in stack.log("health"):
        time.sleep(0.05)
    line = [l for l in stack.log("health").splitlines() if rid in l][0]
    assert "mod=access" in line and "status=200" in line
    assert "path=/health/liveliness" in line


def test_slow_requests_do_not_block_fast_ones(make_stack):
    slow = FakeUpstream()
    slow.delay = 2.0
    # One process with four threads: three held by slow /health probes.
    s = make_stack("concurrency", slow.url,
                   ["gateway.processes=1", "gateway.threads=4",
                    "upstream.health_timeout_ms=10000"])
    results = []

    def slow_call():
        results.append(s.get("/health"))

    threads = [threading.Thread(target=slow_call) for _ in range(3)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.3)
    fast = s.get("/health/liveliness")
    fast_at = time.monotonic() - t0
    for t in threads:
        t.join()
    assert fast.status == 200
    assert fast.elapsed < 0.5, fast.elapsed
    assert fast_at < 1.0
    assert len(results) == 3
    for r in results:
        assert r.status == 200 and r.json()["status"] == "healthy"
        assert r.elapsed >= 1.9
    # The three slow probes ran side by side, not one after another.
    assert time.monotonic() - t0 < 4.0
    s.stop()
    slow.close()


def test_reload_on_sighup(make_stack, fake_upstream):
    s = make_stack("reload", fake_upstream.url)
    assert s.get("/health", headers=AUTH).json()["checks"]["upstream"]["url"].endswith("/health")
    conf = s.conf()
    text = open(conf).read()
    open(conf, "w").write(text.replace("health_path = /health", "health_path = /ping"))
    os.kill(s.pid("health"), signal.SIGHUP)
    deadline = time.time() + 5
    url = ""
    while time.time() < deadline:
        url = s.get("/health", headers=AUTH).json()["checks"]["upstream"]["url"]
        if url.endswith("/ping"):
            break
        time.sleep(0.1)
    assert url.endswith("/ping")
    # A broken file is refused; the running configuration stays.
    open(conf, "w").write(text + "\n[gateway]\nbogus = 1\n")
    os.kill(s.pid("health"), signal.SIGHUP)
    time.sleep(0.5)
    assert "reload refused" in s.log("health")
    assert s.get("/health", headers=AUTH).json()["checks"]["upstream"]["url"].endswith("/ping")
    s.stop()


def test_killed_worker_is_restarted(make_stack, fake_upstream):
    s = make_stack("restart", fake_upstream.url)
    kids = s.children("health")
    assert len(kids) == 2
    os.kill(kids[0], signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline:
        now = s.children("health")
        if len(now) == 2 and kids[0] not in now:
            break
        time.sleep(0.1)
    now = s.children("health")
    assert len(now) == 2 and kids[0] not in now, now
    for _ in range(10):
        assert s.get("/health/liveliness").status == 200
    assert "killed by signal 9" in s.log("health")
    s.stop()


def test_stop_lets_requests_in_flight_finish(make_stack):
    slow = FakeUpstream()
    slow.delay = 1.5
    s = make_stack("graceful", slow.url, ["upstream.health_timeout_ms=10000"])
    out = []
    t = threading.Thread(target=lambda: out.append(s.get("/health")))
    t.start()
    time.sleep(0.3)
    sup = s.pid("health")
    os.kill(sup, signal.SIGTERM)
    t.join()
    assert out[0].status == 200 and out[0].json()["status"] == "healthy"
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists("/proc/%d" % sup):
        time.sleep(0.05)
    assert not os.path.exists("/proc/%d" % sup) or \
        open("/proc/%d/stat" % sup).read().split()[2] == "Z"
    s.stop()
    slow.close()


def test_web_server_errors_are_openai_shaped(make_stack, fake_upstream, front):
    s = make_stack("weberrors", fake_upstream.url, front=front)
    # The front's own 411 (a POST with no body and no length).
    import socket
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = b""
    while True:
        b = c.recv(4096)
        if not b:
            break
        raw += b
    c.close()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 411"), head
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "411"
    # A family whose worker is down: the front's 503, still JSON.
    s.ctl("workers-stop")
    r = s.get("/health/liveliness")
    assert_openai_error(r, 503, "service_unavailable")
    s.stop()
