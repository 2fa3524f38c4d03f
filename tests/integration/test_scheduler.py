"""[scheduler]: swap-aware admission in front of a llama-swap-like mock
(bin/mock-upstream --swap-ms: one model loaded at a time, a swap costs
SWAP_MS). Through lighttpd, with spend rows in PostgreSQL: a lone model
is never held, requests of one model keep their order, max_wait_s bounds
a minority model's wait, a client that leaves the queue leaves it at once,
a full queue answers 429, and with the scheduler off nothing changes."""
import http.client
import json
import os
import socket
import struct
import threading
import time

import pytest

from conftest import AUTH, Mock, assert_openai_error, post, request, spend_row

SWAP_MS = 1000
MSGS = [{"role": "user", "content": "hello"}]


class SwapMock(Mock):
    """Our own bin/mock-upstream with llama-swap's swapping."""

    def __init__(self, base, name, policy="wait"):
        super().__init__(base, name, [
            "--swap-ms", str(SWAP_MS), "--swap-policy", policy,
            # Answer ids of its own: spend rows are found by response id.
            "--id-base", "170000000"])

    def control(self, **opts):
        assert request(self.port, "POST", "/__control", opts).status == 200


@pytest.fixture(scope="module")
def smock(base_dir):
    m = SwapMock(base_dir, "swapmock")
    yield m
    m.close()


COMMON = ["gateway.threads=16", "upstream.stream_keepalive_s=1",
          "upstream.first_byte_timeout_s=30", "upstream.idle_timeout_s=30",
          "upstream.retries=0"]


@pytest.fixture(scope="module")
def son(make_stack, smock):
    s = make_stack("sched-on", smock.url, COMMON + [
        "scheduler.enabled=on", "scheduler.max_wait_s=3",
        "scheduler.queue_max=6"])
    yield s
    s.stop()


def chat(stack, model, stream=False, timeout=60):
    body = {"model": model, "messages": MSGS}
    if stream:
        body["stream"] = True
    r = post(stack, "/v1/chat/completions", body, timeout=timeout)
    r.t_end = time.monotonic()
    return r


def status(stack):
    r = stack.get("/scheduler/status", headers=AUTH)
    assert r.status == 200, r
    return r.json()


def model_state(st, model):
    for g in st["groups"]:
        for m in g["models"]:
            if m["model"] == model:
                return g, m
    return None, None


def background(fn, *args):
    out = {}

    def run():
        out["r"] = fn(*args)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.out = out
    return t


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def waiting(stack, model):
    return (model_state(status(stack), model)[1] or {}).get("waiting", 0)


def in_flight(stack, model):
    return (model_state(status(stack), model)[1] or {}).get("in_flight", 0)


def idle(stack):
    st = status(stack)
    return all(g["in_flight"] == 0 and g["waiting"] == 0 for g in st["groups"])


def test_status_needs_admin(son):
    r = son.get("/scheduler/status")
    assert_openai_error(r, 401)
    st = status(son)
    assert st["enabled"] is True
    assert st["max_wait_s"] == 3 and st["queue_max"] == 6


def test_lone_model_never_delayed(son, smock):
    smock.control()
    # The first request loads lone-a (the mock's swap cost), unqueued.
    r = chat(son, "lone-a")
    assert r.status == 200, r
    # Eight at once, then a stream: all go straight through.
    ts = [background(chat, son, "lone-a") for _ in range(8)]
    rs = [chat(son, "lone-a", stream=True)]
    for t in ts:
        t.join(30)
        rs.append(t.out["r"])
    for x in rs:
        assert x.status == 200, x
        row = spend_row(son.pg, x.headers["x-request-id"])
        assert row["metadata"]["queue_time_seconds"] == 0, row["metadata"]
    # lone-a idle: lone-b alone is not held either (the mock swaps).
    b = chat(son, "lone-b")
    assert b.status == 200, b
    assert b.elapsed >= SWAP_MS / 1000.0 - 0.05
    row = spend_row(son.pg, b.headers["x-request-id"])
    assert row["metadata"]["queue_time_seconds"] == 0
    assert "queue_ms=0.000" in son.log("chat")
    g, m = model_state(status(son), "lone-b")
    assert g["active"] == "lone-b" and m["in_flight"] == 0 and m["waiting"] == 0


def test_other_model_waits_for_busy_one(son, smock):
    """b waits while a is in flight, and is told how long in its row."""
    wait_for(lambda: idle(son), 10, "idle")
    chat(son, "busy-a")
    smock.control(delay_ms=1500)
    ta = background(chat, son, "busy-a")
    wait_for(lambda: in_flight(son, "busy-a") == 1, 5, "a in flight")
    tb = background(chat, son, "busy-b", True)
    wait_for(lambda: waiting(son, "busy-b") == 1, 5, "b queued")
    ta.join(30)
    tb.join(30)
    a, b = ta.out["r"], tb.out["r"]
    assert a.status == 200 and b.status == 200, (a, b)
    assert b.t_end > a.t_end
    row = spend_row(son.pg, b.headers["x-request-id"])
    q = row["metadata"]["queue_time_seconds"]
    assert 0.3 < q < 3.0, q
    # It waited >= 1 s: its stream kept its client alive meanwhile.
    assert b": keepalive" in b.body
    assert b"data: [DONE]" in b.body
    smock.control()


def test_max_wait_bounds_minority_model(son, smock):
    """busy major traffic cannot hold a minority model past max_wait_s."""
    wait_for(lambda: idle(son), 10, "idle")
    chat(son, "maj-a")
    # Four clients of a, 1.5 s each, staggered: a is never idle.
    smock.control(delay_ms=1500)
    stop = time.monotonic() + 10
    done = []

    def flood():
        while time.monotonic() < stop:
            done.append(chat(son, "maj-a"))
    fl = []
    for _ in range(4):
        fl.append(threading.Thread(target=flood, daemon=True))
        fl[-1].start()
        time.sleep(0.375)
    time.sleep(0.5)
    assert in_flight(son, "maj-a") >= 3
    b = chat(son, "min-b")
    b_end = time.monotonic()
    for t in fl:
        t.join(30)
    smock.control()
    assert b.status == 200, b
    assert all(x.status == 200 for x in done), [x for x in done if x.status != 200]
    # Held max_wait_s (a was busy throughout), at most max_wait_s + the
    # drain of a's requests in flight (1.5 s) + margin.
    q = spend_row(son.pg, b.headers["x-request-id"])["metadata"]["queue_time_seconds"]
    assert 2.9 <= q <= 3 + 1.5 + 1.5, q
    assert b_end < stop, "b waited for the flood to end"
    # The flood went on after b: the group switched back to a.
    assert any(x.t_end > b_end + 0.5 for x in done)
    assert "queue_ms=" in son.log("chat")


def queued_then_gone(stack, model, stream, rst):
    """Queue a request for model, drop its client; seconds until it left."""
    body = {"model": model, "messages": MSGS}
    if stream:
        body["stream"] = True
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                 headers=dict(AUTH, **{"Content-Type": "application/json"}))
    wait_for(lambda: waiting(stack, model) == 1, 5, model + " queued")
    if rst:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
    else:
        conn.sock.shutdown(socket.SHUT_RDWR)
    conn.sock.close()
    conn.close()
    t0 = time.monotonic()
    wait_for(lambda: waiting(stack, model) == 0, 5, model + " leaving")
    return time.monotonic() - t0


def test_disconnect_leaves_queue(son, smock):
    """A stream's client that closes leaves the queue at its next keep-alive
    (1 s here: lighttpd learns of the close when it writes to it; it does
    not tell a worker of a non-streamed client that left, see README)."""
    wait_for(lambda: idle(son), 10, "idle")
    chat(son, "dc-a")
    smock.control(delay_ms=8000)
    ta = background(chat, son, "dc-a")
    wait_for(lambda: in_flight(son, "dc-a") == 1, 5, "a in flight")
    fin_stream = queued_then_gone(son, "dc-b", True, False)
    rst_stream = queued_then_gone(son, "dc-c", True, True)
    assert in_flight(son, "dc-a") == 1  # a still running: they really left
    ta.join(30)
    assert ta.out["r"].status == 200
    smock.control()
    assert fin_stream < 2.0, fin_stream
    assert rst_stream < 2.0, rst_stream
    # Their spend rows are kept, client_disconnected, with their wait: 200
    # once a keep-alive sent the stream's head (1 s), else 499.
    for model in ("dc-b", "dc-c"):
        deadline = time.time() + 10
        rows = ""
        while time.time() < deadline and not rows:
            rows = son.pg.psql("SELECT status, client_disconnected, "
                               "metadata->>'queue_time_seconds' FROM "
                               "spend_logs WHERE model = '%s'" % model)
            time.sleep(0.1)
        st, gone, q = rows.split("|")
        assert gone == "t", rows
        assert st == ("200" if float(q) >= 1.0 else "499"), rows


def test_queue_full_answers_429(son, smock):
    wait_for(lambda: idle(son), 10, "idle")
    chat(son, "qf-a")
    smock.control(delay_ms=3000)
    ta = background(chat, son, "qf-a")
    wait_for(lambda: in_flight(son, "qf-a") == 1, 5, "a in flight")
    ws = [background(chat, son, "qf-b") for _ in range(6)]
    wait_for(lambda: waiting(son, "qf-b") == 6, 10, "six queued")
    r = chat(son, "qf-c")
    err = assert_openai_error(r, 429, "rate_limit_error")
    assert "queue_max" in err["message"]
    assert r.headers["retry-after"] == "1"
    ta.join(30)
    for t in ws:
        t.join(30)
        assert t.out["r"].status == 200
    smock.control()
    row = spend_row(son.pg, r.headers["x-request-id"])
    assert row["status"] == 429


def test_metrics(son):
    r = son.get("/metrics")
    assert r.status == 200
    text = r.body.decode()
    assert 'llmgw_scheduler_swaps_total{model="maj-a"}' in text
    assert 'llmgw_scheduler_queue_depth{model="min-b"} 0' in text
    assert 'llmgw_scheduler_wait_seconds_count{model="lone-a"} 10' in text
    swaps = [ln for ln in text.splitlines()
             if ln.startswith('llmgw_scheduler_swaps_total{model="min-b"}')]
    assert swaps == ['llmgw_scheduler_swaps_total{model="min-b"} 1'], swaps


def swaps_of(stack, model):
    key = 'llmgw_scheduler_swaps_total{model="%s"} ' % model
    for ln in stack.get("/metrics").body.decode().splitlines():
        if ln.startswith(key):
            return int(ln.split()[-1])
    return None


def test_running_checked(son, smock):
    """llama-swap loaded another model behind the gateway's back (another
    host, say): the gateway learns it from /running before admitting into
    the idle group, so that model's request is no swap."""
    wait_for(lambda: idle(son), 10, "idle")
    assert chat(son, "rn-y").status == 200
    # Load rn-x on the mock directly, not through this gateway.
    r = request(smock.port, "POST", "/v1/chat/completions",
                {"model": "rn-x", "messages": MSGS})
    assert r.status == 200
    assert smock.get("/running") == {"running": [{"model": "rn-x", "state": "ready"}]}
    time.sleep(1.2)  # /running is asked at most once a second per group
    assert chat(son, "rn-x").status == 200
    g, m = model_state(status(son), "rn-x")
    assert g["active"] == "rn-x"
    assert swaps_of(son, "rn-x") == 0
    # Then rn-y again: a swap, counted.
    time.sleep(1.2)
    assert chat(son, "rn-y").status == 200
    assert swaps_of(son, "rn-y") >= 1


@pytest.fixture(scope="module")
def sfifo(make_stack, smock):
    """One request in flight per model: admission order is upstream order."""
    s = make_stack("sched-fifo", smock.url, COMMON + [
        "scheduler.enabled=on", "scheduler.concurrency=1"])
    yield s
    s.stop()


def test_no_reordering_within_model(sfifo, smock):
    wait_for(lambda: idle(sfifo), 10, "idle")
    chat(sfifo, "ord-a")
    smock.control(delay_ms=1500)
    ta = background(chat, sfifo, "ord-a")
    wait_for(lambda: in_flight(sfifo, "ord-a") == 1, 5, "a in flight")
    smock.control(delay_ms=200)
    bs = []
    for i in range(5):
        bs.append(background(chat, sfifo, "ord-b", i % 2 == 1))
        wait_for(lambda: waiting(sfifo, "ord-b") == i + 1, 5, "b%d queued" % i)
    ta.join(30)
    ends = []
    for t in bs:
        t.join(30)
        r = t.out["r"]
        assert r.status == 200, r
        ends.append(r.t_end)
    smock.control()
    assert ends == sorted(ends), ends
    # The mock numbers its answers in the order it served them.
    ids = []
    for t in bs:
        body = t.out["r"].body.decode()
        i = body.index("chatcmpl-mock-")
        # "chatcmpl-mock-<pid>-<n>": n counts the mock's answers.
        ids.append(int(body[i + 14:].split('"')[0].split("-")[-1]))
    assert ids == sorted(ids), ids


@pytest.fixture(scope="module")
def sto(make_stack, smock):
    """A short first_byte_timeout_s: it bounds the wait in the queue too."""
    s = make_stack("sched-timeout", smock.url, [
        "gateway.threads=16", "upstream.stream_keepalive_s=1",
        "upstream.first_byte_timeout_s=2", "upstream.idle_timeout_s=30",
        "upstream.retries=0", "scheduler.enabled=on"])
    yield s
    s.stop()


def test_wait_bounded_by_first_byte_timeout(sto, smock):
    wait_for(lambda: idle(sto), 10, "idle")
    assert chat(sto, "to-a").status == 200
    # a streams for 4 s (its first byte comes at once): b cannot go.
    smock.control(chunks=40, chunk_delay_ms=100)
    ta = background(chat, sto, "to-a", True)
    wait_for(lambda: in_flight(sto, "to-a") == 1, 5, "a in flight")
    b = chat(sto, "to-b")
    ta.join(30)
    smock.control()
    err = assert_openai_error(b, 504, "timeout_error")
    assert "not scheduled within 2 s" in err["message"], err
    assert 1.8 < b.elapsed < 3.5, b.elapsed
    assert ta.out["r"].status == 200 and b"data: [DONE]" in ta.out["r"].body
    row = spend_row(sto.pg, b.headers["x-request-id"])
    assert row["status"] == 504
    assert row["metadata"]["queue_time_seconds"] >= 1.8
    assert waiting(sto, "to-b") == 0


@pytest.fixture(scope="module")
def soff(make_stack, smock):
    s = make_stack("sched-off", smock.url, COMMON)
    yield s
    s.stop()


def test_scheduler_off_passes_through(soff, smock):
    """Off (the default): b goes to the upstream at once, which queues it."""
    chat(soff, "off-a")
    smock.control(delay_ms=1500)
    ta = background(chat, soff, "off-a")
    time.sleep(0.5)
    before = smock.stats()["requests"]
    tb = background(chat, soff, "off-b")
    wait_for(lambda: smock.stats()["requests"] == before + 1, 5,
             "b reaching the upstream while a runs")
    ta.join(30)
    tb.join(30)
    smock.control()
    b = tb.out["r"]
    assert b.status == 200
    row = spend_row(soff.pg, b.headers["x-request-id"])
    assert "queue_time_seconds" not in row["metadata"]
    assert "queue_ms=" not in soff.log("chat")
    st = status(soff)
    assert st["enabled"] is False and st["groups"] == []
    assert "llmgw_scheduler" not in soff.get("/metrics").body.decode()


def test_queue_wait_goes_to_langfuse(make_stack, smock, base_dir, pg):
    """With Langfuse on, a queued request's recorded trace carries its
    queue wait (issue 21: the scheduler's wait as generation metadata)."""
    sk = os.path.join(base_dir, "sched-lf.secret")
    with open(sk, "w") as f:
        f.write("sk-lf-sched-test\n")
    s = make_stack("sched-lf", smock.url, COMMON + [
        "scheduler.enabled=on", "scheduler.max_wait_s=3", "scheduler.queue_max=6",
        "langfuse.enabled=on", "langfuse.host=http://127.0.0.1:9",
        "langfuse.public_key=pk-lf-sched-test", "langfuse.secret_key_file=" + sk])
    try:
        wait_for(lambda: idle(s), 10, "idle")
        chat(s, "lfq-a")
        smock.control(delay_ms=1500)
        ta = background(chat, s, "lfq-a")
        wait_for(lambda: in_flight(s, "lfq-a") == 1, 5, "a in flight")
        tb = background(chat, s, "lfq-b")
        wait_for(lambda: waiting(s, "lfq-b") == 1, 5, "b queued")
        ta.join(30)
        tb.join(30)
        b = tb.out["r"]
        assert b.status == 200, b
        rid = b.headers["x-request-id"]
        deadline, trace = time.time() + 10, ""
        while time.time() < deadline and not trace:
            trace = pg.psql("SELECT trace FROM request_payloads WHERE request_id = '%s'" % rid)
            time.sleep(0.1)
        assert trace, "no payload row"
        t = json.loads(trace)
        q = t["queue_wait_ms"] if "queue_wait_ms" in t else t.get("metadata", {}).get("queue_wait_ms")
        assert q is not None and 300 < q < 3000, t
    finally:
        smock.control()
        s.stop()
