"""Spend rows the LiteLLM way (completion ids, LiteLLM field names, tags,
no silently cut lists) and the spend analytics answered from the daily
aggregates the shipper keeps in the statement that ships each batch."""
import json
import os
import subprocess
import time

import pytest

from conftest import AUTH, TREE, assert_openai_error, bearer, new_key, post

MSGS = [{"role": "user", "content": "hello there friend"}]
DB = "llmgw_analytics"
MAX_LIMIT = 40


@pytest.fixture(scope="module")
def an(make_stack, mock, pg):
    pg.createdb(DB)
    out = subprocess.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d",
                          pg.conninfo(DB), "-m", os.path.join(TREE, "migrations")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return make_stack("analytics", mock.url, [
        "prices.qwen3-30b-a3b=1.5 2.5",
        "spend.logs_max_limit=%d" % MAX_LIMIT,
    ], db=DB)


def sql(pg, q):
    return pg.psql(q, db=DB)


def wait_rows(pg, where, want, timeout=20):
    deadline = time.time() + timeout
    n = None
    while time.time() < deadline:
        n = int(sql(pg, "SELECT count(*) FROM spend_logs WHERE " + where))
        if n >= want:
            return n
        time.sleep(0.1)
    return n


def get(stack, path, key=None):
    return stack.get(path, headers=bearer(key) if key else AUTH)


def sse_first_id(body):
    for line in body.decode().splitlines():
        if line.startswith("data: {"):
            return json.loads(line[6:])["id"]
    raise AssertionError("no chunk in %r" % body[:200])


@pytest.fixture(scope="module")
def world(an, pg):
    """Two teams, three keys, and 90 rows over 6 days shipped through the
    real writer (an orphan spool file, as a dead worker leaves)."""
    for t in ("an-team-a", "an-team-b"):
        assert post(an, "/team/new", {"team_id": t, "team_alias": t + "-alias"}).status == 200
    ka = new_key(an, user_id="an-user-a", team_id="an-team-a", key_alias="an-ka")
    kb = new_key(an, user_id="an-user-b", team_id="an-team-b", key_alias="an-kb")
    kc = new_key(an, user_id="an-user-a", team_id="an-team-a", key_alias="an-kc")
    lines = []
    keys = [ka, kb, kc]
    for i in range(90):
        k = keys[i % 3]
        day = 10 + i % 6
        lines.append(json.dumps({
            "request_id": "an-%03d" % i, "api_key": k["token"],
            "key_alias": k["key_alias"], "user_id": k["user_id"], "team_id": k["team_id"],
            "model": ["gpt-4", "m2"][i % 2], "call_type": "chat",
            "prompt_tokens": i, "completion_tokens": 2 * i, "total_tokens": 3 * i,
            "spend": 0.001 * (i + 1), "start_time": "2026-03-%02dT12:%02d:00Z" % (day, i % 60),
            "end_time": "2026-03-%02dT12:%02d:01Z" % (day, i % 60),
            "status": 200 if i % 7 else 500, "metadata": {"end_user": "cust-%d" % (i % 4)},
            "request_tags": ["t-all"] + (["t-even"] if i % 2 == 0 else []),
            "response_id": "chatcmpl-an-%03d" % i}))
    spool = os.path.join(an.var, "spool")
    path = os.path.join(spool, "999998-1-1.spool")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)
    assert wait_rows(pg, "request_id LIKE 'an-%'", 90, timeout=30) == 90
    return {"a": ka, "b": kb, "c": kc}


RANGE = "start_date=2026-03-01&end_date=2026-03-31"


def test_completion_id_stored_and_found_by_either_id(an, pg):
    k = new_key(an, key_alias="an-ids")
    r = post(an, "/v1/chat/completions", {"model": "gpt-4", "messages": MSGS}, bearer(k["key"]))
    assert r.status == 200
    rid, cid = r.headers["x-request-id"], r.json()["id"]
    assert rid != cid
    s = post(an, "/v1/chat/completions", {"model": "gpt-4", "messages": MSGS, "stream": True},
             bearer(k["key"]))
    assert s.status == 200
    srid, scid = s.headers["x-request-id"], sse_first_id(s.body)
    assert wait_rows(pg, "request_id IN ('%s', '%s')" % (rid, srid), 2) == 2
    assert sql(pg, "SELECT response_id FROM spend_logs WHERE request_id = '%s'" % rid) == cid
    assert sql(pg, "SELECT response_id FROM spend_logs WHERE request_id = '%s'" % srid) == scid
    for want, ids in ((rid, (rid, cid)), (srid, (srid, scid))):
        for q in ids:
            for who in (None, k["key"]):
                got = get(an, "/spend/logs?request_id=" + q, who)
                assert got.status == 200, got
                rows = got.json()
                assert [x["request_id"] for x in rows] == [want]
    # Another key finds neither.
    other = new_key(an)
    assert get(an, "/spend/logs?request_id=" + cid, other["key"]).json() == []


def test_rows_carry_litellm_fields(an, pg):
    k = new_key(an, user_id="an-fields", key_alias="an-fields-key")
    r = post(an, "/v1/chat/completions",
             {"model": "gpt-4", "messages": MSGS, "user": "end-1",
              "metadata": {"tags": ["body-a", "body-b"], "x": 1}},
             dict(bearer(k["key"]), **{"x-litellm-tags": " hdr-1 , hdr-2,"}))
    assert r.status == 200
    e = post(an, "/v1/embeddings", {"model": "gpt-4", "input": "hi"}, bearer(k["key"]))
    assert e.status == 200, e
    ids = (r.headers["x-request-id"], e.headers["x-request-id"])
    assert wait_rows(pg, "request_id IN ('%s', '%s')" % ids, 2) == 2
    assert json.loads(sql(pg, "SELECT request_tags FROM spend_logs WHERE request_id = '%s'"
                          % ids[0])) == ["body-a", "body-b", "hdr-1", "hdr-2"]
    rows = {x["request_id"]: x for x in get(an, "/spend/logs?user_id=an-fields").json()}
    x = rows[ids[0]]
    # The spec's fields and today's stay.
    for f in ("request_id", "model", "tokens", "cost", "timestamp", "user_id", "team_id",
              "key_alias", "actual_model", "status", "start_time", "end_time", "stream",
              "usage_estimated", "response_id", "request_tags"):
        assert f in x, f
    assert x["call_type"] == "acompletion" and rows[ids[1]]["call_type"] == "aembedding"
    assert x["spend"] == x["cost"] and x["api_key"] == k["token"]
    assert x["startTime"] == x["start_time"] and x["endTime"] == x["end_time"]
    assert "completionStartTime" in x
    assert x["user"] == "an-fields" and x["end_user"] == "end-1"
    assert (x["prompt_tokens"], x["completion_tokens"], x["total_tokens"]) == (3, 5, 8)
    m = x["metadata"]
    assert m["user_api_key_alias"] == "an-fields-key"
    assert m["user_api_key_user_id"] == "an-fields"
    assert m["user_api_key_team_id"] is None
    assert m["tags"] == ["body-a", "body-b", "hdr-1", "hdr-2"] and m["x"] == 1


def test_daily_aggregates_equal_raw_sums(world, pg):
    cols = ("sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), "
            "round(sum(spend)::numeric, 9), %s, %s, %s")
    raw = sql(pg, ("SELECT (start_time AT TIME ZONE 'UTC')::date, api_key, model, "
                   "coalesce(user_id, ''), coalesce(team_id, ''), "
                   "coalesce(metadata->>'end_user', ''), "
                   + cols % ("count(*)", "count(*) FILTER (WHERE status BETWEEN 200 AND 299)",
                             "count(*) FILTER (WHERE status NOT BETWEEN 200 AND 299)")
                   + " FROM spend_logs GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"))
    agg = sql(pg, ("SELECT day, api_key, model, user_id, team_id, end_user, "
                   + cols % ("sum(api_requests)", "sum(successful_requests)",
                             "sum(failed_requests)")
                   + " FROM spend_daily GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"))
    assert raw == agg and len(raw.splitlines()) > 10
    # One aggregate row per group, not per request.
    assert int(sql(pg, "SELECT count(*) FROM spend_daily WHERE api_key = '%s'"
                   % world["a"]["token"])) < 30
    tags = sql(pg, "SELECT t, count(*), round(sum(spend)::numeric, 9) FROM spend_logs, "
                   "jsonb_array_elements_text(request_tags) t GROUP BY t ORDER BY t")
    tagg = sql(pg, "SELECT tag, sum(api_requests), round(sum(spend)::numeric, 9) "
                   "FROM spend_daily_tags GROUP BY tag ORDER BY tag")
    assert tags == tagg and "t-even" in tags


def test_replayed_batch_is_not_counted_twice(an, world, pg):
    before = sql(pg, "SELECT sum(api_requests) || ' ' || sum(spend) FROM spend_daily")
    spool = os.path.join(an.var, "spool")
    path = os.path.join(spool, "999997-1-1.spool")
    line = json.dumps({"request_id": "an-000", "api_key": world["a"]["token"], "model": "gpt-4",
                       "call_type": "chat", "spend": 5.0, "status": 200,
                       "start_time": "2026-03-10T12:00:00Z", "end_time": "2026-03-10T12:00:01Z",
                       "request_tags": ["t-all"]})
    with open(path + ".tmp", "w") as f:
        f.write(line + "\n")
    os.rename(path + ".tmp", path)
    deadline = time.time() + 20
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(path)
    assert sql(pg, "SELECT sum(api_requests) || ' ' || sum(spend) FROM spend_daily") == before


def raw_sum(pg, expr, where):
    return float(sql(pg, "SELECT coalesce(sum(%s), 0) FROM spend_logs WHERE request_id LIKE "
                         "'an-%%' AND %s" % (expr, where)))


def test_global_spend_report_by_team_customer_key(an, world, pg):
    r = get(an, "/global/spend/report?" + RANGE)
    assert r.status == 200, r
    days = r.json()
    assert [d["group_by_day"] for d in days] == ["2026-03-%02dT00:00:00+00:00" % d
                                                 for d in range(10, 16)]
    d0 = days[0]
    teams = {t["team_id"]: t for t in d0["teams"]}
    ta = teams["an-team-a"]
    assert ta["team_name"] == "an-team-a-alias"
    assert ta["total_spend"] == pytest.approx(raw_sum(
        pg, "spend", "team_id = 'an-team-a' AND start_time::date = '2026-03-10'"))
    assert ta["total_spend"] == pytest.approx(sum(m["spend"] for m in ta["metadata"]))
    assert set(ta["metadata"][0]) == {"model", "spend", "total_tokens", "api_key"}
    r = get(an, "/global/spend/report?group_by=customer&" + RANGE).json()
    custs = {c["customer"]: c for d in r for c in d["customers"]}
    assert "cust-0" in custs and set(custs["cust-0"]) == {"customer", "total_spend", "metadata"}
    total = sum(c["total_spend"] for d in r for c in d["customers"] if c["customer"])
    assert total == pytest.approx(raw_sum(pg, "spend", "true"))
    r = get(an, "/global/spend/report?group_by=api_key&" + RANGE).json()
    ks = [k for d in r for k in d["api_keys"] if k["api_key"] == world["b"]["token"]]
    assert ks and ks[0]["key_alias"] == "an-kb"
    assert sum(k["total_cost"] for k in ks) == pytest.approx(
        raw_sum(pg, "spend", "api_key = '%s'" % world["b"]["token"]))
    assert sum(k["total_input_tokens"] for k in ks) == raw_sum(
        pg, "prompt_tokens", "api_key = '%s'" % world["b"]["token"])
    assert set(ks[0]["model_details"][0]) == {"model", "total_cost", "total_input_tokens",
                                              "total_output_tokens"}
    # A key sees its own spend only.
    r = get(an, "/global/spend/report?group_by=api_key&" + RANGE, world["b"]["key"]).json()
    assert {k["api_key"] for d in r for k in d["api_keys"]} == {world["b"]["token"]}
    assert_openai_error(get(an, "/global/spend/report?group_by=nope&" + RANGE), 400)
    assert_openai_error(get(an, "/global/spend/report?start_date=2026-03-01"), 400)
    assert_openai_error(an.get("/global/spend/report?" + RANGE), 401)


METRICS = {"spend", "prompt_tokens", "completion_tokens", "total_tokens", "api_requests",
           "successful_requests", "failed_requests", "cache_read_input_tokens",
           "cache_creation_input_tokens"}


def test_user_daily_activity(an, world, pg):
    r = get(an, "/user/daily/activity?page_size=4&" + RANGE)
    assert r.status == 200, r
    body = r.json()
    meta = body["metadata"]
    assert meta["page"] == 1 and meta["total_pages"] >= 2 and meta["has_more"] is True
    res = body["results"]
    assert len(res) == 4 and res[0]["date"] > res[1]["date"]
    day = res[0]
    assert set(day["metrics"]) == METRICS
    assert set(day["breakdown"]) >= {"models", "api_keys", "providers", "entities"}
    where = "start_time::date = '%s'" % day["date"]
    assert day["metrics"]["spend"] == pytest.approx(
        float(sql(pg, "SELECT sum(spend) FROM spend_logs WHERE " + where)))
    assert day["metrics"]["api_requests"] == int(sql(pg, "SELECT count(*) FROM spend_logs WHERE "
                                                     + where))
    assert day["metrics"]["failed_requests"] == int(sql(
        pg, "SELECT count(*) FROM spend_logs WHERE status <> 200 AND " + where))
    # 2026-03-15: the rows i % 6 == 5, all of key c.
    assert day["date"] == "2026-03-15"
    assert set(day["breakdown"]["api_keys"]) == {world["c"]["token"]}
    kc = day["breakdown"]["api_keys"][world["c"]["token"]]
    assert kc["metadata"] == {"key_alias": "an-kc", "team_id": "an-team-a"}
    assert kc["metrics"] == day["metrics"]
    assert set(day["breakdown"]["entities"]) == {"an-user-a"}
    assert sum(m["metrics"]["spend"] for m in day["breakdown"]["models"].values()) == \
        pytest.approx(day["metrics"]["spend"])
    assert meta["total_spend"] == pytest.approx(float(sql(
        pg, "SELECT sum(spend) FROM spend_logs WHERE start_time >= '2026-03-01' AND "
            "start_time < '2026-04-01'")))
    p2 = get(an, "/user/daily/activity?page_size=4&page=2&" + RANGE).json()
    assert {d["date"] for d in p2["results"]}.isdisjoint({d["date"] for d in res})
    assert p2["metadata"]["has_more"] is False
    # Filters, and a key sees its own rows only.
    r = get(an, "/user/daily/activity?user_id=an-user-b&" + RANGE).json()
    assert r["metadata"]["total_spend"] == pytest.approx(raw_sum(pg, "spend", "user_id = 'an-user-b'"))
    r = get(an, "/user/daily/activity?" + RANGE, world["c"]["key"]).json()
    assert r["metadata"]["total_spend"] == pytest.approx(
        raw_sum(pg, "spend", "api_key = '%s'" % world["c"]["token"]))
    assert all(set(d["breakdown"]["api_keys"]) == {world["c"]["token"]} for d in r["results"])
    assert_openai_error(get(an, "/user/daily/activity?user_id=an-user-b&" + RANGE,
                            world["a"]["key"]), 403)
    assert_openai_error(get(an, "/user/daily/activity?page=0&" + RANGE), 400)
    assert_openai_error(get(an, "/user/daily/activity"), 400)


def test_team_daily_activity(an, world, pg):
    r = get(an, "/team/daily/activity?team_ids=an-team-b&" + RANGE)
    assert r.status == 200, r
    body = r.json()
    assert body["metadata"]["total_spend"] == pytest.approx(
        raw_sum(pg, "spend", "team_id = 'an-team-b'"))
    assert all(set(d["breakdown"]["entities"]) == {"an-team-b"} for d in body["results"])
    r = get(an, "/team/daily/activity?exclude_team_ids=an-team-b&" + RANGE).json()
    assert all("an-team-b" not in d["breakdown"]["entities"] for d in r["results"])
    # Served by the spend family; the rest of /team and /user by keys.
    assert "team_daily_activity" in an.log("spend")
    assert get(an, "/user/info?user_id=an-user-a").status == 200


def test_spend_tags(an, world, pg):
    for path in ("/spend/tags", "/global/spend/tags?" + RANGE):
        r = get(an, path)
        assert r.status == 200, r
        tags = {t["individual_request_tag"]: t for t in r.json()}
        assert tags["t-even"]["log_count"] == 45
        assert tags["t-even"]["total_spend"] == pytest.approx(
            raw_sum(pg, "spend", "request_tags ? 't-even'"))
    r = get(an, "/global/spend/tags?tags=t-even&" + RANGE).json()
    assert [t["individual_request_tag"] for t in r] == ["t-even"]
    r = get(an, "/spend/tags", world["b"]["key"]).json()
    assert {t["individual_request_tag"]: t["log_count"] for t in r} == {"t-all": 30, "t-even": 15}


def test_global_spend_keys_models_teams(an, world, pg):
    keys = get(an, "/global/spend/keys?limit=2").json()
    assert len(keys) == 2 and keys[0]["total_spend"] >= keys[1]["total_spend"]
    assert set(keys[0]) == {"api_key", "total_spend", "key_alias", "key_name"}
    models = {m["model"]: m["total_spend"] for m in get(an, "/global/spend/models").json()}
    assert models["m2"] == pytest.approx(float(sql(
        pg, "SELECT sum(spend) FROM spend_logs WHERE model = 'm2'")))
    teams = get(an, "/global/spend/teams?" + RANGE).json()
    assert "an-team-a-alias" in teams["teams"]
    per = {t["team_id"]: t["total_spend"] for t in teams["total_spend_per_team"]}
    assert per["an-team-a-alias"] == pytest.approx(raw_sum(pg, "spend", "team_id = 'an-team-a'"))
    assert teams["daily_spend"][0]["date"] == "2026-03-10"
    mine = get(an, "/global/spend/keys", world["a"]["key"]).json()
    assert [k["api_key"] for k in mine] == [world["a"]["token"]]
    assert_openai_error(get(an, "/global/spend/keys?limit=0"), 400)


def test_spend_logs_without_limit_is_never_cut(an, world, pg):
    # 90 rows in March, logs_max_limit 40: a 400 that says so, not 40 rows.
    err = assert_openai_error(get(an, "/spend/logs?" + RANGE), 400)
    assert err["param"] == "limit" and "90" in err["message"]
    r = get(an, "/spend/logs?start_date=2026-03-10&end_date=2026-03-11")
    assert r.status == 200 and len(r.json()) == 30 and r.headers["x-total-count"] == "30"
    r = get(an, "/spend/logs?limit=40&offset=80&" + RANGE)
    assert r.status == 200 and len(r.json()) == 10


def cols_line(k, rid, spend, tags, metadata):
    """A spooled line of the shape spend.c writes (every key, times with
    milliseconds, ASCII): the shipper sends its batch as binary columns."""
    return json.dumps({
        "request_id": rid, "api_key": k["token"], "key_alias": k["key_alias"],
        "user_id": k["user_id"], "team_id": k["team_id"], "model": "m-cols",
        "actual_model": "qwen3-30b-a3b", "call_type": "chat", "prompt_tokens": 3,
        "completion_tokens": 4, "total_tokens": 7, "spend": spend, "usage_estimated": False,
        "start_time": "2026-04-02T10:00:00.250Z", "end_time": "2026-04-02T10:00:01.500Z",
        "completion_start_time": None, "ttft_ms": None, "status": 200, "error_type": None,
        "stream": False, "client_disconnected": False, "metadata": metadata,
        "response_id": "chatcmpl-" + rid, "request_tags": tags, "session_id": None},
        separators=(",", ":"))


def ship_orphan(an, name, lines):
    path = os.path.join(an.var, "spool", name)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)
    deadline = time.time() + 20
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(path)


def test_column_batch_replayed_with_new_rows(an, world, pg):
    """A column batch goes first without ON CONFLICT; one that holds rows
    already shipped (a replayed spool) goes again leaving them out: new
    rows are stored, old ones keep their values, and the totals and daily
    aggregates move by the new rows only. metadata {} and request_tags []
    are stored as such (they travel as NULL)."""
    k = world["c"]

    def totals():
        return sql(pg, "SELECT (SELECT spend FROM keys WHERE token = '%s') || ' ' || "
                       "(SELECT spend FROM users WHERE user_id = 'an-user-a') || ' ' || "
                       "(SELECT spend FROM teams WHERE team_id = 'an-team-a')" % k["token"])

    def daily():
        return sql(pg, "SELECT sum(api_requests) || ' ' || round(sum(spend)::numeric, 9) "
                       "FROM spend_daily WHERE day = '2026-04-02' AND model = 'm-cols'")

    def tag(t):
        return sql(pg, "SELECT api_requests || ' ' || round(spend::numeric, 9) FROM "
                       "spend_daily_tags WHERE day = '2026-04-02' AND tag = '%s'" % t)

    t0 = [float(x) for x in totals().split()]
    ship_orphan(an, "999996-1-1.spool", [
        cols_line(k, "cols-1", 0.25, ["c-x"], {"end_user": "eu-1"}),
        cols_line(k, "cols-2", 0.5, [], {})])
    assert daily() == "2 0.750000000" and tag("c-x") == "1 0.250000000"
    assert sql(pg, "SELECT metadata::text || ' ' || request_tags::text FROM spend_logs "
                   "WHERE request_id = 'cols-2'") == "{} []"
    # cols-1 again (another spend: must not count), with two new rows.
    ship_orphan(an, "999995-1-1.spool", [
        cols_line(k, "cols-3", 1.0, ["c-x", "c-x", "c-y"], {}),
        cols_line(k, "cols-1", 8.0, ["c-x"], {"end_user": "eu-1"}),
        cols_line(k, "cols-4", 2.0, [], {"end_user": "eu-1"})])
    assert sql(pg, "SELECT string_agg(request_id || '=' || spend, ' ' ORDER BY request_id) "
                   "FROM spend_logs WHERE model = 'm-cols'") == (
        "cols-1=0.25 cols-2=0.5 cols-3=1 cols-4=2")
    assert daily() == "4 3.750000000"
    assert tag("c-x") == "2 1.250000000" and tag("c-y") == "1 1.000000000"
    t1 = [float(x) for x in totals().split()]
    assert [b - a for a, b in zip(t0, t1)] == [pytest.approx(3.75)] * 3
    # The end user's aggregate: cols-1 and cols-4.
    assert sql(pg, "SELECT api_requests FROM spend_daily WHERE day = '2026-04-02' "
                   "AND model = 'm-cols' AND end_user = 'eu-1'") == "2"


def test_response_id_found_through_its_bloom_index(an, world, pg):
    """spend_logs_response_idx (BRIN bloom, migration 012) finds a row by
    response_id once its range is summarized, and no other row."""
    sql(pg, "SELECT brin_summarize_new_values('spend_logs_response_idx')")
    q = ("SET enable_seqscan = off; SET enable_indexscan = off; %s "
         "SELECT request_id FROM spend_logs WHERE response_id = 'chatcmpl-an-007'")
    plan = sql(pg, q % "EXPLAIN")
    assert "spend_logs_response_idx" in plan, plan
    assert [x for x in sql(pg, q % "").splitlines() if x != "SET"] == ["an-007"]
    assert [x for x in sql(pg, (q % "").replace("an-007", "an-none")).splitlines()
            if x != "SET"] == []
