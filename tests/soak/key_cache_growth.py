#!/usr/bin/python3
"""Reproducer for the key cache's not-found records (BENCHMARKS.md, Soak):
four clients generate a key, use it, delete it and ask with it three more
times (--no-ask: not), for --seconds; prints each chat worker's (open
descriptors, RSS KiB) at rest before and after. The growth per deleted key
is the RSS difference over the cycles."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak  # noqa: E402
from soak import BODIES, PRICE, TREE, Mock, Pg, Stack, post, proc_usage  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--no-ask", action="store_true")
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="llmgw-keycache-")
    os.chmod(base, 0o755)
    pg = Pg(base)
    mock = stack = None
    try:
        pg.start()
        subprocess.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d", pg.conninfo(),
                        "-m", os.path.join(TREE, "migrations")], check=True,
                       capture_output=True)
        mock = Mock(base)
        stack = Stack(base, "keycache", pg, mock.url, [PRICE, "gateway.threads=16"]).start()
        soak.warm_families(stack.port, post(stack.port, "/key/generate", {}).json()["token"])

        def at_rest():
            time.sleep(5)
            return [proc_usage(p) for p in stack.children("chat")]

        def loop(stop, out):
            n = 0
            while time.time() < stop:
                k = post(stack.port, "/key/generate", {}).json()
                post(stack.port, "/v1/chat/completions", BODIES["plain"], k["key"])
                post(stack.port, "/key/delete", {"keys": [k["key"]]})
                for _ in range(0 if a.no_ask else 3):
                    post(stack.port, "/v1/chat/completions", BODIES["plain"], k["key"])
                n += 1
            out.append(n)

        loop(time.time() + 10, [])
        before, out = at_rest(), []
        threads = [threading.Thread(target=loop, args=(time.time() + a.seconds, out))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = at_rest()
        print("%d keys deleted%s; chat workers (fds, RSS KiB) at rest: %s -> %s" % (
            sum(out), "" if a.no_ask else " and asked with 3 more times", before, after))
    finally:
        if stack:
            stack.stop()
        if mock:
            mock.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
