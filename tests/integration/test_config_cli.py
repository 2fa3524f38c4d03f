"""Configuration errors stop a program at start, naming file, line, setting."""
import os
import subprocess

from conftest import TREE

HEALTH = os.path.join(TREE, "cgi-bin", "llmgw-health")


def run(*args, env=None):
    return subprocess.run([HEALTH, *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=10)


def test_example_config_checks(tmp_path):
    r = run("-c", os.path.join(TREE, "conf", "llmgw.conf"), "-t",
            env={"LLMGW_MASTER_KEY": "sk-x"})
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout


def test_bad_value_names_file_line_and_setting(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[gateway]\nthreads = 4\n\n[upstream]\nconnect_timeout_ms = -5\n")
    r = run("-c", str(conf))
    assert r.returncode == 1
    assert "%s:5: [upstream] connect_timeout_ms: -5 is out of range" % conf in r.stderr


def test_unknown_setting_stops_start(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[database]\nconninfo = x\npassword = y\n")
    r = run("-c", str(conf))
    assert r.returncode == 1
    assert "%s:3: [database] password: unknown setting" % conf in r.stderr


def test_print_effective_value(tmp_path):
    conf = tmp_path / "ok.conf"
    conf.write_text("[gateway]\nthreads = 7\n")
    assert run("-c", str(conf), "-g", "gateway.threads").stdout == "7\n"
    r = run("-c", str(conf), "-g", "gateway.threads",
            env={"LLMGW_GATEWAY_THREADS": "9"})
    assert r.stdout == "9\n"


def test_not_under_spawn_fcgi(tmp_path):
    conf = tmp_path / "ok.conf"
    conf.write_text("")
    r = subprocess.run([HEALTH, "-c", str(conf)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "not a socket" in r.stderr
