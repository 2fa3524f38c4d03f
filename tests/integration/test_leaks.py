"""Nothing of a secret in answers or logs (issue #15, 7): a 401 does not
echo the end of the token it refused, and the master key's characters
never reach a log line, not even its last four."""
from conftest import AUTH, MASTER_KEY, assert_openai_error, post


def test_a_401_says_nothing_of_the_token(keys_stack):
    token = "sk-pasted-by-mistake-Zq8w"
    r = post(keys_stack, "/v1/chat/completions",
             {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
             {"Authorization": "Bearer " + token})
    err = assert_openai_error(r, 401, "auth_error")
    assert err["message"] == "Authentication Error, Invalid proxy server token passed."
    assert "Zq8w" not in r.body.decode()


def test_master_key_calls_log_no_part_of_it(keys_stack):
    for _ in range(3):
        assert keys_stack.get("/key/list", headers=AUTH).status == 200
    log = keys_stack.log("keys")
    lines = [l for l in log.splitlines() if "route=/key/list" in l]
    assert lines and all("caller=master_key" in l for l in lines[-3:])
    assert MASTER_KEY[-4:] not in log and MASTER_KEY[-8:] not in log
