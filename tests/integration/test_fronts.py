"""What the web front itself answers, behind lighttpd and behind Apache
(deploy/lighttpd/llmgw.conf, deploy/apache/llmgw.conf): its own errors in
the OpenAI shape, its body limit, and chunked request bodies. The
front-facing tests of the other modules run behind both too."""
import http.client
import json
import socket

import pytest

from conftest import AUTH, MASTER_KEY, assert_openai_error

MSGS = [{"role": "user", "content": "hello there friend"}]
FRONT_LIMIT = 16 * 1024 * 1024  # lighttpd's max-request-size, Apache's LimitRequestBody


@pytest.fixture(scope="module")
def wide(make_stack, mock):
    """llmgw takes 32 MiB, more than either front: the front's 413 shows."""
    return make_stack("fronts", mock.url, ["gateway.max_body_bytes=33554432"])


@pytest.fixture
def front_wide(wide, front, twin):
    return twin(wide, front)


def raw(port, head, body=b"", timeout=20):
    """Send head (and body, as far as the server takes it); the answer."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        c.sendall(head)
        for i in range(0, len(body), 1 << 20):
            c.sendall(body[i:i + (1 << 20)])
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            out += b
    except ConnectionResetError:
        pass
    c.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    return head.decode(), rest


def dechunk(head, body):
    if "transfer-encoding: chunked" not in head.lower():
        return body
    out = b""
    while body:
        n, _, body = body.partition(b"\r\n")
        n = int(n, 16)
        if n == 0:
            break
        out, body = out + body[:n], body[n + 2:]
    return out


def test_the_fronts_own_404_is_openai_shaped(front_wide):
    # An encoded slash: Apache refuses it itself (AllowEncodedSlashes Off),
    # lighttpd hands it to llmgw, which has no such route.
    r = front_wide.get("/v1/models%2Fgpt-4", headers=AUTH)
    assert_openai_error(r, 404, "not_found_error")


def test_the_fronts_own_413_above_its_body_limit(front_wide, mock):
    mock.reset()
    n = FRONT_LIMIT + 1024 * 1024
    head, body = raw(front_wide.port,
                     b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % n, b" " * n)
    assert head.startswith("HTTP/1.1 413"), (head, body)
    assert "content-type: application/json" in head.lower(), head
    err = json.loads(dechunk(head, body))["error"]
    assert err["code"] == "413" and err["type"] == "request_too_large", err
    assert mock.stats()["chat"] == 0
    # Below the front's limit llmgw reads it all (32 MiB cap here).
    big = {"model": "gpt-4", "messages": [{"role": "user", "content": "word " * 2000000}]}
    r = front_wide.request("POST", "/v1/chat/completions", body=big, headers=AUTH)
    assert r.status == 200, r
    assert r.json()["usage"]["prompt_tokens"] == 2000000


def test_a_chunked_request_body_is_read_whole(front_wide):
    body = json.dumps({"model": "gpt-4", "messages": [
        {"role": "user", "content": "word " * 30000}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", front_wide.port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions",
                     body=(body[i:i + 4096] for i in range(0, len(body), 4096)),
                     headers=dict(AUTH, **{"Content-Type": "application/json"}),
                     encode_chunked=True)
        r = conn.getresponse()
        out = r.read()
    finally:
        conn.close()
    assert r.status == 200, out
    assert json.loads(out)["usage"]["prompt_tokens"] == 30000
