"""Issue 23, the rerank, Responses API and guarded passthrough parts:
POST /v1/rerank (/rerank, /v1/reranking, /reranking) in the embeddings
family, POST /v1/responses (JSON and SSE) in the chat family, and the
[upstream] passthrough paths (/tokenize here) in the chat family; through
the real fronts, with their spend rows read from PostgreSQL and the mock
upstream's view of what reached it."""
import json
import os
import subprocess

import pytest

from conftest import (AUTH, MASTER_KEY, TREE, Mock, assert_openai_error,
                      bearer, new_key, post, spend_row, wait_json_row)
from test_openai_sdk import SDK, ensure_sdk

PASSTHROUGH = "/tokenize, /infill"
# USD per 1M tokens, and per query for the reranker (LiteLLM's names).
RERANK_PER_M, RERANK_PER_QUERY = 1.0, 0.002
RESP_IN, RESP_OUT = 2.0, 3.0
DOCS = ["Paris is the capital of France", "Berlin is in Germany",
        {"text": "the capital city"}]
QUERY = "capital of France"


@pytest.fixture(scope="module")
def rr_mock(base_dir):
    """A mock of this module's own: its /__control defaults change here."""
    m = Mock(base_dir, name="rr-mock")
    yield m
    m.close()


@pytest.fixture(scope="module")
def rr(make_stack, rr_mock):
    return make_stack("rr", rr_mock.url, [
        "upstream.passthrough=" + PASSTHROUGH,
        "aliases.reranker=rr-rerank",
        "aliases.resp-alias=rr-resp",
        "prices.rr-rerank=%s 0 input_cost_per_query=%s" % (RERANK_PER_M, RERANK_PER_QUERY),
        "prices.rr-resp=%s %s" % (RESP_IN, RESP_OUT),
    ])


@pytest.fixture
def front_rr(rr, front, twin):
    return twin(rr, front)


def words(docs):
    return sum(len((d if isinstance(d, str) else d["text"]).split()) for d in docs)


# ---- rerank

@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/v1/reranking", "/reranking"])
def test_rerank_relayed_aliased_and_spent(front_rr, rr_mock, pg, path):
    r = post(front_rr, path, {"model": "reranker", "query": QUERY,
                              "documents": DOCS, "top_n": 2})
    assert r.status == 200, r
    out = r.json()
    # The upstream's answer as it sent it: sorted, top_n of them.
    assert [x["index"] for x in out["results"]] == [0, 2]
    assert out["results"][0]["relevance_score"] > out["results"][1]["relevance_score"]
    tokens = len(QUERY.split()) + words(DOCS)
    assert out["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    last = rr_mock.last()
    assert last["path"] == "/v1/rerank"
    assert json.loads(last["body"])["model"] == "rr-rerank"
    want = tokens * RERANK_PER_M / 1e6 + RERANK_PER_QUERY
    assert float(r.headers["x-litellm-response-cost"]) == pytest.approx(want)
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "arerank" and row["status"] == 200
    assert row["model"] == "reranker" and row["actual_model"] == "rr-rerank"
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == \
        (tokens, 0, tokens)
    assert row["spend"] == pytest.approx(want, rel=1e-12)
    assert row["usage_estimated"] is False


def test_rerank_without_usage_costs_per_query(rr, rr_mock, pg):
    """An upstream that reports no usage: the request counts, at its price
    per query, no tokens made up."""
    rr_mock.post("/__control", {"no_usage": 1})
    try:
        r = post(rr, "/v1/rerank", {"model": "reranker", "query": QUERY, "documents": DOCS})
    finally:
        rr_mock.post("/__control", {})
    assert r.status == 200, r
    assert "usage" not in r.json() and len(r.json()["results"]) == 3
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "arerank"
    assert (row["prompt_tokens"], row["total_tokens"]) == (0, 0)
    assert row["usage_estimated"] is False
    assert row["spend"] == pytest.approx(RERANK_PER_QUERY, rel=1e-12)


@pytest.mark.parametrize("body,param", [
    ({"query": "q", "documents": ["a"]}, "model"),
    ({"model": "reranker", "documents": ["a"]}, "query"),
    ({"model": "reranker", "query": 7, "documents": ["a"]}, "query"),
    ({"model": "reranker", "query": "q"}, "documents"),
    ({"model": "reranker", "query": "q", "documents": []}, "documents"),
    ({"model": "reranker", "query": "q", "documents": "a"}, "documents"),
    ({"model": "reranker", "query": "q", "documents": ["a", 3]}, "documents"),
    ({"model": "reranker", "query": "q", "documents": [{"txt": "a"}]}, "documents"),
    ({"model": "reranker", "query": "q", "documents": ["a"] * 1001}, "documents"),
    ({"model": "reranker", "query": "q", "documents": ["a", "b"], "top_n": 3}, "top_n"),
    ({"model": "reranker", "query": "q", "documents": ["a", "b"], "top_n": 0}, "top_n"),
    ({"model": "reranker", "query": "q", "documents": ["a", "b"], "top_n": "1"}, "top_n"),
])
def test_rerank_validation(rr, rr_mock, body, param):
    before = rr_mock.stats()["requests"]
    r = post(rr, "/v1/rerank", body)
    assert_openai_error(r, 400, "invalid_request_error")
    assert r.json()["error"]["param"] == param
    assert rr_mock.stats()["requests"] == before  # nothing went upstream


# ---- auth, model restriction, limits: the same for the three kinds

CALLS = [
    ("/v1/rerank", {"model": "reranker", "query": "q", "documents": ["a"]}),
    ("/v1/responses", {"model": "resp-alias", "input": "hi"}),
    ("/tokenize", {"model": "reranker", "content": "a b"}),
]


@pytest.mark.parametrize("path,body", CALLS)
def test_auth_required(front_rr, path, body):
    r = post(front_rr, path, body, headers={})
    assert_openai_error(r, 401)
    r = post(front_rr, path, body, headers=bearer("sk-not-a-real-key-000000"))
    assert_openai_error(r, 401)


@pytest.mark.parametrize("path,body", CALLS)
def test_model_restriction(rr, rr_mock, pg, path, body):
    k = new_key(rr, models=["some-other-model"])
    before = rr_mock.stats()["requests"]
    r = post(rr, path, body, bearer(k["key"]))
    assert_openai_error(r, 401, "key_model_access_denied")
    assert r.json()["error"]["param"] == "model"
    assert rr_mock.stats()["requests"] == before
    # The same key on a model it may use goes through.
    k2 = new_key(rr, models=[body["model"]])
    r = post(rr, path, body, bearer(k2["key"]))
    assert r.status == 200, r


@pytest.mark.parametrize("path,body", CALLS)
def test_key_rpm_limit(rr, path, body):
    k = new_key(rr, rpm_limit=1)
    assert post(rr, path, body, bearer(k["key"])).status == 200
    r = post(rr, path, body, bearer(k["key"]))
    assert_openai_error(r, 429)


# ---- the Responses API

def test_responses_json(front_rr, rr_mock, pg):
    r = post(front_rr, "/v1/responses", {"model": "resp-alias", "input": "hello there friend",
                                          "instructions": "be brief"})
    assert r.status == 200, r
    out = r.json()
    assert out["object"] == "response" and out["status"] == "completed"
    assert out["output"][0]["content"][0]["text"] == "tok1 tok2 tok3 tok4 tok5 "
    assert out["usage"] == {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10}
    assert json.loads(rr_mock.last()["body"])["model"] == "rr-resp"
    assert rr_mock.last()["path"] == "/v1/responses"
    want = (5 * RESP_IN + 5 * RESP_OUT) / 1e6
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "aresponses" and row["status"] == 200
    assert row["model"] == "resp-alias" and row["actual_model"] == "rr-resp"
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (5, 5, 10)
    assert row["spend"] == pytest.approx(want, rel=1e-12)
    assert row["response_id"] == out["id"] and row["usage_estimated"] is False


def sse(raw):
    """[(event, data)] of an SSE body."""
    out = []
    for block in raw.decode().split("\n\n"):
        ev = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            out.append((ev, data))
    return out


def test_responses_stream(front_rr, rr_mock, pg):
    r = post(front_rr, "/responses", {"model": "resp-alias", "stream": True,
                                       "input": [{"role": "user", "content": "hello there friend"}]})
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/event-stream")
    evs = sse(r.body)
    types = [t for t, _ in evs]
    assert types == ["response.created", "response.output_item.added"] + \
        ["response.output_text.delta"] * 5 + ["response.completed"]
    assert all(d["type"] == t for t, d in evs)
    assert [d["sequence_number"] for _, d in evs] == list(range(len(evs)))
    assert "".join(d["delta"] for t, d in evs if t == "response.output_text.delta") == \
        "tok1 tok2 tok3 tok4 tok5 "
    done = evs[-1][1]["response"]
    assert done["usage"] == {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}
    # Relayed as the client asked: no stream_options added for the upstream.
    assert "stream_options" not in json.loads(rr_mock.last()["body"])
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "aresponses" and row["stream"] is True
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 5)
    assert row["usage_estimated"] is False
    assert row["spend"] == pytest.approx((3 * RESP_IN + 5 * RESP_OUT) / 1e6, rel=1e-12)
    assert row["response_id"] == done["id"]


@pytest.mark.parametrize("stream", [False, True])
def test_responses_upstream_without_api_is_501(front_rr, pg, stream):
    r = post(front_rr, "/v1/responses", {"model": "rr-resp@no_responses=1", "input": "x",
                                          "stream": stream})
    assert_openai_error(r, 501, "not_implemented_error")
    assert "Responses API" in r.json()["error"]["message"]
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "aresponses" and row["status"] == 501
    assert row["spend"] == 0


def test_responses_model_not_found_stays_404(rr):
    """A 404 about the model is the upstream's own answer, not a lack of
    the API."""
    r = post(rr, "/v1/responses", {"model": "rr-resp@fault=404", "input": "x"})
    assert_openai_error(r, 404)
    assert r.json()["error"]["param"] == "model"


@pytest.mark.parametrize("body,param", [
    ({"input": "x"}, "model"),
    ({"model": "resp-alias"}, "input"),
    ({"model": "resp-alias", "input": 5}, "input"),
    ({"model": "resp-alias", "input": "x", "instructions": ["a"]}, "instructions"),
    ({"model": "resp-alias", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "resp-alias", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "resp-alias", "input": "x", "temperature": 3}, "temperature"),
])
def test_responses_validation(rr, body, param):
    r = post(rr, "/v1/responses", body)
    assert_openai_error(r, 400, "invalid_request_error")
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_stored_responses_are_501(front_rr, method):
    r = front_rr.request(method, "/v1/responses/resp_123", headers=AUTH)
    assert_openai_error(r, 501, "not_implemented_error")
    assert_openai_error(front_rr.request(method, "/v1/responses/resp_123"), 401)


def test_openai_sdk_responses(rr):
    ensure_sdk()
    r = subprocess.run(["node", "responses.mjs"], cwd=SDK, capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, BASE_URL="http://127.0.0.1:%d" % rr.port,
                                API_KEY=MASTER_KEY, MODEL="resp-alias"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["json"]["status"] == "completed"
    assert out["json"]["text"] == "tok1 tok2 tok3 tok4 tok5 "
    assert out["json"]["usage"] == {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10}
    assert out["stream"]["text"] == "tok1 tok2 tok3 tok4 tok5 "
    assert out["stream"]["types"][0] == "response.created"
    assert out["stream"]["types"][-1] == "response.completed"
    assert out["stream"]["usage"]["total_tokens"] == 8
    assert out["unsupported"] == {"status": 501, "type": "not_implemented_error"}


# ---- the guarded passthrough

def test_passthrough_relayed_as_is_and_counted(front_rr, rr_mock, pg):
    k = new_key(front_rr)
    raw = b'{"model": "reranker",  "content": "one two three"}'
    r = front_rr.request("POST", "/tokenize", body=raw,
                         headers=dict(bearer(k["key"]), **{"Content-Type": "application/json"}))
    assert r.status == 200, r
    assert r.json() == {"tokens": [100, 101, 102]}
    # The upstream's content type, as it sent it.
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    last = rr_mock.last()
    # At the upstream's root, the bytes as they came: no alias, no rewrite.
    assert last["path"] == "/tokenize" and last["body"] == raw.decode()
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "pass_through_endpoint" and row["status"] == 200
    assert row["api_key"] == k["token"] and row["model"] == "reranker"
    assert row["spend"] == 0 and row["total_tokens"] == 0


def test_passthrough_upstream_error_relayed(front_rr, pg):
    r = post(front_rr, "/tokenize", {"text": "no content"})
    assert r.status == 400
    assert r.json()["error"]["param"] == "content"
    row = spend_row(pg, r.headers["x-request-id"])
    assert row["call_type"] == "pass_through_endpoint" and row["status"] == 400


@pytest.mark.parametrize("path", ["/detokenize", "/v1/tokenize", "/tokenize/x"])
def test_unlisted_path_is_404(front_rr, rr_mock, path):
    before = rr_mock.stats()["requests"]
    r = post(front_rr, path, {"content": "a"})
    assert_openai_error(r, 404)
    assert rr_mock.stats()["requests"] == before


def test_passthrough_body_cap(make_stack, rr_mock):
    s = make_stack("rr-cap", rr_mock.url, ["upstream.passthrough=/tokenize",
                                           "gateway.max_body_bytes=2048"])
    r = post(s, "/tokenize", {"content": "a " * 2000})
    assert_openai_error(r, 413)


def test_passthrough_counted_in_metrics(rr):
    assert post(rr, "/tokenize", {"content": "a"}).status == 200
    m = rr.get("/metrics", headers=AUTH).body.decode()
    assert any('route="/tokenize"' in line for line in m.splitlines()
               if line.startswith("litellm_proxy_total_requests_metric"))


@pytest.mark.parametrize("value,needle", [
    ("/v1/foo", "gateway serves itself"),
    ("/chat/x", "gateway serves itself"),
    ("tokenize", "must be a path"),
    ("/a/../b", "must be a path"),
    ("/a b", "must be a path"),
])
def test_passthrough_config_checked(rr, tmp_path, value, needle):
    conf = open(rr.conf()).read().replace(
        "passthrough = " + PASSTHROUGH, "passthrough = " + value)
    assert value in conf
    p = tmp_path / "llmgw.conf"
    p.write_text(conf)
    p.chmod(0o600)
    r = subprocess.run([os.path.join(TREE, "cgi-bin", "llmgw-health"),
                        "-c", str(p), "-t"], capture_output=True, text=True)
    assert r.returncode != 0 and needle in r.stderr, r.stderr


def payload(pg, rid, timeout=15):
    """The request_payloads row (Langfuse capture) of request rid."""
    return wait_json_row(pg, "SELECT to_jsonb(p) FROM request_payloads p "
                         "WHERE request_id = '%s'" % rid,
                         "request_payloads row for " + rid, timeout)


def test_responses_captured_for_langfuse(make_stack, rr_mock, pg, base_dir):
    sk = os.path.join(base_dir, "rr-lf.secret")
    open(sk, "w").write("sk-lf-test\n")
    s = make_stack("rr-lf", rr_mock.url, [
        "langfuse.enabled=on", "langfuse.host=http://127.0.0.1:9",
        "langfuse.public_key=pk-lf-test", "langfuse.secret_key_file=" + sk])
    r = post(s, "/v1/responses", {"model": "m", "input": "hello there", "instructions": "be brief"})
    assert r.status == 200, r
    p = payload(pg, r.headers["x-request-id"])
    assert p["record_mode"] == "full"
    assert p["input"] == {"instructions": "be brief", "input": "hello there"}
    assert p["output"] == {"content": "tok1 tok2 tok3 tok4 tok5 ", "finish_reason": "completed"}
    r = post(s, "/v1/responses", {"model": "m", "input": "hi", "stream": True})
    assert r.status == 200, r
    p = payload(pg, r.headers["x-request-id"])
    assert p["input"] == "hi"
    assert p["output"] == {"content": "tok1 tok2 tok3 tok4 tok5 ", "finish_reason": "completed"}


def test_passthrough_metadata_bounded_in_the_row(rr, rr_mock, pg):
    """A passthrough body is relayed whole, but its metadata over
    [gateway] max_metadata_bytes stays out of the spend row."""
    big = {"content": "a b", "metadata": {"note": "x" * 20000}}
    r = post(rr, "/tokenize", big)
    assert r.status == 200, r
    assert json.loads(rr_mock.last()["body"]) == big
    row = spend_row(pg, r.headers["x-request-id"])
    assert "note" not in (row["metadata"] or {})
    r = post(rr, "/tokenize", {"content": "a", "metadata": {"note": "small"}})
    assert spend_row(pg, r.headers["x-request-id"])["metadata"]["note"] == "small"
