"""What LiteLLM clients and dashboards rely on: /model/info and
/model_group/info, the key in x-litellm-api-key or api-key, the
x-litellm-* response headers, the litellm_* metrics, and a demo whose
first request costs something."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import (AUTH, TREE, Stack, _cleanups, assert_openai_error,
                      bearer, new_key, post)

MSGS = [{"role": "user", "content": "hello there friend"}]  # 3 prompt tokens
VERSION = open(os.path.join(TREE, "VERSION")).read().strip()


@pytest.fixture(scope="module")
def compat(make_stack, mock):
    return make_stack("compat", mock.url, [
        "gateway.threads=8",
        "spend.budget_refresh_ms=200",
        "prices.qwen3-30b-a3b=1.5 2.5",
        "prices.nomic-embed-text-v1.5=0.02 0",
        "aliases.cfb=m@fault=500, qwen3-30b-a3b",
        "aliases.my-embed=nomic-embed-text-v1.5",
    ])


def chat(stack, headers, model="gpt-4", **extra):
    return post(stack, "/v1/chat/completions",
                dict({"model": model, "messages": MSGS}, **extra), headers)


def metric(text, name, **labels):
    """Sum of the series of name whose labels include these (exactly)."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^%s(\{(.*)\})? (\S+)$" % re.escape(name), line)
        if not m:
            continue
        have = dict(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


# ---- 3. /model/info and /model_group/info


def test_model_info_shape(compat):
    for path in ("/model/info", "/v1/model/info"):
        r = compat.get(path, headers=AUTH)
        assert r.status == 200, r
        data = {d["model_name"]: d for d in r.json()["data"]}
        g = data["gpt-4"]
        assert g["litellm_params"] == {"model": "qwen3-30b-a3b"}
        mi = g["model_info"]
        assert mi["id"] == "qwen3-30b-a3b" and mi["mode"] == "chat"
        assert mi["input_cost_per_token"] == pytest.approx(1.5e-6)
        assert mi["output_cost_per_token"] == pytest.approx(2.5e-6)
        assert mi["fallbacks"] == []
        assert data["cfb"]["litellm_params"]["model"] == "m@fault=500"
        assert data["cfb"]["model_info"]["fallbacks"] == ["qwen3-30b-a3b"]
        assert data["cfb"]["model_info"]["input_cost_per_token"] == 0
        # Upstream models not shadowed by an alias are listed as themselves.
        assert data["qwen2.5-14b-instruct"]["litellm_params"]["model"] == "qwen2.5-14b-instruct"
        assert data["my-embed"]["model_info"]["mode"] == "embedding"
        assert data["nomic-embed-text-v1.5"]["model_info"]["mode"] == "embedding"
        assert data["nomic-embed-text-v1.5"]["model_info"]["input_cost_per_token"] == \
            pytest.approx(2e-8)
        # The same names as /v1/models.
        ids = {m["id"] for m in compat.get("/v1/models", headers=AUTH).json()["data"]}
        assert set(data) == ids
    # Never a secret: no upstream key or URL anywhere.
    body = r.body.decode()
    assert "api_key" not in body and "api_base" not in body and "127.0.0.1" not in body
    r = compat.get("/model/info?litellm_model_id=qwen3-30b-a3b", headers=AUTH)
    assert {d["model_name"] for d in r.json()["data"]} == {"gpt-4", "gpt-4-turbo",
                                                           "qwen3-30b-a3b"}


def test_model_group_info_shape(compat):
    r = compat.get("/model_group/info", headers=AUTH)
    assert r.status == 200, r
    data = {d["model_group"]: d for d in r.json()["data"]}
    g = data["gpt-4"]
    assert g["providers"] == ["openai"] and g["mode"] == "chat"
    assert g["input_cost_per_token"] == pytest.approx(1.5e-6)
    assert g["output_cost_per_token"] == pytest.approx(2.5e-6)
    assert data["cfb"]["fallbacks"] == ["qwen3-30b-a3b"]
    r = compat.get("/v1/model_group/info?model_group=gpt-3.5-turbo", headers=AUTH)
    assert [d["model_group"] for d in r.json()["data"]] == ["gpt-3.5-turbo"]


def test_model_info_filtered_per_caller(compat):
    k = new_key(compat, models=["gpt-4", "qwen2.5-14b-instruct"])["key"]
    for path, field in (("/model/info", "model_name"), ("/model_group/info", "model_group")):
        r = compat.get(path, headers=bearer(k))
        assert r.status == 200, r
        assert sorted(d[field] for d in r.json()["data"]) == ["gpt-4", "qwen2.5-14b-instruct"]
    assert_openai_error(compat.get("/model/info"), 401)
    assert_openai_error(compat.request("POST", "/model/info", body={}), 405)


# ---- 7. the key from LiteLLM's headers; x-litellm-* response headers


def test_key_from_litellm_headers(compat):
    k = new_key(compat)["key"]
    for h in ({"x-litellm-api-key": k}, {"x-litellm-api-key": "Bearer " + k},
              {"api-key": k},
              # x-litellm-api-key wins over Authorization, as in LiteLLM
              {"x-litellm-api-key": k, "Authorization": "Bearer sk-wrong"}):
        r = chat(compat, h)
        assert r.status == 200, (h.keys(), r)
        assert compat.get("/key/info", headers=h).status == 200
    r = chat(compat, {"x-litellm-api-key": "sk-wrong", "Authorization": "Bearer " + k})
    assert_openai_error(r, 401)
    r = chat(compat, {"api-key": "sk-wrong"})
    assert_openai_error(r, 401)


def check_answer_headers(r, target, fallbacks=0):
    h = r.headers
    assert h["x-litellm-version"] == VERSION
    assert h["x-litellm-model-id"] == target
    assert h["x-litellm-attempted-fallbacks"] == str(fallbacks)
    assert 0 <= float(h["x-litellm-response-duration-ms"]) < 30000


def test_response_headers_json_sse_error(compat):
    k = new_key(compat, max_budget=10, rpm_limit=1000, tpm_limit=100000)["key"]
    r = chat(compat, bearer(k))
    assert r.status == 200, r
    check_answer_headers(r, "qwen3-30b-a3b")
    assert float(r.headers["x-litellm-key-max-budget"]) == 10
    assert r.headers["x-litellm-key-rpm-limit"] == "1000"
    assert r.headers["x-litellm-key-tpm-limit"] == "100000"
    assert float(r.headers["x-litellm-response-cost"]) > 0
    # A stream: in the head, before the first chunk.
    r = chat(compat, bearer(k), "qwen3-30b-a3b@chunks=3", stream=True)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    check_answer_headers(r, "qwen3-30b-a3b@chunks=3")
    assert r.headers["x-litellm-key-rpm-limit"] == "1000"
    # A fallback: the target that answered, one fallback tried.
    r = chat(compat, bearer(k), "cfb")
    assert r.status == 200, r
    check_answer_headers(r, "qwen3-30b-a3b", 1)
    # An upstream error: the same headers.
    r = chat(compat, bearer(k), "m@fault=500")
    assert_openai_error(r, 500)
    check_answer_headers(r, "m@fault=500")
    assert r.headers["x-litellm-key-rpm-limit"] == "1000"
    # Refused before the upstream: the key's headers only.
    r = post(compat, "/v1/chat/completions", {"model": "gpt-4"}, bearer(k))
    assert_openai_error(r, 400)
    assert r.headers["x-litellm-version"] == VERSION
    assert float(r.headers["x-litellm-key-max-budget"]) == 10
    assert "x-litellm-model-id" not in r.headers
    # Embeddings too; unset limits are left out.
    k2 = new_key(compat)["key"]
    r = post(compat, "/v1/embeddings", {"model": "my-embed", "input": "hi"}, bearer(k2))
    assert r.status == 200, r
    check_answer_headers(r, "nomic-embed-text-v1.5")
    for name in ("x-litellm-key-max-budget", "x-litellm-key-rpm-limit",
                 "x-litellm-key-tpm-limit"):
        assert name not in r.headers


def test_model_id_header_cannot_inject(compat):
    """The target echoed in x-litellm-model-id is the client's model name
    when it passes through: a line break in it must not start a header."""
    r = chat(compat, AUTH, "qwen3-30b-a3b\r\nx-evil: 1")
    assert "x-evil" not in r.headers
    assert r.headers["x-litellm-model-id"] == "qwen3-30b-a3b  x-evil: 1"


# ---- 8. LiteLLM's metric and label names


def test_litellm_metrics(compat):
    k = new_key(compat, key_alias="dash", user_id="u-dash", max_budget=5)
    key, token = k["key"], k["token"]
    before = compat.get("/metrics").body.decode()
    for _ in range(3):
        assert chat(compat, bearer(key)).status == 200
    # The last request's process must have heard of the spend, whichever
    # process served the others: shipped, then older than budget_refresh_ms.
    want = 3 * (3 * 1.5 + 5 * 2.5) / 1e6
    deadline = time.time() + 10
    while time.time() < deadline:
        info = compat.get("/key/info?key=" + key, headers=AUTH).json()["info"]
        if info["spend"] >= want - 1e-12:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    assert chat(compat, bearer(key), "m@fault=500").status == 500
    after = compat.get("/metrics").body.decode()
    lab = dict(hashed_api_key=token, api_key_alias="dash", user="u-dash")
    d = lambda name, **kw: metric(after, name, **dict(lab, **kw)) - \
        metric(before, name, **dict(lab, **kw))
    assert d("litellm_proxy_total_requests_metric_total", requested_model="gpt-4",
             status_code="200", route="/chat/completions") == 3
    # A name the upstream did not serve is counted as "other" (#15, 5).
    assert d("litellm_proxy_failed_requests_metric_total", requested_model="other",
             exception_status="500", exception_class="InternalServerError") == 1
    # The mock answers 3 prompt and 5 completion tokens.
    assert d("litellm_input_tokens_total", model="qwen3-30b-a3b", requested_model="gpt-4") == 9
    assert d("litellm_output_tokens_total", model="qwen3-30b-a3b", requested_model="gpt-4") == 15
    assert d("litellm_total_tokens_total", model="qwen3-30b-a3b", requested_model="gpt-4") == 24
    spend = 3 * (3 * 1.5 + 5 * 2.5) / 1e6
    assert d("litellm_spend_metric_total", model="qwen3-30b-a3b") == pytest.approx(spend)
    assert d("litellm_request_total_latency_metric_count", requested_model="gpt-4",
             model="qwen3-30b-a3b") == 3
    assert d("litellm_llm_api_latency_metric_count", requested_model="gpt-4",
             model="qwen3-30b-a3b") == 3
    assert metric(after, "litellm_api_key_max_budget_metric", hashed_api_key=token) == 5
    left = metric(after, "litellm_remaining_api_key_budget_metric", hashed_api_key=token)
    # What the last request's process knew of the key's spend: each worker
    # counts its own at once, the others' once shipped (as LiteLLM's cache).
    assert 5 - spend - 1e-12 <= left < 5
    # Empty labels are left out, never rendered as "".
    assert '=""' not in "\n".join(l for l in after.splitlines() if l.startswith("litellm_"))
    # llmgw's own series are still there.
    assert metric(after, "llmgw_requests_total", route="chat", model="gpt-4") >= 3
    assert shutil.which("promtool"), "make check installs Debian's prometheus"
    r = subprocess.run(["promtool", "check", "metrics"], input=after, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- 9. the demo prices its models


@pytest.fixture(scope="module")
def demo(base_dir, pg, mock):
    """A stack rendered exactly as `make demo` renders it (llmgwctl
    render-demo), in front of the C mock."""
    s = Stack(base_dir, "demo", pg, mock.url)
    s.env["LLMGW_MOCK_LISTEN"] = "127.0.0.1:%d" % mock.port
    _cleanups.append(s.stop)
    s.started = True
    s.ctl("render-demo")
    s.ctl("workers-start")
    s.ctl("front-start")
    yield s
    s.stop()


def test_demo_prices_its_models(demo):
    conf = open(demo.conf()).read()
    prices = conf.split("[prices]", 1)[1].split("\n[", 1)[0]
    rows = dict(l.split("=", 1) for l in prices.splitlines()
                if "=" in l and not l.lstrip().startswith("#"))
    rows = {k.strip(): [float(x) for x in v.split()] for k, v in rows.items()}
    # Every alias target the demo's first request can reach costs something.
    for model in ("qwen3-30b-a3b", "qwen2.5-14b-instruct"):
        assert rows[model][0] > 0 and rows[model][1] > 0, rows
    k = new_key(demo)
    r = chat(demo, bearer(k["key"]))
    assert r.status == 200, r
    assert float(r.headers["x-litellm-response-cost"]) > 0
    deadline = time.time() + 15
    spend, logged = 0, 0
    while time.time() < deadline and not (spend > 0 and logged > 0):
        spend = demo.get("/key/info", headers=bearer(k["key"])).json()["spend"]
        rows = demo.get("/spend/logs?api_key=" + k["token"], headers=AUTH).json()
        logged = sum(float(x.get("cost", x.get("spend", 0))) for x in rows)
        time.sleep(0.2)
    assert spend > 0 and logged > 0
