#!/usr/bin/env python3
"""make layercheck: lib/ has three layers and includes point down only.

  base     knows nothing of requests: util log err config evloop shm db
           http_upstream, and the libraries built on them
  request  fcgi req server: FastCGI, the process model, where a request begins
           and ends
  feature  what answers requests: auth, route, relay, keys, spend, ...

A file may include headers of its own layer or below, never above, and no
two modules (foo.c + foo.h) may include each other, directly or through
others. Every module must be named below: a new one is placed on purpose.
"""
import os
import re
import sys

LAYERS = {
    "base": """util log err config evloop shm db http1 http_upstream json_util sha256
               sse metrics ratelimit alias migrate validate capture keystore
               revoke authcache jwtauth langfuse price spool budget_reset
               redact scheduler rlshare rerank responses multipart spoolcols""",
    "request": "fcgi req server",
    "feature": """auth route relay chat models model_info health keys_api
                  org_api keygen mgmt members spend shipper budget
                  spend_api spend_report admit audio""",
}
RANK = {"base": 0, "request": 1, "feature": 2}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([A-Za-z0-9_]+)\.h"', re.M)
GENERATED = {"migrations"}  # build/gen/migrations.h: data, not a module


def main(lib):
    layer = {m: l for l, ms in LAYERS.items() for m in ms.split()}
    deps, errors = {}, []
    for name in sorted(os.listdir(lib)):
        mod, ext = os.path.splitext(name)
        if ext not in (".c", ".h"):
            continue
        if mod not in layer:
            errors.append("lib/%s: module %s has no layer in %s" % (name, mod, __file__))
            continue
        with open(os.path.join(lib, name)) as f:
            incs = INCLUDE.findall(f.read())
        for inc in incs:
            if inc in GENERATED or inc == mod:
                continue
            if inc not in layer:
                errors.append("lib/%s includes %s.h, which is not a module" % (name, inc))
                continue
            if RANK[layer[inc]] > RANK[layer[mod]]:
                errors.append("lib/%s (%s) includes %s.h (%s): an upward include"
                              % (name, layer[mod], inc, layer[inc]))
            deps.setdefault(mod, set()).add(inc)
    # Cycles between modules, by depth-first search.
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(deps.get(m, ())):
            if state.get(d) == 1:
                errors.append("include cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(deps):
        if m not in state:
            visit(m)
    for e in errors:
        print(e, file=sys.stderr)
    if not errors:
        print("layers ok: %d modules, no upward include, no cycle" % len(layer))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "lib"))
