"""The relay through lighttpd: aliases, pass-through, streaming, usage,
upstream faults, retries, fallbacks, concurrency and client disconnects.
The tests on front_relay (or with front) run behind Apache as well."""
import http.client
import os
import json
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import (AUTH, MASTER_KEY, TREE, Mock, assert_openai_error,
                      free_port)

MSGS = [{"role": "user", "content": "hello there friend"}]


def chat(stack, body, headers=AUTH, timeout=30):
    return stack.request("POST", "/v1/chat/completions", body=body,
                         headers=headers, timeout=timeout)


def sse_events(raw):
    """Split an SSE body into its events (comments included)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return [e for e in text.split("\n\n") if e.strip()]


def data_events(raw):
    out = []
    for e in sse_events(raw):
        for line in e.split("\n"):
            if line.startswith("data: "):
                d = line[6:]
                out.append(d if d == "[DONE]" else json.loads(d))
    return out


def stream_timed(port, path, body, headers=AUTH, timeout=30):
    """POST and read the SSE answer line by line: [(t, line)], status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, body=json.dumps(body),
                 headers=dict(headers, **{"Content-Type": "application/json"}))
    r = conn.getresponse()
    lines = []
    t0 = time.monotonic()
    while True:
        line = r.readline()
        if not line:
            break
        lines.append((time.monotonic() - t0, line.decode().rstrip("\n")))
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), lines


def test_alias_rewrite_and_passthrough(front_relay, mock):
    body = {"model": "gpt-4", "messages": MSGS, "temperature": 0.7,
            "top_p": 0.9, "seed": 42, "n": 1, "logprobs": False,
            "stop": ["\n\n", "END"], "user": "u-1",
            "tools": [{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": "auto", "response_format": {"type": "text"},
            "x_custom": {"nested": [1, 2.5, "x", None, True]}}
    r = chat(front_relay, body)
    assert r.status == 200, r
    sent = json.loads(mock.last()["body"])
    assert sent["model"] == "qwen3-30b-a3b"
    expect = dict(body, model="qwen3-30b-a3b")
    assert sent == expect
    # Number text survives the round trip (0.7 stays 0.7).
    assert '"temperature":0.7' in mock.last()["body"].replace(" ", "")
    out = r.json()
    assert out["choices"][0]["message"]["content"] == "tok1 tok2 tok3 tok4 tok5 "
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


@pytest.mark.parametrize("client,actual", [
    ("gpt-4-turbo", "qwen3-30b-a3b"),
    ("gpt-3.5-turbo", "qwen2.5-14b-instruct"),
    ("qwen3-30b-a3b", "qwen3-30b-a3b"),
    ("some/other-model:Q4", "some/other-model:Q4"),
])
def test_aliases_from_config(relay, mock, client, actual):
    r = chat(relay, {"model": client, "messages": MSGS})
    assert r.status == 200, r
    assert json.loads(mock.last()["body"])["model"] == actual


def test_request_id_reaches_upstream(relay, mock):
    r = chat(relay, {"model": "gpt-4", "messages": MSGS})
    rid = r.headers["x-request-id"]
    assert r.headers["x-litellm-call-id"] == rid
    assert mock.last()["headers"]["x-request-id"] == rid


def test_completions_and_unprefixed_paths(front_relay, mock):
    r = front_relay.request("POST", "/v1/completions", headers=AUTH,
                            body={"model": "gpt-3.5-turbo", "prompt": "one two", "max_tokens": 3})
    assert r.status == 200, r
    out = r.json()
    assert out["object"] == "text_completion"
    assert out["usage"]["prompt_tokens"] == 2
    assert json.loads(mock.last()["body"])["model"] == "qwen2.5-14b-instruct"
    r = front_relay.request("POST", "/chat/completions", headers=AUTH,
                            body={"model": "gpt-4", "messages": MSGS})
    assert r.status == 200
    r = front_relay.request("POST", "/completions", headers=AUTH,
                            body={"model": "gpt-4", "prompt": ["a", "b"]})
    assert r.status == 200


def test_stream_arrives_in_pieces(front_relay):
    body = {"model": "qwen3-30b-a3b@chunks=5,chunk_delay_ms=200",
            "messages": MSGS, "stream": True}
    status, headers, lines = stream_timed(front_relay.port, "/v1/chat/completions", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    data = [(t, l) for t, l in lines if l.startswith("data: ")]
    assert data[-1][1] == "data: [DONE]"
    contents = [json.loads(l[6:])["choices"][0]["delta"].get("content")
                for t, l in data if l != "data: [DONE]" and json.loads(l[6:])["choices"]]
    assert "".join(c for c in contents if c) == "tok1 tok2 tok3 tok4 tok5 "
    # The chunks came as the upstream made them, not at the end.
    first, last = data[0][0], data[-1][0]
    assert last - first > 0.7, (first, last)


def test_stream_usage_chunk_stripped_unless_asked(relay, mock):
    body = {"model": "gpt-4", "messages": MSGS, "stream": True}
    r = chat(relay, body)
    ev = data_events(r.body)
    assert ev[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and e.get("usage") for e in ev)
    # The gateway asked upstream for usage all the same.
    assert json.loads(mock.last()["body"])["stream_options"] == {"include_usage": True}
    log_deadline = time.time() + 3
    rid = r.headers["x-request-id"]
    while time.time() < log_deadline and rid not in relay.log("chat"):
        time.sleep(0.05)
    line = [l for l in relay.log("chat").splitlines() if rid in l and "mod=access" in l][0]
    assert "prompt_tokens=3" in line and "completion_tokens=5" in line
    assert re.search(r" chunks=7 ttft_ms=\d+\.\d{3}( |$)", line), line

    body["stream_options"] = {"include_usage": True}
    ev = data_events(chat(relay, body).body)
    usage = [e for e in ev if isinstance(e, dict) and e.get("usage")]
    assert len(usage) == 1 and usage[0]["choices"] == []
    assert usage[0]["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def test_loading_reasoning_chunks_are_relayed(relay):
    body = {"model": "qwen3-30b-a3b@reasoning_chunks=3", "messages": MSGS,
            "stream": True, "stream_options": {"include_usage": True}}
    ev = data_events(chat(relay, body).body)
    reasoning = [e for e in ev if isinstance(e, dict) and e["choices"]
                 and e["choices"][0]["delta"].get("reasoning_content")]
    assert len(reasoning) == 3
    usage = [e for e in ev if isinstance(e, dict) and e.get("usage")]
    assert usage[0]["usage"]["completion_tokens"] == 5


def test_keepalive_while_upstream_is_silent(front_relay):
    body = {"model": "qwen3-30b-a3b@delay_ms=2500", "messages": MSGS, "stream": True}
    status, _, lines = stream_timed(front_relay.port, "/v1/chat/completions", body)
    assert status == 200
    ka = [t for t, l in lines if l == ": keepalive"]
    first_data = [t for t, l in lines if l.startswith("data: ")][0]
    assert len(ka) >= 2, lines[:5]
    assert ka[0] < first_data and ka[0] < 2.0
    assert lines[-1][1] == "data: [DONE]" or lines[-2][1] == "data: [DONE]"


@pytest.mark.parametrize("fault,status,etype,needle", [
    ("500", 500, "server_error", "mock internal error"),
    ("503", 503, None, None),
    ("400", 400, "invalid_request_error", "mock bad request"),
    ("404", 404, None, None),
    ("text500", 500, "upstream_error", "upstream exploded"),
    ("drop_before", 502, "upstream_error", "Upstream"),
    ("reset_before", 502, "upstream_error", "Upstream"),
    ("malformed", 502, "upstream_error", "malformed"),
    ("drop_mid", 502, "upstream_error", None),
])
def test_upstream_faults(front_relay, fault, status, etype, needle):
    r = chat(front_relay, {"model": "m@fault=%s" % fault, "messages": MSGS})
    err = assert_openai_error(r, status, etype)
    if needle:
        assert needle in err["message"]


def test_upstream_429_keeps_retry_after(relay):
    r = chat(relay, {"model": "m@fault=429", "messages": MSGS})
    assert_openai_error(r, 429)
    assert r.headers["retry-after"] == "7"


def test_first_byte_timeout_is_504(relay):
    t0 = time.monotonic()
    r = chat(relay, {"model": "m@fault=hang", "messages": MSGS})
    err = assert_openai_error(r, 504, "timeout_error")
    assert "3 s" in err["message"]
    assert 2.5 < time.monotonic() - t0 < 8


def test_connection_refused_is_502(make_stack):
    s = make_stack("refused", "http://127.0.0.1:%d" % free_port(),
                   ["upstream.retries=2"])
    t0 = time.monotonic()
    r = chat(s, {"model": "gpt-4", "messages": MSGS})
    err = assert_openai_error(r, 502, "upstream_error")
    assert "unreachable" in err["message"].lower()
    assert time.monotonic() - t0 < 3
    assert "try 3" in s.log("chat")
    s.stop()


def test_retry_after_dropped_connection(relay, mock):
    # The first attempt is dropped before any byte; the retry succeeds.
    chunks = time.monotonic_ns() % 1000 + 1  # a fresh fail_times counter
    r = chat(relay, {"model": "qwen3-30b-a3b@fault=drop_before,fail_times=1,chunks=%d"
                     % chunks, "messages": MSGS})
    assert r.status == 200, r
    assert "chunks=%d (try 1)" % chunks in relay.log("chat")


def test_alias_fallback_on_5xx(relay, mock):
    r = chat(relay, {"model": "fb-test", "messages": MSGS})
    assert r.status == 200, r
    assert json.loads(mock.last()["body"])["model"] == "qwen3-30b-a3b"
    r = chat(relay, {"model": "fb-down", "messages": MSGS})
    assert r.status == 200, r
    assert json.loads(mock.last()["body"])["model"] == "qwen2.5-14b-instruct"


def test_failure_mid_stream_ends_with_error_event(front_relay):
    body = {"model": "m@fault=drop_mid,chunks=8", "messages": MSGS, "stream": True}
    r = chat(front_relay, body)
    assert r.status == 200
    ev = data_events(r.body)
    assert "[DONE]" not in ev
    assert ev[-1]["error"]["code"] == "502"
    assert ev[-1]["error"]["type"] == "upstream_error"
    assert any(e.get("choices") for e in ev[:-1])


def concurrent_streams(stack, body, n, meanwhile=None):
    """n streamed chats at once: [(status, last event, "choices" events)]
    in order, what meanwhile() returned (called 0.5 s in), seconds taken."""
    results = [None] * n

    def one(i):
        try:
            r = chat(stack, body, timeout=60)
            ev = data_events(r.body)
            results[i] = (r.status, ev[-1], sum(1 for e in ev[:-1] if e.get("choices")))
        except Exception as e:  # recorded, asserted by the caller
            results[i] = ("exc", repr(e), 0)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    got = None
    if meanwhile is not None:
        time.sleep(0.5)
        got = meanwhile()
    for t in threads:
        t.join()
    return results, got, time.monotonic() - t0


def test_hundred_concurrent_streams(front_relay):
    body = {"model": "qwen3-30b-a3b@chunks=5,chunk_delay_ms=100", "messages": MSGS,
            "stream": True}
    results, _, took = concurrent_streams(front_relay, body, 100)
    assert all(r[:2] == (200, "[DONE]") for r in results), \
        [r for r in results if r[:2] != (200, "[DONE]")][:3]
    # 100 streams of ~0.5 s side by side.
    assert took < 10


def test_client_disconnect_aborts_upstream(front_relay, mock):
    before = mock.stats()["streams_aborted"]
    body = json.dumps({"model": "qwen3-30b-a3b@chunks=100,chunk_delay_ms=100",
                       "messages": MSGS, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", front_relay.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
              b"Content-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(4096)
    s.close()
    deadline = time.time() + 5
    while time.time() < deadline and mock.stats()["streams_aborted"] == before:
        time.sleep(0.05)
    assert mock.stats()["streams_aborted"] == before + 1
    time.sleep(0.3)
    assert "client_gone=1" in front_relay.log("chat")


def test_auth_required(front_relay):
    r = chat(front_relay, {"model": "gpt-4", "messages": MSGS}, headers={})
    err = assert_openai_error(r, 401, "auth_error")
    assert "No api key" in err["message"]
    r = chat(front_relay, {"model": "gpt-4", "messages": MSGS},
             headers={"Authorization": "Bearer sk-wrong-key-1234"})
    err = assert_openai_error(r, 401)
    assert "sk-wrong-key" not in err["message"]
    assert front_relay.get("/v1/models").status == 401


BAD = [
    ('not json', None, "Invalid JSON"),
    ('{"model":"gpt-4","messages":[]} trailing', None, "Invalid JSON"),
    (b'{"model":"gpt-4","messages":[{"role":"user","content":"\xff"}]}', None, "utf-8"),
    ('[1,2]', None, "JSON object"),
    ('{"model":"gpt-4","messages":[{"role":"user","content":"x"}],"temperature":NaN}', None, "NaN"),
    ({"messages": MSGS}, "model", "required"),
    ({"model": "", "messages": MSGS}, "model", "empty"),
    ({"model": 5, "messages": MSGS}, "model", "string"),
    ({"model": "gpt-4"}, "messages", "required"),
    ({"model": "gpt-4", "messages": []}, "messages", "empty"),
    ({"model": "gpt-4", "messages": "hi"}, "messages", "array"),
    ({"model": "gpt-4", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "wizard"),
    ({"model": "gpt-4", "messages": [{"content": "x"}]}, "messages[0].role", "required"),
    ({"model": "gpt-4", "messages": [{"role": "user"}]}, "messages[0].content", "required"),
    ({"model": "gpt-4", "messages": MSGS, "temperature": 2.5}, "temperature", "between"),
    ({"model": "gpt-4", "messages": MSGS, "temperature": "hot"}, "temperature", "number"),
    ({"model": "gpt-4", "messages": MSGS, "top_p": 1.5}, "top_p", "between"),
    ({"model": "gpt-4", "messages": MSGS, "max_tokens": 0}, "max_tokens", "at least 1"),
    ({"model": "gpt-4", "messages": MSGS, "max_tokens": 2.5}, "max_tokens", "integer"),
    ({"model": "gpt-4", "messages": MSGS, "presence_penalty": -3}, "presence_penalty", "between"),
    ({"model": "gpt-4", "messages": MSGS, "frequency_penalty": 2.1}, "frequency_penalty", "between"),
    ({"model": "gpt-4", "messages": MSGS, "stream": "yes"}, "stream", "boolean"),
    ({"model": "gpt-4", "messages": MSGS, "n": 0}, "n", "at least 1"),
    ({"model": "gpt-4", "messages": MSGS, "stop": [1]}, "stop", "strings"),
]


@pytest.mark.parametrize("body,param,needle", BAD)
def test_validation(relay, mock, body, param, needle):
    mock.reset()
    r = chat(relay, body)
    err = assert_openai_error(r, 400, "invalid_request_error")
    assert err["param"] == param
    assert needle in err["message"], err
    # Nothing went upstream.
    assert mock.stats()["chat"] == 0


def test_developer_role_and_content_parts_accepted(relay):
    r = chat(relay, {"model": "gpt-4", "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
        {"role": "assistant", "content": None, "tool_calls": []}]})
    assert r.status == 200, r


def test_body_over_cap_is_413(make_stack, mock, front):
    s = make_stack("smallcap", mock.url, ["gateway.max_body_bytes=4096"], front=front)
    big = {"model": "gpt-4", "messages": [{"role": "user", "content": "x" * 5000}]}
    err = assert_openai_error(chat(s, big), 413)
    assert "4096" in err["message"]
    assert chat(s, {"model": "gpt-4", "messages": MSGS}).status == 200
    s.stop()


def test_large_body_reaches_upstream_whole(front_relay):
    # Read in 64 KiB steps: a megabyte prompt arrives upstream byte for byte
    # (the mock counts one prompt token per word).
    words = 150000
    r = chat(front_relay, {"model": "gpt-4",
                           "messages": [{"role": "user", "content": "word " * words}]})
    assert r.status == 200, r
    assert r.json()["usage"]["prompt_tokens"] == words


def test_wrong_method_and_unknown_route(front_relay):
    r = front_relay.get("/v1/chat/completions", headers=AUTH)
    assert_openai_error(r, 405)
    assert r.headers["allow"] == "POST"
    assert_openai_error(front_relay.get("/v1/chat/nothing", headers=AUTH), 404)


def test_models_list_and_get(relay, mock):
    r = relay.get("/v1/models", headers=AUTH)
    assert r.status == 200
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    for want in ("gpt-4", "gpt-4-turbo", "gpt-3.5-turbo", "qwen3-30b-a3b",
                 "qwen2.5-14b-instruct", "nomic-embed-text-v1.5", "fb-test"):
        assert want in ids
    for m in body["data"]:
        assert set(m) == {"id", "object", "created", "owned_by"} and m["object"] == "model"
    r = relay.get("/v1/models/gpt-4", headers=AUTH)
    assert r.status == 200 and r.json()["id"] == "gpt-4"
    r = relay.get("/models/qwen3-30b-a3b", headers=AUTH)
    assert r.status == 200 and r.json()["owned_by"] == "llama-swap"
    err = assert_openai_error(relay.get("/v1/models/nope", headers=AUTH), 404)
    assert err["param"] == "model" and "nope" in err["message"]


def test_models_cached_not_fetched_per_request(relay, mock):
    relay.get("/v1/models", headers=AUTH)
    before = mock.stats()["models"]
    for _ in range(20):
        assert relay.get("/v1/models", headers=AUTH).status == 200
    # At most one refresh per worker process within the cache period.
    assert mock.stats()["models"] - before <= 2


def test_embeddings(front_relay, mock):
    r = front_relay.request("POST", "/v1/embeddings", headers=AUTH,
                            body={"model": "nomic-embed-text-v1.5", "input": "hello world"})
    assert r.status == 200, r
    out = r.json()
    assert len(out["data"]) == 1 and len(out["data"][0]["embedding"]) == 8
    assert out["usage"]["prompt_tokens"] == 2
    r2 = front_relay.request("POST", "/embeddings", headers=AUTH,
                             body={"model": "nomic-embed-text-v1.5", "input": ["hello world", "x"],
                                   "encoding_format": "base64"})
    assert r2.status == 200
    d = r2.json()["data"]
    assert len(d) == 2 and isinstance(d[0]["embedding"], str)
    assert json.loads(mock.last()["body"])["encoding_format"] == "base64"
    for bad, param in (({"model": "m"}, "input"), ({"model": "m", "input": ""}, "input"),
                       ({"model": "m", "input": []}, "input"),
                       ({"model": "m", "input": "x", "encoding_format": "hex"}, "encoding_format"),
                       ({"input": "x"}, "model")):
        r = front_relay.request("POST", "/v1/embeddings", headers=AUTH, body=bad)
        err = assert_openai_error(r, 400)
        assert err["param"] == param


def stream_in_background(stack):
    """Start a 10-chunk stream of ~1 s on a thread; 0.3 s later, return the
    thread and the list its answer goes to."""
    body = {"model": "qwen3-30b-a3b@chunks=10,chunk_delay_ms=100", "messages": MSGS,
            "stream": True}
    out = []
    t = threading.Thread(target=lambda: out.append(chat(stack, body)))
    t.start()
    time.sleep(0.3)
    return t, out


def test_reload_keeps_streams_in_flight(make_stack, mock):
    import signal
    s = make_stack("relay-reload", mock.url)
    t, out = stream_in_background(s)
    conf = s.conf()
    text = open(conf).read()
    open(conf, "w").write(text.replace("gpt-4 = qwen3-30b-a3b", "gpt-4 = qwen2.5-14b-instruct"))
    os.kill(s.pid("chat"), signal.SIGHUP)
    t.join()
    assert out[0].status == 200
    assert data_events(out[0].body)[-1] == "[DONE]"
    deadline = time.time() + 5
    while time.time() < deadline:
        chat(s, {"model": "gpt-4", "messages": MSGS})
        if json.loads(mock.last()["body"])["model"] == "qwen2.5-14b-instruct":
            break
        time.sleep(0.1)
    assert json.loads(mock.last()["body"])["model"] == "qwen2.5-14b-instruct"
    assert "configuration reloaded" in s.log("chat")
    s.stop()


@pytest.fixture(scope="module")
def loop_stack(make_stack, mock):
    """One chat process with two threads: streams must not need threads."""
    s = make_stack("relay-loop", mock.url,
                   ["gateway.processes=1", "gateway.threads=2"])
    yield s
    s.stop()


def raw_stream(port, body, rcvbuf=None):
    """Send a streamed chat request (HTTP/1.0: no chunked framing in the
    answer) on a raw socket; the socket, unread."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n"
              b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
              b"Content-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def metric(stack, name):
    m = re.search(r"^%s (\S+)$" % name, stack.get("/metrics").body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def asan_build():
    out = subprocess.run(["nm", "-D", os.path.join(TREE, "cgi-bin", "llmgw-chat")],
                         capture_output=True, text=True).stdout
    return "__asan_init" in out


def test_streams_hold_no_thread(loop_stack):
    """60 streams of ~1 s on 2 threads run side by side; a plain request
    meanwhile is answered at once."""
    body = {"model": "qwen3-30b-a3b@chunks=10,chunk_delay_ms=100", "messages": MSGS,
            "stream": True}
    results, plain, took = concurrent_streams(
        loop_stack, body, 60, lambda: chat(loop_stack, {"model": "gpt-4", "messages": MSGS}))
    # 10 content chunks, the role chunk and the finish chunk are "choices".
    assert all(r[:2] == (200, "[DONE]") and r[2] >= 10 for r in results), \
        [r for r in results if r[:2] != (200, "[DONE]")][:3]
    assert plain.status == 200 and plain.elapsed < 0.5, plain.elapsed
    # On two threads, one stream after another would take 30 s.
    assert took < 6, took
    log = loop_stack.log("chat")
    assert log.count("stream=1 up_status=200 prompt_tokens=") >= 60


def test_stalled_client_stalls_no_other_stream(loop_stack, mock):
    """A client that stops reading a big stream pauses its own upstream; the
    process's other streams flow on, and the stalled one ends whole once its
    client reads again."""
    n = 100000  # ~20 MB of events
    worker = loop_stack.children("chat")[0]
    rss0 = rss_kib(worker)
    pauses0 = metric(loop_stack, "llmgw_slow_client_pauses_total")
    big = raw_stream(loop_stack.port, {"model": "qwen3-30b-a3b@chunks=%d" % n,
                                       "messages": MSGS, "stream": True},
                     rcvbuf=4096)
    time.sleep(1.5)  # the buffers fill up; the worker's queue passes 256 KiB
    # The worker paused that upstream and holds at most its 256 KiB queue
    # of it, not megabytes (an ASan build keeps freed memory: 12 MB).
    assert metric(loop_stack, "llmgw_slow_client_pauses_total") > pauses0
    grew = rss_kib(worker) - rss0
    assert grew < (12288 if asan_build() else 4096), grew
    small = {"model": "qwen3-30b-a3b@chunks=5,chunk_delay_ms=50", "messages": MSGS,
             "stream": True}
    t0 = time.monotonic()
    r = chat(loop_stack, small, timeout=20)
    assert r.status == 200 and data_events(r.body)[-1] == "[DONE]"
    assert time.monotonic() - t0 < 2.0
    # Now read the big one to its end: nothing was lost while it waited.
    # With a normal receive buffer: kept at 4 KiB, lighttpd's sends to it
    # can crawl at one window per delayed ACK (seen once in CI: 10 KB/s
    # to the client while lighttpd held 3 MB of the answer for it and the
    # worker, paused, waited for lighttpd), which is TCP's doing, not the
    # gateway's.
    big.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    got, tail, last = 0, b"", b""
    big.settimeout(30)
    while True:
        b = big.recv(1 << 16)
        if not b:
            break
        got += (tail + b).count(b"data: ")
        tail = b[-5:]
        last = (last + b)[-64:]
    big.close()
    # The role chunk, n content chunks, the finish chunk, [DONE].
    assert got >= n + 2, got
    assert last.endswith(b"data: [DONE]\n\n"), last


def test_stop_lets_streams_on_the_loop_finish(make_stack, mock):
    """SIGTERM: a stream the event loop holds (no thread) still ends whole,
    its spend row written, before the worker exits."""
    import signal
    s = make_stack("relay-stop", mock.url, ["gateway.processes=1"])
    t, out = stream_in_background(s)
    sup = s.pid("chat")
    worker = s.children("chat")[0]
    os.kill(sup, signal.SIGTERM)
    t.join()
    assert out[0].status == 200
    ev = data_events(out[0].body)
    assert ev[-1] == "[DONE]"
    assert sum(1 for e in ev[:-1] if e.get("choices") and
               e["choices"][0]["delta"].get("content")) == 10
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists("/proc/%d" % worker):
        time.sleep(0.05)
    assert "client_gone" not in s.log("chat")
    rid = out[0].headers["x-request-id"]
    deadline = time.time() + 5
    while time.time() < deadline:
        rows = s.pg.psql("SELECT completion_tokens FROM spend_logs "
                         "WHERE request_id = '%s'" % rid).split()
        if rows:
            break
        time.sleep(0.1)
    assert rows == ["10"], rows
    s.stop()


def test_body_sent_as_written_model_replaced(front_relay, mock):
    """The client's text goes upstream as it came (spacing, number text,
    key order, escapes, a 64 KiB prompt), only the model's value replaced;
    a stream gets stream_options added before the closing brace."""
    hdr = dict(AUTH, **{"Content-Type": "application/json"})
    big = "x" * 65536
    text = ('{ "temperature" : 0.50,\n "model" : "gpt-4" , "messages":[{"role":"user",'
            '"content":"caf\\u00e9 \\"q\\" %s"}], "top_p": 1e0 }\n' % big)
    r = front_relay.request("POST", "/v1/chat/completions", body=text, headers=hdr)
    assert r.status == 200, r
    sent = mock.last()["body"]
    assert sent == text.replace('"gpt-4"', '"qwen3-30b-a3b"')
    text = '{"model":"gpt-4","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    r = front_relay.request("POST", "/v1/chat/completions", body=text, headers=hdr)
    assert r.status == 200, r
    assert b"data: [DONE]" in r.body
    assert mock.last()["body"] == ('{"model":"qwen3-30b-a3b","stream":true,"messages":[{"role":"user",'
                                   '"content":"hi"}],"stream_options":{"include_usage":true}}')


def test_big_body_in_parts_survives_retry_and_fallback(relay, mock):
    """A body of 64 KiB or more goes upstream as parts of the client's text
    (no whole copy first): each attempt, a retry after a dropped connection
    and a fallback to the alias's next model, sends it whole, the model
    replaced by that attempt's target."""
    hdr = dict(AUTH, **{"Content-Type": "application/json"})
    big = "w%d " * 20000 % tuple(range(20000))
    assert len(big) > 65536
    tail = '"messages":[{"role":"user","content":"%s"}], "n" : 1 }' % big
    chunks = time.monotonic_ns() % 1000 + 1  # a fresh fail_times counter
    model = "qwen3-30b-a3b@fault=drop_before,fail_times=1,chunks=%d" % chunks
    text = '{"model": "%s", %s' % (model, tail)
    r = relay.request("POST", "/v1/chat/completions", body=text, headers=hdr)
    assert r.status == 200, r
    assert "chunks=%d (try 1)" % chunks in relay.log("chat")
    assert mock.last()["body"] == text
    assert r.json()["usage"]["prompt_tokens"] == 20000
    text = '{"model": "fb-down", %s' % tail
    r = relay.request("POST", "/v1/chat/completions", body=text, headers=hdr)
    assert r.status == 200, r
    assert mock.last()["body"] == text.replace('"fb-down"', '"qwen2.5-14b-instruct"')
    assert r.json()["usage"]["prompt_tokens"] == 20000
    # the next request on the same thread's handle, small: a body in memory
    r = chat(relay, {"model": "gpt-4", "messages": MSGS})
    assert r.status == 200, r
    assert json.loads(mock.last()["body"])["messages"] == MSGS


@pytest.mark.parametrize("text", [
    # a key twice: the upstream must not see a model the key check did not
    '{"model":"qwen2.5-14b-instruct","model":"gpt-4","messages":[{"role":"user","content":"hi"}]}',
    # an escaped key: json-c's key ends at the NUL, the text's does not
    '{"model":"gpt-4","mo\\u0000x":1,"messages":[{"role":"user","content":"hi"}]}',
    # a lone surrogate: the tree holds U+FFFD
    '{"model":"gpt-4","messages":[{"role":"user","content":"\\ud800"}]}',
])
def test_body_rebuilt_when_text_and_tree_differ(front_relay, mock, text):
    hdr = dict(AUTH, **{"Content-Type": "application/json"})
    r = front_relay.request("POST", "/v1/chat/completions", body=text, headers=hdr)
    assert r.status == 200, r
    sent = mock.last()["body"]
    assert sent != text.replace('"gpt-4"', '"qwen3-30b-a3b"')
    assert sent.count('"model"') == 1
    assert json.loads(sent)["model"] == "qwen3-30b-a3b"


def test_plain_upstream_request_and_kept_connections(make_stack, base_dir):
    """A plain http:// upstream is spoken to by lib/http_upstream.c's own
    HTTP/1.1 (raw_post on worker threads, the loop's plain transfers for
    streams): the request the upstream sees is the one libcurl sent,
    connections are kept (at most one per worker thread and origin, and
    the loop's), and a kept connection the upstream closed is replaced
    without the client seeing it, the request sent once."""
    m = Mock(base_dir, "kept-mock")
    key_file = os.path.join(base_dir, "kept-upstream.key")
    with open(key_file, "w") as f:
        f.write("sk-upstream-kept\n")
    # 2 processes x 2 threads: 4 threads may hold a connection each.
    s = make_stack("kept", m.url, ["gateway.threads=2",
                                   "upstream.api_key_file=" + key_file])
    try:
        for i in range(60):
            body = {"model": "gpt-4", "messages": MSGS, "seed": i}
            r = chat(s, body)
            assert r.status == 200, r.text
            assert r.json()["usage"]["total_tokens"] > 0
        last = m.last()
        h = {k.lower(): v for k, v in last["headers"].items()}
        assert last["method"] == "POST"
        assert last["path"] == "/v1/chat/completions"
        assert h["host"] == "127.0.0.1:%d" % m.port
        assert h["content-type"] == "application/json"
        assert h["authorization"] == "Bearer sk-upstream-kept"
        assert re.fullmatch(r"[0-9a-f-]{8,64}", h["x-request-id"]), h
        assert int(h["content-length"]) == len(last["body"].encode())
        sent = json.loads(last["body"])
        assert sent["model"] == "qwen3-30b-a3b" and sent["seed"] == 59
        for i in range(20):
            r = chat(s, {"model": "gpt-4@chunks=%d" % (i + 1), "messages": MSGS,
                         "stream": True})
            assert r.status == 200, r.text
            ev = data_events(r.body)
            assert ev[-1] == "[DONE]", ev[-3:]
            text = "".join(e["choices"][0]["delta"].get("content") or ""
                           for e in ev[:-1] if e["choices"])
            assert len(text.split()) == i + 1, text
        last = m.last()
        assert json.loads(last["body"])["stream"] is True
        assert {k.lower(): v for k, v in last["headers"].items()}["authorization"] == "Bearer sk-upstream-kept"
        st = m.stats()
        assert st["chat"] == 80
        # Kept: 60 requests over at most one connection a thread (and
        # the health family's checks, through libcurl).
        assert st["connections"] <= 10, st
        # The upstream restarts on the same port: every kept connection
        # is dead; each request goes on a new one, sent once.
        port = m.port
        m.close()
        m = Mock(base_dir, "kept-mock2", ("--port", str(port)))
        assert m.port == port
        for i in range(12):
            r = chat(s, {"model": "gpt-4", "messages": MSGS})
            assert r.status == 200, r.text
            r = chat(s, {"model": "gpt-4", "messages": MSGS, "stream": True})
            assert r.status == 200 and data_events(r.body)[-1] == "[DONE]", r
        assert m.stats()["chat"] == 24
    finally:
        s.stop()
        m.close()
