"""Readiness follows PostgreSQL: 503 while it is down, 200 again once it is
back, with the same worker processes (their connections reconnect)."""
import time


def wait_status(stack, want, timeout=15):
    deadline = time.time() + timeout
    r = None
    while time.time() < deadline:
        r = stack.get("/health/readiness")
        if r.status == want:
            return r
        time.sleep(0.1)
    raise AssertionError("readiness stayed %r" % r)


def test_readiness_flips_with_postgres(stack, pg):
    assert stack.get("/health/readiness").status == 200
    workers = stack.children("health")
    pg.stop()
    try:
        r = wait_status(stack, 503)
        body = r.json()
        assert body["status"] == "not_ready"
        assert body["reason"].startswith("database unreachable")
        assert body["database"] == "unreachable"
        h = stack.get("/health")
        assert h.status == 503 and h.json()["status"] == "unhealthy"
        # Liveness does not depend on the database.
        assert stack.get("/health/liveliness").status == 200
    finally:
        pg.start()
    r = wait_status(stack, 200)
    assert r.json()["status"] == "ready"
    assert stack.children("health") == workers
