"""Tests of the Langfuse ingestion stand-in itself, through real HTTP."""
import base64
import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from langfuse_standin import INGEST_PATH, OTEL_PATH, StandIn  # noqa: E402

PK, SK = "pk-lf-test", "sk-lf-test"
TS = "2024-05-01T12:00:00.000Z"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def basic(pk=PK, sk=SK):
    return "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()


class Resp:
    def __init__(self, r, elapsed):
        self.status = r.status
        self.headers = {k.lower(): v for k, v in r.getheaders()}
        raw = r.read()
        self.json = json.loads(raw) if raw else None
        self.elapsed = elapsed


def request(si, method, path, body=None, headers=None, auth=True, raw=None, timeout=10):
    h = {"Content-Type": "application/json"}
    if auth:
        h["Authorization"] = basic()
    if path == OTEL_PATH:
        h["x-langfuse-ingestion-version"] = "4"
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn = http.client.HTTPConnection("127.0.0.1", si.port, timeout=timeout)
    try:
        t0 = time.monotonic()
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return Resp(r, time.monotonic() - t0)
    finally:
        conn.close()


def post(si, path, body, **kw):
    return request(si, "POST", path, body, **kw)


def state(si):
    return request(si, "GET", "/__state", auth=False).json


def set_mode(si, **opts):
    r = post(si, "/__mode", opts, auth=False)
    assert r.status == 200, r.json
    return r.json


def trace_ev(eid, body_id="trace-1", **body):
    return {"id": eid, "timestamp": TS, "type": "trace-create",
            "body": {"id": body_id, "timestamp": TS, **body}}


def gen_ev(eid, body_id="gen-1", typ="generation-create", **body):
    b = {"id": body_id, "traceId": "trace-1", "name": "chat", "startTime": TS,
         "endTime": "2024-05-01T12:00:01.500Z", "model": "qwen3-30b-a3b",
         "modelParameters": {"temperature": 0.2, "max_tokens": 64, "stream": False, "stop": ["\n"]},
         "usageDetails": {"input": 10, "output": 5, "total": 15},
         "costDetails": {"input": 0.0001, "output": 0.0002, "total": 0.0003},
         "level": "DEFAULT", "environment": "test"}
    b.update(body)
    return {"id": eid, "timestamp": TS, "type": typ, "body": b}


def attr(key, value):
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def otlp(*spans):
    return {"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "llmgw")]},
        "scopeSpans": [{"scope": {"name": "llmgw", "version": "1"}, "spans": list(spans)}]}]}


def span(span_id=SPAN_ID, trace_id=TRACE_ID, **over):
    s = {"traceId": trace_id, "spanId": span_id, "name": "chat qwen3", "kind": 3,
         "startTimeUnixNano": "1714564800000000000", "endTimeUnixNano": "1714564801500000000",
         "attributes": [
             attr("langfuse.observation.type", "generation"),
             attr("langfuse.observation.model.name", "qwen3-30b-a3b"),
             attr("gen_ai.request.model", "qwen3-30b-a3b"),
             attr("gen_ai.usage.input_tokens", 10),
             attr("gen_ai.usage.output_tokens", 5),
             attr("langfuse.observation.usage_details", json.dumps({"input": 10, "output": 5, "total": 15})),
             attr("langfuse.observation.cost_details", json.dumps({"total": 0.0003})),
             attr("langfuse.observation.completion_start_time", json.dumps("2024-05-01T12:00:00.200Z")),
             attr("langfuse.observation.metadata.api_key_id", "key-7"),
             attr("langfuse.environment", "test"),
             attr("user.id", "alice"),
             attr("gen_ai.request.temperature", 0.2),
             attr("gen_ai.request.stream", True),
         ],
         "status": {"code": 1}}
    s.update(over)
    return s


@pytest.fixture(scope="module")
def server():
    si = StandIn(PK, SK).start()
    yield si
    si.stop()


@pytest.fixture
def si(server):
    server.reset()
    yield server


# ------------------------------------------------------------------ legacy API
def test_good_batch_is_recorded(si):
    r = post(si, INGEST_PATH, {"batch": [trace_ev("e1", name="chat", userId="alice", tags=["a"]),
                                         gen_ev("e2")], "metadata": {"sdk": "llmgw"}})
    assert r.status == 207
    assert r.json == {"successes": [{"id": "e1", "status": 201}, {"id": "e2", "status": 201}],
                      "errors": []}
    st = state(si)
    assert st["events_count"] == 2 and [e["id"] for e in st["events"]] == ["e1", "e2"]
    assert st["traces"]["trace-1"]["body"]["userId"] == "alice"
    assert st["traces"]["trace-1"]["upserts"] == 1
    gen = st["observations"]["gen-1"]
    assert gen["type"] == "GENERATION" and gen["body"]["usageDetails"]["total"] == 15
    assert st["rejected"] == [] and st["warnings"] == []
    assert st["requests"] == {INGEST_PATH: 1}
    log = st["request_log"][0]
    assert log["status"] == 207 and log["size"] > 0
    assert "Authorization" not in log["headers"] and log["headers"]["Content-Type"] == "application/json"


def test_repeated_event_ids_are_acknowledged_but_deduplicated(si):
    batch = {"batch": [trace_ev("e1"), gen_ev("e2")]}
    for _ in range(2):
        r = post(si, INGEST_PATH, batch)
        assert r.status == 207 and len(r.json["successes"]) == 2 and r.json["errors"] == []
    assert si.duplicates == 2 and len(si.events) == 2
    assert si.traces["trace-1"]["upserts"] == 1 and si.observations["gen-1"]["upserts"] == 1


def test_same_body_id_upserts_and_merges(si):
    post(si, INGEST_PATH, {"batch": [trace_ev("e1", name="chat", tags=["a"], metadata={"x": 1}),
                                     gen_ev("e2", output=None)]})
    post(si, INGEST_PATH, {"batch": [
        trace_ev("e3", output="hi", name=None, tags=["b"], metadata={"y": 2}),
        {"id": "e4", "timestamp": TS, "type": "generation-update",
         "body": {"id": "gen-1", "output": {"role": "assistant", "content": "hi"},
                  "completionStartTime": "2024-05-01T12:00:00.200+00:00"}}]})
    t = si.traces["trace-1"]
    assert t["upserts"] == 2 and t["event_ids"] == ["e1", "e3"]
    assert t["body"]["name"] == "chat" and t["body"]["output"] == "hi"  # null does not erase
    assert t["body"]["tags"] == ["a", "b"] and t["body"]["metadata"] == {"x": 1, "y": 2}
    g = si.observations["gen-1"]
    assert g["upserts"] == 2 and g["body"]["model"] == "qwen3-30b-a3b"
    assert g["body"]["output"]["content"] == "hi"
    assert si.rejected == []


@pytest.mark.parametrize("auth", [None, basic(SK, PK), basic(PK, "sk-lf-wrong"), "Bearer " + SK, "Basic !!!"])
def test_bad_auth_is_401(si, auth):
    r = post(si, INGEST_PATH, {"batch": [trace_ev("e1")]}, auth=False, headers={"Authorization": auth})
    assert r.status == 401 and "message" in r.json
    r = post(si, OTEL_PATH, otlp(span()), auth=False, headers={"Authorization": auth})
    assert r.status == 401
    assert si.events == [] and si.spans == {}


BAD_EVENTS = [
    ({"timestamp": "2024-05-01T12:00:00"}, "timestamp"),                       # no offset
    ({"timestamp": None}, "timestamp"),
    ({"id": "a\rb"}, "id"),
    ({"id": "x" * 801}, "id"),
    ({"type": "observation-delete"}, "type"),
    ({"body": {"traceId": "trace-1"}}, "body.id"),                              # generation without id
    ({"body": {"id": "g", "usageDetails": {"input": -1}}}, "usageDetails.input"),
    ({"body": {"id": "g", "usageDetails": {"input": 1.5}}}, "usageDetails.input"),
    ({"body": {"id": "g", "costDetails": {"total": -0.1}}}, "costDetails.total"),
    ({"body": {"id": "g", "level": "INFO"}}, "level"),
    ({"body": {"id": "g", "environment": "langfuse-prod"}}, "environment"),
    ({"body": {"id": "g", "environment": "Prod"}}, "environment"),
    ({"body": {"id": "g", "startTime": TS, "endTime": "2024-05-01T11:59:59Z"}}, "endTime"),
    ({"body": {"id": "g", "startTime": "yesterday"}}, "startTime"),
    ({"body": {"id": "g", "modelParameters": {"t": {"a": 1}}}}, "modelParameters.t"),
    ({"body": {"id": "g", "model": 7}}, "model"),
]


def test_schema_errors_are_rejected_individually(si):
    batch = [gen_ev("good")]
    for n, (over, _) in enumerate(BAD_EVENTS):
        ev = {"id": f"bad{n}", "timestamp": TS, "type": "generation-create", "body": {"id": "g"}}
        ev.update(over)
        batch.append(ev)
    r = post(si, INGEST_PATH, {"batch": batch})
    assert r.status == 207
    assert r.json["successes"] == [{"id": "good", "status": 201}]
    assert len(r.json["errors"]) == len(BAD_EVENTS)
    assert all(e["status"] == 400 and e["message"] == "Invalid request data" for e in r.json["errors"])
    assert len(si.rejected) == len(BAD_EVENTS)
    for rej, (_, where) in zip(si.rejected, BAD_EVENTS):
        assert where in rej["reason"], rej
        assert rej["endpoint"] == "ingestion" and rej["item"] is not None
    assert list(si.observations) == ["gen-1"]


def test_unknown_body_fields_are_warnings(si):
    r = post(si, INGEST_PATH, {"batch": [gen_ev("e1", usage_details={"input": 1})]})
    assert r.status == 207 and r.json["errors"] == []
    assert si.warnings and "usage_details" in si.warnings[0]["warning"]


def test_openai_shaped_usage_details_and_scores_and_sdk_log(si):
    ud = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
          "prompt_tokens_details": {"cached_tokens": 2}}
    r = post(si, INGEST_PATH, {"batch": [
        gen_ev("e1", usageDetails=ud, usage={"input": 10, "output": 5, "unit": "TOKENS"}),
        {"id": "e2", "timestamp": TS, "type": "score-create",
         "body": {"id": "s1", "traceId": "trace-1", "name": "ok", "value": 1, "dataType": "BOOLEAN"}},
        {"id": "e3", "timestamp": TS, "type": "score-create",
         "body": {"name": "ok", "value": 2, "dataType": "BOOLEAN"}},
        {"id": "e4", "timestamp": TS, "type": "sdk-log", "body": {"log": "hello"}}]})
    assert [s["id"] for s in r.json["successes"]] == ["e1", "e2", "e4"]
    assert r.json["errors"][0]["id"] == "e3" and "BOOLEAN" in r.json["errors"][0]["error"]
    assert si.scores["s1"]["body"]["value"] == 1 and len(si.events) == 3


@pytest.mark.parametrize("body", [[], {"batch": {}}, {"nobatch": []}, "x"])
def test_malformed_envelope_is_400(si, body):
    r = post(si, INGEST_PATH, body)
    assert r.status == 400 and r.json["message"] == "Invalid request data" and r.json["errors"]
    assert si.rejected[0]["type"] == "request"


def test_not_json_wrong_type_wrong_method_too_big(si):
    r = post(si, INGEST_PATH, None, raw=b"{nope")
    assert r.status == 400 and "not valid JSON" in r.json["errors"][0]
    r = post(si, INGEST_PATH, {"batch": []}, headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = request(si, "GET", INGEST_PATH)
    assert r.status == 405 and r.headers["allow"] == "POST"
    big = json.dumps({"batch": [trace_ev("e1", input="x" * (5 * 1024 * 1024))]}).encode()
    r = post(si, INGEST_PATH, None, raw=big)
    assert r.status == 413
    assert si.events == [] and si.requests[INGEST_PATH] == 4


def test_gzip_body_is_accepted(si):
    data = gzip.compress(json.dumps({"batch": [trace_ev("e1")]}).encode())
    r = post(si, INGEST_PATH, None, raw=data, headers={"Content-Encoding": "gzip"})
    assert r.status == 207 and r.json["successes"] == [{"id": "e1", "status": 201}]


def test_chunked_body_and_gzip_bomb(si):
    conn = http.client.HTTPConnection("127.0.0.1", si.port, timeout=5)
    body = json.dumps({"batch": [trace_ev("e1")]}).encode()
    conn.request("POST", INGEST_PATH, body=iter([body[:10], body[10:]]), encode_chunked=True,
                 headers={"Authorization": basic(), "Content-Type": "application/json",
                          "Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 207 and json.loads(r.read())["successes"] == [{"id": "e1", "status": 201}]
    conn.close()
    bomb = gzip.compress(b'{"batch": [' + b" " * (6 * 1024 * 1024) + b"]}")
    r = post(si, INGEST_PATH, None, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status == 413
    r = post(si, INGEST_PATH, None, raw=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"})
    assert r.status == 400
    r = post(si, INGEST_PATH, None, raw=b"{}", headers={"Content-Encoding": "br"})
    assert r.status == 415
    assert [x["reason"].split(":")[0] for x in si.rejected] == [
        "decompressed body larger than 4718592 bytes", "bad gzip body", "unsupported Content-Encoding 'br'"]


# -------------------------------------------------------------------- OTLP API
def test_otlp_export_is_decoded(si):
    r = post(si, OTEL_PATH, otlp(span()))
    assert r.status == 200 and r.json == {}
    st = state(si)
    s = st["spans"][f"{TRACE_ID}:{SPAN_ID}"]
    assert s["upserts"] == 1 and s["name"] == "chat qwen3" and s["kind"] == 3
    assert s["startTimeUnixNano"] == 1714564800000000000
    a = s["attributes"]
    assert a["gen_ai.usage.input_tokens"] == 10 and a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.stream"] is True
    assert s["resource"] == {"service.name": "llmgw"} and s["scope"]["name"] == "llmgw"
    lf = s["langfuse"]
    assert lf["type"] == "generation" and lf["model"] == "qwen3-30b-a3b"
    assert lf["usage_details"] == {"input": 10, "output": 5, "total": 15}
    assert lf["cost_details"] == {"total": 0.0003} and lf["environment"] == "test"
    assert lf["metadata"] == {"api_key_id": "key-7"} and lf["user_id"] == "alice"
    assert lf["level"] == "DEFAULT"
    assert st["rejected"] == [] and st["requests"] == {OTEL_PATH: 1}
    assert si.spans[(TRACE_ID, SPAN_ID)]["status"] == {"code": 1, "message": ""}


def test_otlp_nested_values_and_upsert(si):
    s = span(attributes=[
        {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [attr("k", "v")]}}},
        attr("gen_ai.usage.input_tokens", 3)])
    assert post(si, OTEL_PATH, otlp(s)).json == {}
    s2 = span(attributes=[attr("gen_ai.usage.output_tokens", 4)], status={"code": 2, "message": "boom"})
    assert post(si, OTEL_PATH, otlp(s2)).json == {}
    rec = si.spans[(TRACE_ID, SPAN_ID)]
    assert rec["upserts"] == 2
    assert rec["attributes"]["tags"] == ["a", 2] and rec["attributes"]["kv"] == {"k": "v"}
    assert rec["langfuse"]["usage_details"] == {"input": 3, "output": 4}
    assert rec["langfuse"]["level"] == "ERROR" and rec["langfuse"]["status_message"] == "boom"


@pytest.mark.parametrize("version", [None, "3", ""])
def test_otlp_needs_ingestion_version_4(si, version):
    r = post(si, OTEL_PATH, otlp(span()), headers={"x-langfuse-ingestion-version": version})
    assert r.status == 400 and "x-langfuse-ingestion-version" in r.json["message"]
    assert si.spans == {} and si.rejected[0]["type"] == "request"


def test_otlp_protobuf_is_415_and_gzip_json_works(si):
    r = post(si, OTEL_PATH, None, raw=b"\x0a\x00", headers={"Content-Type": "application/x-protobuf"})
    assert r.status == 415
    r = post(si, OTEL_PATH, None, raw=gzip.compress(json.dumps(otlp(span())).encode()),
             headers={"Content-Encoding": "gzip"})
    assert r.status == 200 and r.json == {} and len(si.spans) == 1


BAD_SPANS = [
    ({"traceId": "0" * 32}, "traceId"),
    ({"traceId": base64.b64encode(bytes.fromhex(TRACE_ID)).decode()}, "traceId"),  # protobuf-JSON style
    ({"spanId": "abc"}, "spanId"),
    ({"parentSpanId": "zz" * 8}, "parentSpanId"),
    ({"name": ""}, "name"),
    ({"kind": "SPAN_KIND_CLIENT"}, "kind"),
    ({"startTimeUnixNano": "1714564801500000000", "endTimeUnixNano": "1714564800000000000"}, "endTimeUnixNano"),
    ({"endTimeUnixNano": "soon"}, "endTimeUnixNano"),
    ({"status": {"code": 3}}, "status.code"),
    ({"attributes": [{"key": "x", "value": {"intValue": "1.5"}}]}, "intValue"),
    ({"attributes": [{"key": "x", "value": {"stringValue": "a", "intValue": "1"}}]}, "exactly one"),
    ({"attributes": [attr("gen_ai.usage.input_tokens", -1)]}, "gen_ai.usage.input_tokens"),
    ({"attributes": [attr("gen_ai.usage.input_tokens", "10")]}, "gen_ai.usage.input_tokens"),
    ({"attributes": [attr("langfuse.observation.usage_details", '{"input": -3}')]}, "usage_details"),
    ({"attributes": [attr("langfuse.observation.cost_details", "not json")]}, "cost_details"),
    ({"attributes": [attr("langfuse.observation.type", "llm")]}, "langfuse.observation.type"),
    ({"attributes": [attr("langfuse.observation.level", "info")]}, "level"),
    ({"attributes": [attr("langfuse.environment", "langfuse")]}, "environment"),
    ({"attributes": [attr("langfuse.observation.completion_start_time", "12:00")]}, "completion_start_time"),
    ({"attributes": [{"key": "langfuse.trace.tags", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}}]},
     "langfuse.trace.tags"),
    ({"attributes": [attr("langfuse.trace.tags", "[not json")]}, "langfuse.trace.tags"),
    ({"attributes": [attr("langfuse.trace.name", "n" * 1001)]}, "langfuse.trace.name"),
    ({"attributes": [attr("langfuse.trace.metadata", "[1]")]}, "langfuse.trace.metadata"),
    ({"attributes": [attr("langfuse.observation.metadata", "{oops")]}, "langfuse.observation.metadata"),
    ({"attributes": [attr("langfuse.observation.model.parameters", '{"stop": [1]}')]}, "model.parameters"),
    ({"attributes": [attr("langfuse.trace.public", "yes")]}, "langfuse.trace.public"),
    ({"attributes": [attr("session.id", 5)]}, "session.id"),
]


def test_otlp_bad_spans_are_rejected_individually(si):
    spans = [span()] + [span(span_id=f"{n + 1:016x}", **over) for n, (over, _) in enumerate(BAD_SPANS)]
    r = post(si, OTEL_PATH, otlp(*spans))
    assert r.status == 200
    assert r.json["partialSuccess"]["rejectedSpans"] == len(BAD_SPANS)
    assert list(si.spans) == [(TRACE_ID, SPAN_ID)]
    assert len(si.rejected) == len(BAD_SPANS)
    for rej, (_, where) in zip(si.rejected, BAD_SPANS):
        assert where in rej["reason"], rej
        assert rej["endpoint"] == "otel" and rej["type"] == "span"


def test_otlp_trace_attributes_and_grouping(si):
    tags = {"key": "langfuse.trace.tags",
            "value": {"arrayValue": {"values": [{"stringValue": "t1"}, {"stringValue": "t2"}]}}}
    a = span(attributes=[attr("langfuse.trace.name", "conv"), attr("session.id", "s-1"), tags,
                         attr("langfuse.trace.metadata", json.dumps({"a": 1})),
                         attr("langfuse.trace.metadata.b", "2"),
                         attr("langfuse.observation.metadata", json.dumps({"o": 1})),
                         attr("langfuse.observation.model.parameters", json.dumps({"temperature": 0.3})),
                         attr("langfuse.release", "r1"), attr("langfuse.version", "v1"),
                         attr("langfuse.observation.prompt.version", 2),
                         attr("langfuse.observation.prompt.name", "p")])
    b = span(span_id="c" * 16, attributes=[attr("langfuse.trace.tags", "t2,t3"), attr("user.id", "u"),
                                           attr("langfuse.made.up", "x")],
             startTimeUnixNano="1714564800500000000")
    assert post(si, OTEL_PATH, otlp(a, b)).json == {}
    lf = si.spans[(TRACE_ID, SPAN_ID)]["langfuse"]
    assert lf["tags"] == ["t1", "t2"] and lf["session_id"] == "s-1" and lf["trace_name"] == "conv"
    assert lf["trace_metadata"] == {"a": 1, "b": "2"} and lf["metadata"] == {"o": 1}
    assert lf["model_parameters"] == {"temperature": 0.3}
    assert lf["release"] == "r1" and lf["version"] == "v1"
    t = state(si)["otel_traces"][TRACE_ID]
    assert t["spans"] == [SPAN_ID, "c" * 16] and t["tags"] == ["t1", "t2", "t3"]
    assert t["name"] == "conv" and t["user_id"] == "u" and t["session_id"] == "s-1"
    assert [w["warning"] for w in si.warnings] == [
        "attributes.langfuse.made.up: not in Langfuse's attribute mapping, Langfuse ignores it"]


@pytest.mark.parametrize("body", [[], {"resourceSpans": {}}, {"resourceSpans": [{"scopeSpans": 1}]},
                                  {"resourceSpans": [otlp(span())["resourceSpans"][0], 7]},
                                  {"resourceSpans": [{"resource": {"attributes": [{"key": 5}]}}]}])
def test_otlp_malformed_request_is_400(si, body):
    r = post(si, OTEL_PATH, body)
    assert r.status == 400 and r.json["message"]
    assert si.spans == {} and len(si.rejected) == 1


def test_otlp_empty_request_is_ok(si):
    assert post(si, OTEL_PATH, {}).json == {}
    assert post(si, OTEL_PATH, {"resourceSpans": []}).json == {}


# ---------------------------------------------------------------------- modes
def test_fail_half_is_deterministic_across_requests(si):
    set_mode(si, mode="fail_half")
    r1 = post(si, INGEST_PATH, {"batch": [trace_ev("e1", "t1"), trace_ev("e2", "t2"), trace_ev("e3", "t3")]})
    r2 = post(si, INGEST_PATH, {"batch": [trace_ev("e4", "t4"), trace_ev("e5", "t5"), trace_ev("e2", "t2")]})
    assert [s["id"] for s in r1.json["successes"]] == ["e1", "e3"]
    assert r1.json["errors"] == [{"id": "e2", "status": 500, "message": "temporary",
                                  "error": "stand-in fail_half"}]
    # the alternation carries over: 4th item fails, 5th passes, 6th (retry of e2) fails again
    assert [s["id"] for s in r2.json["successes"]] == ["e5"]
    assert [e["id"] for e in r2.json["errors"]] == ["e4", "e2"]
    assert sorted(si.traces) == ["t1", "t3", "t5"] and si.duplicates == 0
    # invalid items do not take a turn, and are reported as 400, not 500
    r3 = post(si, INGEST_PATH, {"batch": [{"id": "bad"}, trace_ev("e6", "t6")]})
    assert [e["status"] for e in r3.json["errors"]] == [400]
    assert [e["id"] for e in si.injected] == ["e2", "e4", "e2"]
    assert si.rejected[0]["id"] == "bad"
    # a retry of e2 after going back to ok is not a duplicate
    set_mode(si, mode="ok")
    r4 = post(si, INGEST_PATH, {"batch": [trace_ev("e2", "t2")]})
    assert r4.json["successes"] == [{"id": "e2", "status": 201}] and si.duplicates == 0


def test_fail_half_otlp(si):
    set_mode(si, mode="fail_half")
    spans = [span(span_id=f"{n:016x}") for n in range(1, 6)]
    r = post(si, OTEL_PATH, otlp(*spans))
    assert r.status == 200 and r.json["partialSuccess"]["rejectedSpans"] == 2
    assert "temporary" in r.json["partialSuccess"]["errorMessage"]
    assert sorted(s for _, s in si.spans) == [f"{n:016x}" for n in (1, 3, 5)]
    assert si.rejected == [] and len(si.injected) == 2


def test_error500_and_rate_limit(si):
    set_mode(si, mode="error500")
    assert post(si, INGEST_PATH, {"batch": [trace_ev("e1")]}).status == 500
    assert post(si, OTEL_PATH, otlp(span())).status == 500
    set_mode(si, mode="rate_limit")
    r = post(si, INGEST_PATH, {"batch": [trace_ev("e1")]})
    assert r.status == 429 and r.headers["retry-after"] == "1"
    assert post(si, OTEL_PATH, otlp(span())).status == 429
    assert si.events == [] and si.spans == {}
    st = state(si)
    assert [e["status"] for e in st["request_log"]] == [500, 500, 429, 429]
    assert st["requests"] == {INGEST_PATH: 2, OTEL_PATH: 2}


def test_down_closes_without_answer(si):
    set_mode(si, mode="down")
    for path, body in ((INGEST_PATH, {"batch": [trace_ev("e1")]}), (OTEL_PATH, otlp(span()))):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            post(si, path, body)
    assert si.events == [] and [e["status"] for e in si.request_log] == ["closed", "closed"]
    # control endpoints keep working while "down"
    assert state(si)["mode"]["mode"] == "down"


def test_fail_times_then_back_to_ok(si):
    set_mode(si, mode="error500", fail_times=2)
    statuses = [post(si, INGEST_PATH, {"batch": [trace_ev(f"e{n}")]}).status for n in range(3)]
    assert statuses == [500, 500, 207]
    assert state(si)["mode"]["mode"] == "ok"
    set_mode(si, mode="down", fail_times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        post(si, OTEL_PATH, otlp(span()))
    assert post(si, OTEL_PATH, otlp(span())).json == {}


def test_slow(si):
    set_mode(si, mode="slow", delay_s=0.4)
    r = post(si, INGEST_PATH, {"batch": [trace_ev("e1")]})
    assert r.status == 207 and r.elapsed >= 0.4 and len(si.events) == 1


def test_control_surface(si):
    assert post(si, "/__mode", {"mode": "sideways"}, auth=False).status == 400
    assert post(si, "/__mode", {"mode": "ok", "fail_time": 1}, auth=False).status == 400
    assert post(si, "/__mode", {"mode": "slow", "delay_s": -1}, auth=False).status == 400
    assert set_mode(si, mode="rate_limit", fail_times=3)["mode"] == {
        "mode": "rate_limit", "delay_s": 1.0, "fail_times": 3}
    post(si, INGEST_PATH, {"batch": [trace_ev("e1")]})
    assert post(si, "/__reset", None, auth=False).json == {"ok": True}
    st = state(si)
    assert set(st) == {"mode", "traces", "observations", "scores", "spans", "otel_traces", "events",
                       "events_count",
                       "duplicates", "rejected", "warnings", "injected_failures", "requests",
                       "request_log"}
    assert st["mode"] == {"mode": "ok"} and st["requests"] == {} and st["events_count"] == 0
    assert request(si, "GET", "/__nope", auth=False).status == 404
    assert request(si, "GET", "/api/public/other").status == 404


def test_keep_alive_connection_reuse(si):
    conn = http.client.HTTPConnection("127.0.0.1", si.port, timeout=5)
    for n in range(3):
        conn.request("POST", INGEST_PATH, json.dumps({"batch": [trace_ev(f"e{n}")]}),
                     {"Authorization": basic(), "Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 207 and json.loads(r.read())["errors"] == []
    conn.close()
    assert len(si.events) == 3


# ------------------------------------------------------------------------ CLI
def test_cli(tmp_path):
    port_file, record = tmp_path / "port", tmp_path / "record.jsonl"
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "langfuse_standin.py")
    p = subprocess.Popen([sys.executable, script, "--port", "0", "--port-file", str(port_file),
                          "--public-key", "pk-lf-cli", "--secret-key", "sk-lf-cli",
                          "--record", str(record)], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        port = int(port_file.read_text())
        assert line == f"listening 127.0.0.1:{port}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", INGEST_PATH, json.dumps({"batch": [trace_ev("e1")]}),
                     {"Authorization": basic("pk-lf-cli", "sk-lf-cli"), "Content-Type": "application/json"})
        assert conn.getresponse().status == 207
        conn.close()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert lines[0]["status"] == 207 and lines[0]["request"]["batch"][0]["id"] == "e1"
    assert lines[-1]["final_state"]["traces"]["trace-1"]["upserts"] == 1
