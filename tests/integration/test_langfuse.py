"""Langfuse export end to end: the relay records input and output beside
the spend row, bin/llmgw-langfuse-export ships them to the Langfuse
stand-in (tests/langfuse) in OTLP or legacy form, once each."""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import AUTH, MASTER_KEY, TREE

sys.path.insert(0, os.path.join(TREE, "tests", "langfuse"))
from langfuse_standin import StandIn  # noqa: E402

EXPORT = os.path.join(TREE, "bin", "llmgw-langfuse-export")
PK, SK = "pk-lf-test", "sk-lf-test"
PROMPT = "hello there friend"
MSGS = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def lf():
    si = StandIn(PK, SK).start()
    yield si
    si.stop()


def lf_stack(make_stack, mock, lf, base_dir, name, record="full"):
    sk = os.path.join(base_dir, "lf.secret")
    open(sk, "w").write(SK + "\n")
    return make_stack(name, mock.url, [
        "langfuse.enabled=on", "langfuse.host=" + lf.url,
        "langfuse.public_key=" + PK, "langfuse.secret_key_file=" + sk,
        "langfuse.record=" + record, "langfuse.batch_size=4",
        "prices.qwen3-30b-a3b=1.5 2.5",
    ])


@pytest.fixture(scope="module")
def stack(make_stack, mock, lf, base_dir):
    return lf_stack(make_stack, mock, lf, base_dir, "lf")


def export(stack, fmt="otel", **env):
    e = dict(os.environ, LLMGW_LANGFUSE_FORMAT=fmt, LLMGW_MASTER_KEY=MASTER_KEY, **env)
    r = subprocess.run([EXPORT, "-c", stack.conf()], capture_output=True,
                       text=True, timeout=120, env=e)
    return r.returncode, r.stdout.strip(), r.stderr


def drain(stack, lf):
    """Ship whatever earlier tests left, then start from a clean stand-in."""
    lf.reset()
    export(stack)
    lf.reset()


def send(stack, n, pg, **body):
    rids = []
    for i in range(n):
        b = dict({"model": "gpt-4", "messages": MSGS}, **body)
        r = stack.request("POST", "/v1/chat/completions", body=b, headers=AUTH)
        rids.append(r.headers["x-request-id"])
    ids = "','".join(rids)
    deadline = time.time() + 10
    while time.time() < deadline:
        if pg.psql("SELECT count(*) FROM request_payloads WHERE request_id IN ('%s')" % ids) == str(n):
            break
        time.sleep(0.05)
    return rids


def ids_of(rid):
    h = hashlib.sha256(rid.encode()).hexdigest()
    return h[:32], h[32:48]


def test_otel_ships_each_request_as_a_generation(stack, lf, pg):
    drain(stack, lf)
    ok = send(stack, 3, pg)
    streamed = send(stack, 1, pg, stream=True)
    failed = send(stack, 1, pg, model="m@fault=500")
    rc, out, err = export(stack)
    assert rc == 0, (out, err)
    assert "sent=5 failed=0" in out and "format=otel" in out
    st = lf.snapshot()
    assert st["rejected"] == [], st["rejected"]
    assert len(st["spans"]) == 5
    for rid in ok + streamed:
        tid, sid = ids_of(rid)
        sp = st["spans"]["%s:%s" % (tid, sid)]
        a, v = sp["attributes"], sp["langfuse"]
        assert a["langfuse.observation.type"] == "generation"
        assert a["langfuse.observation.model.name"] == "qwen3-30b-a3b"
        assert a["gen_ai.request.model"] == "gpt-4"
        assert json.loads(a["langfuse.observation.usage_details"]) == {"input": 3, "output": 5, "total": 8}
        assert json.loads(a["langfuse.observation.cost_details"])["total"] == pytest.approx(17e-6)
        assert json.loads(a["langfuse.observation.input"]) == MSGS
        out_ = json.loads(a["langfuse.observation.output"])
        assert out_["content"] == "tok1 tok2 tok3 tok4 tok5 " and out_["finish_reason"] == "stop"
        assert a["langfuse.observation.level"] == "DEFAULT"
        assert json.loads(a["langfuse.observation.metadata"])["request_id"] == rid
        assert sp["upserts"] == 1
    tid, sid = ids_of(streamed[0])
    assert "langfuse.observation.completion_start_time" in st["spans"]["%s:%s" % (tid, sid)]["attributes"]
    tid, sid = ids_of(failed[0])
    sp = st["spans"]["%s:%s" % (tid, sid)]
    assert sp["attributes"]["langfuse.observation.level"] == "ERROR"
    assert "500" in sp["attributes"]["langfuse.observation.status_message"]
    assert sp["status"]["code"] == 2
    # A second run has nothing left to send.
    rc, out, _ = export(stack)
    assert rc == 0 and "sent=0 failed=0" in out
    assert len(lf.snapshot()["spans"]) == 5


def test_legacy_batch_ingestion(stack, lf, pg):
    drain(stack, lf)
    rids = send(stack, 6, pg)  # two batches (batch_size 4)
    rc, out, err = export(stack, "legacy")
    assert rc == 0, (out, err)
    assert "sent=6 failed=0" in out and "format=legacy" in out
    st = lf.snapshot()
    assert st["rejected"] == [] and st["duplicates"] == 0
    assert len(st["traces"]) == 6 and len(st["observations"]) == 6
    for rid in rids:
        t = st["traces"][rid]["body"]
        g = st["observations"][rid + "-gen"]
        assert st["observations"][rid + "-gen"]["type"] == "GENERATION"
        assert t["input"] == MSGS and t["name"] == "chat"
        gb = g["body"]
        assert gb["traceId"] == rid and gb["model"] == "qwen3-30b-a3b"
        assert gb["usageDetails"] == {"input": 3, "output": 5, "total": 8}
        assert gb["output"]["content"] == "tok1 tok2 tok3 tok4 tok5 "
        assert gb["metadata"]["requested_model"] == "gpt-4"
        assert gb["level"] == "DEFAULT"


@pytest.mark.parametrize("fmt", ["legacy", "otel"])
def test_half_failing_then_ok_ships_each_once(stack, lf, pg, fmt):
    drain(stack, lf)
    rids = send(stack, 8, pg)
    lf.set_mode("fail_half")
    rc, out, _ = export(stack, fmt)
    assert rc == 1 and "failed=" in out and "failed=0" not in out
    lf.set_mode("ok")
    rc, out, _ = export(stack, fmt)
    assert rc == 0, out
    st = lf.snapshot()
    assert st["rejected"] == []
    if fmt == "legacy":
        assert st["duplicates"] == 0
        assert len(st["events"]) == 16
        assert sorted(st["traces"]) == sorted(rids)
        assert all(o["upserts"] == 1 for o in st["observations"].values())
        assert all(t["upserts"] == 1 for t in st["traces"].values())
    else:
        assert len(st["spans"]) == 8
        assert all(s["upserts"] == 1 for s in st["spans"].values())
    assert pg.psql("SELECT count(*) FROM request_payloads WHERE exported_at IS NULL "
                   "AND request_id IN ('%s')" % "','".join(rids)) == "0"


def test_down_loses_nothing_and_catches_up(stack, lf, pg):
    drain(stack, lf)
    rids = send(stack, 3, pg)
    lf.set_mode("down")
    rc, out, err = export(stack)
    assert rc == 1 and "error=langfuse-unreachable" in out
    assert pg.psql("SELECT count(*) FROM request_payloads WHERE exported_at IS NULL "
                   "AND request_id IN ('%s')" % "','".join(rids)) == "3"
    assert float(out.split("lag_s=")[1].split()[0]) > 0
    m = stack.get("/metrics").body.decode()
    lag = [l for l in m.splitlines() if l.startswith("llmgw_langfuse_export_lag_seconds ")]
    assert lag and float(lag[0].split()[1]) > 0
    lf.set_mode("ok")
    rc, out, _ = export(stack)
    assert rc == 0 and "sent=3" in out
    assert len(lf.snapshot()["spans"]) == 3


def test_rate_limited_backs_off(stack, lf, pg):
    drain(stack, lf)
    send(stack, 1, pg)
    lf.set_mode("rate_limit", fail_times=1)
    rc, out, err = export(stack)
    assert rc == 0 and "sent=1" in out, (out, err)
    assert "Too Many Requests" in err


def test_two_runs_at_once_send_no_duplicate(stack, lf, pg):
    drain(stack, lf)
    rids = send(stack, 6, pg)
    lf.set_mode("slow", delay_s=0.2)
    outs = []

    def run():
        outs.append(export(stack))

    ts = [threading.Thread(target=run) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(rc == 0 for rc, _, _ in outs), outs
    assert any("another run holds the lock" in o for _, o, _ in outs), outs
    st = lf.snapshot()
    assert len(st["spans"]) == 6
    assert all(s["upserts"] == 1 for s in st["spans"].values())


def test_redacted_mode_sends_no_prompt_text(make_stack, mock, lf, base_dir, pg):
    s = lf_stack(make_stack, mock, lf, base_dir, "lf-redacted", "redacted")
    drain(s, lf)
    send(s, 2, pg)
    send(s, 1, pg, stream=True)
    rc, out, _ = export(s, "legacy")
    assert rc == 0, out
    blob = json.dumps(lf.snapshot())
    assert PROMPT not in blob and "tok1" not in blob
    st = lf.snapshot()
    assert len(st["traces"]) == 3
    t = next(iter(st["traces"].values()))["body"]
    assert t["input"] == [{"role": "user", "chars": len(PROMPT)}]
    assert t["output"]["chars"] == len("tok1 tok2 tok3 tok4 tok5 ")
    s.stop()


def test_huge_request_is_truncated_not_blocking(stack, lf, pg):
    drain(stack, lf)
    big = [{"role": "user", "content": "x" * 600000}]
    rid = send(stack, 1, pg, messages=big)[0]
    rc, out, _ = export(stack, "legacy")
    assert rc == 0 and "sent=1" in out
    t = lf.snapshot()["traces"][rid]["body"]
    assert t["input"]["truncated"] is True and "too large" in t["input"]["marker"]


def test_retention_prunes_exported_rows(stack, lf, pg):
    drain(stack, lf)
    send(stack, 2, pg)
    rc, out, _ = export(stack, LLMGW_LANGFUSE_RETENTION_DAYS="0")
    assert rc == 0 and "pruned=" in out and "pruned=0" not in out
    assert pg.psql("SELECT count(*) FROM request_payloads WHERE exported_at IS NOT NULL") == "0"


def test_disabled_is_a_quiet_noop(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[database]\nconninfo = host=/nonexistent\n")
    r = subprocess.run([EXPORT, "-c", str(conf)], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE")})
    assert r.returncode == 0 and "disabled" in r.stdout
