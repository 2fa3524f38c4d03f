"""Issue 16, point 4: key, user and team rpm_limit, tpm_limit and
max_parallel_requests hold across hosts. Two gateway stacks on one
machine (separate var dirs, so separate shared memory: two hosts) share
one PostgreSQL; [rate_limit] shared leases slices of each window there
(migration 010, lib/rlshare.c)."""
import os
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import RAW_KEYS, assert_openai_error, bearer, new_key, post

MSGS = [{"role": "user", "content": "hi"}]
TTL = 4  # rate_limit.shared_lease_ttl_s of these stacks
OVERRIDES = ["gateway.threads=16", "rate_limit.shared=on",
             "rate_limit.shared_lease_ttl_s=%d" % TTL,
             "rate_limit.shared_sync_ms=200"]


@pytest.fixture(scope="module")
def hosts(make_stack, mock):
    return (make_stack("xl-a", mock.url, OVERRIDES),
            make_stack("xl-b", mock.url, OVERRIDES))


def chat(stack, key, model="gpt-4", timeout=30):
    return post(stack, "/v1/chat/completions", {"model": model, "messages": MSGS},
                bearer(key), timeout=timeout)


def fresh_window(stack, need=25):
    """Limits count in minute windows of the clock: start with at least
    need seconds of the window left (from a key's x-ratelimit-reset)."""
    k = new_key(stack, rpm_limit=1000)["key"]
    r = chat(stack, k)
    assert r.status == 200, r
    left = int(r.headers["x-ratelimit-reset-requests"].rstrip("s"))
    if left < need:
        time.sleep(left + 0.5)


def burst(hosts, key, n, model="gpt-4"):
    """n requests of key, half on each host, 8 at a time on each: the
    statuses and answers per host."""
    def one(i):
        s = hosts[i % 2]
        return i % 2, chat(s, key, model)
    with ThreadPoolExecutor(16) as ex:
        return list(ex.map(one, range(n)))


def limited_key(hosts, level="key", **limits):
    """A key whose key, user or team has limits, cached by every worker
    process of both hosts (the auth cache is per process, and PostgreSQL
    may be stopped later): warmed without limits, then given them."""
    a = hosts[0]
    tag = "xl-%s-%d-%d" % (level, os.getpid(), time.monotonic_ns())
    if level == "user":
        r = post(a, "/user/new", {"user_id": tag})
        assert r.status == 200, r
        RAW_KEYS.append(r.json()["key"])
        out = new_key(a, user_id=tag)
    elif level == "team":
        assert post(a, "/team/new", {"team_id": tag}).status == 200
        out = new_key(a, team_id=tag)
    else:
        out = new_key(a)
    for s in hosts:
        for _ in range(12):
            r = chat(s, out["key"])
            assert r.status == 200, r
    if level == "user":
        r = post(a, "/user/update", dict({"user_id": tag}, **limits))
    elif level == "team":
        r = post(a, "/team/update", dict({"team_id": tag}, **limits))
    else:
        r = post(a, "/key/update", dict({"key": out["key"]}, **limits))
    assert r.status == 200, r
    time.sleep(1.0)  # the caches hear of it (LISTEN)
    return out["key"]


def test_sql_slices_shrink_near_the_limit(pg):
    """llmgw_rl_take: a slice is at most a div-th of what is left (at least
    1), never past the limit; the window's tokens add up over hosts."""
    # A window far ahead: the hosts' beats, running meanwhile on the same
    # database, prune windows older than their own (win 7 once vanished
    # mid-loop and the slices began again).
    W = 9000000000
    got = []
    for _ in range(20):
        row = pg.psql("SELECT got, tokens FROM llmgw_rl_take(11, 12, %d, 100, 100, 4, 5)" % W)
        got.append(int(row.split("|")[0]))
    assert got[:6] == [25, 18, 14, 10, 8, 6], got
    assert sum(got) == 100 and got[-1] == 0, got
    assert pg.psql("SELECT requests, tokens FROM llmgw_rl_window "
                   "WHERE h1 = 11 AND h2 = 12 AND win = %d" % W) == "100|100"
    # slice_max caps a slice; rpm < 0 grants none but still adds tokens.
    assert pg.psql("SELECT got FROM llmgw_rl_take(13, 12, %d, 1000, 30, 4, 0)" % W) == "30"
    assert pg.psql("SELECT got || ',' || tokens FROM llmgw_rl_take(14, 12, %d, -1, 30, 4, 9)" % W) == "0,9"


def test_sql_parallel_leases(pg):
    """llmgw_rl_par_take: a host gets what it needs when the others' live
    leases leave room, plus a div-th of the rest; expired leases do not
    count; the beat makes a host's leases exactly what it reports."""
    take = "SELECT llmgw_rl_par_take(21, 22, '%s', %d, %d, 4, 4, 60)"
    assert pg.psql(take % ("a", 0, 1)) == "1"   # 1 + (4-0-1)/4
    assert pg.psql(take % ("b", 0, 1)) == "1"
    assert pg.psql(take % ("a", 1, 2)) == "2"   # others 1: 2 + (4-1-2)/4
    assert pg.psql(take % ("b", 1, 2)) == "2"
    assert pg.psql(take % ("b", 2, 3)) == "2"   # 2 + 3 > 4: keeps 2
    pg.psql("UPDATE llmgw_rl_parallel SET expires_at = now() - interval '1 s' "
            "WHERE h1 = 21 AND host = 'a'")
    assert pg.psql(take % ("b", 2, 3)) == "3"   # a's leases expired
    # A take never lowers a lease (a thread with an older view came late).
    assert pg.psql(take % ("b", 0, 1)) == "3"
    # Nor does a beat just after a take; later it sets what is in flight.
    pg.psql("SELECT llmgw_rl_beat('b', '{21}', '{22}', '{1}', 60, '{}', '{}', '{}', '{}', 0)")
    assert pg.psql("SELECT held FROM llmgw_rl_parallel WHERE h1 = 21 AND host = 'b'") == "3"
    pg.psql("UPDATE llmgw_rl_parallel SET taken_at = now() - interval '3 s' WHERE h1 = 21")
    pg.psql("SELECT llmgw_rl_beat('b', '{21}', '{22}', '{1}', 60, '{}', '{}', '{}', '{}', 0)")
    assert pg.psql("SELECT held FROM llmgw_rl_parallel WHERE h1 = 21 AND host = 'b'") == "1"
    pg.psql("SELECT llmgw_rl_beat('b', '{}', '{}', '{}', 60, '{}', '{}', '{}', '{}', 0)")
    assert pg.psql("SELECT count(*) FROM llmgw_rl_parallel WHERE h1 = 21 AND host = 'b'") == "0"


def within(total, limit, name):
    assert limit * 0.9 <= total <= limit * 1.1, "%s: %d admitted, limit %d" % (
        name, total, limit)


@pytest.mark.parametrize("level", ["key", "user", "team"])
def test_rpm_holds_across_hosts(hosts, level):
    a, b = hosts
    rpm = 40
    key = limited_key(hosts, level, rpm_limit=rpm)
    fresh_window(a)
    out = burst(hosts, key, 3 * rpm)
    ok = [h for h, r in out if r.status == 200]
    refused = [r for _, r in out if r.status == 429]
    assert len(ok) + len(refused) == len(out), [r.status for _, r in out]
    print("%s rpm %d: %d admitted over two hosts (%d + %d)" % (
        level, rpm, len(ok), ok.count(0), ok.count(1)))
    within(len(ok), rpm, level)
    # Each host answered some: the limit is shared, not one host's.
    assert ok.count(0) >= 5 and ok.count(1) >= 5, (ok.count(0), ok.count(1))
    err = assert_openai_error(refused[0], 429, "rate_limit_error")
    assert ("rpm_limit %d" % rpm) in err["message"], err


def test_tpm_holds_across_hosts(hosts):
    a, b = hosts
    tpm = 1200
    key = limited_key(hosts, tpm_limit=tpm)
    fresh_window(a)
    model = "qwen3-30b-a3b@chunks=40"   # 41 tokens a request
    total, per, stop = [0], [], threading.Event()
    lock = threading.Lock()

    def client(i):
        s = hosts[i % 2]
        while not stop.is_set():
            r = chat(s, key, model)
            if r.status == 429:
                stop.set()
                return
            assert r.status == 200, r
            with lock:
                total[0] += r.json()["usage"]["total_tokens"]
                per.append(r.json()["usage"]["total_tokens"])
    clients = 4
    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(client, range(clients)))
    # Refused at each host once the hosts' tokens reach tpm: the other
    # host knows within shared_sync_ms (200 ms here) of its last report.
    time.sleep(0.5)
    for s in hosts:
        assert chat(s, key, model).status == 429
    tok = max(per)
    # The bound README states: tpm, plus the requests in flight (as on one
    # host), plus what the other host counted since it last reported.
    bound = tpm + clients * tok + tpm // 4
    print("tpm %d: %d tokens admitted over two hosts (bound %d)" % (tpm, total[0], bound))
    assert tpm <= total[0] <= bound, (total[0], bound)


def open_stream(stack, key, chunks, delay):
    """Start a slow stream; the socket once its first chunk came, or the
    status when it was refused."""
    body = ('{"model":"qwen3-30b-a3b@chunks=%d,chunk_delay_ms=%d","stream":true,'
            '"messages":[{"role":"user","content":"x"}]}' % (chunks, delay)).encode()
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=30)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + key.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
              + b"\r\n\r\n" + body)
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    status = int(got.split(b" ", 2)[1])
    if status != 200:
        s.close()
        return status
    while b"data: " not in got:
        got += s.recv(4096)
    return s


def streams(hosts, key, n, chunks=60, delay=100):
    """n streams at once, alternating hosts: the open sockets and the
    refusals."""
    with ThreadPoolExecutor(n) as ex:
        out = list(ex.map(lambda i: (i % 2, open_stream(hosts[i % 2], key, chunks, delay)),
                          range(n)))
    return ([(h, s) for h, s in out if not isinstance(s, int)],
            [s for _, s in out if isinstance(s, int)])


def test_parallel_holds_across_hosts(hosts):
    a, b = hosts
    par = 3
    key = limited_key(hosts, max_parallel_requests=par)
    for attempt in range(2):
        held, refused = streams(hosts, key, 8)
        try:
            # Every stream lasts 6 s: all were in flight together.
            assert len(held) == par, (len(held), refused)
            assert refused == [429] * (8 - par), refused
        finally:
            for _, s in held:
                s.close()
        # Closed streams give their slots back (the beat shrinks grants).
        time.sleep(2.5)


def kill_host(stack):
    """Every process of the stack, with SIGKILL: a host that died."""
    run = os.path.join(stack.var, "run")
    pids = []
    for f in os.listdir(run):
        if f.endswith(".pid") and f != "lighttpd.pid":
            pid = int(open(os.path.join(run, f)).read())
            pids.append(pid)
            pids += [int(p) for p in os.popen("pgrep -P %d" % pid).read().split()]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_dead_host_leases_expire(make_stack, mock, hosts):
    a = hosts[0]
    c = make_stack("xl-c", mock.url, OVERRIDES)
    par = 2
    key = limited_key((a, c), max_parallel_requests=par)
    held, refused = streams((c, c), key, par, chunks=600, delay=100)
    assert len(held) == par, refused
    assert open_stream(a, key, 5, 10) == 429
    kill_host(c)
    t0 = time.monotonic()
    for _, s in held:
        s.close()
    # c never renews its leases again: they count until they expire.
    while True:
        s = open_stream(a, key, 5, 10)
        if not isinstance(s, int):
            s.close()
            break
        assert s == 429
        assert time.monotonic() - t0 < TTL + 6, "c's leases never expired"
        time.sleep(0.25)
    took = time.monotonic() - t0
    print("a dead host's leases expired after %.1f s (ttl %d s)" % (took, TTL))
    assert took >= 1.0  # c's leases counted for a while: they were shared
    c.stop()


def metric(stack, name, labels):
    m = re.search(re.escape(name + "{" + labels + "}") + r" (\d+)",
                  stack.get("/metrics").body.decode())
    return int(m.group(1)) if m else 0


def test_postgres_down_fails_open_per_host(make_stack, mock, pg):
    """Last: PostgreSQL stopped, each host admits by its own counts (its
    per-host limit, as without sharing) and counts it. One worker process
    per host here, so that the warm-up surely cached the key in each."""
    one = OVERRIDES + ["gateway.processes=1"]
    hosts = a, b = make_stack("xl-d", mock.url, one), make_stack("xl-e", mock.url, one)
    rpm = 30
    key = new_key(a, rpm_limit=rpm)["key"]
    fresh_window(a, need=35)
    # Both hosts' worker processes cache the key: 20 of the 30 are used.
    warm = {h: [chat(hosts[h], key).status for _ in range(10)] for h in (0, 1)}
    assert warm == {0: [200] * 10, 1: [200] * 10}, warm
    before = metric(a, "llmgw_ratelimit_fail_open_total", 'reason="shared_unavailable"')
    pg.stop()
    try:
        t0 = time.monotonic()
        codes = {h: [chat(hosts[h], key).status for _ in range(25)] for h in (0, 1)}
        took = time.monotonic() - t0
        # Each host alone admits rpm in the window (10 of them before):
        # the per-host limit still holds, and nothing waits for PostgreSQL.
        for h in (0, 1):
            assert codes[h] == [200] * (rpm - 10) + [429] * 5, codes
        assert took < 25, took
        assert metric(a, "llmgw_ratelimit_fail_open_total",
                      'reason="shared_unavailable"') > before
        assert "shared limits unavailable" in a.log("chat")
        # One request per process waited for PostgreSQL, not every one.
    finally:
        pg.start()
    # Shared again once it answers: a process fails open for 1 s after a
    # failure, doubled for each in a row up to 8 s, before it tries again.
    time.sleep(9)
    k2 = new_key(a, rpm_limit=10)["key"]
    fresh_window(a)
    out = [chat(hosts[i % 2], k2).status for i in range(20)]
    assert out.count(200) == 10, out
    a.stop()
    b.stop()
