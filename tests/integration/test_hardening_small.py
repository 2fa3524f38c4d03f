"""Issue 15, small points through lighttpd: the cap on a request's metadata
(4), upstream error messages redacted (7), user and team ids bounded, and a
teammate's key metadata not shown to a member (9)."""
import json

from conftest import (AUTH, assert_openai_error, bearer, new_key, post,
                      spend_row)

MSGS = [{"role": "user", "content": "hello there friend"}]
MODEL = "qwen3-30b-a3b"
META_MAX = 16384  # [gateway] max_metadata_bytes, the default


def chat(stack, key, body, path="/v1/chat/completions"):
    return post(stack, path, body, bearer(key))


def metadata_of(size):
    """A metadata object whose JSON is exactly size bytes."""
    pad = size - len('{"note":""}')
    m = {"note": "m" * pad}
    assert len(json.dumps(m, separators=(",", ":"))) == size
    return m


# ---- 4: a request's metadata is capped, and not stored when refused.

def test_metadata_at_the_cap_is_kept(keys_stack, pg):
    k = new_key(keys_stack, key_alias="hs-meta-ok")
    r = chat(keys_stack, k["key"], {"model": MODEL, "messages": MSGS,
                                    "metadata": metadata_of(META_MAX)})
    assert r.status == 200, r
    row = spend_row(pg, r.headers["x-request-id"])
    assert row is not None and row["status"] == 200
    assert row["metadata"]["note"] == "m" * (META_MAX - 11)


def test_metadata_over_the_cap_is_refused_and_not_stored(keys_stack, pg, mock):
    k = new_key(keys_stack, key_alias="hs-meta-big")
    mock.reset()
    before = mock.stats()["chat"]
    r = chat(keys_stack, k["key"], {"model": MODEL, "messages": MSGS,
                                    "metadata": metadata_of(META_MAX + 1),
                                    "user": "hs-end-user"})
    err = assert_openai_error(r, 400, "invalid_request_error")
    assert err["param"] == "metadata"
    assert err["message"] == ("'metadata' must be at most %d bytes as JSON, got %d "
                              "([gateway] max_metadata_bytes)" % (META_MAX, META_MAX + 1))
    assert mock.stats()["chat"] == before  # never went upstream
    row = spend_row(pg, r.headers["x-request-id"])
    assert row is not None and row["status"] == 400
    # The refusal is recorded, its metadata is not (the end user still is).
    assert "note" not in row["metadata"]
    assert row["metadata"]["end_user"] == "hs-end-user"
    assert len(json.dumps(row["metadata"])) < 1000


def test_metadata_checked_first_on_a_bad_request(keys_stack, pg):
    """A body refused for another field does not get its metadata stored."""
    k = new_key(keys_stack, key_alias="hs-meta-bad")
    r = chat(keys_stack, k["key"], {"model": MODEL, "messages": [],
                                    "metadata": metadata_of(4 * META_MAX)})
    err = assert_openai_error(r, 400, "invalid_request_error")
    assert err["param"] == "metadata"
    row = spend_row(pg, r.headers["x-request-id"])
    assert row is not None and row["status"] == 400
    assert "note" not in row["metadata"]
    # Embeddings take the same path.
    r = chat(keys_stack, k["key"], {"model": "nomic-embed-text-v1.5", "input": "x",
                                    "metadata": metadata_of(META_MAX + 100)},
             path="/v1/embeddings")
    assert assert_openai_error(r, 400)["param"] == "metadata"


# ---- 7: an upstream's error message is relayed without the keys it quotes.

SECRETS = ("sk-mockLEAK0123456789abcdefXYZ", "mock-bearer-0123456789abcdef",
           "eyJhbGciOiJIUzI1NiJ9", "bW9ja3NpZ25hdHVyZQ")


def test_upstream_error_message_is_redacted(keys_stack):
    k = new_key(keys_stack, key_alias="hs-leak")
    for stream in (False, True):
        r = chat(keys_stack, k["key"], {"model": "m@fault=keyleak", "messages": MSGS,
                                        "stream": stream})
        err = assert_openai_error(r, 401, "invalid_request_error")
        for s in SECRETS:
            assert s not in r.body.decode(), (stream, r.body)
        assert err["message"] == ("Incorrect API key provided: sk-[redacted]. "
                                  "Authorization: Bearer [redacted]; token [redacted]")


def test_upstream_error_event_in_a_stream_is_redacted(keys_stack):
    """A 200 stream whose upstream sends an error event (vLLM's way)."""
    k = new_key(keys_stack, key_alias="hs-leak-mid")
    r = chat(keys_stack, k["key"], {"model": "m@fault=keyleak_mid", "messages": MSGS,
                                    "stream": True})
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    text = r.body.decode()
    for s in SECRETS:
        assert s not in text, text
    datas = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    (err,) = [json.loads(d)["error"] for d in datas[:-1] if "error" in json.loads(d)]
    assert err["message"] == ("Incorrect API key provided: sk-[redacted]. "
                              "Authorization: Bearer [redacted]; token [redacted]")
    assert err["type"] == "server_error"


def test_ordinary_upstream_errors_are_untouched(keys_stack):
    k = new_key(keys_stack, key_alias="hs-noleak")
    r = chat(keys_stack, k["key"], {"model": "Qwen2.5-Coder-32B-Instruct-GGUF@fault=404",
                                    "messages": MSGS})
    err = assert_openai_error(r, 404)
    assert err["message"] == "The model `Qwen2.5-Coder-32B-Instruct-GGUF` does not exist"


# ---- 9: ids are bounded; long ones keep their own budgets.

ID_MAX = 255


def long_id(tail, n=ID_MAX):
    return "hs-" + "x" * (n - 4) + tail


def test_ids_over_the_bound_are_refused(keys_stack, pg):
    for path, field, extra in (("/user/new", "user_id", {}),
                               ("/team/new", "team_id", {}),
                               ("/key/generate", "user_id", {})):
        for n in (ID_MAX + 1, 1000):
            r = post(keys_stack, path, dict(extra, **{field: long_id("z", n)}))
            err = assert_openai_error(r, 400, "invalid_request_error")
            assert err["param"] == field
            assert err["message"] == "'%s' must be at most %d bytes, got %d" % (
                field, ID_MAX, n)
    assert post(keys_stack, "/team/new", {"team_id": "hs-bound-team"}).status == 200
    r = post(keys_stack, "/team/member_add", {"team_id": "hs-bound-team", "member": {
        "user_id": long_id("z", ID_MAX + 1), "role": "user"}})
    assert assert_openai_error(r, 400)["param"] == "user_id"
    assert pg.psql("SELECT count(*) FROM users WHERE length(user_id) > %d" % ID_MAX) == "0"
    assert pg.psql("SELECT count(*) FROM teams WHERE length(team_id) > %d" % ID_MAX) == "0"


def test_long_ids_keep_their_own_budgets(keys_stack):
    """Ids of the longest length, alike but for the last byte: each its own
    budget (a cache keyed by a cut id would share them)."""
    ta, tb = long_id("a"), long_id("b")
    ua, ub = long_id("c"), long_id("d")
    assert len(ta) == ID_MAX
    assert post(keys_stack, "/team/new", {"team_id": ta, "max_budget": 0}).status == 200
    assert post(keys_stack, "/team/new", {"team_id": tb, "max_budget": 100}).status == 200
    r = post(keys_stack, "/user/new", {"user_id": ua, "max_budget": 0})
    assert r.status == 200, r
    key_ua = r.json()["key"]
    r = post(keys_stack, "/user/new", {"user_id": ub, "max_budget": 100})
    assert r.status == 200, r
    key_ub = r.json()["key"]
    key_ta = new_key(keys_stack, team_id=ta)["key"]
    key_tb = new_key(keys_stack, team_id=tb)["key"]
    body = {"model": MODEL, "messages": MSGS}
    err = assert_openai_error(chat(keys_stack, key_ta, body), 400, "budget_exceeded")
    assert err["message"] == ("Budget has been exceeded! Team=%s Current cost: 0, "
                              "Max budget: 0" % ta)
    assert chat(keys_stack, key_tb, body).status == 200
    err = assert_openai_error(chat(keys_stack, key_ua, body), 400, "budget_exceeded")
    assert err["message"] == ("ExceededBudget: User=%s over budget. Spend=0, "
                              "Budget=0" % ua)
    assert chat(keys_stack, key_ub, body).status == 200
    # The longest ids can be looked up.
    r = keys_stack.get("/user/info?user_id=" + ub, headers=AUTH)
    assert r.status == 200 and r.json()["user_id"] == ub
    r = keys_stack.get("/team/info?team_id=" + tb, headers=AUTH)
    assert r.status == 200 and r.json()["team_id"] == tb


# ---- 9: /team/info shows a member its teammates' keys without metadata.

def test_team_info_hides_teammates_key_metadata(keys_stack):
    team = "hs-meta-team"
    r = post(keys_stack, "/team/new", {"team_id": team, "members_with_roles": [
        {"user_id": "hs-mate-1", "role": "user"}, {"user_id": "hs-mate-2", "role": "user"}]})
    assert r.status == 200, r
    k1 = new_key(keys_stack, user_id="hs-mate-1", team_id=team, key_alias="hs-mate-1-key",
                 metadata={"note": "one's own"})
    k2 = new_key(keys_stack, user_id="hs-mate-2", team_id=team, key_alias="hs-mate-2-key",
                 metadata={"note": "two's secret"})
    # A key that belongs to no user: only admins see its metadata.
    k3 = new_key(keys_stack, team_id=team, key_alias="hs-team-key",
                 metadata={"note": "the team's"})

    def keys_seen(key, path="/team/info?team_id=" + team):
        r = keys_stack.get(path, headers=bearer(key) if key else AUTH)
        assert r.status == 200, r
        out = r.json()
        if path.startswith("/team/list"):
            (out,) = [t for t in out if t["team_id"] == team]
        return {k["key_alias"]: k for k in out["keys"]}

    for path in ("/team/info?team_id=" + team, "/team/list"):
        seen = keys_seen(k1["key"], path)
        assert set(seen) == {"hs-mate-1-key", "hs-mate-2-key", "hs-team-key"}
        assert seen["hs-mate-1-key"]["metadata"] == {"note": "one's own"}
        for alias in ("hs-mate-2-key", "hs-team-key"):
            assert "metadata" not in seen[alias], (path, seen[alias])
            # What the team's budget needs stays: alias, spend, models.
            assert seen[alias]["spend"] == 0 and seen[alias]["models"] == []
        seen = keys_seen(k2["key"], path)
        assert seen["hs-mate-2-key"]["metadata"] == {"note": "two's secret"}
        assert "metadata" not in seen["hs-mate-1-key"]
        # The team's own key sees itself whole.
        seen = keys_seen(k3["key"], path)
        assert seen["hs-team-key"]["metadata"] == {"note": "the team's"}
        assert "metadata" not in seen["hs-mate-2-key"]
    # The admin sees everything.
    seen = keys_seen(None)
    assert seen["hs-mate-2-key"]["metadata"] == {"note": "two's secret"}
    assert seen["hs-team-key"]["metadata"] == {"note": "the team's"}
