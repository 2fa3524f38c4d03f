"""The workers' allocator settings (issue 16, soak): a family starts itself
once more with GLIBC_TUNABLES (lib/server.c, GW_TUNABLES) so that glibc's
per-thread cache holds small blocks only, unless the operator tunes the
allocator in the environment; then it is left as it is."""
import os
import signal
import subprocess
import time

from conftest import TREE


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(kv.split("=", 1) for kv in f.read().decode().split("\0") if "=" in kv)


def start_health(stack, tmp_path, env):
    """llmgw-health on its own socket with stack's configuration; its
    supervisor and workers' environments, then stopped."""
    sock = str(tmp_path / "health.sock")
    p = subprocess.Popen([os.path.join(TREE, "cgi-bin", "llmgw-health"), "-c",
                          os.path.join(stack.var, "llmgw.conf"), "-s", sock],
                         env=dict(stack.env, **env), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        kids = []
        while time.time() < deadline and len(kids) < 2:
            time.sleep(0.1)
            out = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True)
            kids = [int(x) for x in out.stdout.split()]
        assert len(kids) >= 2, "the workers did not start"
        return environ(p.pid), [environ(k) for k in kids]
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)


def clean(env):
    return {k: v for k, v in env.items()
            if k not in ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "LLMGW_MALLOC_TUNED")}


def test_the_workers_run_with_the_tunables(keys_stack, tmp_path):
    stack_env = keys_stack.env
    keys_stack.env = clean(stack_env)
    try:
        sup, workers = start_health(keys_stack, tmp_path, {})
    finally:
        keys_stack.env = stack_env
    for e in [sup] + workers:
        assert e.get("LLMGW_MALLOC_TUNED") == "1"
        # glibc cuts the variable at its first ':' once read; the start is ours.
        assert e.get("GLIBC_TUNABLES", "").startswith("glibc.malloc.arena_max=2")


def test_an_operators_tuning_is_left_alone(keys_stack, tmp_path):
    stack_env = keys_stack.env
    keys_stack.env = clean(stack_env)
    try:
        sup, workers = start_health(keys_stack, tmp_path, {"MALLOC_ARENA_MAX": "4"})
        sup2, _ = start_health(keys_stack, tmp_path,
                               {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=3"})
    finally:
        keys_stack.env = stack_env
    for e in [sup] + workers:
        assert "LLMGW_MALLOC_TUNED" not in e and "GLIBC_TUNABLES" not in e
        assert e["MALLOC_ARENA_MAX"] == "4"
    assert "LLMGW_MALLOC_TUNED" not in sup2
    assert sup2["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=3"
