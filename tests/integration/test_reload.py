"""What SIGHUP applies (README, "What a reload (SIGHUP) applies"): a
restart-only setting that changed is named in one warn line per setting."""
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
