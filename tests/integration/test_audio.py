"""Audio through the front (issue 23), behind lighttpd and Apache:
/v1/audio/transcriptions and /v1/audio/translations (a multipart upload
relayed as its bytes, the model field rewritten for an alias, bounded by
[gateway] max_audio_bytes) and /v1/audio/speech (a binary answer streamed
through). Auth, model lists, spend rows with LiteLLM's call types and the
per-second, per-character and per-request prices, 413 over the cap, a
client that leaves mid-upload, bad input, and the openai npm SDK."""
import http.client
import io
import json
import os
import re
import socket
import subprocess
import time
import wave

import pytest

from conftest import (AUTH, MASTER_KEY, Mock, _cleanups, assert_openai_error,
                      bearer, new_key, post, request, spend_row)
from test_openai_sdk import SDK, ensure_sdk
from test_relay import metric

CAP = 200000                # the stack's [gateway] max_audio_bytes
SPEECH_CHUNKS, SPEECH_DELAY_MS = 6, 150
PER_SECOND, PER_REQUEST = 0.001, 0.05     # whisper-large
FLAT = 0.02                               # whisper-flat, per request only
PER_CHAR = 0.0001                         # tts-kokoro


@pytest.fixture(scope="module")
def audio_mock(base_dir):
    """A mock of our own: its process-wide defaults make speech slow."""
    m = Mock(base_dir, name="audio-mock")
    _cleanups.append(m.close)
    m.post("/__control", {"chunks": SPEECH_CHUNKS,
                          "chunk_delay_ms": SPEECH_DELAY_MS})
    yield m
    m.close()


@pytest.fixture(scope="module")
def audio(make_stack, audio_mock):
    return make_stack("audio", audio_mock.url, [
        "gateway.max_audio_bytes=%d" % CAP,
        "aliases.whisper-1=whisper-large",
        "aliases.tts-1=tts-kokoro",
        "aliases.tts-fb=tts-x@fault=500, tts-kokoro",
        "prices.whisper-large=0 0 input_cost_per_second=%s "
        "input_cost_per_request=%s" % (PER_SECOND, PER_REQUEST),
        "prices.whisper-flat=0 0 input_cost_per_request=%s" % FLAT,
        "prices.tts-kokoro=0 0 input_cost_per_character=%s" % PER_CHAR,
    ])


@pytest.fixture
def st(audio, front, twin):
    """`audio` behind each front."""
    return twin(audio, front)


def make_wav(seconds=1.5, rate=16000):
    b = io.BytesIO()
    w = wave.open(b, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(b"\x10\x00\xf0\xff" * int(seconds * rate / 2))
    w.close()
    return b.getvalue()


WAV = make_wav()  # 1.5 s, 48,044 bytes


def form(fields, file=WAV, filename="a.wav", boundary="----llmgw-test-7MA4YWxkTrZu0gW"):
    """A multipart/form-data body (fields in order, then the file) and its
    Content-Type."""
    out = b""
    for k, v in fields:
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (boundary.encode(), k.encode(), v.encode()))
    if file is not None:
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                b"filename=\"%s\"\r\nContent-Type: audio/wav\r\n\r\n"
                % (boundary.encode(), filename.encode())) + file + b"\r\n"
    out += b"--%s--\r\n" % boundary.encode()
    return out, "multipart/form-data; boundary=" + boundary


def upload(stack, fields, key=MASTER_KEY, path="/v1/audio/transcriptions", **kw):
    body, ctype = form(fields, **kw)
    return stack.request("POST", path, body=body, headers=dict(
        bearer(key), **{"Content-Type": ctype}))


def last(mock):
    """The mock's /__last, its body as the bytes it got (the mock writes
    them into its JSON unvalidated: undone with surrogateescape)."""
    got = json.loads(request(mock.port, "GET", "/__last").body.decode(
        "utf-8", "surrogateescape"))
    got["body"] = got["body"].encode("utf-8", "surrogateescape")
    return got


def rows_of(pg, token):
    return int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s'" % token))


def test_transcription_spend_per_second(st, pg, audio_mock):
    r = upload(st, [("model", "whisper-large"), ("response_format", "verbose_json"),
                    ("language", "en"), ("temperature", "0")])
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json")
    out = r.json()
    assert out["text"] == "mock transcription by whisper-large of %d bytes" % len(WAV)
    assert out["duration"] == pytest.approx(1.5) and out["task"] == "transcribe"
    want = 1.5 * PER_SECOND
    assert float(r.headers["x-litellm-response-cost"]) == pytest.approx(want)
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["call_type"] == "atranscription" and s["status"] == 200
    assert s["model"] == "whisper-large" and s["actual_model"] == "whisper-large"
    assert float(s["spend"]) == pytest.approx(want)
    assert s["metadata"]["audio_seconds"] == pytest.approx(1.5)
    # The mock got the form as sent: same bytes, the client's boundary.
    got = last(audio_mock)
    body, ctype = form([("model", "whisper-large"), ("response_format", "verbose_json"),
                        ("language", "en"), ("temperature", "0")])
    assert got["path"] == "/v1/audio/transcriptions"
    assert got["headers"]["content-type"] == ctype
    assert got["body"] == body


def test_translation_and_formats_per_request(st, pg):
    # No duration in a plain JSON answer: the per-request price.
    r = upload(st, [("model", "whisper-large")], path="/v1/audio/translations")
    assert r.status == 200, r
    assert r.json()["text"].startswith("mock translation by whisper-large")
    assert float(r.headers["x-litellm-response-cost"]) == pytest.approx(PER_REQUEST)
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["call_type"] == "atranscription"  # LiteLLM has no translation type
    assert float(s["spend"]) == pytest.approx(PER_REQUEST)
    # text, srt, vtt: relayed as the upstream gives them, without /v1 too.
    r = upload(st, [("model", "whisper-flat"), ("response_format", "text")],
               path="/audio/transcriptions")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.body == b"mock transcription by whisper-flat of %d bytes\n" % len(WAV)
    assert float(spend_row(pg, r.headers["x-request-id"])["spend"]) == pytest.approx(FLAT)
    r = upload(st, [("model", "whisper-flat"), ("response_format", "srt")])
    assert r.status == 200 and r.body.startswith(b"1\n00:00:00.000 --> ")
    r = upload(st, [("model", "whisper-flat"), ("response_format", "vtt")])
    assert r.status == 200 and r.headers["content-type"].startswith("text/vtt")
    assert r.body.startswith(b"WEBVTT\n")
    # An unpriced model costs nothing.
    r = upload(st, [("model", "whisper-free")])
    assert r.status == 200
    assert float(r.headers["x-litellm-response-cost"]) == 0


def test_alias_rewrites_only_the_model_field(st, pg, audio_mock):
    fields = [("language", "en"), ("model", "whisper-1"), ("response_format", "json")]
    r = upload(st, fields)
    assert r.status == 200, r
    assert r.json()["model"] == "whisper-large"       # the mock saw the target
    assert r.headers["x-litellm-model-id"] == "whisper-large"
    got = last(audio_mock)
    sent, ctype = form(fields)
    want = sent.replace(b"\r\n\r\nwhisper-1\r\n", b"\r\n\r\nwhisper-large\r\n", 1)
    # Every byte as sent but the model's value, the boundary kept.
    assert want != sent and got["body"] == want
    assert got["headers"]["content-type"] == ctype
    assert got["headers"]["content-length"] == str(len(want))
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["model"] == "whisper-1" and s["actual_model"] == "whisper-large"
    assert float(s["spend"]) == pytest.approx(PER_REQUEST)  # json: no duration


def test_auth_and_model_restriction(st, pg, audio_mock):
    body, ctype = form([("model", "whisper-1")])
    before = audio_mock.stats()["audio"]
    r = st.request("POST", "/v1/audio/transcriptions", body=body,
                   headers={"Content-Type": ctype})
    assert_openai_error(r, 401)
    r = st.request("POST", "/v1/audio/speech", body={"model": "tts-1", "input": "x",
                                                     "voice": "a"})
    assert_openai_error(r, 401)
    # One route table: another method is 405 with Allow, as everywhere.
    r = st.get("/v1/audio/speech", headers=AUTH)
    assert_openai_error(r, 405)
    assert r.headers["allow"] == "POST"
    k = new_key(st, models=["whisper-1"])
    r = upload(st, [("model", "whisper-1")], key=k["key"])
    assert r.status == 200, r
    r = upload(st, [("model", "whisper-large")], key=k["key"])
    err = assert_openai_error(r, 401, "key_model_access_denied")
    assert err["param"] == "model"
    r = post(st, "/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "a"},
             bearer(k["key"]))
    assert_openai_error(r, 401, "key_model_access_denied")
    assert audio_mock.stats()["audio"] == before + 1
    # The refusal has its row, at no cost.
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["call_type"] == "aspeech" and s["status"] == 401 and float(s["spend"]) == 0


def test_bad_uploads_answer_400(st, pg, audio_mock):
    before = audio_mock.stats()["audio"]
    # Not multipart at all.
    r = post(st, "/v1/audio/transcriptions", {"model": "whisper-1"})
    assert "multipart/form-data" in assert_openai_error(r, 400, "invalid_request_error")["message"]
    # No file part; a file that is a plain field; no model; an empty one.
    r = upload(st, [("model", "whisper-1")], file=None)
    assert assert_openai_error(r, 400)["param"] == "file"
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["status"] == 400 and s["call_type"] == "atranscription"
    err = assert_openai_error(upload(st, [("model", "whisper-1"), ("file", "x")], file=None), 400)
    assert err["param"] == "file"
    err = assert_openai_error(upload(st, [("language", "en")]), 400)
    assert err["param"] == "model"
    err = assert_openai_error(upload(st, [("model", "")]), 400)
    assert err["param"] == "model"
    # Two model fields: the gateway and the upstream could read different ones.
    err = assert_openai_error(upload(st, [("model", "whisper-1"), ("model", "x")]), 400)
    assert err["param"] == "model"
    # A broken form: no close delimiter, another boundary.
    body, ctype = form([("model", "whisper-1")])
    r = st.request("POST", "/v1/audio/transcriptions", body=body[:-10],
                   headers=dict(AUTH, **{"Content-Type": ctype}))
    assert "close delimiter" in assert_openai_error(r, 400)["message"]
    r = st.request("POST", "/v1/audio/transcriptions", body=body,
                   headers=dict(AUTH, **{"Content-Type": "multipart/form-data; boundary=other"}))
    assert_openai_error(r, 400)
    assert audio_mock.stats()["audio"] == before


def test_over_the_cap_413(st, pg, audio_mock):
    before = audio_mock.stats()["audio"]
    big = make_wav(seconds=CAP / 32000 + 1)          # just over the cap
    body, ctype = form([("model", "whisper-1")], file=big)
    assert CAP < len(body) < 16 * 1024 * 1024
    r = st.request("POST", "/v1/audio/transcriptions", body=body,
                   headers=dict(AUTH, **{"Content-Type": ctype}))
    err = assert_openai_error(r, 413)
    assert "%d bytes ([gateway] max_audio_bytes)" % CAP in err["message"]
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["status"] == 413 and s["call_type"] == "atranscription"
    assert s["error_type"] == "request_too_large" and float(s["spend"]) == 0
    # Under the cap, JSON routes keep max_body_bytes, audio its own.
    r = upload(st, [("model", "whisper-1")], file=make_wav(seconds=CAP / 32000 - 1))
    assert r.status == 200, r
    before += 1
    # Above the front's limit for JSON routes (16 MiB), still llmgw's own
    # answer on an audio path: the front lets audio uploads through.
    huge = b"\0" * (17 * 1024 * 1024)
    body, ctype = form([("model", "whisper-1")], file=huge)
    r = st.request("POST", "/v1/audio/transcriptions", body=body,
                   headers=dict(AUTH, **{"Content-Type": ctype}), timeout=60)
    assert "max_audio_bytes" in assert_openai_error(r, 413)["message"]
    # Chunked, without Content-Length: cut while reading.
    s = socket.create_connection(("127.0.0.1", st.port), timeout=30)
    body, ctype = form([("model", "whisper-1")], file=big)
    head = ("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            % (MASTER_KEY, ctype)).encode()
    s.sendall(head)
    for i in range(0, len(body), 16384):
        piece = body[i:i + 16384]
        try:
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            break
    try:
        s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    got = b""
    while True:
        try:
            d = s.recv(65536)
        except OSError:
            break
        if not d:
            break
        got += d
    s.close()
    assert got.startswith(b"HTTP/1.1 413"), got[:300]
    assert b'"code":"413"' in got
    assert audio_mock.stats()["audio"] == before


def test_default_cap_takes_25_mb(make_stack, audio_mock, front):
    """With the shipped limits (max_audio_bytes 25 MiB, the fronts' 32 MiB
    on audio paths, 16 MiB elsewhere) a 25 MB upload goes through whole."""
    d = make_stack("audio-default", audio_mock.url, [], front=front)
    body, ctype = form([("model", "whisper-large"), ("response_format", "verbose_json")],
                       file=make_wav(seconds=780))
    assert 24 * 1000 * 1000 < len(body) < 25 * 1024 * 1024
    t0 = time.monotonic()
    r = d.request("POST", "/v1/audio/transcriptions", body=body,
                  headers=dict(AUTH, **{"Content-Type": ctype}), timeout=60)
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert r.json()["duration"] == pytest.approx(780)
    print("a %d-byte upload through %s: %.1f ms" % (len(body), front, took * 1000))


def test_client_leaves_mid_upload(st, pg, audio_mock):
    k = new_key(st)
    before = audio_mock.stats()["audio"]
    body, ctype = form([("model", "whisper-1")], file=make_wav(seconds=3))
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", st.port))
        s.sendall(("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                   % (k["key"], ctype, len(body))).encode() + body[:len(body) // 2])
        time.sleep(0.2)
        s.close()
    time.sleep(1)
    assert audio_mock.stats()["audio"] == before      # no upstream call
    r = upload(st, [("model", "whisper-1")], key=k["key"])   # the workers serve on
    assert r.status == 200, r
    spend_row(pg, r.headers["x-request-id"])
    time.sleep(0.5)
    assert rows_of(pg, k["token"]) == 1                # the cut uploads left none
    assert audio_mock.stats()["audio"] == before + 1


def test_speech_streams_binary_chunk_by_chunk(st, pg):
    text = "Hello there, this is the gateway speaking."
    conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=30)
    t0 = time.monotonic()
    conn.request("POST", "/v1/audio/speech", body=json.dumps(
        {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav",
         "speed": 1.0}), headers=dict(AUTH, **{"Content-Type": "application/json"}))
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("content-type") == "audio/wav"
    first = r.read(44)
    t_first = time.monotonic() - t0
    rest = r.read()
    t_end = time.monotonic() - t0
    conn.close()
    audio_bytes = first + rest
    # The mock sends 6 pieces 150 ms apart: the first bytes come at once,
    # long before the last (not buffered whole by the gateway or the front).
    total = SPEECH_DELAY_MS * (SPEECH_CHUNKS - 1) / 1000
    assert t_end >= total * 0.9
    assert t_first < t_end - total / 2, (t_first, t_end)
    print("speech first bytes %.3f s, end %.3f s" % (t_first, t_end))
    w = wave.open(io.BytesIO(audio_bytes))
    assert w.getframerate() == 16000 and w.getnframes() == SPEECH_CHUNKS * 1600
    s = spend_row(pg, r.getheader("x-request-id"))
    assert s["call_type"] == "aspeech" and s["status"] == 200
    assert s["model"] == "tts-1" and s["actual_model"] == "tts-kokoro"
    assert float(s["spend"]) == pytest.approx(len(text) * PER_CHAR)
    assert s["metadata"]["input_characters"] == len(text)
    assert float(r.getheader("x-litellm-response-cost")) == pytest.approx(len(text) * PER_CHAR)


def test_speech_holds_no_thread(make_stack, audio_mock):
    """One worker process of two threads: six speech answers at once all
    play out together (the event loop holds them), and a transcription
    is answered meanwhile."""
    one = make_stack("audio-one", audio_mock.url, [
        "gateway.processes=1", "gateway.threads=2", "aliases.tts-1=tts-kokoro"])
    socks = []
    body = json.dumps({"model": "tts-1", "input": "hi", "voice": "a"}).encode()
    t0 = time.monotonic()
    for _ in range(6):
        s = socket.create_connection(("127.0.0.1", one.port), timeout=30)
        s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Authorization: Bearer " + MASTER_KEY.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
        socks.append(s)
    time.sleep(0.2)
    r = upload(one, [("model", "whisper-1")])
    t_upload = time.monotonic() - t0
    assert r.status == 200, r
    sizes = []
    for s in socks:
        got = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        s.close()
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        sizes.append(len(got))
    t_all = time.monotonic() - t0
    total = SPEECH_DELAY_MS * (SPEECH_CHUNKS - 1) / 1000
    # On two threads, six answers of 0.75 s would take 2.25 s at least.
    assert t_all < 2 * total, t_all
    assert t_upload < total, t_upload
    assert min(sizes) > SPEECH_CHUNKS * 3200
    print("six speech answers on two threads: %.3f s; upload answered at %.3f s"
          % (t_all, t_upload))


def test_speech_slow_reader_pauses_its_upstream(st):
    """A client that stops reading a long speech answer (6.4 MB) pauses
    its upstream (the worker queues at most 256 KiB of it); read again, the
    answer comes whole."""
    n = 2000
    pauses0 = metric(st, "llmgw_slow_client_pauses_total")
    body = json.dumps({"model": "tts-kokoro@chunks=%d,chunk_delay_ms=0" % n,
                       "input": "long", "voice": "a", "response_format": "wav"}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", st.port))
    s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Authorization: Bearer " + MASTER_KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body)
    time.sleep(1.5)
    assert metric(st, "llmgw_slow_client_pauses_total") > pauses0
    s.settimeout(30)
    got = bytearray()
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        got += d
    s.close()
    head, _, chunked = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"audio/wav" in head.lower()
    data, i = bytearray(), 0
    if b"transfer-encoding: chunked" in head.lower():
        while True:
            j = chunked.index(b"\r\n", i)
            k = int(chunked[i:j].split(b";")[0], 16)
            if k == 0:
                break
            data += chunked[j + 2:j + 2 + k]
            i = j + 4 + k
    else:
        data = chunked
    data = bytes(data)
    assert len(data) == 44 + n * 3200
    w = wave.open(io.BytesIO(data))
    assert w.getnframes() == n * 1600


def test_speech_falls_back_and_relays_errors(st, pg):
    # The alias's first model answers 500: its next one plays.
    r = post(st, "/v1/audio/speech", {"model": "tts-fb", "input": "abc", "voice": "a",
                                      "response_format": "wav"})
    assert r.status == 200 and r.body[:4] == b"RIFF", r
    assert r.headers["x-litellm-model-id"] == "tts-kokoro"
    assert r.headers["x-litellm-attempted-fallbacks"] == "1"
    # The relay's answer headers (gw_relay_answer_headers): ms as "12.345".
    assert re.fullmatch(r"\d+\.\d{3}", r.headers["x-litellm-response-duration-ms"]), r
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["actual_model"] == "tts-kokoro" and float(s["spend"]) == pytest.approx(3 * PER_CHAR)
    # An upstream error is relayed in the OpenAI shape, its status kept.
    r = post(st, "/v1/audio/speech", {"model": "tts-x@fault=429", "input": "abc", "voice": "a"})
    assert_openai_error(r, 429)
    assert r.headers["retry-after"] == "7"  # the upstream's, passed on
    assert r.headers["x-litellm-model-id"] == "tts-x@fault=429"
    s = spend_row(pg, r.headers["x-request-id"])
    assert s["status"] == 429 and float(s["spend"]) == 0


def test_speech_input_checked(st, audio_mock):
    before = audio_mock.stats()["audio"]
    base = {"model": "tts-1", "input": "hi", "voice": "alloy"}
    for change, param in [({"input": "x" * 4097}, "input"), ({"input": ""}, "input"),
                          ({"input": 3}, "input"), ({"voice": None}, "voice"),
                          ({"model": None}, "model"), ({"response_format": "ogg"},
                                                       "response_format"),
                          ({"speed": 5}, "speed"), ({"speed": "fast"}, "speed")]:
        body = {k: v for k, v in dict(base, **change).items() if v is not None}
        err = assert_openai_error(post(st, "/v1/audio/speech", body), 400)
        assert err["param"] == param, (change, err)
    assert_openai_error(post(st, "/v1/audio/speech", "not json"), 400)
    assert audio_mock.stats()["audio"] == before
    # 4096 characters of two bytes each: characters are counted, not bytes.
    r = post(st, "/v1/audio/speech", dict(base, input="\u00e9" * 4096))
    assert r.status == 200 and r.body[:4] == b"RIFF"
    assert float(r.headers["x-litellm-response-cost"]) == pytest.approx(4096 * PER_CHAR)


def test_openai_sdk_audio(audio, base_dir):
    ensure_sdk()
    path = os.path.join(base_dir, "sdk-audio.wav")
    with open(path, "wb") as f:
        f.write(WAV)
    r = subprocess.run(["node", "audio.mjs"], cwd=SDK, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, API_KEY=MASTER_KEY, WAV=path,
                                             BASE_URL="http://127.0.0.1:%d" % audio.port))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["transcription"] == {
        "text": "mock transcription by whisper-large of %d bytes" % len(WAV),
        "model": "whisper-large"}
    assert out["verbose"]["duration"] == pytest.approx(1.5)
    assert out["verbose"]["task"] == "transcribe"
    assert out["text"].startswith("mock transcription by whisper-large")
    assert out["translation"]["text"].startswith("mock translation by whisper-large")
    assert out["speech"] == {"status": 200, "type": "audio/wav",
                             "bytes": 44 + SPEECH_CHUNKS * 3200, "riff": "RIFF",
                             "wave": "WAVE"}
    assert out["too_long"] == {"status": 400, "type": "invalid_request_error",
                               "param": "input"}


def test_model_info_shows_the_audio_units(audio):
    r = audio.get("/model/info", headers=AUTH)
    assert r.status == 200, r
    info = {d["model_name"]: d["model_info"] for d in r.json()["data"]}
    w = info["whisper-1"]
    assert w["mode"] == "audio_transcription" and w["id"] == "whisper-large"
    assert w["input_cost_per_second"] == pytest.approx(PER_SECOND)
    assert w["input_cost_per_request"] == pytest.approx(PER_REQUEST)
    t = info["tts-1"]
    assert t["mode"] == "audio_speech"
    assert t["input_cost_per_character"] == pytest.approx(PER_CHAR)
    assert "input_cost_per_second" not in t
    r = audio.get("/model_group/info", headers=AUTH)
    g = {d["model_group"]: d for d in r.json()["data"]}
    assert g["tts-1"]["mode"] == "audio_speech"
    assert g["tts-1"]["input_cost_per_character"] == pytest.approx(PER_CHAR)
