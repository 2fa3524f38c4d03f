"""What SIGHUP applies (README, "What a reload (SIGHUP) applies"): a
restart-only setting that changed is named in one warn line per setting;
the spend writer takes its settings and a new database at its next cycle;
the auth listener follows a new database."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import TREE, bearer, new_key, post

MSGS = [{"role": "user", "content": "hello there friend"}]  # 3 prompt tokens
PRICE_IN, PRICE_OUT = 1.5, 2.5
ONE = (3 * PRICE_IN + 5 * PRICE_OUT) / 1e6  # the cost of one chat


def set_conf(stack, section, key, value):
    """Set section.key in the stack's rendered llmgw.conf."""
    path = stack.conf()
    out, cur, done = [], None, False
    for line in open(path).read().splitlines():
        m = re.match(r"\s*\[([^]]+)\]\s*$", line)
        if m:
            if cur == section and not done:
                out.append("%s = %s" % (key, value))
                done = True
            cur = m.group(1)
        elif cur == section and re.match(r"\s*%s\s*=" % re.escape(key), line):
            line, done = "%s = %s" % (key, value), True
        out.append(line)
    if not done:
        out += ["[%s]" % section, "%s = %s" % (key, value)]
    open(path, "w").write("\n".join(out) + "\n")


def reload(stack, *families):
    """SIGHUP each family's supervisor; wait for its workers to reload."""
    marks = {f: stack.log(f).count("configuration reloaded") for f in families}
    for f in families:
        os.kill(stack.pid(f), signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        # The supervisor and its two workers.
        if all(stack.log(f).count("configuration reloaded") >= marks[f] + 3
               for f in families):
            return
        time.sleep(0.05)
    raise AssertionError("no reload seen in %s" % (families,))


def chat(stack, key):
    return post(stack, "/v1/chat/completions",
                {"model": "gpt-4", "messages": MSGS}, bearer(key))


def fresh_db(pg, name):
    pg.createdb(name)
    r = subprocess.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d",
                        pg.conninfo(name), "-m", os.path.join(TREE, "migrations")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def wait_for(fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def test_restart_only_settings_are_named(make_stack, mock):
    s = make_stack("reload-restart", mock.url)
    set_conf(s, "gateway", "threads", "4")
    set_conf(s, "spend", "spool_dir", os.path.join(s.var, "spool2"))
    # Applied by the reload: no warning for these.
    set_conf(s, "upstream", "stream_keepalive_s", "7")
    set_conf(s, "spend", "flush_ms", "150")
    reload(s, "chat")
    log = s.log("chat")
    pids = set(re.findall(r"pid=(\d+) mod=config msg=\"configuration reloaded", log))
    assert len(pids) == 3  # the supervisor and both workers
    for key in ("[gateway] threads", "[spend] spool_dir"):
        lines = [l for l in log.splitlines()
                 if 'msg="reload: %s changed; takes effect after a restart"' % key in l]
        # One line per setting in every process that reloaded.
        assert sorted(re.search(r"pid=(\d+)", l).group(1) for l in lines) == sorted(pids), lines
        assert all(" lvl=warn prog=chat " in l and " mod=config " in l for l in lines)
    assert "stream_keepalive_s changed" not in log
    assert "flush_ms changed" not in log
    # The workers run on, with the spool they started with.
    k = new_key(s)
    assert chat(s, k["key"]).status == 200
    assert not os.path.exists(os.path.join(s.var, "spool2"))
    s.stop()


def test_writer_takes_reloaded_settings(make_stack, mock, pg):
    """budget_reset_check_s 3600 -> 1: a due reset runs within seconds of
    the reload, not within the hour (its own database: every stack's writer
    resets the budgets of the database it ships to)."""
    fresh_db(pg, "llmgw_reload")
    s = make_stack("reload-writer", mock.url, [
        "prices.qwen3-30b-a3b=%s %s" % (PRICE_IN, PRICE_OUT),
        "spend.budget_reset_check_s=3600",
    ], db="llmgw_reload")
    k = new_key(s, max_budget=ONE * 0.5, budget_duration="1s")
    assert chat(s, k["key"]).status == 200
    q = lambda sql: pg.psql(sql, db="llmgw_reload")
    assert wait_for(lambda: float(q("SELECT spend FROM keys WHERE token = '%s'" % k["token"])) > 0)
    time.sleep(2)  # due for a second, but the writers look hourly
    resets = "SELECT count(*) FROM budget_resets WHERE entity_id = '%s'" % k["token"]
    assert q(resets) == "0"
    set_conf(s, "spend", "budget_reset_check_s", "1")
    reload(s, "chat", "embeddings")
    # The first requests under the new file hand it to the writers.
    for _ in range(4):
        chat(s, k["key"])
    assert wait_for(lambda: q(resets) != "0"), s.log("chat")[-2000:]
    assert float(q("SELECT spend_before FROM budget_resets WHERE entity_id = '%s' "
                   "ORDER BY reset_at LIMIT 1" % k["token"])) == pytest.approx(ONE, rel=1e-9)
    assert "writer took the reloaded configuration: flush_ms=200 batch_rows=500 " \
        "budget_reset_check_s=1" in s.log("chat")
    s.stop()


def test_writer_and_listener_follow_a_new_database(make_stack, mock, pg):
    """[database] conninfo A -> B: rows ship to B, and the key cache hears
    B's notifications (a key blocked in B is refused at once, although the
    cache would keep it for an hour)."""
    fresh_db(pg, "llmgw_reload_a")
    fresh_db(pg, "llmgw_reload_b")
    s = make_stack("reload-db", mock.url, ["auth.key_cache_ttl_s=3600"], db="llmgw_reload_a")
    a = new_key(s)
    assert chat(s, a["key"]).status == 200
    set_conf(s, "database", "conninfo", pg.conninfo("llmgw_reload_b"))
    reload(s, "chat", "embeddings", "keys")
    b = new_key(s)
    assert pg.psql("SELECT count(*) FROM keys", db="llmgw_reload_b") == "1"
    # Both chat workers cache the key (and hand the new file to writers).
    rids = []
    for _ in range(8):
        r = chat(s, b["key"])
        assert r.status == 200, r
        rids.append(r.headers["x-request-id"])
    ids = "','".join(rids)
    rows = "SELECT count(*) FROM spend_logs WHERE request_id IN ('%s')" % ids
    assert wait_for(lambda: pg.psql(rows, db="llmgw_reload_b") == "8")
    assert pg.psql(rows, db="llmgw_reload_a") == "0"
    # Blocked in B: every worker's listener hears it.
    assert post(s, "/key/block", {"key": b["key"]}).status == 200
    time.sleep(0.5)
    for _ in range(6):
        assert chat(s, b["key"]).status == 401
    # A's key is not in B.
    assert chat(s, a["key"]).status == 401
    s.stop()
