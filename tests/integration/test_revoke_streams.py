"""A key blocked, deleted or expired (or its team blocked) mid-stream: its
open streams end within 1 s of the change, through lighttpd, with a last
SSE error event, the upstream transfer aborted, and a spend row for what
was sent. Other keys' streams, and a change that leaves a key good, do not
end anything."""
import datetime
import http.client
import json
import threading
import time

import pytest

from conftest import (AUTH, assert_openai_error, bearer, new_key, post,
                      spend_row)

MSGS = [{"role": "user", "content": "hello there friend"}]  # 18 chars: 5 estimated
SLOW = "qwen3-30b-a3b@chunks=100,chunk_delay_ms=100"  # 10 s of chunks
LIMIT_S = 1.0
MEASURED = {}  # case: seconds from the change to the stream's end


@pytest.fixture(scope="module")
def rv(make_stack, mock):
    return make_stack("revoke", mock.url, ["gateway.threads=16"])


class Stream:
    """A chat stream read on its own thread; events kept with their times."""

    def __init__(self, stack, key, model=SLOW):
        self.conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        body = json.dumps({"model": model, "messages": MSGS, "stream": True})
        self.conn.request("POST", "/v1/chat/completions", body=body,
                          headers={"Authorization": "Bearer " + key,
                                   "Content-Type": "application/json"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.rid = self.resp.getheader("x-request-id")
        self.events = []  # (monotonic time, event text)
        self.ended = None  # monotonic time of the end of the body
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        buf = b""
        try:
            while True:
                b = self.resp.read1(65536)
                if not b:
                    break
                buf += b
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    self.events.append((time.monotonic(), ev.decode()))
        except (OSError, http.client.HTTPException):
            pass
        self.ended = time.monotonic()
        self.conn.close()

    def wait_events(self, n, timeout=10):
        deadline = time.time() + timeout
        while len(self.events) < n and time.time() < deadline:
            time.sleep(0.02)
        assert len(self.events) >= n, self.events

    def join(self, timeout=30):
        self.t.join(timeout)
        assert self.ended is not None, "the stream did not end"

    def data(self):
        return [e[len("data: "):] for _, e in self.events if e.startswith("data: ")]


def aborted(mock):
    return mock.stats()["streams_aborted"]


def check_ended(pg, mock, s, t_change, case, etype, words, err_type, aborted_before):
    s.join()
    took = s.ended - t_change
    MEASURED[case] = took
    print("%s: stream ended %.3f s after the change" % (case, took))
    assert took < LIMIT_S, "%s: %.3f s" % (case, took)
    data = s.data()
    assert data[-1] != "[DONE]"
    err = json.loads(data[-1])["error"]
    assert err["type"] == etype and words in err["message"], err
    assert str(err["code"]) == "401"
    # Everything before it was the model's chunks.
    sent = data[:-1]
    assert len(sent) >= 3 and all(json.loads(d)["object"] == "chat.completion.chunk" for d in sent)
    # The upstream transfer was cut (the mock saw its client go).
    deadline = time.time() + 5
    while aborted(mock) <= aborted_before and time.time() < deadline:
        time.sleep(0.05)
    assert aborted(mock) == aborted_before + 1
    row = spend_row(pg, s.rid)
    assert row["error_type"] == err_type and row["stream"] is True
    assert row["usage_estimated"] is True and row["client_disconnected"] is False
    # One token per chunk relayed: exactly what the client got.
    assert row["completion_tokens"] == len(sent)
    assert row["prompt_tokens"] == 5
    return row


def test_blocked_key_stream_ends_others_go_on(rv, pg, mock):
    a = new_key(rv, key_alias="rv-block")
    b = new_key(rv, key_alias="rv-other")
    sa = Stream(rv, a["key"])
    sb = Stream(rv, b["key"], "qwen3-30b-a3b@chunks=60,chunk_delay_ms=100")
    sa.wait_events(4)
    sb.wait_events(4)
    before = aborted(mock)
    # A change that leaves the other key good must not end its stream.
    assert post(rv, "/key/update", {"key": b["token"], "key_alias": "rv-other-2"}).status == 200
    t0 = time.monotonic()
    assert post(rv, "/key/block", {"key": a["token"]}).status == 200
    check_ended(pg, mock, sa, t0, "key_block", "auth_error", "Key is blocked",
                "key_revoked", before)
    # The other stream runs to its end.
    assert sb.ended is None
    sb.join()
    assert sb.data()[-1] == "[DONE]"
    assert sum(1 for d in sb.data() if '"content":"tok' in d) == 60
    # And the blocked key is refused from now on.
    r = post(rv, "/v1/chat/completions", {"model": "qwen3-30b-a3b", "messages": MSGS},
             {"Authorization": "Bearer " + a["key"]})
    assert r.status == 401


def test_deleted_key_stream_ends(rv, pg, mock):
    k = new_key(rv, key_alias="rv-delete")
    s = Stream(rv, k["key"])
    s.wait_events(4)
    before = aborted(mock)
    t0 = time.monotonic()
    assert post(rv, "/key/delete", {"keys": [k["token"]]}).status == 200
    check_ended(pg, mock, s, t0, "key_delete", "auth_error", "the key was deleted",
                "key_revoked", before)


def test_regenerated_key_stream_ends(rv, pg, mock):
    k = new_key(rv, key_alias="rv-regen")
    s = Stream(rv, k["key"])
    s.wait_events(4)
    before = aborted(mock)
    t0 = time.monotonic()
    assert post(rv, "/key/regenerate", {"key": k["token"]}).status == 200
    check_ended(pg, mock, s, t0, "key_regenerate", "auth_error", "deleted or regenerated",
                "key_revoked", before)


def test_blocked_team_stream_ends(rv, pg, mock):
    assert post(rv, "/team/new", {"team_id": "rv-team"}).status == 200
    k = new_key(rv, team_id="rv-team")
    s = Stream(rv, k["key"])
    s.wait_events(4)
    before = aborted(mock)
    t0 = time.monotonic()
    assert post(rv, "/team/update", {"team_id": "rv-team", "blocked": True}).status == 200
    check_ended(pg, mock, s, t0, "team_block", "auth_error", "Team is blocked",
                "key_revoked", before)


def expiry_of(k):
    e = k["expires"].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(e).timestamp()


def test_key_expiring_mid_stream_ends(rv, pg, mock):
    k = new_key(rv, duration="3s")
    s = Stream(rv, k["key"])
    s.wait_events(4)
    before = aborted(mock)
    exp = expiry_of(k)
    # The change is the clock passing the expiry: monotonic time then.
    t_exp = time.monotonic() + (exp - time.time())
    assert t_exp > time.monotonic(), "the stream began after the expiry"
    check_ended(pg, mock, s, t_exp, "expiry", "expired_key", "Expired Key",
                "key_expired", before)
    assert s.ended >= t_exp - 0.05  # not before it


def test_expiry_moved_earlier_mid_stream_ends(rv, pg, mock):
    k = new_key(rv, duration="1h")
    s = Stream(rv, k["key"])
    s.wait_events(4)
    before = aborted(mock)
    # The new expiry comes through the notification's re-read.
    assert post(rv, "/key/update", {"key": k["token"], "duration": "2s"}).status == 200
    info = rv.get("/key/info?key=" + k["token"], headers=AUTH).json()
    exp = expiry_of(info)
    assert exp < expiry_of(k) - 3000
    t_exp = time.monotonic() + (exp - time.time())
    assert t_exp > time.monotonic(), "the update took longer than 2 s"
    check_ended(pg, mock, s, t_exp, "expiry_moved", "expired_key", "Expired Key",
                "key_expired", before)


def test_stream_waiting_for_its_first_byte_is_refused(rv, pg, mock):
    """Blocked before the upstream answered (a cold model load): no stream
    began, so the answer is the 401 itself."""
    k = new_key(rv, key_alias="rv-wait")
    out = {}
    chats = mock.stats()["chat"]

    def go():
        out["r"] = post(rv, "/v1/chat/completions",
                        {"model": "qwen3-30b-a3b@delay_ms=8000", "messages": MSGS,
                         "stream": True}, bearer(k["key"]))
        out["t"] = time.monotonic()

    th = threading.Thread(target=go, daemon=True)
    th.start()
    deadline = time.time() + 10
    while mock.stats()["chat"] == chats and time.time() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    assert post(rv, "/key/block", {"key": k["token"]}).status == 200
    th.join(15)
    took = out["t"] - t0
    MEASURED["key_block_before_head"] = took
    assert took < LIMIT_S, took
    err = assert_openai_error(out["r"], 401, "auth_error")
    assert "Key is blocked" in err["message"]
    row = spend_row(pg, out["r"].headers["x-request-id"])
    assert row["status"] == 401 and row["error_type"] == "key_revoked"
    assert row["completion_tokens"] == 0


def test_measured(capsys):
    with capsys.disabled():
        print("\nrevocation, seconds from the change to the stream's end:",
              ", ".join("%s %.3f" % kv for kv in sorted(MEASURED.items())))
