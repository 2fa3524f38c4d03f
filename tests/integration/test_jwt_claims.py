"""JWT time claims (issue #15, 3): exp and nbf are RFC 7519 NumericDates,
any JSON number; a token without exp is refused unless
[auth] jwt_require_exp = off; an empty issuer or audience is warned of."""
import time

import pytest

from conftest import assert_openai_error, make_jwt, post


def now():
    return int(time.time())


def claims(**kw):
    c = {"sub": "jwt-claims", "iss": "https://issuer.test", "aud": "llmgw",
         "exp": now() + 300, "iat": now()}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def chat(stack, tok):
    return post(stack, "/v1/chat/completions",
                {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
                {"Authorization": "Bearer " + tok})


@pytest.mark.parametrize("exp,want", [
    (lambda: now() + 300, 200),
    (lambda: now() + 300.5, 200),          # a fraction: still a date
    (lambda: float(now() - 120), 401),     # a float in the past: expired
    (lambda: 1.5e9, 401),                  # 2017: long expired, not "forever"
    (lambda: None, 401),                   # no exp: refused
    (lambda: "never", 401),                # not a number: refused
])
def test_exp_is_any_number_and_required(keys_stack, jwt_keys, exp, want):
    r = chat(keys_stack, make_jwt(claims(exp=exp()), jwt_keys.secret))
    if want == 200:
        assert r.status == 200, r
    else:
        err = assert_openai_error(r, 401, "auth_error")
        assert "JWT" in err["message"]


def test_nbf_as_a_float(keys_stack, jwt_keys):
    r = chat(keys_stack, make_jwt(claims(nbf=now() + 600.25), jwt_keys.secret))
    err = assert_openai_error(r, 401)
    assert "not valid yet" in err["message"]
    assert chat(keys_stack, make_jwt(claims(nbf=now() - 5.5), jwt_keys.secret)).status == 200


def test_messages_say_why(keys_stack, jwt_keys):
    err = assert_openai_error(chat(keys_stack, make_jwt(claims(exp=None), jwt_keys.secret)), 401)
    assert err["message"] == "Authentication Error, JWT has no exp claim (a token must expire)"
    err = assert_openai_error(chat(keys_stack, make_jwt(claims(exp="never"), jwt_keys.secret)), 401)
    assert "must be numbers" in err["message"]


def test_exp_optional_when_configured_and_warnings(make_stack, mock, jwt_keys):
    s = make_stack("jwt-noexp", mock.url, [
        "auth.jwt_secret_file=" + jwt_keys.secret_file,
        "auth.jwt_require_exp=off",
    ])
    assert chat(s, make_jwt(claims(exp=None, iss=None, aud=None), jwt_keys.secret)).status == 200
    log = s.log("chat")
    assert "[auth] jwt_issuer is empty" in log
    assert "[auth] jwt_audience is empty" in log
    assert "[auth] jwt_require_exp is off" in log
    s.stop()
