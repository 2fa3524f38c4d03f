"""Metric labels from unauthorized or invented model names (issue #15, 5):
a model becomes a label only when the caller may use it and it is known
(an alias, one of its targets, or a name the upstream served); anything
else is counted under "other", so a flood of invented names cannot push
the real series out of the shared table."""
import re

from conftest import AUTH, bearer, new_key, post


def chat(stack, model, headers=AUTH):
    return post(stack, "/v1/chat/completions",
                {"model": model, "messages": [{"role": "user", "content": "hi"}]}, headers)


def labels(stack):
    return stack.get("/metrics").body.decode()


def test_invented_names_are_counted_as_other(keys_stack):
    for i in range(300):
        r = chat(keys_stack, "invented-%d@fault=404" % i)
        assert r.status == 404, r
    k = new_key(keys_stack, models=["gpt-4"])
    for i in range(20):
        assert chat(keys_stack, "forbidden-%d" % i, bearer(k["key"])).status == 401
    assert chat(keys_stack, "gpt-4").status == 200
    assert chat(keys_stack, "qwen2.5-14b-instruct").status == 200  # served: a label
    m = labels(keys_stack)
    assert "invented-" not in m and "forbidden-" not in m
    assert re.search(r'llmgw_requests_total\{route="chat",model="other",status="404"\} (\d+)', m)
    assert 'model="gpt-4"' in m and 'model="qwen2.5-14b-instruct"' in m
    assert 'requested_model="other"' in m  # LiteLLM's series too
