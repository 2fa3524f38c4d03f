#!/usr/bin/python3
"""Write the seed corpus of tests/fuzz/ into tests/fuzz/corpus/<target>/.

JSON documents are the string literals of the unit tests that begin with
'{' (adjacent literals joined, C escapes decoded); configs are the data
files of test_config; the rest is listed here, with issue #22's
reproducers. Files are named by the SHA-1 of their content, so running it
again adds nothing twice. Run from the top of the tree.
"""
import glob
import hashlib
import os
import re

OUT = "tests/fuzz/corpus"
LIT = re.compile(r'(?:"(?:[^"\\\n]|\\.)*"\s*)+')
ONE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def c_strings(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    for m in LIT.finditer(text):
        raw = "".join(ONE.findall(m.group(0)))
        try:
            yield raw.encode("latin-1", "backslashreplace").decode(
                "unicode_escape").encode("latin-1", "replace")
        except (UnicodeDecodeError, UnicodeEncodeError):
            continue


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


ISSUE22 = [
    b'{"usage":{"completion_tokens":6,"completion_tokens":""}}',
    b'{"usage":{"prompt\\u005ftokens":5}}',
    b'{"\\u0075sage":{"prompt_tokens":5}}',
    b'{"usage":{"a":' + b"[" * 63 + b"]" * 63 + b"}}",
]

json_docs = set(ISSUE22)
for f in ["tests/unit/test_json_util.c", "tests/unit/test_relay.c",
          "tests/unit/test_validate.c", "tests/unit/test_sse.c",
          "tests/unit/test_spend.c", "tests/unit/test_mgmt.c"]:
    if os.path.exists(f):
        for s in c_strings(f):
            if s.lstrip().startswith((b"{", b"[")) and len(s) < 8192:
                json_docs.add(s)
for d in sorted(json_docs):
    put("json_parse", d)
    put("json_usage", d)
    put("relay_body", d)

# Spooled spend lines: test_spoolcols' literals and shapes (one line, so
# that fuzz_spoolcols compares them with json-c), and a batch of three.
SPOOL = [
    b'{"request_id":"r1","api_key":"","key_alias":null,"model":"m",'
    b'"prompt_tokens":3,"spend":1.7e-05,"usage_estimated":false,'
    b'"start_time":"2026-01-01T00:00:00.250Z","status":200,'
    b'"metadata":{"a":[1,{"b":"}]\\""}]},"request_tags":["t"]}',
    b'{"request_id":"a\\"\\\\\\/\\n\\u0041","stream":true}',
]
for s in c_strings("tests/unit/test_spoolcols.c"):
    if s.startswith(b"{"):
        SPOOL.append(s)
for d in SPOOL:
    put("spoolcols", d)
put("spoolcols", b"\n".join(SPOOL[:3]) + b"\n")

# Request bodies as clients send them.
for d in [
    b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
    b'{"model":"gpt-4o","messages":[{"role":"system","content":"s"},'
    b'{"role":"user","content":[{"type":"text","text":"x"}]}],'
    b'"stream":true,"stream_options":{"include_usage":true},'
    b'"temperature":0.5,"max_tokens":10,"n":1,"tools":[{"type":"function",'
    b'"function":{"name":"f","parameters":{}}}],"metadata":{"a":"b"}}',
    b'{"model":"m","prompt":"say hi","max_tokens":5,"stream":false}',
    b'{"model":"m","prompt":["a","b"],"logprobs":2}',
    b'{"model":"text-embedding-3-small","input":"hello"}',
    b'{"model":"e","input":[[1,2,3]],"encoding_format":"float",'
    b'"dimensions":8}',
]:
    put("relay_body", d)
    put("json_parse", d)

# An answer with usage, streamed and not.
answer = (b'{"id":"c","object":"chat.completion","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"hi"},'
          b'"finish_reason":"stop"}],"usage":{"prompt_tokens":12,'
          b'"completion_tokens":3,"total_tokens":15}}')
put("json_usage", answer)
put("json_parse", answer)

# SSE: 8 bytes of split seed, then the stream.
chunk = (b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}]}')
usage = b'data: {"choices":[],"usage":{"prompt_tokens":1,"total_tokens":2}}'
streams = [
    chunk + b"\n\n" + usage + b"\n\n" + b"data: [DONE]\n\n",
    chunk + b"\r\n\r\n" + b": keep-alive\r\n\r\n" + b"data: [DONE]\r\n\r\n",
    b"event: message\nid: 1\n" + chunk + b"\n\r\n" + b"data: [DONE] \n\n",
    b"data: x\n\ndata: y\n\n\n\n\r\n\r\ndata: z",
    b"data: " + b"x" * 70000 + b"\n\n" + usage + b"\n\n",  # one long event
]
for i, s in enumerate(streams):
    for seed in [b"\x00" * 8, b"\x01\x23\x45\x67\x89\xab\xcd\xef"]:
        put("sse", seed + s)

# Config: the unit tests' data files and the documented example.
for f in sorted(glob.glob("tests/unit/data/config/*.conf")) + [
        "conf/llmgw.conf"]:
    if os.path.exists(f):
        put("config", open(f, "rb").read())
# Every *_file key on the two files beside the target's config name.
for empty in [b"master_key", b"secret_key"]:
    put("config", (b"[upstream]\napi_key_file = master.key.txt\n[auth]\n"
        b"master_key_file = master.key.txt\n"
        b"jwt_secret_file = master.key.txt\n"
        b"jwt_public_key_file = master.key.txt\n[langfuse]\n"
        b"secret_key_file = master.key.txt\n").replace(
            empty + b"_file = master.key.txt", empty + b"_file = empty"))

# Scalars: first byte 0 duration, 1 date, 2/3 url decode (then outlen).
for s in [b"30s", b"15m", b"1h", b"30d", b"2w", b"1mo", b"0s", b"1234567d",
          b"1x", b"001s", b"-1d"]:
    put("scalars", b"\x00" + s)
for s in [b"2024-02-29", b"2023-02-29", b"1970-01-01", b"2024-13-01",
          b"2024-04-31", b"1969-12-31", b"9999-12-31", b"2024-1-01"]:
    put("scalars", b"\x01" + s)
for s in [b"a%20b+c", b"%zz%4", b"%00", b"%41%42%43", b"caf%C3%A9+x"]:
    put("scalars", b"\x02\x40" + s)
    put("scalars", b"\x03\x04" + s)

# FastCGI params: first byte the query output length, then NAME=VALUE lines.
for s in [
    b"REQUEST_METHOD=GET\nREQUEST_URI=/spend/logs?start_date=2024-01-01"
    b"&end_date=2024-02-01&api_key=sk-1\nHTTP_AUTHORIZATION=Bearer sk-x",
    b"REQUEST_METHOD=POST\nREQUEST_URI=/v1/chat/completions\n"
    b"CONTENT_TYPE=application/json\nCONTENT_LENGTH=12\n"
    b"HTTP_X_LITELLM_API_KEY=sk-abc\nHTTP_X_REQUEST_ID=r1",
    b"REQUEST_URI=/key/info?key=a%20b&key=2&x&=y&&model=gpt%2D4+o\n"
    b"HTTP_AUTHORIZATION=Basic x\nHTTP_AUTHORIZATION=second",
    b"REQUEST_URI=?\nNOEQUALS\n=\nHTTP_=v\nX-Very-Long-Header-" + b"a" * 200,
]:
    put("fcgi", b"\x40" + s)
    put("fcgi", b"\x01" + s)

# JWT: mode byte, then a token (bit 0 clear) or claims to sign (set).
put("jwt", b"\x00eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig")
put("jwt", b"\x00eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.")
put("jwt", b"\x00not-a-jwt")
for claims in [
    b'{"sub":"u1","team_id":"t1","models":["gpt-4","x"],"exp":4102444800}',
    b'{"sub":"ops","role":"proxy_admin"}',
    b'{"sub":42,"exp":1,"nbf":1}',
    b'{"role":"user"}',
    b'{"sub":"u","iss":"fuzz-iss","aud":["a","fuzz-aud"]}',
    b'{"sub":"u","iss":"fuzz-iss","aud":"fuzz-aud","nbf":4102444800}',
]:
    for mode in [1, 3, 5, 7, 17]:
        put("jwt", bytes([mode]) + claims)
put("jwt", b'\x09{"alg":"HS256","typ":"JWT"}\n{"sub":"u"}')
put("jwt", b'\x09{"alg":"HS256","alg":"none"}\n{"sub":"u"}')

# Multipart: a Content-Type line, then the body (test_multipart's forms).
MP_FILE = (b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
           b"whisper-1\r\n--XyZ\r\nContent-Disposition: form-data; "
           b"name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav"
           b"\r\n\r\nRIFF\x24\x00\x00\x00WAVEfmt \r\n--XyY\r\n\r\n--XyZ\r\n"
           b"Content-Disposition: form-data; name=response_format\r\n\r\n"
           b"verbose_json\r\n--XyZ--\r\n")
for ct, body in [
        (b"multipart/form-data; boundary=XyZ", MP_FILE),
        (b"multipart/form-data; boundary=\"XyZ\"", MP_FILE),
        (b"Multipart/Form-Data; charset=x; BOUNDARY=XyZ", b"preamble\r\n" + MP_FILE),
        (b"multipart/form-data; boundary=b",
         b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b  \r\n"
         b"Content-Disposition: form-data; name=b\r\n\r\n2\r\n--b--"),
        (b"multipart/form-data; boundary=b",
         b"--b\r\nContent-Disposition: form-data; name=a; name=c\r\n\r\nx\r\n--b--"),
        (b"multipart/form-data; boundary=b",
         b"--b\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--b--"),
        (b"multipart/form-data; boundary=a; boundary=b", b"--b\r\n\r\n--b--"),
        (b"application/json", b"{}"),
]:
    put("multipart", ct + b"\n" + body)
