"""Every program's --help is its manual: usage, options, files,
environment, exit status, on stdout with status 0 (-h the same); a bad
option prints the usage on stderr and exits 2."""
import os
import subprocess

import pytest

from conftest import TREE

PROGS = ["cgi-bin/llmgw-%s" % f for f in ("health", "chat", "embeddings", "keys", "spend")] + \
        ["bin/llmgw-migrate", "bin/llmgw-langfuse-export", "deploy/llmgw-families"]
SECTIONS = ("usage:", "Options:", "Files:", "Environment:", "Exit status:")


@pytest.mark.parametrize("prog", PROGS)
def test_help(prog):
    path = os.path.join(TREE, prog)
    for flag in ("--help", "-h"):
        r = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, (flag, r.stderr)
        for s in SECTIONS:
            assert s.lower() in r.stdout.lower(), (flag, s, r.stdout)
    r = subprocess.run([path, "-Z"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert "usage:" in r.stderr
