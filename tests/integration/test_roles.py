"""Issue 14, points 4-6 through lighttpd: LiteLLM's user roles on every
management route, self-service keys of an internal_user, team members
and team admins, the key/user/team answers LiteLLM gives, admin spend
resets, and model lists with wildcards, all-team-models and the user's own
models."""
import pytest

from conftest import (AUTH, RAW_KEYS, assert_openai_error, bearer, make_jwt,
                      new_key, post)

MSGS = [{"role": "user", "content": "hi"}]
ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")


def chat(stack, key, model="gpt-4"):
    return post(stack, "/v1/chat/completions", {"model": model, "messages": MSGS},
                bearer(key))


def user_key(stack, uid, role="internal_user", **fields):
    """/user/new with a key; the answer (its "key" is the user's key)."""
    body = {"user_id": uid, "user_role": role}
    body.update(fields)
    r = post(stack, "/user/new", body)
    assert r.status == 200, r
    RAW_KEYS.append(r.json()["key"])
    return r.json()


def refusal(role, path, needs):
    return ("user not allowed to access this route, role= %s. Trying to access: %s. "
            "Needs role %s" % (role, path, needs))


# Every management route but the callers' own reads, and who may call it.
ADMIN = "proxy_admin"
SELF = "proxy_admin or internal_user"
ADMIN_READ = "proxy_admin or proxy_admin_viewer"
SELF_READ = "proxy_admin or proxy_admin_viewer or internal_user"
ROUTES = [
    ("POST", "/key/generate", SELF),
    ("POST", "/key/update", SELF),
    ("POST", "/key/delete", SELF),
    ("POST", "/key/regenerate", SELF),
    ("POST", "/key/block", ADMIN),
    ("POST", "/key/unblock", ADMIN),
    ("GET", "/key/list", SELF_READ),
    ("POST", "/user/new", ADMIN),
    ("POST", "/user/update", ADMIN),
    ("POST", "/user/delete", ADMIN),
    ("GET", "/user/list", ADMIN_READ),
    ("POST", "/team/new", ADMIN),
    ("POST", "/team/update", ADMIN),
    ("POST", "/team/delete", ADMIN),
    ("POST", "/team/member_add", SELF),
    ("POST", "/team/member_delete", SELF),
    ("POST", "/team/member_update", SELF),
]


@pytest.fixture(scope="module")
def role_keys(keys_stack):
    return {role: user_key(keys_stack, "role-" + role, role)["key"] for role in ROLES}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method,path,needs", ROUTES)
def test_each_role_against_each_admin_route(keys_stack, role_keys, role, method, path, needs):
    if method == "GET":
        r = keys_stack.get(path, headers=bearer(role_keys[role]))
    else:
        r = post(keys_stack, path, {}, bearer(role_keys[role]))
    if role in needs.split(" or "):
        # Let in: whatever the empty body earns, never a refusal by role.
        assert r.status != 403, (role, path, r)
    else:
        err = assert_openai_error(r, 403, "permission_error")
        assert err["message"] == refusal(role, path, needs)


def test_generated_users_are_viewers_and_admin_keys_are_admins(keys_stack, pg):
    k = new_key(keys_stack, user_id="implicit-user")
    assert pg.psql("SELECT user_role FROM users WHERE user_id = 'implicit-user'") == \
        "internal_user_viewer"
    err = assert_openai_error(post(keys_stack, "/key/generate", {}, bearer(k["key"])), 403)
    assert err["message"] == refusal("internal_user_viewer", "/key/generate", SELF)
    # Its own key and user: readable.
    assert keys_stack.get("/key/info", headers=bearer(k["key"])).status == 200
    assert keys_stack.get("/user/info", headers=bearer(k["key"])).status == 200
    # A proxy_admin user's key manages everything (today's master key).
    a = user_key(keys_stack, "an-admin", "proxy_admin")
    r = post(keys_stack, "/key/generate", {"user_id": "made-by-admin-key"}, bearer(a["key"]))
    assert r.status == 200 and r.json()["created_by"] == "an-admin"
    RAW_KEYS.append(r.json()["key"])
    assert post(keys_stack, "/key/block", {"key": r.json()["token"]}, bearer(a["key"])).status == 200
    assert keys_stack.get("/key/info?key=" + k["token"], headers=bearer(a["key"])).status == 200


def test_jwt_roles(keys_stack, jwt_keys):
    import time
    now = int(time.time())

    def tok(**kw):
        c = {"sub": "jwt-viewer", "iss": "https://issuer.test", "aud": "llmgw",
             "exp": now + 300, "iat": now}
        c.update(kw)
        return make_jwt(c, jwt_keys.secret)

    viewer = tok(role="proxy_admin_viewer")
    assert keys_stack.get("/user/list", headers=bearer(viewer)).status == 200
    err = assert_openai_error(post(keys_stack, "/user/new", {}, bearer(viewer)), 403)
    assert err["message"] == refusal("proxy_admin_viewer", "/user/new", ADMIN)
    # No role claim: a viewer of its own; the admin claim: an admin.
    err = assert_openai_error(keys_stack.get("/user/list", headers=bearer(tok())), 403)
    assert err["message"] == refusal("internal_user_viewer", "/user/list", ADMIN_READ)
    assert keys_stack.get("/user/list", headers=bearer(tok(sub="ops", role="proxy_admin"))).status == 200


def test_internal_user_self_service(keys_stack, pg):
    me = user_key(keys_stack, "self-u", models=["gpt-4", "qwen*"], max_budget=10)
    other = new_key(keys_stack, user_id="self-other")
    auth = bearer(me["key"])
    # Generate: for itself (filled in), never another, within its models and budget.
    r = post(keys_stack, "/key/generate", {"key_alias": "self-1"}, auth)
    assert r.status == 200, r
    mine = r.json()
    RAW_KEYS.append(mine["key"])
    assert mine["user_id"] == "self-u" and mine["created_by"] == "self-u"
    err = assert_openai_error(post(keys_stack, "/key/generate", {"user_id": "self-other"}, auth),
                              403, "permission_error")
    assert err["param"] == "user_id" and err["message"] == (
        "An internal_user can only manage its own keys: user_id must be 'self-u' "
        "(a proxy_admin can make keys for anyone)")
    err = assert_openai_error(post(keys_stack, "/key/generate", {"models": ["gpt-3.5-turbo"]}, auth), 403)
    assert err["param"] == "models" and err["message"] == (
        "A key's models must be within its user's: this user cannot access model "
        "'gpt-3.5-turbo' (a proxy_admin can grant it)")
    r = post(keys_stack, "/key/generate", {"models": ["qwen3-30b-a3b"], "max_budget": 5}, auth)
    assert r.status == 200
    RAW_KEYS.append(r.json()["key"])
    err = assert_openai_error(post(keys_stack, "/key/generate", {"max_budget": 20}, auth), 403)
    assert err["message"] == ("A key's max_budget cannot exceed its user's (10); "
                              "only a proxy_admin can set more")
    err = assert_openai_error(post(keys_stack, "/key/generate", {"spend": 1}, auth), 403)
    assert err["message"] == "Only a proxy_admin can set a key's spend"
    err = assert_openai_error(post(keys_stack, "/key/generate", {"team_id": "no-team"}, auth), 403)
    assert err["param"] == "team_id"
    # Update: its own keys only; unknown ones are 404.
    r = post(keys_stack, "/key/update", {"key": mine["key"], "models": ["gpt-4"]}, auth)
    assert r.status == 200 and r.json()["models"] == ["gpt-4"]
    err = assert_openai_error(post(keys_stack, "/key/update", {"key": other["token"], "models": []}, auth), 403)
    assert "another user's" in err["message"]
    assert_openai_error(post(keys_stack, "/key/update", {"key": "0" * 64, "models": []}, auth), 404)
    assert_openai_error(post(keys_stack, "/key/update", {"key": mine["token"], "user_id": "self-other"}, auth), 403)
    assert_openai_error(post(keys_stack, "/key/update", {"key": mine["token"], "spend": 0}, auth), 403)
    err = assert_openai_error(post(keys_stack, "/key/update", {"key": mine["token"], "blocked": False},
                                   auth), 403)
    assert err["message"] == "Only a proxy_admin can block or unblock a key"
    # List: its own.
    r = keys_stack.get("/key/list", headers=auth)
    assert r.status == 200 and r.json()["total_count"] == 3
    assert other["token"] not in r.json()["keys"] and mine["token"] in r.json()["keys"]
    assert_openai_error(keys_stack.get("/key/list?user_id=self-other", headers=auth), 403)
    # Info: its own user's keys; another's is 403, an unknown one 404.
    assert keys_stack.get("/key/info?key=" + mine["token"], headers=auth).status == 200
    assert_openai_error(keys_stack.get("/key/info?key=" + other["token"], headers=auth), 403)
    assert_openai_error(keys_stack.get("/key/info?key=" + "0" * 64, headers=auth), 404)
    assert keys_stack.get("/user/info", headers=auth).json()["user_id"] == "self-u"
    assert_openai_error(keys_stack.get("/user/info?user_id=self-other", headers=auth), 403)
    # Regenerate and delete: its own.
    assert_openai_error(post(keys_stack, "/key/regenerate", {"key": other["token"]}, auth), 403)
    r = post(keys_stack, "/key/regenerate", {"key": mine["token"]}, auth)
    assert r.status == 200
    mine = r.json()
    RAW_KEYS.append(mine["key"])
    assert_openai_error(post(keys_stack, "/key/delete", {"keys": [mine["token"], other["token"]]}, auth), 403)
    assert pg.psql("SELECT count(*) FROM keys WHERE token IN ('%s', '%s')"
                   % (mine["token"], other["token"])) == "2"
    assert_openai_error(post(keys_stack, "/key/delete", {"key_aliases": ["self-1"]}, auth), 403)
    r = post(keys_stack, "/key/delete", {"keys": [mine["token"]]}, auth)
    assert r.status == 200 and r.json() == {"deleted_keys": [mine["token"]]}


def test_viewers(keys_stack):
    v = user_key(keys_stack, "viewer-all", "proxy_admin_viewer")["key"]
    iv = user_key(keys_stack, "viewer-own", "internal_user_viewer")
    someone = new_key(keys_stack, user_id="viewed-user")
    # proxy_admin_viewer reads everything.
    assert keys_stack.get("/key/info?key=" + someone["token"], headers=bearer(v)).status == 200
    assert keys_stack.get("/user/info?user_id=viewed-user", headers=bearer(v)).status == 200
    assert keys_stack.get("/key/list?user_id=viewed-user", headers=bearer(v)).json()["total_count"] == 1
    r = keys_stack.get("/spend/logs?user_id=viewed-user", headers=bearer(v))
    assert r.status == 200, r
    assert_openai_error(keys_stack.get("/key/info?key=" + "0" * 64, headers=bearer(v)), 404)
    # internal_user_viewer: its own only.
    assert keys_stack.get("/key/info", headers=bearer(iv["key"])).status == 200
    assert_openai_error(keys_stack.get("/key/info?key=" + someone["token"], headers=bearer(iv["key"])), 403)
    assert_openai_error(keys_stack.get("/key/info?key=" + "0" * 64, headers=bearer(iv["key"])), 404)
    assert_openai_error(keys_stack.get("/user/info?user_id=viewed-user", headers=bearer(iv["key"])), 403)
    assert_openai_error(keys_stack.get("/spend/logs?user_id=viewed-user", headers=bearer(iv["key"])), 403)


def test_team_members_and_team_admins(keys_stack, pg):
    boss = user_key(keys_stack, "t-boss")
    member = user_key(keys_stack, "t-member")
    r = post(keys_stack, "/team/new", {"team_id": "t-members", "models": ["gpt-4"],
                                        "members_with_roles": [{"user_id": "t-boss", "role": "admin"}]})
    assert r.status == 200, r
    assert r.json()["members_with_roles"] == [{"user_id": "t-boss", "role": "admin"}]
    # A team admin adds members; a plain member cannot.
    r = post(keys_stack, "/team/member_add", {"team_id": "t-members",
                                               "member": {"user_id": "t-member", "role": "user"}},
             bearer(boss["key"]))
    assert r.status == 200, r
    out = r.json()
    assert out["team_id"] == "t-members"
    assert [m["user_id"] for m in out["members_with_roles"]] == ["t-boss", "t-member"]
    assert out["updated_users"][0]["user_id"] == "t-member"
    err = assert_openai_error(post(keys_stack, "/team/member_add", {
        "team_id": "t-members", "member": [{"user_id": "t-member"}]}), 400,
        "team_member_already_in_team")
    assert "t-member" in err["message"]
    err = assert_openai_error(post(keys_stack, "/team/member_add", {
        "team_id": "t-members", "member": {"user_id": "x"}}, bearer(member["key"])), 403)
    assert err["message"] == "Only a proxy_admin or an admin of team 't-members' can do this"
    # A new user comes into being as a member.
    r = post(keys_stack, "/team/member_add", {"team_id": "t-members", "member": {"user_id": "t-new"}})
    assert r.status == 200
    assert pg.psql("SELECT user_role FROM users WHERE user_id = 't-new'") == "internal_user_viewer"
    # The team admin manages the team's keys, for its members.
    r = post(keys_stack, "/key/generate", {"team_id": "t-members", "user_id": "t-member"},
             bearer(boss["key"]))
    assert r.status == 200, r
    tk = r.json()
    RAW_KEYS.append(tk["key"])
    assert_openai_error(post(keys_stack, "/key/generate", {"team_id": "t-members", "user_id": "stranger"},
                             bearer(boss["key"])), 403)
    assert_openai_error(post(keys_stack, "/key/generate", {"team_id": "t-members"},
                             bearer(member["key"])), 403)
    r = keys_stack.get("/key/list?team_id=t-members", headers=bearer(boss["key"]))
    assert r.status == 200 and r.json()["keys"] == [tk["token"]]
    assert_openai_error(keys_stack.get("/key/list?team_id=t-members", headers=bearer(member["key"])), 403)
    assert post(keys_stack, "/key/update", {"key": tk["token"], "max_budget": 1},
                bearer(boss["key"])).status == 200
    r = post(keys_stack, "/key/regenerate", {"key": tk["token"]}, bearer(boss["key"]))
    assert r.status == 200 and r.json()["user_id"] == "t-member"
    tk = r.json()
    RAW_KEYS.append(tk["key"])
    stranger = user_key(keys_stack, "t-stranger")
    for path, body in (("/key/regenerate", {"key": tk["token"]}),
                       ("/key/update", {"key": tk["token"], "max_budget": 1}),
                       ("/key/delete", {"keys": [tk["token"]]})):
        assert_openai_error(post(keys_stack, path, body, bearer(stranger["key"])), 403)
    assert_openai_error(keys_stack.get("/team/info?team_id=t-members", headers=bearer(stranger["key"])), 403)
    # Members read their team; the list shows theirs.
    r = keys_stack.get("/team/info?team_id=t-members", headers=bearer(member["key"]))
    assert r.status == 200 and len(r.json()["team_info"]["members_with_roles"]) == 3
    r = keys_stack.get("/team/list", headers=bearer(member["key"]))
    assert r.status == 200 and [t["team_id"] for t in r.json()] == ["t-members"]
    assert r.json()[0]["keys"][0]["token"] == tk["token"]
    r = keys_stack.get("/team/list", headers=AUTH)
    assert r.status == 200 and "t-members" in [t["team_id"] for t in r.json()]
    assert_openai_error(keys_stack.get("/team/list?user_id=t-boss", headers=bearer(member["key"])), 403)
    # Roles change; members leave.
    r = post(keys_stack, "/team/member_update", {"team_id": "t-members", "user_id": "t-member",
                                                  "role": "admin"}, bearer(boss["key"]))
    assert r.status == 200 and r.json() == {"team_id": "t-members", "user_id": "t-member",
                                            "role": "admin"}
    assert_openai_error(post(keys_stack, "/team/member_update", {
        "team_id": "t-members", "user_id": "t-member", "role": "god"}), 400)
    r = post(keys_stack, "/team/member_delete", {"team_id": "t-members", "user_id": "t-new"})
    assert r.status == 200 and len(r.json()["members_with_roles"]) == 2
    assert_openai_error(post(keys_stack, "/team/member_delete",
                             {"team_id": "t-members", "user_id": "t-new"}), 400)
    assert_openai_error(post(keys_stack, "/team/member_add",
                             {"team_id": "no-such-team", "member": {"user_id": "t-new"}}), 404)
    # The team goes with its keys (kept in deleted_keys) and memberships.
    r = post(keys_stack, "/team/delete", {"team_ids": ["t-members"]})
    assert r.status == 200 and r.json() == {"deleted_teams": ["t-members"]}
    assert pg.psql("SELECT count(*) FROM keys WHERE team_id = 't-members'") == "0"
    assert pg.psql("SELECT count(*) FROM deleted_keys WHERE token = '%s' AND deleted_by = 'master_key'"
                   % tk["token"]) == "1"
    assert pg.psql("SELECT count(*) FROM team_members WHERE team_id = 't-members'") == "0"
    assert_openai_error(chat(keys_stack, tk["key"]), 401)


def test_team_update_answer_and_user_list(keys_stack):
    assert post(keys_stack, "/team/new", {"team_id": "t-upd"}).status == 200
    r = post(keys_stack, "/team/update", {"team_id": "t-upd", "max_budget": 3})
    assert r.status == 200
    assert set(r.json()) == {"team_id", "data"} and r.json()["data"]["max_budget"] == 3
    assert r.json()["data"]["members_with_roles"] == []
    for i in range(3):
        post(keys_stack, "/user/new", {"user_id": "ul-%d" % i, "auto_create_key": False,
                                        "user_role": "internal_user_viewer" if i else "internal_user"})
    r = keys_stack.get("/user/list?user_ids=ul-0,ul-1,ul-2&page=1&page_size=2", headers=AUTH)
    assert r.status == 200, r
    out = r.json()
    assert out["total"] == 3 and out["page"] == 1 and out["page_size"] == 2
    assert out["total_pages"] == 2 and [u["user_id"] for u in out["users"]] == ["ul-0", "ul-1"]
    r = keys_stack.get("/user/list?user_ids=ul-0,ul-1,ul-2&role=internal_user_viewer", headers=AUTH)
    assert [u["user_id"] for u in r.json()["users"]] == ["ul-1", "ul-2"]
    assert_openai_error(keys_stack.get("/user/list?page=0", headers=AUTH), 400)


def test_admin_spend_reset_is_recorded(keys_stack, pg):
    k = new_key(keys_stack, user_id="spend-u", budget_duration="30d")
    r = post(keys_stack, "/key/update", {"key": k["token"], "spend": 2.5})
    assert r.status == 200 and r.json()["spend"] == 2.5
    r = post(keys_stack, "/key/update", {"key": k["token"], "spend": 0})
    assert r.status == 200 and r.json()["spend"] == 0
    assert pg.psql("SELECT string_agg(spend_before::text, ',' ORDER BY spend_before) FROM "
                   "budget_resets WHERE entity_type = 'key' AND entity_id = '%s'" % k["token"]) == "0,2.5"
    assert pg.psql("SELECT count(*) FROM budget_resets WHERE entity_id = '%s' AND "
                   "next_reset_at IS NOT NULL" % k["token"]) == "2"
    r = post(keys_stack, "/user/update", {"user_id": "spend-u", "spend": 1})
    assert r.status == 200 and r.json()["spend"] == 1
    assert pg.psql("SELECT count(*) FROM budget_resets WHERE entity_type = 'user' AND "
                   "entity_id = 'spend-u'") == "1"
    assert_openai_error(post(keys_stack, "/key/update", {"key": k["token"], "spend": -1}), 400)
    assert_openai_error(post(keys_stack, "/key/update", {"key": k["token"], "spend": None}), 400)


def test_user_budget_wording(keys_stack):
    u = user_key(keys_stack, "broke-u", max_budget=0)
    err = assert_openai_error(chat(keys_stack, u["key"]), 400, "budget_exceeded")
    assert err["message"] == "ExceededBudget: User=broke-u over budget. Spend=0, Budget=0"


def test_model_wildcards_team_and_user_models(keys_stack):
    k = new_key(keys_stack, models=["qwen*"])["key"]
    assert chat(keys_stack, k, "qwen3-30b-a3b").status == 200
    assert_openai_error(chat(keys_stack, k, "gpt-4"), 401, "key_model_access_denied")
    # The user's list applies to every key of the user, even one without.
    user_key(keys_stack, "models-u", models=["qwen3*"])
    free = new_key(keys_stack, user_id="models-u")["key"]
    assert chat(keys_stack, free, "qwen3-30b-a3b").status == 200
    err = assert_openai_error(chat(keys_stack, free, "gpt-3.5-turbo"), 401,
                              "user_model_access_denied")
    assert err["message"] == ("user not allowed to access model. This user cannot access "
                              "model 'gpt-3.5-turbo'")
    # A later change of the user's list reaches its keys (NOTIFY user:).
    assert post(keys_stack, "/user/update", {"user_id": "models-u", "models": []}).status == 200
    import time
    deadline = time.monotonic() + 1.0
    while chat(keys_stack, free, "gpt-3.5-turbo").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # all-team-models: the team's list; all-proxy-models: every model.
    post(keys_stack, "/team/new", {"team_id": "t-models", "models": ["gpt-3.5-turbo"]})
    t = new_key(keys_stack, team_id="t-models", models=["all-team-models"])["key"]
    assert chat(keys_stack, t, "gpt-3.5-turbo").status == 200
    assert_openai_error(chat(keys_stack, t, "gpt-4"), 401, "team_model_access_denied")
    p = new_key(keys_stack, models=["all-proxy-models"])["key"]
    assert chat(keys_stack, p, "gpt-3.5-turbo").status == 200
