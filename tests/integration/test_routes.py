"""Every family routes through one table shape and one dispatcher
(lib/route.c): the same 404, 405 with Allow, HEAD and trailing-slash rules,
route labels in the access line, and a key in a path never logged."""
import re

from conftest import AUTH, RAW_KEYS, assert_openai_error, new_key, post

LONG = "/x" * 300


def test_unknown_paths_answer_the_same_404_in_every_family(keys_stack):
    for path in ("/nope", "/v1/nope", "/health/nope", "/key/nope", "/user/x/y",
                 "/spend/nope", "/v1/chat/nothing", "/v1/chat/completions/x"):
        r = keys_stack.get(path, headers=AUTH)
        err = assert_openai_error(r, 404, "not_found_error")
        assert err["message"] == "Route not found: GET %s" % path
    # The path is cut at 200 characters in every family (health too).
    for prefix in ("/health", "/key", "/spend", "/v1/chat"):
        r = keys_stack.get(prefix + LONG, headers=AUTH)
        err = assert_openai_error(r, 404, "not_found_error")
        assert err["message"] == "Route not found: GET %s" % (prefix + LONG)[:200]


def test_405_says_allow_the_same_way_everywhere(keys_stack):
    cases = [("POST", "/health", "GET, HEAD"),
             ("DELETE", "/metrics", "GET, HEAD"),
             ("GET", "/v1/chat/completions", "POST"),
             ("GET", "/chat/completions", "POST"),
             ("POST", "/v1/models", "GET, HEAD"),
             ("GET", "/v1/embeddings", "POST"),
             ("GET", "/key/generate", "POST"),
             ("POST", "/key/info", "GET, HEAD"),
             ("POST", "/team/info", "GET, HEAD"),
             ("POST", "/spend/logs", "GET, HEAD")]
    for method, path, allow in cases:
        r = keys_stack.request(method, path, body="{}" if method == "POST" else None,
                               headers=AUTH)
        assert_openai_error(r, 405, "method_not_allowed")
        assert r.headers["allow"] == allow, (method, path)
    # 405 comes before authentication: nothing about the caller is needed.
    r = keys_stack.request("GET", "/key/generate")
    assert_openai_error(r, 405)


def test_head_and_trailing_slashes(keys_stack):
    r = keys_stack.request("HEAD", "/key/info?key=" + "0" * 64, headers=AUTH)
    assert r.status == 404
    assert keys_stack.get("/health/liveliness/", headers=AUTH).status == 200
    assert keys_stack.get("/v1/models/", headers=AUTH).status == 200
    assert keys_stack.get("/models", headers=AUTH).status == 200


def test_admin_routes_refuse_others_with_one_message(keys_stack):
    k = new_key(keys_stack)
    r = post(keys_stack, "/key/generate", {}, headers={"Authorization": "Bearer " + k["key"]})
    err = assert_openai_error(r, 403, "permission_error")
    # LiteLLM's words and the roles needed (issue 14).
    assert err["message"] == ("user not allowed to access this route, role= internal_user_viewer. "
                              "Trying to access: /key/generate. Needs role proxy_admin or internal_user")
    r = post(keys_stack, "/key/%s/regenerate" % k["key"], {},
             headers={"Authorization": "Bearer " + k["key"]})
    err = assert_openai_error(r, 403, "permission_error")
    assert err["message"] == ("user not allowed to access this route, role= internal_user_viewer. "
                              "Trying to access: /key/regenerate. Needs role proxy_admin or internal_user")


def test_a_key_in_a_path_is_never_logged(keys_stack):
    k = new_key(keys_stack)
    # Served, refused by method, and too long: the path is logged as its label.
    r = post(keys_stack, "/key/%s/regenerate" % k["key"], {})
    assert r.status == 200
    RAW_KEYS.append(r.json()["key"])
    keys_stack.get("/key/%s/regenerate" % k["key"], headers=AUTH)
    r = post(keys_stack, "/key/%s%s/regenerate" % (k["key"], "z" * 600), {})
    assert_openai_error(r, 404, "not_found_error")
    assert k["key"] not in r.body.decode()
    log = keys_stack.log("keys")
    assert k["key"] not in log
    assert k["key"][3:] not in log
    lines = [l for l in log.splitlines() if "mod=access" in l and "route=/key/regenerate" in l]
    assert len(lines) >= 2
    assert all(re.search(r" path=/key/regenerate ", l) for l in lines)


def test_access_lines_carry_each_family_label(keys_stack):
    keys_stack.get("/health/liveness")
    keys_stack.get("/spend/logs?limit=1", headers=AUTH)
    keys_stack.get("/v1/models", headers=AUTH)
    keys_stack.get("/key/list", headers=AUTH)
    assert re.search(r"path=/health/liveness route=liveliness status=200", keys_stack.log("health"))
    assert re.search(r"path=/spend/logs route=spend_logs status=200", keys_stack.log("spend"))
    assert re.search(r"path=/v1/models route=models status=200", keys_stack.log("chat"))
    # The keys family says who managed what.
    assert re.search(r"path=/key/list route=/key/list status=200 .*caller=", keys_stack.log("keys"))
