"""Per-client rate limits (issue #15, 1): the 100/s, 200-burst bucket is
per client source, so one client cannot lock the others out; failed
authentications are limited per source; X-Forwarded-For counts only from a
trusted proxy; the table of sources is bounded (LRU, evictions counted);
the host-wide cap stays available."""
import http.client
import json
import re
import threading
import time

from conftest import AUTH, Response, assert_openai_error

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


def req(stack, method, path, body=None, headers=None, src="127.0.0.1"):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30,
                                      source_address=(src, 0))
    try:
        h = dict(headers or {})
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read(), 0)
    finally:
        conn.close()


def flood(stack, src, seconds, threads=16, headers=None, body=None):
    """Unauthenticated POSTs from src as fast as 16 threads go; statuses."""
    codes = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def one():
        while time.monotonic() < stop:
            r = req(stack, "POST", "/v1/chat/completions", body or {}, headers, src)
            with lock:
                codes.append(r.status)

    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return codes


def test_a_flood_from_one_address_leaves_others_served(make_stack, mock):
    s = make_stack("client-rl", mock.url, ["rate_limit.rps=100", "rate_limit.burst=200",
                                           "gateway.threads=32"])
    codes = flood(s, "127.0.0.2", 3)
    assert len(codes) > 300 and codes.count(429) > len(codes) / 2, len(codes)
    # Meanwhile and after, 127.0.0.1's admin calls all succeed.
    oks = [req(s, "POST", "/v1/chat/completions", CHAT, AUTH).status for _ in range(20)]
    assert oks == [200] * 20
    s.stop()


def test_the_client_bucket_says_when_to_come_back(make_stack, mock, front):
    # Behind either front the client is the connection's source address.
    s = make_stack("client-rl2", mock.url, ["rate_limit.rps=1", "rate_limit.burst=3"],
                   front=front)
    codes = [req(s, "GET", "/v1/models", None, AUTH, "127.0.0.6").status for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = req(s, "GET", "/v1/models", None, AUTH, "127.0.0.6")
    err = assert_openai_error(r, 429, "rate_limit_error")
    assert r.headers["retry-after"] == "1"
    assert err["message"] == ("Rate limit exceeded: this gateway takes 1 requests/s per "
                              "client (bursts of 3). Retry in 1 s.")
    assert req(s, "GET", "/v1/models", None, AUTH, "127.0.0.7").status == 200
    s.stop()


def test_failed_authentications_are_limited_per_source(make_stack, mock):
    s = make_stack("auth-rl", mock.url, ["rate_limit.auth_failures_per_min=6",
                                         "rate_limit.auth_failures_burst=5"])
    bad = {"Authorization": "Bearer sk-guess"}
    codes = [req(s, "POST", "/v1/chat/completions", CHAT, bad, "127.0.0.3").status
             for _ in range(8)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3, codes
    # The source is refused even with a good key: it has to wait.
    r = req(s, "POST", "/v1/chat/completions", CHAT, AUTH, "127.0.0.3")
    err = assert_openai_error(r, 429, "rate_limit_error")
    assert err["message"].startswith("Too many failed authentications from this address")
    assert 1 <= int(r.headers["retry-after"]) <= 10
    # Another address is not.
    assert req(s, "POST", "/v1/chat/completions", CHAT, AUTH, "127.0.0.4").status == 200
    assert req(s, "POST", "/v1/chat/completions", CHAT, bad, "127.0.0.4").status == 401
    metrics = req(s, "GET", "/metrics").body.decode()
    assert re.search(r'llmgw_ratelimited_requests_total\{reason="auth_failures"\} [1-9]', metrics)
    s.stop()


def test_forwarded_for_counts_only_from_a_trusted_proxy(make_stack, mock, front):
    s = make_stack("xff-rl", mock.url, ["rate_limit.rps=1", "rate_limit.burst=2",
                                        "rate_limit.trusted_proxies=127.0.0.1/32, ::1"],
                   front=front)

    def get(src, xff):
        h = dict(AUTH, **({"X-Forwarded-For": xff} if xff else {}))
        return req(s, "GET", "/v1/models", None, h, src).status

    # Behind the trusted proxy each forwarded client has its own bucket.
    assert [get("127.0.0.1", "203.0.113.7") for _ in range(3)] == [200, 200, 429]
    assert get("127.0.0.1", "198.51.100.1, 127.0.0.1") == 200  # proxies skipped
    assert get("127.0.0.1", "198.51.100.1") == 200
    assert get("127.0.0.1", "198.51.100.1") == 429
    # From an untrusted address X-Forwarded-For is a lie: ignored.
    assert [get("127.0.0.5", "10.0.0.%d" % i) for i in range(3)] == [200, 200, 429]
    s.stop()


def test_the_source_table_is_bounded_and_evicts(make_stack, mock):
    s = make_stack("evict-rl", mock.url, ["rate_limit.clients=8", "rate_limit.rps=100",
                                          "rate_limit.trusted_proxies=127.0.0.1"])
    for i in range(40):
        h = dict(AUTH, **{"X-Forwarded-For": "192.0.2.%d" % i})
        assert req(s, "GET", "/v1/models", None, h).status == 200
    m = re.search(r"llmgw_ratelimit_client_evictions_total (\d+)",
                  req(s, "GET", "/metrics").body.decode())
    assert m and int(m.group(1)) >= 32 - 8, m
    s.stop()


def test_the_host_wide_cap_is_optional(make_stack, mock):
    s = make_stack("host-rl", mock.url, ["rate_limit.host_rps=1", "rate_limit.host_burst=2"])
    codes = [req(s, "GET", "/v1/models", None, AUTH, "127.0.0.%d" % (10 + i)).status
             for i in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:], codes
    r = req(s, "GET", "/v1/models", None, AUTH, "127.0.0.20")
    assert "in all" in assert_openai_error(r, 429)["message"]
    s.stop()
