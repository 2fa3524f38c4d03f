"""What is not ours is refused (issue #15, 6): spend can never go
negative in the database, the spool directory is the gateway's alone, and
a shared memory file another user may write is refused at start."""
import os
import stat
import subprocess

import pytest

from conftest import TREE



NEGATIVE = {
    "keys": "INSERT INTO keys (token, key_name, spend) VALUES (repeat('e', 64), 'x', -1)",
    "users": "INSERT INTO users (user_id, spend) VALUES ('negative-user', -1)",
    "teams": "INSERT INTO teams (team_id, spend) VALUES ('negative-team', -1)",
    "spend_logs": "INSERT INTO spend_logs (request_id, call_type, start_time, end_time, "
                  "status, spend) VALUES ('negative-row', 'chat', now(), now(), 200, -1)",
}


def test_spend_cannot_go_negative(keys_stack, pg):
    for table, sql in NEGATIVE.items():
        out = subprocess.run(
            ["psql", "-h", pg.sock, "-U", "llmgw", "-d", "llmgw", "-v", "ON_ERROR_STOP=1",
             "-c", sql], capture_output=True, text=True)
        assert out.returncode != 0 and "%s_spend_nonnegative" % table in out.stderr, out


def test_spool_dir_is_private(keys_stack):
    spool = os.path.join(keys_stack.var, "spool")
    if not os.path.isdir(spool):
        pytest.skip("the spool lives elsewhere in this configuration")
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700


def test_a_world_writable_shm_file_is_refused(keys_stack, tmp_path):
    shm = str(tmp_path / "shm-open")
    open(shm, "w").close()
    os.chmod(shm, 0o666)
    env = dict(keys_stack.env, LLMGW_GATEWAY_SHM_PATH=shm, LLMGW_LOG_FILE="")
    r = subprocess.run([os.path.join(TREE, "cgi-bin", "llmgw-health"), "-c", keys_stack.conf(),
                        "-1", "-s", str(tmp_path / "h.sock")],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "mode 0666 lets other users in" in r.stderr, r.stderr
    assert "cannot map shared memory" in r.stderr
