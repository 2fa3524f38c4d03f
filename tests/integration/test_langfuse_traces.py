"""What a Langfuse user filters and groups by (issue 21): LiteLLM's metadata
keys (trace_id, existing_trace_id, trace_name, generation_name,
generation_id, trace_user_id, session_id, tags, trace_metadata, version,
trace_release, mask_input, mask_output), the x-litellm-tags header, model
parameters, the user, environment and release from the config, errors and
time to first token, in OTel and legacy form, checked by the Langfuse
stand-in against Langfuse's documented mapping; and the spend rows that keep
session id and tags for reports."""
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import AUTH, MASTER_KEY, TREE, bearer, new_key

sys.path.insert(0, os.path.join(TREE, "tests", "langfuse"))
from langfuse_standin import StandIn  # noqa: E402

EXPORT = os.path.join(TREE, "bin", "llmgw-langfuse-export")
PK, SK = "pk-lf-test", "sk-lf-test"
PROMPT = "what is the refund policy"
MSGS = [{"role": "user", "content": PROMPT}]
ANSWER = "tok1 tok2 tok3 tok4 tok5 "
FORMATS = ["otel", "legacy"]


@pytest.fixture(scope="module")
def lf():
    si = StandIn(PK, SK).start()
    yield si
    si.stop()


@pytest.fixture(scope="module")
def stack(make_stack, mock, lf, base_dir):
    sk = os.path.join(base_dir, "lf-traces.secret")
    with open(sk, "w") as f:
        f.write(SK + "\n")
    return make_stack("lf-traces", mock.url, [
        "langfuse.enabled=on", "langfuse.host=" + lf.url,
        "langfuse.public_key=" + PK, "langfuse.secret_key_file=" + sk,
        "langfuse.record=full", "langfuse.batch_size=50",
        "langfuse.environment=staging", "langfuse.release=gw-1.2",
        "prices.qwen3-30b-a3b=1.5 2.5",
    ])


def export(stack, fmt):
    e = dict(os.environ, LLMGW_LANGFUSE_FORMAT=fmt, LLMGW_MASTER_KEY=MASTER_KEY)
    r = subprocess.run([EXPORT, "-c", stack.conf()], capture_output=True,
                       text=True, timeout=120, env=e)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r.stdout


def drain(stack, lf):
    """Ship whatever earlier tests left, then start from a clean stand-in."""
    export(stack, "otel")
    lf.reset()


def send(stack, pg, headers=None, **body):
    b = dict({"model": "gpt-4", "messages": MSGS}, **body)
    r = stack.request("POST", "/v1/chat/completions", body=b,
                      headers=dict(AUTH, **(headers or {})))
    rid = r.headers["x-request-id"]
    deadline = time.time() + 10
    while time.time() < deadline:
        if pg.psql("SELECT count(*) FROM request_payloads WHERE request_id = '%s'" % rid) == "1":
            return rid, r
        time.sleep(0.05)
    raise AssertionError("request %s was not recorded" % rid)


def shipped(stack, lf, fmt):
    """Export in fmt; the stand-in's state, which must hold no format
    violation and no attribute outside Langfuse's mapping."""
    out = export(stack, fmt)
    assert "failed=0" in out, out
    st = lf.snapshot()
    assert st["rejected"] == [], st["rejected"]
    assert st["warnings"] == [], st["warnings"]
    assert st["duplicates"] == 0
    return st


def otel_trace_id(client_id):
    return hashlib.sha256(("llmgw-trace:" + client_id).encode()).hexdigest()[:32]


def otel_span_id(client_id):
    return hashlib.sha256(("llmgw-span:" + client_id).encode()).hexdigest()[:16]


def span_of(st, rid):
    found = [s for s in st["spans"].values()
             if json.loads(s["attributes"]["langfuse.observation.metadata"])["request_id"] == rid]
    assert len(found) == 1, found
    return found[0]


def gen_of(st, rid):
    found = [o for o in st["observations"].values() if o["body"]["metadata"]["request_id"] == rid]
    assert len(found) == 1, found
    return found[0]


PARAMS = {"temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "presence_penalty": 0.1,
          "frequency_penalty": 0.2, "seed": 7, "stop": ["END", "STOP"],
          "response_format": {"type": "json_object"},
          "tools": [{"type": "function", "function": {"name": "f%d" % i, "parameters": {}}}
                    for i in range(2)]}
WANT_PARAMS = {"temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "presence_penalty": 0.1,
               "frequency_penalty": 0.2, "seed": 7, "stop": ["END", "STOP"],
               "response_format": "json_object", "tools": 2, "stream": False}
META = {"generation_name": "answer-faq", "generation_id": "gen-77", "trace_id": "conv-42",
        "trace_name": "support-chat", "trace_user_id": "tu-1", "session_id": "sess-9",
        "tags": ["t1"], "trace_metadata": {"feature": "faq", "key_alias": "spoofed"},
        "version": "v3", "trace_release": "r-77", "other": "kept"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_metadata_key_arrives_once(stack, lf, pg, fmt):
    drain(stack, lf)
    rid, r = send(stack, pg, {"x-litellm-tags": "hdr-tag"}, user="enduser-1",
                  stream=False, metadata=META, **PARAMS)
    assert r.status == 200, r
    st = shipped(stack, lf, fmt)
    if fmt == "otel":
        assert len(st["spans"]) == 1
        key = "%s:%s" % (otel_trace_id("conv-42"), otel_span_id("gen-77"))
        sp = st["spans"][key]
        a, v = sp["attributes"], sp["langfuse"]
        assert sp["upserts"] == 1 and sp["name"] == "answer-faq"
        assert v["trace_name"] == "support-chat" and v["user_id"] == "tu-1"
        assert v["session_id"] == "sess-9" and v["tags"] == ["t1", "hdr-tag"]
        assert v["model_parameters"] == WANT_PARAMS
        assert v["version"] == "v3" and v["release"] == "r-77" and v["environment"] == "staging"
        tm = v["trace_metadata"]
        # the client's trace_metadata, but whose request it was is ours
        assert tm["feature"] == "faq" and tm["key_alias"] is None
        assert tm["requested_model"] == "gpt-4"
        m = v["metadata"]
        assert m["client_trace_id"] == "conv-42" and m["client_generation_id"] == "gen-77"
        assert m["request_metadata"] == {"other": "kept", "end_user": "enduser-1"}
        assert json.loads(a["langfuse.observation.input"]) == MSGS
        t = st["otel_traces"][otel_trace_id("conv-42")]
        assert t["spans"] == [otel_span_id("gen-77")] and t["name"] == "support-chat"
    else:
        assert list(st["traces"]) == ["conv-42"] and list(st["observations"]) == ["gen-77"]
        t, g = st["traces"]["conv-42"], st["observations"]["gen-77"]
        assert t["upserts"] == 1 and g["upserts"] == 1
        tb, gb = t["body"], g["body"]
        assert tb["name"] == "support-chat" and tb["userId"] == "tu-1"
        assert tb["sessionId"] == "sess-9" and tb["tags"] == ["t1", "hdr-tag"]
        assert tb["release"] == "r-77" and tb["version"] == "v3" and tb["environment"] == "staging"
        assert tb["metadata"]["feature"] == "faq" and tb["metadata"]["key_alias"] is None
        assert gb["traceId"] == "conv-42" and gb["name"] == "answer-faq"
        assert gb["modelParameters"] == WANT_PARAMS
        assert gb["version"] == "v3" and gb["environment"] == "staging"
        assert gb["metadata"]["request_metadata"] == {"other": "kept", "end_user": "enduser-1"}
        assert tb["input"] == MSGS and gb["output"]["content"] == ANSWER


@pytest.mark.parametrize("fmt", FORMATS)
def test_defaults_and_user_fallbacks(stack, lf, pg, fmt):
    drain(stack, lf)
    k = new_key(stack, user_id="owner-1", key_alias="kb-bot-" + fmt)
    plain, _ = send(stack, pg, bearer(k["key"]), temperature=0.3)
    ended, _ = send(stack, pg, bearer(k["key"]), user="enduser-1")
    master, _ = send(stack, pg)
    st = shipped(stack, lf, fmt)
    users = {}
    for rid in (plain, ended, master):
        if fmt == "otel":
            sp = span_of(st, rid)
            tid, _ = sp["traceId"], sp["spanId"]
            assert tid == hashlib.sha256(rid.encode()).hexdigest()[:32]
            v = sp["langfuse"]
            assert sp["name"] == "chat" and v["trace_name"] == "chat"
            assert v["session_id"] is None and v["tags"] is None
            assert v["release"] == "gw-1.2" and v["environment"] == "staging"
            users[rid] = v["user_id"]
            params = v["model_parameters"]
            meta = v["trace_metadata"]
        else:
            t = st["traces"][rid]["body"]
            g = st["observations"][rid + "-gen"]["body"]
            assert t["name"] == "chat" and g["name"] == "chat" and g["traceId"] == rid
            assert "sessionId" not in t and "tags" not in t
            assert t["release"] == "gw-1.2" and t["environment"] == "staging"
            users[rid] = t.get("userId")
            params = g.get("modelParameters")
            meta = t["metadata"]
        if rid != master:
            assert meta["key_alias"] == "kb-bot-" + fmt and meta["requested_model"] == "gpt-4"
        if rid == plain:
            assert params == {"temperature": 0.3}
    assert users == {plain: "owner-1", ended: "enduser-1", master: None}


@pytest.mark.parametrize("fmt", FORMATS)
def test_calls_sharing_a_trace_id_land_in_one_trace(stack, lf, pg, fmt):
    drain(stack, lf)
    conv = "conversation-%s-%d" % (fmt, time.time_ns())
    root = "root-" + conv
    a, _ = send(stack, pg, metadata={"trace_id": conv, "trace_name": "conv", "tags": ["a"],
                                     "generation_id": root})
    # parent_observation_id nests a call under another one
    b, _ = send(stack, pg, metadata={"trace_id": conv, "trace_name": "conv", "tags": ["b"],
                                     "parent_observation_id": root})
    # existing_trace_id joins the trace and leaves its name and tags be
    c, _ = send(stack, pg, metadata={"existing_trace_id": conv, "trace_name": "other",
                                     "tags": ["c"], "generation_name": "follow-up"})
    st = shipped(stack, lf, fmt)
    if fmt == "otel":
        tid = otel_trace_id(conv)
        assert list(st["otel_traces"]) == [tid]
        t = st["otel_traces"][tid]
        assert len(t["spans"]) == 3 and t["name"] == "conv" and t["tags"] == ["a", "b"]
        assert span_of(st, a)["spanId"] == otel_span_id(root)
        assert span_of(st, b)["parentSpanId"] == otel_span_id(root)
        sc = span_of(st, c)
        assert sc["traceId"] == tid and sc["name"] == "follow-up" and sc["parentSpanId"] == ""
        assert not any(k.startswith("langfuse.trace.") or k in ("user.id", "session.id")
                       for k in sc["attributes"])
    else:
        assert list(st["traces"]) == [conv]
        t = st["traces"][conv]
        assert t["upserts"] == 2 and t["body"]["name"] == "conv"
        assert t["body"]["tags"] == ["a", "b"]
        gens = st["observations"]
        assert sorted(gens) == sorted([root, b + "-gen", c + "-gen"])
        assert all(g["body"]["traceId"] == conv for g in gens.values())
        assert gens[b + "-gen"]["body"]["parentObservationId"] == root
        assert "parentObservationId" not in gens[c + "-gen"]["body"]
        assert gens[c + "-gen"]["body"]["name"] == "follow-up"


@pytest.mark.parametrize("fmt", FORMATS)
def test_mask_input_and_mask_output(stack, lf, pg, fmt):
    drain(stack, lf)
    send(stack, pg, metadata={"mask_input": True})
    send(stack, pg, stream=True, metadata={"mask_input": "true"})
    st = shipped(stack, lf, fmt)
    blob = json.dumps(st)
    assert PROMPT not in blob and ANSWER in blob
    lf.reset()
    send(stack, pg, metadata={"mask_output": True})
    send(stack, pg, stream=True, metadata={"mask_output": True})
    st = shipped(stack, lf, fmt)
    blob = json.dumps(st)
    assert "tok1" not in blob and PROMPT in blob
    if fmt == "legacy":
        t = next(iter(st["traces"].values()))["body"]
        assert t["output"]["chars"] == len(ANSWER) and t["input"] == MSGS
        assert next(iter(st["observations"].values()))["body"]["metadata"]["mask_output"] is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_and_time_to_first_token(stack, lf, pg, fmt):
    drain(stack, lf)
    failed, r = send(stack, pg, model="m@fault=500", metadata={"trace_name": "oops"})
    assert r.status >= 500
    streamed, _ = send(stack, pg, stream=True)
    st = shipped(stack, lf, fmt)
    if fmt == "otel":
        v = span_of(st, failed)["langfuse"]
        assert v["level"] == "ERROR" and "500" in v["status_message"]
        assert v["trace_name"] == "oops"
        s = span_of(st, streamed)["langfuse"]
        assert s["completion_start_time"] and s["level"] == "DEFAULT"
        assert s["model_parameters"]["stream"] is True
        assert s["metadata"]["ttft_ms"] > 0
    else:
        g = gen_of(st, failed)["body"]
        assert g["level"] == "ERROR" and "500" in g["statusMessage"]
        s = gen_of(st, streamed)["body"]
        assert s["completionStartTime"] >= s["startTime"]
        assert s["metadata"]["ttft_ms"] > 0


BAD_TAGS = ["x" * 201, "new\nline", "tab\there", ""]
ODD = 'q"uo\\te <ünï> ✓'


@pytest.mark.parametrize("fmt", FORMATS)
def test_client_values_are_bounded_and_escaped(stack, lf, pg, fmt):
    drain(stack, lf)
    tags = [ODD] + BAD_TAGS + ["t%02d" % i for i in range(40)]
    long_name = "ü" * 150  # 300 bytes: cut to 100 characters (200 bytes)
    odd_trace = 'trace "id"\twith\nodd bytes'
    rid, r = send(stack, pg, {"x-litellm-tags": "hdr"},
                  metadata={"tags": tags, "trace_name": long_name,
                            "generation_name": ODD, "session_id": "s" * 500,
                            "trace_id": "A" * 32, "generation_id": odd_trace,
                            "trace_user_id": 12345, "version": ["not", "a", "string"]},
                  stop="\n\n", tool_choice="auto")
    assert r.status == 200, r
    kept = json.loads(pg.psql("SELECT request_tags FROM spend_logs WHERE request_id = '%s'" % rid))
    assert kept == [ODD] + ["t%02d" % i for i in range(31)]
    assert pg.psql("SELECT length(session_id) FROM spend_logs WHERE request_id = '%s'" % rid) == "200"
    st = shipped(stack, lf, fmt)
    if fmt == "otel":
        # 32 hex digits are kept (lowercased); anything else is hashed
        sp = st["spans"]["%s:%s" % ("a" * 32, otel_span_id(odd_trace))]
        v = sp["langfuse"]
        assert v["tags"] == kept and sp["name"] == ODD
        assert v["trace_name"] == "ü" * 100 and v["session_id"] == "s" * 200
        assert v["user_id"] is None and v["version"] is None
        assert v["model_parameters"]["stop"] == "\n\n" and v["model_parameters"]["tool_choice"] == "auto"
    else:
        t = st["traces"]["A" * 32]["body"]
        assert t["tags"] == kept and t["name"] == "ü" * 100 and t["sessionId"] == "s" * 200
        assert "userId" not in t and "version" not in t
        # an id with control characters is not kept as it came: hashed
        assert list(st["observations"]) == [otel_span_id(odd_trace)]
        assert st["observations"][otel_span_id(odd_trace)]["body"]["name"] == ODD
    # A header's tag that is not UTF-8 is dropped; the row still ships.
    rid, r = send(stack, pg, {"x-litellm-tags": "ok-tag,\xffbad, ,h2"})
    assert r.status == 200, r
    assert json.loads(pg.psql("SELECT request_tags FROM spend_logs WHERE request_id = '%s'"
                              % rid)) == ["ok-tag", "h2"]


def test_uuid_trace_ids_keep_their_digits(stack, lf, pg):
    drain(stack, lf)
    u = "0AF76519-16CD-43DD-8448-EB211C80319C"
    send(stack, pg, metadata={"trace_id": u, "generation_id": "00f067aa0ba902b7"})
    st = shipped(stack, lf, "otel")
    assert list(st["spans"]) == ["0af7651916cd43dd8448eb211c80319c:00f067aa0ba902b7"]


def test_spend_rows_keep_session_and_tags(stack, lf, pg):
    k = new_key(stack, key_alias="sess-key")
    sess = "sess-%d" % time.time_ns()
    rids = [send(stack, pg, dict(bearer(k["key"]), **{"x-litellm-tags": "from-header"}),
                 metadata={"session_id": sess, "tags": ["from-body"]})[0] for _ in range(2)]
    other, _ = send(stack, pg, bearer(k["key"]), metadata={"session_id": sess + "-x"})
    rows = pg.psql("SELECT session_id, request_tags FROM spend_logs WHERE request_id IN ('%s')"
                   % "','".join(rids))
    assert rows.splitlines() == ['%s|["from-body", "from-header"]' % sess] * 2
    r = stack.get("/spend/logs?session_id=" + sess, headers=bearer(k["key"]))
    assert r.status == 200, r
    assert sorted(x["request_id"] for x in r.json()) == sorted(rids)
    assert all(x["session_id"] == sess for x in r.json())
    tags = {t["individual_request_tag"]: t for t in
            stack.get("/spend/tags", headers=bearer(k["key"])).json()}
    assert tags["from-header"]["log_count"] == 2 and tags["from-body"]["log_count"] == 2
    assert other not in rids
