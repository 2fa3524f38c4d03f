"""Spend tracking with real PostgreSQL: exact costs, one row per request,
nothing lost through a PostgreSQL outage or a kill -9, budgets, resets,
and GET /spend/logs."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import AUTH, MASTER_KEY, assert_openai_error, bearer, new_key, post

MSGS = [{"role": "user", "content": "hello there friend"}]  # 3 prompt tokens
PRICE_IN, PRICE_OUT = 1.5, 2.5  # USD per 1M tokens for qwen3-30b-a3b


def cost(prompt, completion):
    return (prompt * PRICE_IN + completion * PRICE_OUT) / 1e6


def chat(stack, key, model="gpt-4", **extra):
    return post(stack, "/v1/chat/completions",
                dict({"model": model, "messages": MSGS}, **extra), bearer(key))


def wait_rows(pg, where, want, timeout=15):
    deadline = time.time() + timeout
    n = None
    while time.time() < deadline:
        n = int(pg.psql("SELECT count(*) FROM spend_logs WHERE " + where))
        if n >= want:
            return n
        time.sleep(0.1)
    return n


@pytest.fixture(scope="module")
def spend(make_stack, mock):
    return make_stack("spend", mock.url, [
        "prices.qwen3-30b-a3b=%s %s" % (PRICE_IN, PRICE_OUT),
        "spend.budget_reset_check_s=1",
        "spend.budget_refresh_ms=200",
    ])


@pytest.fixture
def front_spend(spend, front, twin):
    """`spend` behind each front (the same database)."""
    return twin(spend, front)


def test_exact_cost_non_streamed(spend, pg):
    t = post(spend, "/team/new", {"team_id": "spend-team"})
    assert t.status == 200
    k = new_key(spend, user_id="spend-user", team_id="spend-team", key_alias="cost-ns")
    r = chat(spend, k["key"])
    assert r.status == 200
    want = cost(3, 5)
    assert float(r.headers["x-litellm-response-cost"]) == pytest.approx(want, rel=1e-9)
    assert float(r.headers["x-litellm-key-spend"]) == pytest.approx(want, rel=1e-9)
    rid = r.headers["x-request-id"]
    assert wait_rows(pg, "request_id = '%s'" % rid, 1) == 1
    row = json.loads(pg.psql("SELECT to_jsonb(s) FROM spend_logs s WHERE request_id = '%s'" % rid))
    assert row["api_key"] == k["token"] and row["key_alias"] == "cost-ns"
    assert row["user_id"] == "spend-user" and row["team_id"] == "spend-team"
    assert row["model"] == "gpt-4" and row["actual_model"] == "qwen3-30b-a3b"
    assert row["call_type"] == "chat" and row["status"] == 200
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (3, 5, 8)
    assert row["spend"] == pytest.approx(want, rel=1e-12)
    assert row["usage_estimated"] is False and row["stream"] is False
    assert row["error_type"] is None and row["client_disconnected"] is False
    # Totals moved with the row.
    for table, col, val in (("keys", "token", k["token"]), ("users", "user_id", "spend-user"),
                            ("teams", "team_id", "spend-team")):
        assert float(pg.psql("SELECT spend FROM %s WHERE %s = '%s'" % (table, col, val))) == \
            pytest.approx(want, rel=1e-12)
    info = spend.get("/key/info", headers=bearer(k["key"])).json()
    assert info["spend"] == pytest.approx(want, rel=1e-12)
    u = spend.get("/user/info", headers=bearer(k["key"])).json()
    assert u["spend"] == pytest.approx(want, rel=1e-12)


def test_exact_cost_streamed(front_spend, pg):
    k = new_key(front_spend, key_alias="cost-s-" + front_spend.front)
    r = chat(front_spend, k["key"], "qwen3-30b-a3b@chunks=7,chunk_delay_ms=20", stream=True)
    assert r.status == 200 and r.body.decode().rstrip().endswith("data: [DONE]")
    rid = r.headers["x-request-id"]
    assert wait_rows(pg, "request_id = '%s'" % rid, 1) == 1
    row = json.loads(pg.psql("SELECT to_jsonb(s) FROM spend_logs s WHERE request_id = '%s'" % rid))
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 7)
    # The suffix keeps the price lookup honest: unpriced model, cost 0.
    assert row["spend"] == 0 and row["stream"] is True
    assert row["ttft_ms"] is not None and row["ttft_ms"] >= 0
    assert row["completion_start_time"] is not None
    r = chat(front_spend, k["key"], "gpt-4", stream=True)
    rid = r.headers["x-request-id"]
    assert wait_rows(pg, "request_id = '%s'" % rid, 1) == 1
    assert float(pg.psql("SELECT spend FROM spend_logs WHERE request_id = '%s'" % rid)) == \
        pytest.approx(cost(3, 5), rel=1e-12)
    assert float(pg.psql("SELECT spend FROM keys WHERE token = '%s'" % k["token"])) == \
        pytest.approx(cost(3, 5), rel=1e-12)


def test_failures_are_logged_with_status(front_spend, pg):
    k = new_key(front_spend)
    cases = [("m@fault=500", 500, "server_error"), ("m@fault=drop_before", 502, "upstream_error"),
             ("m@fault=429", 429, "requests")]
    rids = []
    for model, status, etype in cases:
        r = chat(front_spend, k["key"], model)
        assert r.status == status
        rids.append((r.headers["x-request-id"], status, etype))
    r = post(front_spend, "/v1/chat/completions", {"model": "gpt-4", "messages": []},
             bearer(k["key"]))
    assert r.status == 400
    rids.append((r.headers["x-request-id"], 400, "invalid_request_error"))
    for rid, status, etype in rids:
        assert wait_rows(pg, "request_id = '%s'" % rid, 1) == 1
        got = pg.psql("SELECT status || ' ' || coalesce(error_type, '-') || ' ' || spend "
                      "FROM spend_logs WHERE request_id = '%s'" % rid)
        assert got == "%d %s 0" % (status, etype)


def test_client_disconnect_keeps_an_estimate(front_spend, pg):
    k = new_key(front_spend)
    body = json.dumps({"model": "qwen3-30b-a3b@chunks=200,chunk_delay_ms=50",
                       "messages": MSGS, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", front_spend.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + k["key"].encode() + b"\r\nContent-Length: " + str(len(body)).encode()
              + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 6:
        got += s.recv(4096)
    rid = got.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode()
    s.close()
    assert wait_rows(pg, "request_id = '%s'" % rid, 1) == 1
    row = json.loads(pg.psql("SELECT to_jsonb(s) FROM spend_logs s WHERE request_id = '%s'" % rid))
    assert row["client_disconnected"] is True and row["usage_estimated"] is True
    assert 5 <= row["completion_tokens"] < 200
    assert row["prompt_tokens"] == 5  # ceil(18 chars / 4)
    assert row["error_type"] == "client_disconnected"


def test_outage_loses_nothing(spend, pg):
    k = new_key(spend)
    # Warm the key cache of every chat worker (requests go round the
    # accepting threads of both processes).
    for _ in range(40):
        assert chat(spend, k["key"]).status == 200
    time.sleep(0.5)
    before = int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s'" % k["token"]))
    pg.stop()
    try:
        ok = 0
        for i in range(200):
            r = chat(spend, k["key"])
            ok += r.status == 200
        assert ok == 200
    finally:
        pg.start()
    assert wait_rows(pg, "api_key = '%s'" % k["token"], before + 200, timeout=30) == before + 200
    time.sleep(1.0)
    assert int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s'" % k["token"])) == before + 200
    total = float(pg.psql("SELECT sum(spend) FROM spend_logs WHERE api_key = '%s'" % k["token"]))
    assert float(pg.psql("SELECT spend FROM keys WHERE token = '%s'" % k["token"])) == \
        pytest.approx(total, rel=1e-9)
    assert total == pytest.approx((before + 200) * cost(3, 5), rel=1e-9)
    assert before == 40


def test_kill_9_after_a_burst_loses_nothing(make_stack, mock, pg):
    s = make_stack("spend-kill", mock.url, ["spend.flush_ms=1000",
                                            "prices.qwen3-30b-a3b=%s %s" % (PRICE_IN, PRICE_OUT)])
    k = new_key(s)
    rids = []
    lock = threading.Lock()

    def one():
        r = chat(s, k["key"])
        if r.status == 200:
            with lock:
                rids.append(r.headers["x-request-id"])

    threads = [threading.Thread(target=one) for _ in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pid in s.children("chat"):
        os.kill(pid, signal.SIGKILL)
    assert len(rids) == 60
    # The restarted workers find the dead ones' spools and ship them.
    ids = "','".join(rids)
    assert wait_rows(pg, "request_id IN ('%s')" % ids, 60, timeout=20) == 60
    assert pg.psql("SELECT count(DISTINCT request_id) FROM spend_logs WHERE request_id IN ('%s')" % ids) == "60"
    assert float(pg.psql("SELECT spend FROM keys WHERE token = '%s'" % k["token"])) == \
        pytest.approx(60 * cost(3, 5), rel=1e-9)
    assert "killed by signal 9" in s.log("chat")
    s.stop()


def test_nul_in_metadata_does_not_stall_the_spool(spend, pg):
    # PostgreSQL's text and jsonb cannot hold U+0000: written as U+FFFD.
    k = new_key(spend)
    r = post(spend, "/v1/chat/completions",
             '{"model":"gpt-4","messages":[{"role":"user","content":"hi"}],'
             '"metadata":{"a":"x\\u0000y","b":"\\\\u0000"}}', bearer(k["key"]))
    assert r.status == 200
    after = chat(spend, k["key"])
    assert after.status == 200
    ids = (r.headers["x-request-id"], after.headers["x-request-id"])
    assert wait_rows(pg, "request_id IN ('%s','%s')" % ids, 2) == 2
    meta = json.loads(pg.psql("SELECT metadata FROM spend_logs WHERE request_id = '%s'" % ids[0]))
    assert meta == {"a": "x\ufffdy", "b": "\\u0000"}


def test_a_refused_row_is_kept_aside_and_the_rest_shipped(spend, pg):
    # A spool left by a dead process (an older version, say) holding a row
    # PostgreSQL refuses: its neighbours ship, it goes to rejected.jsonl.
    spool = os.path.join(spend.var, "spool")
    good = ["orphan-good-%d" % i for i in range(3)]
    row = {"api_key": "", "model": "m", "call_type": "chat", "status": 200,
           "start_time": "2020-01-01T00:00:00Z", "end_time": "2020-01-01T00:00:01Z"}
    lines = [json.dumps(dict(row, request_id=good[0])),
             json.dumps(dict(row, request_id="orphan-bad")).replace('"m"', '"x\\u0000"'),
             json.dumps(dict(row, request_id=good[1])),
             json.dumps(dict(row, request_id=good[2], status="not a number"))]
    assert "\\u0000" in lines[1]
    path = os.path.join(spool, "999999-1-1.spool")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)
    assert wait_rows(pg, "request_id IN ('%s','%s')" % tuple(good[:2]), 2, timeout=20) == 2
    deadline = time.time() + 20
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(path)
    assert pg.psql("SELECT count(*) FROM spend_logs WHERE request_id LIKE 'orphan-%'") == "2"
    with open(os.path.join(spool, "rejected.jsonl")) as f:
        kept = f.read().splitlines()
    assert sorted(json.loads(l)["request_id"] for l in kept) == ["orphan-bad", good[2]]
    # Whichever family's writer found the orphan first logged it.
    log = spend.log("chat") + spend.log("embeddings")
    assert "refused a spooled row" in log and "x\\u0000" not in log


def test_budget_refuses_before_upstream(spend, mock, pg):
    one = cost(3, 5)
    k = new_key(spend, max_budget=one * 2.5)
    assert chat(spend, k["key"]).status == 200
    assert chat(spend, k["key"]).status == 200
    assert chat(spend, k["key"]).status == 200  # spend 2 * one < budget before it
    # Other worker processes see this spend once shipped (flush_ms) and
    # re-read (budget_refresh_ms): the documented window.
    time.sleep(0.6)
    before = mock.stats()["chat"]
    err = assert_openai_error(chat(spend, k["key"]), 400, "budget_exceeded")
    assert "Budget has been exceeded!" in err["message"]
    assert "Current cost: %.10g" % (3 * one) in err["message"]
    assert "Max budget: %.10g" % (one * 2.5) in err["message"]
    assert mock.stats()["chat"] == before  # nothing went upstream
    # The refusal is logged too.
    assert wait_rows(pg, "api_key = '%s' AND error_type = 'budget_exceeded'" % k["token"], 1) == 1


def test_team_and_user_budgets(spend):
    one = cost(3, 5)
    post(spend, "/team/new", {"team_id": "poor-team", "max_budget": one * 1.5})
    a = new_key(spend, team_id="poor-team")
    b = new_key(spend, team_id="poor-team")
    assert chat(spend, a["key"]).status == 200
    assert chat(spend, b["key"]).status == 200
    time.sleep(0.6)  # shipped, and the other process re-reads
    err = assert_openai_error(chat(spend, a["key"]), 400, "budget_exceeded")
    assert "Team=poor-team" in err["message"]
    post(spend, "/user/new", {"user_id": "poor-user", "max_budget": one * 0.5,
                              "auto_create_key": False})
    u = new_key(spend, user_id="poor-user")
    assert chat(spend, u["key"]).status == 200
    time.sleep(0.6)
    err = assert_openai_error(chat(spend, u["key"]), 400, "budget_exceeded")
    assert "User=poor-user" in err["message"]


def test_concurrent_overspend_is_bounded(make_stack, mock, pg):
    """One process of 4 threads: at most 4 requests can pass the check
    together, so successes <= budget/cost + 4 (see README, Budgets)."""
    s = make_stack("spend-conc", mock.url, ["gateway.processes=1", "gateway.threads=4",
                                            "prices.qwen3-30b-a3b=%s %s" % (PRICE_IN, PRICE_OUT)])
    one = cost(3, 5)
    k = new_key(s, max_budget=one * 3)
    results = []
    lock = threading.Lock()

    def go():
        r = chat(s, k["key"], "gpt-4")
        with lock:
            results.append(r.status)

    threads = [threading.Thread(target=go) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = results.count(200)
    assert results.count(400) == 50 - ok
    assert 3 <= ok <= 3 + 4, ok
    time.sleep(1)
    assert float(pg.psql("SELECT spend FROM keys WHERE token = '%s'" % k["token"])) == \
        pytest.approx(ok * one, rel=1e-9)
    assert_openai_error(chat(s, k["key"]), 400, "budget_exceeded")
    s.stop()


def test_budget_duration_resets(spend, pg):
    one = cost(3, 5)
    k = new_key(spend, max_budget=one * 0.5, budget_duration="2s")
    assert chat(spend, k["key"]).status == 200
    time.sleep(0.5)
    assert_openai_error(chat(spend, k["key"]), 400, "budget_exceeded")
    deadline = time.time() + 10
    while time.time() < deadline:
        if pg.psql("SELECT count(*) FROM budget_resets WHERE entity_type = 'key' "
                   "AND entity_id = '%s' AND spend_before > 0" % k["token"]) != "0":
            break
        time.sleep(0.2)
    assert float(pg.psql("SELECT spend_before FROM budget_resets WHERE entity_id = '%s' "
                         "AND spend_before > 0 LIMIT 1" % k["token"])) == pytest.approx(one, rel=1e-9)
    time.sleep(0.4)
    assert chat(spend, k["key"]).status == 200


def test_user_and_team_budget_duration_resets(spend, pg):
    one = cost(3, 5)
    assert post(spend, "/team/new", {"team_id": "reset-team", "max_budget": one * 0.5,
                                     "budget_duration": "2s"}).status == 200
    assert post(spend, "/user/new", {"user_id": "reset-user", "max_budget": one * 0.5,
                                     "budget_duration": "2s", "auto_create_key": False}).status == 200
    k = new_key(spend, user_id="reset-user", team_id="reset-team")
    assert chat(spend, k["key"]).status == 200
    deadline = time.time() + 10
    got = {}
    while time.time() < deadline and len(got) < 2:
        for kind, eid in (("user", "reset-user"), ("team", "reset-team")):
            v = pg.psql("SELECT spend_before FROM budget_resets WHERE entity_type = '%s' "
                        "AND entity_id = '%s' AND spend_before > 0 LIMIT 1" % (kind, eid))
            if v:
                got[kind] = float(v)
        time.sleep(0.2)
    assert got == {"user": pytest.approx(one, rel=1e-9), "team": pytest.approx(one, rel=1e-9)}
    assert float(pg.psql("SELECT spend FROM users WHERE user_id = 'reset-user'")) == 0
    assert float(pg.psql("SELECT spend FROM teams WHERE team_id = 'reset-team'")) == 0


RESET_LOCK = "1819176295, 1"  # lib/budget_reset.c


def test_one_writer_at_a_time_resets(spend, pg):
    """Every writer of every stack on this database checks each second, but
    a reset runs only under the advisory lock: held elsewhere, nothing is
    reset; released, the next check resets."""
    k = new_key(spend)
    token = k["token"]
    pg.psql("UPDATE keys SET spend = 0.5, budget_duration = '1h', "
            "budget_reset_at = now() + interval '1 hour' WHERE token = '%s'" % token)
    holder = subprocess.Popen(["psql", "-h", pg.sock, "-U", "llmgw", "-d", "llmgw", "-tAX",
                               "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("SELECT pg_advisory_lock(%s);\n" % RESET_LOCK)
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == ""  # void
        pg.psql("UPDATE keys SET budget_reset_at = now() - interval '1 second' "
                "WHERE token = '%s'" % token)
        time.sleep(2.5)  # budget_reset_check_s = 1: two checks or more
        assert float(pg.psql("SELECT spend FROM keys WHERE token = '%s'" % token)) == 0.5
        assert pg.psql("SELECT count(*) FROM budget_resets WHERE entity_id = '%s'" % token) == "0"
    finally:
        holder.stdin.close()  # the session ends: the lock is free
        holder.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline:
        if pg.psql("SELECT count(*) FROM budget_resets WHERE entity_id = '%s'" % token) == "1":
            break
        time.sleep(0.2)
    assert pg.psql("SELECT count(*) FROM budget_resets WHERE entity_id = '%s'" % token) == "1"
    assert float(pg.psql("SELECT spend FROM keys WHERE token = '%s'" % token)) == 0


def test_spend_logs_filters_dates_and_access(spend, pg):
    a = new_key(spend, user_id="logs-a")
    b = new_key(spend, user_id="logs-b")
    # Rows at the edges of a UTC day, written directly.
    for rid, ts, key in (("edge-1", "2026-01-01T00:00:00Z", a), ("edge-2", "2026-01-01T23:59:59.999Z", a),
                         ("edge-3", "2026-01-02T00:00:00Z", a), ("edge-0", "2025-12-31T23:59:59.999Z", a),
                         ("edge-b", "2026-01-01T12:00:00Z", b)):
        pg.psql("INSERT INTO spend_logs (request_id, api_key, user_id, model, call_type, "
                "total_tokens, spend, start_time, end_time, status) VALUES ('%s', '%s', '%s', "
                "'gpt-4', 'chat', 10, 0.5, '%s', '%s', 200)" % (rid, key["token"],
                                                                  "logs-a" if key is a else "logs-b", ts, ts))
    r = spend.get("/spend/logs?start_date=2026-01-01&end_date=2026-01-01&api_key=" + a["token"],
                  headers=AUTH)
    assert r.status == 200, r
    rows = r.json()
    assert [x["request_id"] for x in rows] == ["edge-2", "edge-1"]
    for x in rows:  # the spec's SpendLog fields
        assert x["model"] == "gpt-4" and x["tokens"] == 10 and x["cost"] == 0.5
        assert x["user_id"] == "logs-a" and x["timestamp"].startswith("2026-01-01")
    assert r.headers["x-total-count"] == "2"
    r = spend.get("/spend/logs?start_date=2026-01-01&end_date=2026-01-02&user_id=logs-a", headers=AUTH)
    assert [x["request_id"] for x in r.json()] == ["edge-3", "edge-2", "edge-1"]
    # Paging in headers, the body stays an array.
    r = spend.get("/spend/logs?start_date=2025-12-31&end_date=2026-01-02&limit=2&offset=1",
                  headers=AUTH)
    assert len(r.json()) == 2 and r.headers["x-total-count"] == "5"
    assert r.headers["x-limit"] == "2" and r.headers["x-offset"] == "1"
    assert "offset=3" in r.headers["link"]
    # A virtual key sees its own rows only.
    r = spend.get("/spend/logs?start_date=2026-01-01&end_date=2026-01-01", headers=bearer(b["key"]))
    assert [x["request_id"] for x in r.json()] == ["edge-b"]
    assert_openai_error(spend.get("/spend/logs?api_key=" + a["token"], headers=bearer(b["key"])), 403)
    assert_openai_error(spend.get("/spend/logs?user_id=logs-a", headers=bearer(b["key"])), 403)
    assert spend.get("/spend/logs?request_id=edge-1", headers=AUTH).json()[0]["request_id"] == "edge-1"
    assert spend.get("/spend/logs?request_id=edge-1", headers=bearer(b["key"])).json() == []


@pytest.mark.parametrize("query,param", [
    ("start_date=2026-02-30", "start_date"), ("start_date=yesterday", "start_date"),
    ("end_date=2026-1-1", "end_date"), ("start_date=2026-02-02&end_date=2026-02-01", "end_date"),
    ("limit=0", "limit"), ("limit=100000000", "limit"), ("limit=x", "limit"),
    ("offset=-1", "offset"), ("api_key=nope", "api_key"),
    # #15, 9: offset + limit overflowed (UBSan aborted the worker).
    ("offset=9223372036854775807", "offset"), ("offset=99999999999999999999", "offset"),
    ("offset=1000000001", "offset"),
])
def test_spend_logs_bad_params(spend, query, param):
    err = assert_openai_error(spend.get("/spend/logs?" + query, headers=AUTH), 400)
    assert err["param"] == param


def test_spend_logs_needs_auth(front_spend):
    assert_openai_error(front_spend.get("/spend/logs"), 401)
    assert_openai_error(front_spend.request("POST", "/spend/logs", body="{}"), 405)


def test_stream_row_keeps_metadata_and_user(front_spend, pg):
    """A stream's relay keeps only what its row reads (metadata, user, the
    prompt's size) while it runs: the row still has them all."""
    k = new_key(front_spend)
    r = chat(front_spend, k["key"], model="qwen3-30b-a3b", stream=True,
             user="end-7", metadata={"session_id": "sess-9", "tag": "kept"})
    assert r.status == 200, r
    rid = r.headers["x-request-id"]
    assert wait_rows(pg, "request_id = '%s'" % rid, 1) == 1
    row = json.loads(pg.psql("SELECT to_jsonb(s) FROM spend_logs s WHERE request_id = '%s'" % rid))
    assert row["metadata"]["tag"] == "kept" and row["metadata"]["end_user"] == "end-7"
    assert row["session_id"] == "sess-9"
    assert row["stream"] is True and row["usage_estimated"] is False
