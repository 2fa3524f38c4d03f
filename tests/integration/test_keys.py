"""Virtual keys, users, teams and JWTs through lighttpd: the keys family,
lib/auth on the relay, cache invalidation across processes, and a search
of the database and the logs for any raw key."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import (AUTH, MASTER_KEY, RAW_KEYS, assert_openai_error, bearer,
                      make_jwt, new_key, post)

MSGS = [{"role": "user", "content": "hi"}]


def chat(stack, key, model="gpt-4"):
    return post(stack, "/v1/chat/completions", {"model": model, "messages": MSGS},
                bearer(key))


def settle(stack, key, status, model="gpt-4", within=1.0):
    """A change reaches every worker through NOTIFY within milliseconds;
    the issue allows a second. Poll for the status, return the answer."""
    deadline = time.monotonic() + within
    while True:
        r = chat(stack, key, model)
        if r.status == status or time.monotonic() > deadline:
            return r
        time.sleep(0.01)


def test_generate_shape_and_storage(keys_stack, pg):
    out = new_key(keys_stack, models=["gpt-4"], user_id="u-gen", max_budget=12.5,
                   duration="30d", metadata={"team": "ml"}, key_alias="gen-1",
                   rpm_limit=10, tpm_limit=1000, max_parallel_requests=3,
                   budget_duration="1mo")
    key = out["key"]
    assert key.startswith("sk-") and len(key) >= 3 + 43
    assert out["key_name"] == "sk-..." + key[-4:]
    import hashlib
    h = hashlib.sha256(key.encode()).hexdigest()
    assert out["token"] == h and out["token_id"] == h
    assert out["user_id"] == "u-gen" and out["models"] == ["gpt-4"]
    assert out["max_budget"] == 12.5 and out["key_alias"] == "gen-1"
    assert out["rpm_limit"] == 10 and out["max_parallel_requests"] == 3
    assert out["expires"].startswith(time.strftime("%Y-", time.gmtime(time.time() + 30 * 86400)))
    assert out["budget_reset_at"] is not None
    # Stored: the hash only; the unknown user was created on the spot.
    assert pg.psql("SELECT count(*) FROM keys WHERE token = '%s'" % h) == "1"
    assert pg.psql("SELECT count(*) FROM keys WHERE token LIKE 'sk-%%'") == "0"
    assert pg.psql("SELECT user_id FROM users WHERE user_id = 'u-gen'") == "u-gen"


@pytest.mark.parametrize("body,param", [
    ({"max_budget": -1}, "max_budget"),
    ({"max_budget": "10"}, "max_budget"),
    ({"rpm_limit": -5}, "rpm_limit"),
    ({"tpm_limit": 1.5}, "tpm_limit"),
    ({"max_parallel_requests": "2"}, "max_parallel_requests"),
    ({"duration": "10y"}, "duration"),
    ({"duration": "abc"}, "duration"),
    ({"duration": 30}, "duration"),
    ({"budget_duration": "1fortnight"}, "budget_duration"),
    ({"models": "gpt-4"}, "models"),
    ({"models": [1]}, "models"),
    ({"metadata": [1]}, "metadata"),
    ({"blocked": "yes"}, "blocked"),
    ({"key_alias": 7}, "key_alias"),
    ({"team_id": "no-such-team"}, "team_id"),
])
def test_generate_rejects_bad_fields(keys_stack, body, param):
    err = assert_openai_error(post(keys_stack, "/key/generate", body), 400,
                              "invalid_request_error")
    assert err["param"] == param


def test_admin_routes_need_admin(front_keys):
    k = new_key(front_keys)["key"]
    for path in ("/key/generate", "/key/update", "/key/delete", "/key/block",
                 "/key/unblock", "/key/regenerate", "/user/new", "/team/new"):
        err = assert_openai_error(post(front_keys, path, {}, bearer(k)), 403,
                                  "permission_error")
        assert path in err["message"]
    assert_openai_error(front_keys.get("/key/list", headers=bearer(k)), 403)
    assert_openai_error(post(front_keys, "/key/generate", {}, {}), 401)
    assert_openai_error(post(front_keys, "/key/generate", {}, bearer("sk-nope")), 401)


def test_key_info_own_and_admin(front_keys):
    a = new_key(front_keys, user_id="u-info", models=["gpt-4"], max_budget=3)
    b = new_key(front_keys, user_id="u-other")
    r = front_keys.get("/key/info", headers=bearer(a["key"]))
    assert r.status == 200, r
    info = r.json()
    # The spec's KeyInfo fields at the top, LiteLLM's {"key","info"} too.
    assert info["key"] == a["token"]
    assert info["models"] == ["gpt-4"] and info["spend"] == 0
    assert info["max_budget"] == 3 and info["user_id"] == "u-info"
    assert info["expires"] is None
    assert info["info"]["key_name"] == a["key_name"]
    assert a["key"] not in r.body.decode()
    # Another key's info: admin only (by raw key or by hash).
    assert_openai_error(front_keys.get("/key/info?key=" + b["token"],
                                       headers=bearer(a["key"])), 403)
    for q in (b["token"], b["key"]):
        r = front_keys.get("/key/info?key=" + q, headers=AUTH)
        assert r.status == 200 and r.json()["info"]["user_id"] == "u-other"
    assert_openai_error(front_keys.get("/key/info?key=" + "0" * 64, headers=AUTH), 404)
    assert_openai_error(front_keys.get("/key/info?key=bogus", headers=AUTH), 400)


def test_update_block_unblock(front_keys):
    k = new_key(front_keys, models=["gpt-4"])
    assert chat(front_keys, k["key"]).status == 200
    r = post(front_keys, "/key/update", {"key": k["key"], "models": ["gpt-3.5-turbo"],
                                          "metadata": {"x": 1}})
    assert r.status == 200 and r.json()["models"] == ["gpt-3.5-turbo"]
    assert_openai_error(settle(front_keys, k["key"], 401), 401, "key_model_access_denied")
    assert settle(front_keys, k["key"], 200, "gpt-3.5-turbo").status == 200
    r = post(front_keys, "/key/block", {"key": k["token"]})
    assert r.status == 200 and r.json()["blocked"] is True
    err = assert_openai_error(settle(front_keys, k["key"], 401, "gpt-3.5-turbo"), 401)
    assert "blocked" in err["message"]
    assert post(front_keys, "/key/unblock", {"key": k["key"]}).json()["blocked"] is False
    assert settle(front_keys, k["key"], 200, "gpt-3.5-turbo").status == 200
    assert_openai_error(post(front_keys, "/key/block", {"key": "0" * 64}), 404)
    assert_openai_error(post(front_keys, "/key/update", {"key": "0" * 64, "models": []}), 404)
    assert_openai_error(post(front_keys, "/key/update", {"models": []}), 400)


def test_regenerate_refuses_old_key_at_once(keys_stack):
    k = new_key(keys_stack, key_alias="regen-me")
    assert chat(keys_stack, k["key"]).status == 200
    r = post(keys_stack, "/key/regenerate", {"key": k["key"]})
    assert r.status == 200
    new = r.json()
    RAW_KEYS.append(new["key"])
    assert new["key"] != k["key"] and new["key_alias"] == "regen-me"
    assert_openai_error(settle(keys_stack, k["key"], 401), 401)
    assert chat(keys_stack, new["key"]).status == 200
    # LiteLLM's path form.
    r = post(keys_stack, "/key/%s/regenerate" % new["token"], {})
    assert r.status == 200
    RAW_KEYS.append(r.json()["key"])
    assert_openai_error(settle(keys_stack, new["key"], 401), 401)
    assert chat(keys_stack, r.json()["key"]).status == 200


def test_delete_by_key_hash_and_alias(keys_stack, pg):
    a = new_key(keys_stack, key_alias="del-a")
    b = new_key(keys_stack, key_alias="del-b")
    c = new_key(keys_stack, key_alias="del-c")
    r = post(keys_stack, "/key/delete", {"keys": [a["key"], b["token"], "0" * 64]})
    assert r.status == 200
    # LiteLLM's answer: what was passed, as passed (issue 14).
    assert r.json()["deleted_keys"] == [a["key"], b["token"], "0" * 64]
    r = post(keys_stack, "/key/delete", {"key_aliases": ["del-c"]})
    assert r.status == 200 and r.json()["deleted_keys"] == ["del-c"]
    assert_openai_error(post(keys_stack, "/key/delete", {"keys": [c["key"]]}), 404)
    assert_openai_error(post(keys_stack, "/key/delete", {"keys": []}), 400)
    for k in (a, b, c):
        assert_openai_error(settle(keys_stack, k["key"], 401), 401)
    assert pg.psql("SELECT count(*) FROM deleted_keys WHERE key_alias IN "
                   "('del-a','del-b','del-c')") == "3"


def test_list_paginates_and_filters(keys_stack):
    for i in range(7):
        new_key(keys_stack, user_id="u-list", team_id=None, key_alias="list-%d" % i)
    r = keys_stack.get("/key/list?user_id=u-list&page=2&size=3", headers=AUTH)
    assert r.status == 200, r
    out = r.json()
    assert out["total_count"] == 7 and out["current_page"] == 2 and out["total_pages"] == 3
    assert len(out["keys"]) == 3 and all(len(k) == 64 for k in out["keys"])
    r = keys_stack.get("/key/list?user_id=u-list&page=3&size=3&return_full_object=true",
                       headers=AUTH)
    full = r.json()["keys"]
    assert len(full) == 1 and full[0]["user_id"] == "u-list"
    for bad in ("size=101", "size=0", "page=0", "page=x"):
        assert_openai_error(keys_stack.get("/key/list?" + bad, headers=AUTH), 400)


def test_users_and_teams(keys_stack, pg):
    r = post(keys_stack, "/team/new", {"team_id": "team-a", "team_alias": "A",
                                        "models": ["gpt-4", "gpt-3.5-turbo"], "max_budget": 50})
    assert r.status == 200, r
    assert r.json()["models"] == ["gpt-4", "gpt-3.5-turbo"]
    assert_openai_error(post(keys_stack, "/team/new", {"team_id": "team-a"}), 400)
    r = post(keys_stack, "/user/new", {"user_id": "u-new", "user_email": "u@x.test",
                                        "team_id": "team-a", "models": ["gpt-4"]})
    assert r.status == 200, r
    u = r.json()
    RAW_KEYS.append(u["key"])
    assert u["user_id"] == "u-new" and u["key"].startswith("sk-")
    assert u["key_name"] == "sk-..." + u["key"][-4:]
    assert_openai_error(post(keys_stack, "/user/new", {"user_id": "u-new"}), 400)
    assert_openai_error(post(keys_stack, "/user/new", {"user_role": "god"}), 400)
    # The user's key: its own /user/info, not another's.
    r = keys_stack.get("/user/info", headers=bearer(u["key"]))
    assert r.status == 200, r
    info = r.json()
    assert info["user_id"] == "u-new" and info["spend"] == 0 and info["models"] == ["gpt-4"]
    assert [k["token"] for k in info["keys"]] == [u["token"]]
    assert info["teams"][0]["team_id"] == "team-a"
    assert_openai_error(keys_stack.get("/user/info?user_id=u-gen", headers=bearer(u["key"])), 403)
    assert keys_stack.get("/user/info?user_id=u-new", headers=AUTH).status == 200
    assert_openai_error(keys_stack.get("/user/info?user_id=nobody", headers=AUTH), 404)
    r = keys_stack.get("/team/info?team_id=team-a", headers=bearer(u["key"]))
    assert r.status == 200 and r.json()["team_info"]["team_alias"] == "A"
    assert len(r.json()["keys"]) == 1
    other = new_key(keys_stack)
    assert_openai_error(keys_stack.get("/team/info?team_id=team-a", headers=bearer(other["key"])), 403)
    r = post(keys_stack, "/user/update", {"user_id": "u-new", "max_budget": 5})
    assert r.status == 200 and r.json()["max_budget"] == 5
    r = post(keys_stack, "/team/update", {"team_id": "team-a", "team_alias": "AA"})
    # LiteLLM's {"team_id", "data"} (issue 14).
    assert r.status == 200 and r.json()["team_id"] == "team-a"
    assert r.json()["data"]["team_alias"] == "AA"
    # A user takes its keys along (a team too: test_roles.py).
    r = post(keys_stack, "/user/delete", {"user_ids": ["u-new"]})
    assert r.status == 200 and r.json()["deleted_users"] == ["u-new"]
    assert_openai_error(settle(keys_stack, u["key"], 401), 401)
    # ... kept in deleted_keys, with who deleted it.
    assert pg.psql("SELECT user_id || ' ' || deleted_by FROM deleted_keys WHERE token = '%s'"
                   % u["token"]) == "u-new master_key"
    assert post(keys_stack, "/team/delete", {"team_ids": ["team-a"]}).status == 200


def test_failed_statement_rolls_the_transaction_back(keys_stack, pg):
    """/user/new inserts the user, then its key: when the key fails (alias
    taken) the user is gone too, and the worker's next transaction starts
    clean (no statement left in an aborted transaction)."""
    new_key(keys_stack, key_alias="taken-alias")
    for _ in range(40):  # every thread of both workers, likely
        err = assert_openai_error(post(keys_stack, "/user/new", {
            "user_id": "u-rolled-back", "key_alias": "taken-alias"}), 400,
            "invalid_request_error")
        assert err["param"] == "key_alias"
    assert pg.psql("SELECT count(*) FROM users WHERE user_id = 'u-rolled-back'") == "0"
    for _ in range(40):
        new_key(keys_stack, user_id="u-after-rollback")
    assert pg.psql("SELECT count(*) FROM keys WHERE user_id = 'u-after-rollback'") == "40"


def test_transactions_survive_terminated_connections(keys_stack, pg):
    """Every connection of the workers killed (as by a PostgreSQL restart):
    BEGIN and single statements run again on a fresh connection."""
    for _ in range(40):
        new_key(keys_stack, user_id="u-warm")
    killed = pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = 'llmgw' AND pid <> pg_backend_pid()")
    assert int(killed) > 0
    for i in range(40):
        out = new_key(keys_stack, user_id="u-after-kill", key_alias="kill-%d" % i)
        assert out["user_id"] == "u-after-kill"
    r = post(keys_stack, "/user/new", {"user_id": "u-made-after-kill"})
    assert r.status == 200, r
    RAW_KEYS.append(r.json()["key"])
    r = post(keys_stack, "/key/delete", {"key_aliases": ["kill-%d" % i for i in range(40)]})
    assert r.status == 200 and len(r.json()["deleted_keys"]) == 40


def test_model_restrictions_with_aliases_and_teams(keys_stack, mock):
    k = new_key(keys_stack, models=["gpt-4"])["key"]
    assert chat(keys_stack, k, "gpt-4").status == 200
    assert json.loads(mock.last()["body"])["model"] == "qwen3-30b-a3b"
    # Not the alias's target by its own name.
    err = assert_openai_error(chat(keys_stack, k, "qwen3-30b-a3b"), 401,
                              "key_model_access_denied")
    assert err["param"] == "model" and "qwen3-30b-a3b" in err["message"]
    for secretish in (k, MASTER_KEY):
        assert secretish not in json.dumps(err)
    ids = [m["id"] for m in keys_stack.get("/v1/models", headers=bearer(k)).json()["data"]]
    assert ids == ["gpt-4"]
    assert_openai_error(keys_stack.get("/v1/models/qwen3-30b-a3b", headers=bearer(k)), 404)
    assert keys_stack.get("/v1/models/gpt-4", headers=bearer(k)).status == 200
    r = post(keys_stack, "/v1/embeddings", {"model": "nomic-embed-text-v1.5", "input": "x"}, bearer(k))
    assert_openai_error(r, 401, "key_model_access_denied")
    # A team's list narrows its keys further.
    post(keys_stack, "/team/new", {"team_id": "team-narrow", "models": ["gpt-3.5-turbo"]})
    t = new_key(keys_stack, team_id="team-narrow")["key"]
    assert chat(keys_stack, t, "gpt-3.5-turbo").status == 200
    assert_openai_error(chat(keys_stack, t, "gpt-4"), 401, "team_model_access_denied")
    # No list at all: every model.
    free = new_key(keys_stack)["key"]
    assert chat(keys_stack, free, "qwen3-30b-a3b").status == 200


def test_duration_expiry(keys_stack):
    k = new_key(keys_stack, duration="2s")["key"]
    assert chat(keys_stack, k).status == 200
    time.sleep(2.3)
    err = assert_openai_error(chat(keys_stack, k), 401, "expired_key")
    assert "Expired" in err["message"]


def test_delete_reaches_other_processes_within_a_second(keys_stack):
    k = new_key(keys_stack)["key"]
    # Warm the caches of the chat workers (two processes).
    for _ in range(20):
        assert chat(keys_stack, k).status == 200
    r = post(keys_stack, "/key/delete", {"keys": [k]})
    assert r.status == 200
    t0 = time.monotonic()
    refused = None
    while time.monotonic() - t0 < 3:
        if chat(keys_stack, k).status == 401:
            refused = time.monotonic() - t0
            break
    assert refused is not None and refused < 1.0, refused
    # And it stays refused on every worker.
    assert all(chat(keys_stack, k).status == 401 for _ in range(20))


def test_sql_metacharacters_stored_verbatim(keys_stack, pg):
    alias = "o'reilly\"; DROP TABLE keys; --"
    meta = {"note": "'); DELETE FROM users; --", "nested": {"q": "a\\b\"c"}}
    out = new_key(keys_stack, key_alias=alias, metadata=meta)
    assert out["key_alias"] == alias and out["metadata"] == meta
    info = keys_stack.get("/key/info?key=" + out["token"], headers=AUTH).json()
    assert info["key_alias"] == alias and info["info"]["metadata"] == meta
    assert pg.psql("SELECT count(*) FROM keys") != "0"
    r = keys_stack.get("/key/list?key_alias=" + __import__("urllib.parse").parse.quote(alias),
                       headers=AUTH)
    assert r.json()["keys"] == [out["token"]]


def test_concurrent_generates_are_distinct(keys_stack):
    outs = []
    lock = threading.Lock()

    def gen():
        r = post(keys_stack, "/key/generate", {"user_id": "u-conc"})
        with lock:
            outs.append(r)

    threads = [threading.Thread(target=gen) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status == 200 for r in outs), [r for r in outs if r.status != 200][:2]
    keys = [r.json()["key"] for r in outs]
    RAW_KEYS.extend(keys)
    assert len(set(keys)) == 40
    assert len(set(r.json()["token"] for r in outs)) == 40


def now():
    return int(time.time())


def claims(**kw):
    c = {"sub": "jwt-user", "iss": "https://issuer.test", "aud": "llmgw",
         "exp": now() + 300, "iat": now()}
    c.update(kw)
    return c


def test_jwt_hs256_user_and_admin(front_keys, jwt_keys):
    tok = make_jwt(claims(models=["gpt-4"], team_id=None), jwt_keys.secret)
    assert chat(front_keys, tok).status == 200
    assert_openai_error(chat(front_keys, tok, "qwen3-30b-a3b"), 401, "key_model_access_denied")
    assert_openai_error(post(front_keys, "/key/generate", {}, bearer(tok)), 403)
    admin = make_jwt(claims(sub="ops", role="proxy_admin"), jwt_keys.secret)
    r = post(front_keys, "/key/generate", {"user_id": "made-by-jwt"}, bearer(admin))
    assert r.status == 200, r
    RAW_KEYS.append(r.json()["key"])
    assert r.json()["created_by"] == "ops"


def test_jwt_rs256(keys_stack, jwt_keys, tmp_path):
    tok = make_jwt(claims(), alg="RS256", key_pem=jwt_keys.rsa)
    assert chat(keys_stack, tok).status == 200
    # Signed by another RSA key: refused.
    other = str(tmp_path / "other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", other], check=True, capture_output=True)
    assert_openai_error(chat(keys_stack, make_jwt(claims(), alg="RS256", key_pem=other)), 401)


@pytest.mark.parametrize("case", ["forged", "none", "expired", "not_yet", "issuer",
                                  "audience", "hs_with_public_key", "garbage",
                                  "long_user", "long_team"])
def test_jwt_rejections(keys_stack, jwt_keys, case):
    c = claims()
    if case == "forged":
        tok = make_jwt(c, "not-the-secret")
    elif case == "none":
        tok = make_jwt(c, alg="none", header={"alg": "none", "typ": "JWT"})
    elif case == "expired":
        tok = make_jwt(claims(exp=now() - 120), jwt_keys.secret)
    elif case == "not_yet":
        tok = make_jwt(claims(nbf=now() + 600), jwt_keys.secret)
    elif case == "issuer":
        tok = make_jwt(claims(iss="https://evil.test"), jwt_keys.secret)
    elif case == "audience":
        tok = make_jwt(claims(aud="someone-else"), jwt_keys.secret)
    elif case == "hs_with_public_key":
        # The classic confusion: HMAC keyed with the (public) RSA key.
        tok = make_jwt(c, open(jwt_keys.rsa_pub).read())
    elif case == "long_user":
        # Ids are at most 255 bytes, as through the management API.
        tok = make_jwt(claims(sub="u" * 256), jwt_keys.secret)
    elif case == "long_team":
        tok = make_jwt(claims(team_id="t" * 256), jwt_keys.secret)
    else:
        tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA"
    err = assert_openai_error(chat(keys_stack, tok), 401, "auth_error")
    if case.startswith("long_"):
        assert "longer than 255 bytes" in err["message"]
    assert tok not in err["message"]


def test_jwt_es256(make_stack, mock, jwt_keys):
    s = make_stack("jwt-ec", mock.url, ["auth.jwt_public_key_file=" + jwt_keys.ec_pub])
    tok = make_jwt(claims(), alg="ES256", key_pem=jwt_keys.ec)
    assert chat(s, tok).status == 200
    bad = make_jwt(claims(), alg="ES256", key_pem=jwt_keys.ec)[:-6] + "AAAAAA"
    assert_openai_error(chat(s, bad), 401)
    # An RS256 token against an EC key: refused.
    assert_openai_error(chat(s, make_jwt(claims(), alg="RS256", key_pem=jwt_keys.rsa)), 401)
    s.stop()


def test_jwt_spend_is_tracked_under_its_user(keys_stack, jwt_keys, pg):
    tok = make_jwt(claims(sub="jwt-spender"), jwt_keys.secret)
    r = chat(keys_stack, tok)
    assert r.status == 200
    rid = r.headers["x-request-id"]
    deadline = time.time() + 10
    while time.time() < deadline and pg.psql(
            "SELECT count(*) FROM spend_logs WHERE request_id = '%s'" % rid) == "0":
        time.sleep(0.05)
    assert pg.psql("SELECT user_id || ' ' || api_key || '.' FROM spend_logs "
                   "WHERE request_id = '%s'" % rid) == "jwt-spender ."
    assert pg.psql("SELECT count(*) FROM users WHERE user_id = 'jwt-spender'") == "1"


def test_zz_no_raw_key_in_database_or_logs(keys_stack, pg, base_dir):
    """Run last in this module: every raw key seen so far, searched for."""
    assert len(RAW_KEYS) > 50
    dump = subprocess.run(["pg_dump", "-h", pg.sock, "-U", "llmgw", "llmgw"],
                          capture_output=True, text=True, check=True).stdout
    assert "CREATE TABLE public.keys" in dump
    logs = ""
    for root, _, files in os.walk(base_dir):
        for f in files:
            if f.endswith(".log"):
                logs += open(os.path.join(root, f), errors="replace").read()
    assert "mod=access" in logs
    for k in RAW_KEYS + [MASTER_KEY]:
        assert k not in dump, "raw key in the database dump"
        assert k not in logs, "raw key in a log"
        assert k[3:] not in dump and k[3:] not in logs
