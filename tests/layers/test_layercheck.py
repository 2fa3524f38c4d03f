"""layercheck.py must fail on an upward include, a cycle and an unplaced
module, and pass on the tree as it is."""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "layercheck.py")


def run(lib):
    return subprocess.run([sys.executable, SCRIPT, lib], capture_output=True, text=True)


def copy_lib():
    d = tempfile.mkdtemp(prefix="layercheck-")
    for name in os.listdir(os.path.join(TREE, "lib")):
        if name.endswith((".c", ".h")):
            shutil.copy(os.path.join(TREE, "lib", name), d)
    return d


def add_include(d, name, header):
    with open(os.path.join(d, name), "a") as f:
        f.write('\n#include "%s"\n' % header)


def test_the_tree_passes():
    r = run(os.path.join(TREE, "lib"))
    assert r.returncode == 0, r.stderr
    assert "layers ok" in r.stdout


def test_an_upward_include_fails():
    d = copy_lib()
    try:
        add_include(d, "db.c", "req.h")  # base -> request
        r = run(d)
        assert r.returncode == 1
        assert "lib/db.c (base) includes req.h (request): an upward include" in r.stderr
        add_include(d, "req.h", "auth.h")  # request -> feature
        assert "lib/req.h (request) includes auth.h (feature)" in run(d).stderr
    finally:
        shutil.rmtree(d)


def test_a_cycle_and_an_unplaced_module_fail():
    d = copy_lib()
    try:
        add_include(d, "sse.c", "validate.h")
        add_include(d, "validate.c", "sse.h")
        open(os.path.join(d, "newthing.c"), "w").write('#include "util.h"\n')
        r = run(d)
        assert r.returncode == 1
        # The cycle is named from whichever of its modules the walk met first.
        assert ("include cycle: sse -> validate -> sse" in r.stderr or
                "include cycle: validate -> sse -> validate" in r.stderr), r.stderr
        assert "module newthing has no layer" in r.stderr
    finally:
        shutil.rmtree(d)
