#!/usr/bin/python3
"""llmgw benchmark harness (targets of issue 19): llmgw against a plain nginx
proxy, the lighttpd + trivial FastCGI floor, the Portkey gateway and the mock
upstream itself, all on 127.0.0.1 and measured side by side in one run.

    /usr/bin/python3 tests/bench/bench.py [--quick] [--streams N] [--json FILE] [--keep]

Needs `make all` first (bin/mock-upstream, cgi-bin/llmgw-*); installs wrk,
nginx, lighttpd, spawn-fcgi, libfcgi-dev, valgrind, PostgreSQL with apt-get
when they are missing (as root). Every process it starts is stopped at the
end, also on an error or Ctrl-C. See tests/bench/README.md.
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TREE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(TREE, "tests", "bench")
CTL = os.path.join(TREE, "deploy", "llmgwctl")
MASTER_KEY = "sk-bench-master-" + secrets.token_hex(12)
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

CHAT = "/v1/chat/completions"
EMB = "/v1/embeddings"
CHAT_BODY = '{"model":"gpt-4","messages":[{"role":"user","content":"hello"}]}'
EMB_BODY = '{"model":"nomic-embed-text-v1.5","input":"hello world"}'
# llmgw reaches the 20-chunk stream through an alias (aliasing stays on the
# path); the others get the same mock options in the model suffix.
STREAM_MOCK = "qwen3-30b-a3b@chunks=20"
LONG_MOCK = "qwen3-30b-a3b@chunks=%d,chunk_delay_ms=100"


# (f): chat bodies of about N KiB (None: CHAT_BODY's "hello").
BODY_KIB = (None, 1, 16, 64, 256)
WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "


def stream_body(model):
    return json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": "hello"}]},
                      separators=(",", ":"))


def sized_body(model, kib):
    """A chat request of kib KiB in all (with model "gpt-4"; another model
    name changes it by the names' difference): ASCII words, no escapes."""
    env = '{"model":"%s","messages":[{"role":"user","content":"%s"}]}'
    if kib is None:
        return env % (model, "hello")
    n = kib * 1024 - len(env % ("gpt-4", ""))
    text = (WORDS * (n // len(WORDS) + 1))[:n]
    return env % (model, text)


def kib_label(kib):
    return "small" if kib is None else "%d KiB" % kib


class SetupError(Exception):
    pass


def say(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- processes

class Harness:
    """Temp dir, and a stack of cleanups run in reverse on any exit."""

    def __init__(self, keep):
        self.tmp = tempfile.mkdtemp(prefix="llmgw-bench-")
        os.chmod(self.tmp, 0o755)  # the PostgreSQL user must reach it
        self.keep = keep
        self.cleanups = []

    def on_exit(self, fn):
        self.cleanups.append(fn)
        return fn

    def popen(self, args, log, **kw):
        f = open(os.path.join(self.tmp, log), "ab")
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f, stderr=f, **kw)
        f.close()
        self.on_exit(lambda: stop_popen(p))
        return p

    def close(self):
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning up
                say("cleanup: %s" % e)
        if self.keep:
            say("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def stop_popen(p, timeout=20):
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def run(args, timeout=120, env=None, check=True):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise SetupError("%s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SetupError("timed out waiting for " + what)


def call(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None


def ppid_map():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def tree(roots):
    """roots and all their descendants that exist now."""
    kids, out, todo = ppid_map(), [], [r for r in roots if r]
    while todo:
        p = todo.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids, split=False):
    """pid -> user + system ticks, or (user, system): the process's own
    (utime, stime: fields 14, 15 of /proc/PID/stat) plus those of its
    children that exited and were waited for (cutime, cstime: 16, 17), so a
    PostgreSQL backend or autovacuum worker that ends between two samples
    still counts (in its postmaster's)."""
    t = {}
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                v = f.read().rsplit(")", 1)[1].split()
            u, k = int(v[11]) + int(v[13]), int(v[12]) + int(v[14])
            t[p] = (u, k) if split else u + k
        except (OSError, IndexError, ValueError):
            pass
    return t


def cpu_groups(groups):
    """{group: {pid: (utime, stime)}} for Target.groups()."""
    return {g: cpu_ticks(pids, True) for g, pids in groups.items()}


def cpu_delta(before, after):
    """{group: (user s, sys s)} between two cpu_groups() samples."""
    out = {}
    for g, now in after.items():
        old = before.get(g, {})
        out[g] = tuple(sum(v[i] - old.get(p, (0, 0))[i] for p, v in now.items()) / TICK
                       for i in (0, 1))
    return out


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            pass
    return total


def mem_detail(pids):
    """Summed over pids: KiB of Rss, Anonymous (heap, stacks, malloc
    arenas), the rest of Rss (file and shared memory), from
    /proc/PID/smaps_rollup; and open descriptors (/proc/PID/fd)."""
    out = {"rss": 0, "anon": 0, "file_shmem": 0, "fds": 0, "procs": 0, "fds_per_proc": []}
    for p in pids:
        try:
            f = {}
            with open("/proc/%d/smaps_rollup" % p) as fh:
                for line in fh:
                    k, _, v = line.partition(":")
                    if v.strip().endswith("kB"):
                        f[k] = int(v.split()[0])
            fds = len(os.listdir("/proc/%d/fd" % p))
        except (OSError, ValueError):
            continue
        out["rss"] += f.get("Rss", 0)
        out["anon"] += f.get("Anonymous", 0)
        out["file_shmem"] += f.get("Rss", 0) - f.get("Anonymous", 0)
        out["fds"] += fds
        out["procs"] += 1
        out["fds_per_proc"].append(fds)
    return out


# ------------------------------------------------------------------ targets

class Target:
    def __init__(self, name, port, headers=None, groups=None):
        """groups(): {name: [pids]} of the processes whose CPU is the target's."""
        self.name, self.port = name, port
        self.headers = headers or {}
        self.groups = groups or (lambda: {})


def start_mock(h):
    pf = os.path.join(h.tmp, "mock.port")
    p = h.popen([os.path.join(TREE, "bin", "mock-upstream"), "--port", "0",
                 "--port-file", pf, "--quiet"], "mock.log")
    wait_until(lambda: os.path.exists(pf) and open(pf).read().strip(), 10, "mock upstream")
    port = int(open(pf).read())
    return Target("direct", port), p


def start_nginx(h, mock_port):
    prefix = os.path.join(h.tmp, "nginx")
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    port = free_port()
    conf = open(os.path.join(BENCH, "nginx.conf.in")).read()
    conf = (conf.replace("@PREFIX@", prefix).replace("@PORT@", str(port))
            .replace("@MOCK_PORT@", str(mock_port))
            .replace("@USER_LINE@", "user root root;" if os.getuid() == 0 else ""))
    path = os.path.join(prefix, "nginx.conf")
    open(path, "w").write(conf)
    run(["nginx", "-t", "-p", prefix, "-c", path])
    p = h.popen(["nginx", "-p", prefix, "-c", path], "nginx.out")
    wait_until(lambda: call(port, "GET", "/health")[0] == 200, 10, "nginx")
    return Target("nginx", port, groups=lambda: {"nginx": tree([p.pid])})


def lighttpd_conf(var, port, sock):
    """deploy/lighttpd/llmgw.conf with every route sent to one socket."""
    t = open(os.path.join(TREE, "deploy", "lighttpd", "llmgw.conf")).read()
    os.makedirs(os.path.join(var, "log"), exist_ok=True)
    os.makedirs(os.path.join(var, "www"), exist_ok=True)
    t = re.sub(r'"@RUN_DIR@/[a-z]+\.sock"', '"%s"' % sock, t)
    for k, v in (("@LISTEN_HOST@", "127.0.0.1"), ("@LISTEN_PORT@", str(port)),
                 ("@LOG_DIR@", os.path.join(var, "log")), ("@DOC_ROOT@", os.path.join(var, "www")),
                 ("@PID_FILE@", os.path.join(var, "lighttpd.pid")), ("@USER_LINES@", ""),
                 ("@ERROR_DIR@", os.path.join(TREE, "deploy", "lighttpd", "errors"))):
        t = t.replace(k, v)
    path = os.path.join(var, "lighttpd.conf")
    open(path, "w").write(t)
    return path


def start_floor(h, procs, threads):
    var = os.path.join(h.tmp, "floor")
    os.makedirs(var, exist_ok=True)
    exe = os.path.join(var, "fcgi_fixed")
    run(["gcc", "-O2", "-Wall", "-pthread", "-o", exe, os.path.join(BENCH, "fcgi_fixed.c"), "-lfcgi"])
    sock = os.path.join(var, "fixed.sock")
    resp = h.popen(["spawn-fcgi", "-n", "-s", sock, "-M", "0600", "-b", "4096", "--",
                    exe, "-p", str(procs), "-t", str(threads)], "floor-fcgi.log")
    wait_until(lambda: os.path.exists(sock), 10, "fcgi_fixed socket")
    port = free_port()
    conf = lighttpd_conf(var, port, sock)
    run(["lighttpd", "-tt", "-f", conf])
    lt = h.popen(["lighttpd", "-D", "-f", conf], "floor-lighttpd.log")
    wait_until(lambda: call(port, "POST", CHAT, CHAT_BODY)[0] == 200, 10, "floor lighttpd")
    return Target("floor", port, groups=lambda: {"lighttpd": tree([lt.pid]),
                                                 "fcgi_fixed": tree([resp.pid])})


class Pg:
    def __init__(self, h):
        self.dir = os.path.join(h.tmp, "pg")
        self.env = dict(os.environ, LLMGW_VAR=os.path.join(h.tmp, "pgvar"), LLMGW_PG_DIR=self.dir)
        h.on_exit(lambda: run([CTL, "pg-stop"], env=self.env, check=False))
        run([CTL, "pg-start"], env=self.env)
        run([CTL, "migrate"], env=self.env)

    def pids(self):
        return tree([read_pidfile(os.path.join(self.dir, "data", "postmaster.pid"))])

    def psql(self, sql):
        return run(["psql", "-h", os.path.join(self.dir, "run"), "-U", "llmgw", "-d", "llmgw",
                    "-tAX", "-v", "ON_ERROR_STOP=1", "-c", sql]).stdout.strip()


class Stack:
    """llmgw (every family + lighttpd) started with deploy/llmgwctl."""

    def __init__(self, h, pg, name, upstream, overrides, families=None, env=None):
        """env: more environment for llmgwctl (e.g. LLMGW_LIGHTTPD_*)."""
        self.h, self.pg, self.upstream = h, pg, upstream
        self.var = os.path.join(h.tmp, name)
        self.port = free_port()
        lines = ["gateway.shutdown_timeout_s=10", "rate_limit.rps=0",
                 "aliases.bench-stream20=" + STREAM_MOCK] + list(overrides)
        self.env = dict(os.environ, LLMGW_VAR=self.var, LLMGW_LISTEN="127.0.0.1:%d" % self.port,
                        LLMGW_PG_DIR=pg.dir, LLMGW_MASTER_KEY=MASTER_KEY,
                        LLMGW_CONF_OVERRIDES="\n".join(lines), **(env or {}))

    def ctl(self, *args, check=True):
        return run([CTL, *args], env=self.env, check=check)

    def start(self, workers=True):
        self.h.on_exit(self.stop)
        self.ctl("render", self.upstream)
        if workers:
            self.ctl("workers-start")
        self.ctl("lighttpd-start")
        if workers:
            wait_until(lambda: call(self.port, "GET", "/health/readiness")[0] == 200, 20,
                       "llmgw readiness")
        return self

    def stop(self):
        self.ctl("lighttpd-stop", check=False)
        self.ctl("workers-stop", check=False)

    def rss_parts(self):
        """RSS in KiB of lighttpd, llmgw-chat (supervisor + workers), the other families."""
        lt = tree([read_pidfile(self.run_file("lighttpd.pid"))])
        chat = tree([read_pidfile(self.run_file("chat.pid"))])
        other = [p for p in self.gw_pids() if p not in lt and p not in chat]
        r = {"lighttpd": rss_kib(lt), "llmgw-chat": rss_kib(chat), "other families": rss_kib(other)}
        r["total"] = sum(r.values())
        return r

    def mem_parts(self):
        """(rss_parts(), {group: mem_detail()}) of the same moment."""
        lt = tree([read_pidfile(self.run_file("lighttpd.pid"))])
        chat = tree([read_pidfile(self.run_file("chat.pid"))])
        other = [p for p in self.gw_pids() if p not in lt and p not in chat]
        det = {"lighttpd": mem_detail(lt), "llmgw-chat": mem_detail(chat),
               "other families": mem_detail(other)}
        r = {k: v["rss"] for k, v in det.items()}
        r["total"] = sum(r.values())
        return r, det

    def warm_up(self, target, procs, limit=400):
        """Sequential chat requests until every chat worker process has served
        one (its access lines carry its pid), so each has the key cached: a
        cold burst is another matter (see README). Returns the count sent."""
        log = os.path.join(self.var, "log", "chat.log")
        hdr = dict(target.headers, **{"Content-Type": "application/json"})
        for i in range(1, limit + 1):
            st, body = call(self.port, "POST", CHAT, CHAT_BODY, hdr)
            if st != 200:
                raise SetupError("warm-up request answered %d: %s" % (st, body[:200]))
            if i % 4 == 0:
                pids = set(re.findall(r"pid=(\d+) .*mod=access", open(log, errors="replace").read()))
                if len(pids) >= procs:
                    return i
        raise SetupError("warm-up: not every chat worker answered in %d requests" % limit)

    def run_file(self, name):
        return os.path.join(self.var, "run", name)

    def gw_pids(self):
        roots = [read_pidfile(self.run_file("lighttpd.pid"))]
        for f in os.listdir(os.path.join(self.var, "run")):
            if f.endswith(".pid") and f not in ("lighttpd.pid", "mock-upstream.pid"):
                roots.append(read_pidfile(self.run_file(f)))
        return tree(roots)

    def groups(self):
        lt = tree([read_pidfile(self.run_file("lighttpd.pid"))])
        return {"lighttpd": lt, "llmgw-*": [p for p in self.gw_pids() if p not in lt],
                "postgres": self.pg.pids()}

    def target(self, key):
        return Target("llmgw", self.port, {"Authorization": "Bearer " + key}, self.groups)

    def backlog(self):
        st, body = call(self.port, "GET", "/metrics")
        n = 0
        for line in body.decode().splitlines():
            if line.startswith("llmgw_spend_backlog_rows"):
                n += float(line.rsplit(None, 1)[1])
        return n

    def logs(self):
        d = os.path.join(self.var, "log")
        return [os.path.join(d, f) for f in sorted(os.listdir(d))] if os.path.isdir(d) else []


def generate_key(stack, limits=None):
    fields = dict({"key_alias": "bench"}, **(limits or {}))
    st, body = call(stack.port, "POST", "/key/generate", json.dumps(fields),
                    {"Authorization": "Bearer " + MASTER_KEY, "Content-Type": "application/json"})
    if st != 200:
        raise SetupError("/key/generate answered %d: %s" % (st, body[:300]))
    out = json.loads(body)
    return out["key"], out["token"]


PRELOAD = r"""
// Portkey's start-server.js listens on every interface: keep it on loopback.
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (a.length && typeof a[0] === 'object' && a[0] !== null) a[0] = Object.assign({}, a[0], {host: '127.0.0.1'});
  else if (typeof a[1] === 'string') a[1] = '127.0.0.1';
  else a.splice(1, 0, '127.0.0.1');
  return listen.apply(this, a);
};
"""


def start_portkey(h, mock_port):
    """Returns a Target or a reason string (n/a)."""
    d = os.path.join(BENCH, ".portkey")  # git-ignored (tests/bench/.gitignore)
    js = os.path.join(d, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not installed"
    if not os.path.exists(js):
        os.makedirs(d, exist_ok=True)
        try:
            r = run(["npm", "install", "--prefix", d, "--no-audit", "--no-fund",
                     "@portkey-ai/gateway"], timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return "npm install timed out"
        if r.returncode != 0 or not os.path.exists(js):
            return "npm install failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    pre = os.path.join(h.tmp, "loopback.cjs")
    open(pre, "w").write(PRELOAD)
    port = free_port()
    p = h.popen(["node", "-r", pre, js, "--port=%d" % port, "--headless"], "portkey.log",
                env=dict(os.environ, NODE_ENV="production"))
    hdr = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-bench-dummy",
           "x-portkey-custom-host": "http://127.0.0.1:%d/v1" % mock_port}
    try:
        wait_until(lambda: call(port, "POST", CHAT, CHAT_BODY,
                                dict(hdr, **{"Content-Type": "application/json"}))[0] == 200,
                   30, "portkey")
    except SetupError:
        stop_popen(p)
        return "did not answer (see portkey.log)"
    return Target("portkey", port, hdr, lambda: {"node": tree([p.pid])})


# --------------------------------------------------------------------- load

LUA = """wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
%s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%.0f,"duration_us":%%.0f,"connect":%%.0f,' ..
    '"read":%%.0f,"write":%%.0f,"status":%%.0f,"timeout":%%.0f,"p50":%%.0f,"p90":%%.0f,' ..
    '"p99":%%.0f}\\n', summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def wrk(h, target, path, body, threads, conns, secs):
    hdrs = "\n".join('wrk.headers[%s] = %s' % (json.dumps(k), json.dumps(v))
                     for k, v in target.headers.items())
    script = os.path.join(h.tmp, "wrk-%s.lua" % secrets.token_hex(4))
    open(script, "w").write(LUA % (json.dumps(body), hdrs))
    before = cpu_groups(target.groups())
    r = run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s",
             "--latency", "-s", script, "http://127.0.0.1:%d%s" % (target.port, path)],
            timeout=secs + 60)
    after = cpu_groups(target.groups())
    m = re.search(r"^WRKJSON (.*)$", r.stdout, re.M)
    if not m:
        raise SetupError("no wrk summary:\n" + r.stdout + r.stderr)
    s = json.loads(m.group(1))
    s["rps"] = s["requests"] / (s["duration_us"] / 1e6)
    s["sock_errors"] = s["connect"] + s["read"] + s["write"] + s["timeout"]
    s["errors"] = s["sock_errors"] + s["status"]
    s["ok"] = s["requests"] - s["status"]
    s["cpu"] = cpu_delta(before, after)
    s["cpu_s"] = sum(u + k for u, k in s["cpu"].values())
    return s


def rounds(h, args, targets, path, bodies, threads, conns, secs, label):
    """A B A B...: returns {target name: aggregated result}."""
    per = {t.name: [] for t in targets}
    for i in range(args.rounds):
        for t in targets:
            s = wrk(h, t, path, bodies[t.name], threads, conns, secs)
            per[t.name].append(s)
            say("  %-22s round %d %-8s %9.0f req/s  p50 %6.2f ms  errors %d"
                % (label, i + 1, t.name, s["rps"], s["p50"] / 1000, s["errors"]))
    out = {}
    for name, runs in per.items():
        req = sum(r["requests"] for r in runs)
        out[name] = {
            "rps": statistics.mean(r["rps"] for r in runs),
            "rps_rounds": [round(r["rps"]) for r in runs],
            "p50": statistics.mean(r["p50"] for r in runs) / 1000,
            "p90": statistics.mean(r["p90"] for r in runs) / 1000,
            "p99": statistics.mean(r["p99"] for r in runs) / 1000,
            "errors": sum(r["errors"] for r in runs), "requests": req,
            "cpu_per_1k": 1000 * sum(r["cpu_s"] for r in runs) / req if req else None,
            # {group: [user, sys]} CPU seconds per 1,000 requests
            "cpu_parts": {g: [1000 * sum(r["cpu"][g][i] for r in runs) / req for i in (0, 1)]
                          for g in runs[0]["cpu"]} if req else {},
        }
    return out


def cpu_line(parts):
    tot = sum(u + k for u, k in parts.values())
    return ", ".join("%s %.3f (%d%% sys)" % (g, u + k, 100 * k / (u + k) if u + k else 0)
                     for g, (u, k) in parts.items()) + (
        "; total %.3f = %.0f req/s per busy core" % (tot, 1000 / tot) if tot else "")


def raw_request(port, path, body, headers):
    h = "".join("%s: %s\r\n" % kv for kv in headers.items())
    return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n%s\r\n%s"
            % (path, port, len(body), h, body)).encode()


def first_chunk(target, body, n):
    """n sequential streams; seconds from the request's last byte sent to the
    arrival of the first byte of the first `data:` event."""
    req, out = raw_request(target.port, CHAT, body, target.headers), []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", target.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf, first = b"", None
        t0 = time.perf_counter()
        s.sendall(req)
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if first is None:
                i = buf.find(b"\r\n\r\n")
                if i >= 0 and b"data:" in buf[i:]:
                    first = time.perf_counter() - t0
        s.close()
        if not buf.startswith(b"HTTP/1.1 200") or b"data: [DONE]" not in buf or first is None:
            raise SetupError("%s stream failed: %r" % (target.name, buf[:300]))
        out.append(first * 1000)
    q = statistics.quantiles(out, n=10)
    return {"p50": statistics.median(out), "p90": q[8], "n": n}


async def hold_streams(target, body, n, chunks, sample, rate=4000):
    """n streams at once, opened at `rate` a second (a burst of 10,000 SYNs
    overflows any listen backlog); sample() is called every 250 ms while
    they are open. Each stream is a bare asyncio.Protocol (a StreamReader
    costs about twice the client CPU, and the client shares the cores).
    Returns (errors, samples [(open streams, value)], seconds)."""
    loop = asyncio.get_running_loop()
    req = raw_request(target.port, CHAT, body, target.headers)
    state = {"open": 0, "done": 0}
    errors = []
    # A stream's chunks come every 100 ms: give it its length and a minute.
    limit = chunks * 0.1 + 60

    class Stream(asyncio.Protocol):
        def __init__(self):
            self.parts, self.counted, self.done = [], False, loop.create_future()

        def connection_made(self, transport):
            transport.write(req)

        def data_received(self, data):
            self.parts.append(data)
            if not self.counted and b"data:" in data:
                self.counted = True
                state["open"] += 1

        def connection_lost(self, exc):
            if self.counted:
                state["open"] -= 1
            if not self.done.done():
                self.done.set_result(exc)

    async def one(i):
        await asyncio.sleep(i / rate)
        tr = None
        try:
            tr, pr = await asyncio.wait_for(
                loop.create_connection(Stream, "127.0.0.1", target.port), 30)
            exc = await asyncio.wait_for(asyncio.shield(pr.done), limit)
            data = b"".join(pr.parts)
            got = data.count(b'"content":"tok')
            if exc is not None:
                errors.append("connection lost: %r after %d chunks" % (exc, got))
            elif not data.startswith(b"HTTP/1.1 200") or b"data: [DONE]" not in data or got != chunks:
                errors.append("status/content: %r (%d chunks)" % (data[:120], got))
        except Exception as e:  # noqa: BLE001 - every failure is an error here
            errors.append(repr(e))
        finally:
            state["done"] += 1
            if tr is not None:
                tr.close()

    async def sampler(samples):
        while state["done"] < n:
            await asyncio.sleep(0.25)
            if state["open"]:
                samples.append((state["open"], sample()))

    samples = []
    t0 = time.time()
    await asyncio.gather(sampler(samples), *[one(i) for i in range(n)])
    return errors, samples, time.time() - t0


# -------------------------------------------------------------- instructions

def shipped_tunables(family):
    """The GLIBC_TUNABLES a worker re-execs itself with (lib/server.c), read
    from the binary: under valgrind it does not re-exec, so the callgrind
    worker is given them to count what ships."""
    data = open(os.path.join(TREE, "cgi-bin", "llmgw-" + family), "rb").read()
    m = re.search(rb"glibc\.malloc\.[a-z_]+=\d+(?::glibc\.malloc\.[a-z_]+=\d+)*", data)
    if not m:
        raise SetupError("llmgw-%s: no GLIBC_TUNABLES string in the binary" % family)
    return {"GLIBC_TUNABLES": m.group(0).decode(), "LLMGW_MALLOC_TUNED": "1"}


def callgrind_ir(h, stack, family, path, body, headers, n, name=None, rows=None):
    """Total Ir of one llmgw-<family> worker (-1: no supervisor) under
    callgrind serving n sequential requests through lighttpd. rows(), when
    given, counts spend_logs rows: the worker is stopped only once its n
    rows are shipped, so that its count holds its own shipping and no
    spool is left over for the next worker to ship as an orphan (which
    had put ~15,000 Ir a request into the stream's figure, and into the
    embeddings baseline)."""
    out = os.path.join(h.tmp, "callgrind.%s.%d" % (name or family, n))
    sock = stack.run_file(family + ".sock")
    if os.path.exists(sock):
        os.unlink(sock)
    log = os.path.join(stack.var, "log", "%s-cg-%d.log" % (family, n))
    with open(log, "wb") as f:
        p = subprocess.Popen(["spawn-fcgi", "-n", "-s", sock, "-M", "0600", "-b", "4096", "--",
                              shutil.which("valgrind"), "--tool=callgrind", "--callgrind-out-file=" + out,
                              os.path.join(TREE, "cgi-bin", "llmgw-" + family), "-1", "-c",
                              os.path.join(stack.var, "llmgw.conf")],
                             stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                             env=dict(stack.env, **shipped_tunables(family)))
    h.on_exit(lambda: stop_popen(p, 60))
    def ready():
        if p.poll() is not None:
            raise SetupError("callgrind worker exited: " + open(log, errors="replace").read()[-500:])
        return "worker ready" in open(log, errors="replace").read()
    wait_until(ready, 120, "callgrind worker (see %s)" % log)
    last = -1
    while True:  # quiet: startup done
        time.sleep(0.5)
        t = cpu_ticks([p.pid]).get(p.pid, 0)
        if t - last <= 1:
            break
        last = t
    before = rows() if rows is not None and n else 0
    if n:
        c = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
        hdr = dict(headers, **{"Content-Type": "application/json"})
        for i in range(n):
            c.request("POST", path, body=body, headers=hdr)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SetupError("callgrind %s request %d: %d" % (family, i, r.status))
        c.close()
        if rows is not None:
            wait_until(lambda: rows() >= before + n, 300,
                       "callgrind %s: %d spend rows shipped" % (family, n))
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    txt = open(out).read()
    m = re.search(r"^totals:\s*(\d+)", txt, re.M) or re.search(r"^summary:\s*(\d+)", txt, re.M)
    return int(m.group(1))


# Inclusive Ir of the library entry points a request goes through: what
# llmgw's own code cannot cut without using less of them; and the FastCGI
# side (lib/fcgi.c since issue 19; libfcgi's FCGX_Accept_r before).
LIB_ENTRIES = {"libcurl": ("curl_easy_perform", "curl_multi_socket_action"),
               "fastcgi": ("gw_fcgi_accept", "gw_fcgi_read", "gw_fcgi_finish",
                           "FCGX_Accept_r", "FCGX_Finish_r")}


def library_ir(out_file, n):
    """{library: inclusive Ir per request} from a callgrind out file."""
    if not n or not shutil.which("callgrind_annotate"):
        return None
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out_file],
                       capture_output=True, text=True)
    found = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+\S*:(\w+) ", line)
        if m and m.group(2) not in found:
            found[m.group(2)] = int(m.group(1).replace(",", ""))
    return {lib: sum(found.get(f, 0) for f in fns) / n for lib, fns in LIB_ENTRIES.items()}


def perf_works():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "<not" not in r.stderr


def perf_instructions(h, stack, path, body, headers, n):
    """perf stat -e instructions over the stack's gateway processes while n
    sequential requests are served (no baseline: idle cost is small)."""
    out = os.path.join(h.tmp, "perf.%s" % secrets.token_hex(3))
    pids = ",".join(map(str, stack.gw_pids()))
    p = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", "-o", out, "-p", pids],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.on_exit(lambda: stop_popen(p))
    time.sleep(0.3)
    c = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    for _ in range(n):
        c.request("POST", path, body=body, headers=dict(headers, **{"Content-Type": "application/json"}))
        c.getresponse().read()
    c.close()
    p.send_signal(signal.SIGINT)
    p.wait(30)
    for line in open(out):
        f = line.split(",")
        if len(f) > 2 and f[2].startswith("instructions") and f[0].isdigit():
            return int(f[0]) / n
    return None


# --------------------------------------------------------------------- main

def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                  if l.startswith("model name")), "?")
    mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    mhz = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")), "?")
    return {"nproc": os.cpu_count(), "cpu": "%s @ %s MHz" % (model, mhz), "kernel": os.uname().release,
            "mem_gib": round(int(mem) / 1048576, 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": open("/proc/loadavg").read().split()[:3]}


def ensure_tools():
    need = {"wrk": "wrk", "nginx": "nginx-light", "lighttpd": "lighttpd", "spawn-fcgi": "spawn-fcgi",
            "valgrind": "valgrind", "gcc": "gcc", "psql": "postgresql-client"}
    missing = [pkg for exe, pkg in need.items() if not shutil.which(exe)]
    if not os.path.exists("/usr/include/fcgiapp.h"):
        missing.append("libfcgi-dev")
    if not any(os.path.isdir(d) for d in ("/usr/lib/postgresql",)):
        missing.append("postgresql")
    if missing:
        if os.getuid() != 0:
            raise SetupError("missing packages (run as root or install): " + " ".join(missing))
        say("installing: " + " ".join(missing))
        run(["apt-get", "update", "-qq"], timeout=300, check=False)
        run(["apt-get", "install", "-y", "-qq", *missing], timeout=600,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    for b in ("bin/mock-upstream", "cgi-bin/llmgw-chat", "cgi-bin/llmgw-embeddings",
              "cgi-bin/llmgw-health", "cgi-bin/llmgw-keys", "bin/llmgw-migrate"):
        if not os.access(os.path.join(TREE, b), os.X_OK):
            raise SetupError("%s is not built: run `make all` first" % b)
    ldd = run(["ldd", os.path.join(TREE, "cgi-bin", "llmgw-chat")]).stdout
    if "libasan" in ldd or "libubsan" in ldd:
        raise SetupError("cgi-bin/ is a sanitizer build: rebuild with plain `make all` to benchmark")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if os.getuid() == 0 else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fmt(v, f="%.2f"):
    return "n/a" if v is None else f % v


def verdict(ok):
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def on_sigterm(signum, frame):
    raise KeyboardInterrupt()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (about 3 minutes)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run [8, quick 2]")
    ap.add_argument("--rounds", type=int, default=2, help="A B A B rounds [2]")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t [2]")
    ap.add_argument("--connections", type=int, default=64, help="wrk -c [64]")
    ap.add_argument("--processes", type=int, default=2, help="llmgw and floor processes [2]")
    ap.add_argument("--workers-threads", type=int, default=16, help="threads per process [16]")
    ap.add_argument("--no-portkey", action="store_true")
    ap.add_argument("--only", default="a,b,c,e,f,ir,d",
                    help="scenarios to run, comma-separated: a b c d e f ir (instructions) "
                         "s (swap-aware scheduler, not in the default) [a,b,c,e,f,ir,d]")
    ap.add_argument("--ir-kib", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="(ir) also chat with these prompt sizes in KiB, e.g. 1,64 [none]")
    ap.add_argument("--streams", type=int,
                    help="(d): streams held open at once [10000, quick 1000]")
    ap.add_argument("--key-limits", type=json.loads, default={},
                    help='the bench key\'s limits, e.g. \'{"rpm_limit": 1000000}\' (none)')
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = ap.parse_args()
    q = args.quick
    dur = args.duration or (2 if q else 8)
    args.rounds = max(2, args.rounds)
    ttfb_n = 50 if q else 200
    spend_s = 8 if q else 30
    cg_n = 200 if q else 2000
    hold_n, hold_chunks = args.streams or (1000 if q else 10000), (30 if q else 100)
    if hold_n < 1:
        ap.error("--streams must be at least 1")
    T, C = args.threads, args.connections

    signal.signal(signal.SIGTERM, on_sigterm)
    ensure_tools()
    nofile = raise_nofile()
    res = {"machine": machine(), "command": " ".join([sys.executable] + sys.argv),
           "settings": {"wrk": "-t%d -c%d -d%ds" % (T, C, dur), "rounds": args.rounds,
                        "processes": args.processes, "threads": args.workers_threads,
                        "nofile": nofile}}
    m = res["machine"]
    say("machine: %s x %s, kernel %s, %s GiB, %s, load average %s"
        % (m["nproc"], m["cpu"], m["kernel"], m["mem_gib"], m["date"], " ".join(m["loadavg"])))
    h = Harness(args.keep)
    try:
        rc = bench(h, args, res, dur, ttfb_n, spend_s, cg_n, hold_n, hold_chunks, T, C)
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        rc = 130
    except (SetupError, subprocess.TimeoutExpired, OSError) as e:
        say("SETUP ERROR: %s" % e)
        h.keep = True
        rc = 1
    finally:
        h.close()
    if args.json and rc == 0:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return rc


def bench(h, args, res, dur, ttfb_n, spend_s, cg_n, hold_n, hold_chunks, T, C):
    P, W = args.processes, args.workers_threads
    only = set(x.strip() for x in args.only.split(","))
    unknown = only - {"a", "b", "c", "d", "e", "f", "ir", "s"}
    if unknown:
        raise SetupError("--only: unknown scenario(s) %s" % ", ".join(sorted(unknown)))
    if only == {"s"}:  # its own mocks and stacks: nothing else to set up
        import swap_sched
        say("setup in %s" % h.tmp)
        return swap_sched.run(h, Pg(h), res)
    a = a1 = ttfb = e = d = None
    ir, perf = {}, {}
    say("setup in %s" % h.tmp)
    direct, _mock = start_mock(h)
    mock_url = "http://127.0.0.1:%d" % direct.port
    nginx = start_nginx(h, direct.port)
    floor = start_floor(h, P, W) if "a" in only else None
    pg = Pg(h)
    main_stack = Stack(h, pg, "llmgw", mock_url,
                       ["gateway.processes=%d" % P, "gateway.threads=%d" % W]).start()
    vkey, token = generate_key(main_stack, args.key_limits)
    llmgw = main_stack.target(vkey)
    pk = ("disabled (--no-portkey)" if args.no_portkey else "not needed (--only)"
          if "a" not in only else start_portkey(h, direct.port))
    if isinstance(pk, str):
        say("portkey: n/a (%s)" % pk)
        res["portkey"] = "n/a: " + pk
        pk = None
    say("targets: direct :%d, nginx :%d, llmgw :%d%s%s" % (
        direct.port, nginx.port, llmgw.port, ", floor :%d" % floor.port if floor else "",
        ", portkey :%d" % pk.port if pk else ""))
    rows = []  # (scenario, {target: result})

    # (a) non-streaming chat, every target; then concurrency 1
    if "a" in only:
        say("(a) chat, non-streaming")
        ts = [llmgw, nginx, floor] + ([pk] if pk else []) + [direct]
        a = rounds(h, args, ts, CHAT, {t.name: CHAT_BODY for t in ts}, T, C, dur, "(a)")
        rows.append(("(a) chat", a))
        say("(a) chat, -t1 -c1")
        a1 = rounds(h, args, [llmgw, nginx], CHAT, {"llmgw": CHAT_BODY, "nginx": CHAT_BODY}, 1, 1, dur, "(a) c=1")
        rows.append(("(a) chat c=1", a1))

    # (b) streaming: first chunk, then stream throughput
    if "b" in only:
        say("(b) streaming, 20 chunks")
        sb = {"llmgw": stream_body("bench-stream20"), "nginx": stream_body(STREAM_MOCK),
              "direct": stream_body(STREAM_MOCK)}
        ttfb = {}
        for i in range(args.rounds):
            for t in (llmgw, direct):
                r = first_chunk(t, sb[t.name], ttfb_n // args.rounds)
                ttfb.setdefault(t.name, []).append(r)
        ttfb = {k: {"p50": statistics.mean(r["p50"] for r in v), "p90": statistics.mean(r["p90"] for r in v),
                    "n": sum(r["n"] for r in v)} for k, v in ttfb.items()}
        say("  first chunk p50: llmgw %.3f ms, direct %.3f ms" % (ttfb["llmgw"]["p50"], ttfb["direct"]["p50"]))
        b = rounds(h, args, [llmgw, nginx, direct], CHAT, sb, T, C, dur, "(b)")
        rows.append(("(b) stream 20", b))

    # (c) embeddings
    if "c" in only:
        say("(c) embeddings")
        c = rounds(h, args, [llmgw, nginx, direct], EMB, {n: EMB_BODY for n in ("llmgw", "nginx", "direct")},
                   T, C, dur, "(c)")
        rows.append(("(c) embeddings", c))

    # (e) spend path at the highest sustained rate
    if "e" in only:
        say("(e) spend path, %d s" % spend_s)
        call(direct.port, "POST", "/__reset", "{}")
        before = int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s'" % token))
        time.sleep(0.3)  # that psql's backend ends (its CPU is not (e)'s)
        box, during = {}, []
        g0 = cpu_groups(llmgw.groups())
        th = threading.Thread(target=lambda: box.update(wrk(h, llmgw, CHAT, CHAT_BODY, T, C, spend_s)))
        th.start()
        while th.is_alive():  # the backlog under load, once a second
            th.join(1.0)
            if th.is_alive():
                during.append(main_stack.backlog())
        if "rps" not in box:
            raise SetupError("wrk failed in (e)")
        s, t_end, trace = box, time.time(), []
        while True:
            n = main_stack.backlog()
            trace.append((round(time.time() - t_end, 2), n))
            if n == 0 or time.time() - t_end > 30:
                break
            time.sleep(0.05)
        drained = time.time() - t_end
        time.sleep(0.3)
        # wrk's run and the drain, before the count below (a scan of the
        # table: not the spend path's cost)
        win = cpu_delta(g0, cpu_groups(llmgw.groups()))
        after = int(pg.psql("SELECT count(*) FROM spend_logs WHERE api_key = '%s'" % token))
        upstream = json.loads(call(direct.port, "GET", "/__stats")[1])["chat"]
        rows_n = after - before
        pg_s = sum(win.get("postgres", (0, 0)))
        e = {"rps": s["rps"], "wrk_2xx": s["ok"], "errors": s["errors"], "rows": rows_n,
             "upstream_calls": upstream, "drain_s": drained, "backlog_during": during,
             "backlog_trace": trace if len(trace) <= 8 else trace[:5] + trace[-3:], "p50": s["p50"] / 1000, "p99": s["p99"] / 1000,
             "cpu_per_1k": 1000 * s["cpu_s"] / s["requests"],
             "cpu_parts": {g: [1000 * v / s["requests"] for v in uk] for g, uk in s["cpu"].items()},
             # wrk's run + the drain: PostgreSQL's CPU per row written
             "window_cpu_s": {g: list(v) for g, v in win.items()},
             "pg_ms_per_row": 1000 * pg_s / rows_n if rows_n else None}
        say("  %.0f req/s, wrk 2xx %d, spend rows %d, upstream calls %d, backlog 0 after %.2f s"
            % (e["rps"], e["wrk_2xx"], e["rows"], e["upstream_calls"], e["drain_s"]))
        say("  backlog rows under load (1/s): max %d, mean %.0f; at the end: %d"
            % (max(during, default=0), statistics.mean(during) if during else 0, trace[0][1]))
        say("  postgres CPU %.2f s over wrk + drain: %s ms per spend row"
            % (pg_s, fmt(e["pg_ms_per_row"], "%.4f")))
        res["spend"] = e

    # (f) cost that grows with the work: chat bodies of 1 to 256 KiB
    f = None
    if "f" in only:
        say("(f) chat, body size %s" % ", ".join(kib_label(k) for k in BODY_KIB))
        f = {}
        for kib in BODY_KIB:
            bodies = {"llmgw": sized_body("gpt-4", kib), "nginx": sized_body("qwen3-30b-a3b", kib)}
            r = rounds(h, args, [llmgw, nginx], CHAT, bodies, T, C, dur, "(f) " + kib_label(kib))
            rows.append(("(f) chat " + kib_label(kib), r))
            f[kib_label(kib)] = {"kib": kib, "bytes": {k: len(v) for k, v in bodies.items()},
                                 "llmgw": r["llmgw"], "nginx": r["nginx"]}
        for t in ("llmgw", "nginx"):
            small = f["small"][t]["cpu_per_1k"]
            for kib in BODY_KIB[1:]:
                v = f[kib_label(kib)]
                v[t + "_extra_ms"] = v[t]["cpu_per_1k"] - small
                v[t + "_us_per_kib"] = 1000 * v[t + "_extra_ms"] / kib
        res["body_size"] = f
    main_stack.stop()

    # instructions per request (callgrind; perf where it counts)
    if "ir" in only:
        say("instructions per request (callgrind, N=%d)" % cg_n)
        cg = Stack(h, pg, "callgrind", mock_url, ["gateway.processes=1", "gateway.threads=4"]).start(workers=False)
        auth = {"Authorization": "Bearer " + vkey}
        ir = {}

        def spend_rows():
            return int(pg.psql("SELECT count(*) FROM spend_logs"))
        # The first worker creates (zeroes) the shared memory file: a
        # one-off that must not land in the N=0 baseline it is subtracted
        # from, so one worker runs before any is counted.
        callgrind_ir(h, cg, "chat", CHAT, CHAT_BODY, auth, 0)
        # A 20-chunk stream runs on the worker's event loop: counted too.
        sized = [("chat%dk" % k, "chat", CHAT, sized_body("gpt-4", k)) for k in args.ir_kib]
        for name, fam, path, body in [("chat", "chat", CHAT, CHAT_BODY),
                                      ("embeddings", "embeddings", EMB, EMB_BODY),
                                      ("stream20", "chat", CHAT, stream_body("bench-stream20"))] + sized:
            base = ir[fam]["baseline"] if fam in ir else callgrind_ir(h, cg, fam, path, body, auth, 0)
            tot = callgrind_ir(h, cg, fam, path, body, auth, cg_n, name, rows=spend_rows)
            ir[name] = {"baseline": base, "total": tot, "n": cg_n, "per_request": (tot - base) / cg_n}
            say("  %-10s %10.0f Ir/request (baseline %d, total %d)" % (name, ir[name]["per_request"], base, tot))
            lib = library_ir(os.path.join(h.tmp, "callgrind.%s.%d" % (name, cg_n)), cg_n)
            if lib:
                ir[name]["libraries"] = lib
                say("  %-10s of which libcurl %.0f, FastCGI accept/read/finish %.0f (inclusive: their calls and all below)"
                    % ("", lib["libcurl"], lib["fastcgi"]))
        cg.stop()
        res["callgrind"] = ir
        perf = {}
        if perf_works():
            main_stack.start()
            for fam, path, body in (("chat", CHAT, CHAT_BODY), ("embeddings", EMB, EMB_BODY)):
                perf[fam] = perf_instructions(h, main_stack, path, body, auth, cg_n)
            main_stack.stop()
        else:
            perf = {"chat": None, "embeddings": None}
        res["perf"] = perf
        say("  perf stat instructions/request: chat %s, embeddings %s" % (
            fmt(perf["chat"], "%.0f"), fmt(perf["embeddings"], "%.0f")))

    # (d) hold_n streams held open
    big = None
    if "d" in only:
        say("(d) %d streams x %d chunks every 100 ms" % (hold_n, hold_chunks))
        lt_env, lt_note = lighttpd_limits(hold_n)
        say("  lighttpd: " + lt_note)
        # The same processes x threads as (a): a stream holds no thread.
        big = Stack(h, pg, "streams", mock_url,
                    ["gateway.processes=%d" % P, "gateway.threads=%d" % W], env=lt_env).start()
        bt = big.target(vkey)
        warm = big.warm_up(bt, P)
        say("  warm-up: %d sequential requests until each of the %d chat workers had served one" % (warm, P))
        time.sleep(1)
        idle, idle_det = big.mem_parts()
        errors, samples, secs = asyncio.run(hold_streams(
            bt, stream_body(LONG_MOCK % hold_chunks), hold_n, hold_chunks, big.mem_parts))
        most = max((o for o, _ in samples), default=0)
        peak_open, (peak, peak_det) = max((s for s in samples if s[0] >= 0.99 * most),
                                          key=lambda s: s[1][0]["total"]) if samples else (0, (None, None))
        per = {k: (peak[k] - idle[k]) / peak_open for k in idle} if peak else {}
        # where it goes: anonymous memory vs file/shared pages, descriptors
        per_det = {g: {k: (peak_det[g][k] - idle_det[g][k]) / peak_open
                       for k in ("anon", "file_shmem", "fds")} for g in idle_det} if peak else {}
        time.sleep(1)
        after = big.rss_parts()
        time.sleep(10.5)  # every worker gives freed memory back every 10 s
        after3 = big.rss_parts()
        d = {"streams": hold_n, "errors": len(errors), "error_sample": errors[:5], "seconds": secs,
             "lighttpd": lt_env, "most_open": most,
             "idle_rss_kib": idle, "hold_rss_kib": peak, "open_at_sample": peak_open,
             "kib_per_stream": per.get("total"), "kib_per_stream_parts": per,
             "idle_detail": idle_det, "hold_detail": peak_det, "per_stream_detail": per_det,
             "after_rss_kib": after, "after_trim_rss_kib": after3}
        say("  %d errors in %.1f s (at most %d open at once); RSS idle %d KiB, held %s KiB (%d open) -> %s KiB/stream (%s)"
            % (d["errors"], secs, most, idle["total"], peak and peak["total"], peak_open,
               fmt(d["kib_per_stream"], "%.1f"),
               ", ".join("%s %.1f" % (k, v) for k, v in per.items() if k != "total")))
        for g, v in per_det.items():
            say("    %-15s per stream: anon %.1f KiB, file/shmem %.1f KiB, %.2f fds; held: %d procs, fds per proc %s"
                % (g, v["anon"], v["file_shmem"], v["fds"], peak_det[g]["procs"],
                   sorted(peak_det[g]["fds_per_proc"], reverse=True)[:6]))
        say("  RSS 1 s after the streams ended: %d KiB (%+d KiB vs idle); 11.5 s after: %d KiB (%+d KiB)"
            % (after["total"], after["total"] - idle["total"], after3["total"],
               after3["total"] - idle["total"]))
        for er in errors[:5]:
            say("    " + er)
        res["streams"] = d
        big.stop()

    # (s) swap-aware admission in front of a llama-swap-like mock
    if "s" in only:
        import swap_sched
        swap_sched.run(h, pg, res)

    # llmgw's own complaints during the run, counted by message
    complaints = {}
    for st in [main_stack] + ([big] if big else []):
        for fl in st.logs():
            for line in open(fl, errors="replace"):
                if "lvl=err" in line or "lvl=warn" in line:
                    key = re.sub(r"(ts|pid|req)=\S+ ", "", line.strip())
                    key = re.sub(r"/tmp/llmgw-bench-[^/]+/", "$TMP/", key)
                    complaints[key] = complaints.get(key, 0) + 1
    res["log_complaints"] = complaints
    res["ttfb"] = ttfb
    res["table"] = {name: r for name, r in rows}

    # ------------------------------------------------------------ report
    say("")
    res["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    say("load average at the end: %s (other work on the machine adds noise)" % " ".join(res["loadavg_end"]))
    say("llmgw benchmark  wrk -t%d -c%d -d%ds, %d rounds A B A B; llmgw/floor %d proc x %d threads"
        % (T, C, dur, args.rounds, P, W))
    if rows or e:
        say("| scenario | target | req/s | p50 ms | p90 ms | p99 ms | errors | CPU s/1k req | llmgw/x |")
        say("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        lg = r.get("llmgw")
        for t, v in r.items():
            ratio = "" if t == "llmgw" else "%.2f" % (lg["rps"] / v["rps"]) if v["rps"] else "inf"
            cpu = "-" if t == "direct" else fmt(v["cpu_per_1k"], "%.3f")
            say("| %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %s | %s |"
                % (name, t, v["rps"], v["p50"], v["p90"], v["p99"], v["errors"], cpu, ratio))
    if e:
        say("| (e) spend %ds | llmgw | %.0f | %.2f | | %.2f | %d | %.3f | |"
            % (spend_s, e["rps"], e["p50"], e["p99"], e["errors"], e["cpu_per_1k"]))
    say("")
    if rows or e:
        say("CPU: llmgw = lighttpd + every llmgw-* process + all processes of its private PostgreSQL cluster;"
            " nginx = master + workers; floor = lighttpd + fcgi_fixed; portkey = node; direct = the mock (not shown)."
            " CPU s/1k req = CPU ms per request.")
    for name, r in rows:
        for t in ("llmgw", "floor", "nginx"):
            if t in r and r[t]["cpu_parts"] and (t != "nginx" or name.startswith("(f)")):
                say("  %-17s %-6s CPU s/1k: %s" % (name, t, cpu_line(r[t]["cpu_parts"])))
    if e:
        say("  %-17s %-6s CPU s/1k: %s" % ("(e) spend", "llmgw", cpu_line(e["cpu_parts"])))
    if ttfb:
        say("first data event, %d sequential streams: llmgw p50 %.3f p90 %.3f ms; direct p50 %.3f p90 %.3f ms"
            % (ttfb["llmgw"]["n"], ttfb["llmgw"]["p50"], ttfb["llmgw"]["p90"], ttfb["direct"]["p50"],
               ttfb["direct"]["p90"]))
    if ir:
        say("instructions/request (callgrind, one worker, N=%d minus N=0): chat %.0f, embeddings %.0f, "
            "20-chunk stream %.0f; perf stat: %s"
            % (cg_n, ir["chat"]["per_request"], ir["embeddings"]["per_request"], ir["stream20"]["per_request"],
               "n/a (instructions not supported here)" if perf["chat"] is None else
               "chat %.0f, embeddings %.0f" % (perf["chat"], perf["embeddings"])))
    if f:
        say("(f) CPU ms per request by body size; extra = over the small body, per KiB = extra / KiB:")
        say("| body | llmgw ms/req | extra ms | us/KiB | nginx ms/req | extra ms | us/KiB | llmgw req/s | nginx req/s |")
        say("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for lab, v in f.items():
            ex = lambda t, k: fmt(v.get(t + k), "%.3f" if k == "_extra_ms" else "%.2f") if v["kib"] else ""
            say("| %s (%d B) | %.3f | %s | %s | %.3f | %s | %s | %.0f | %.0f |"
                % (lab, v["bytes"]["llmgw"], v["llmgw"]["cpu_per_1k"], ex("llmgw", "_extra_ms"),
                   ex("llmgw", "_us_per_kib"), v["nginx"]["cpu_per_1k"], ex("nginx", "_extra_ms"),
                   ex("nginx", "_us_per_kib"), v["llmgw"]["rps"], v["nginx"]["rps"]))
    if d:
        say("(d) %d streams (%s): %d errors, %s KiB RSS per open stream (lighttpd + llmgw-*): %s"
            % (hold_n, d["lighttpd"] and ", ".join("%s=%s" % kv for kv in d["lighttpd"].items()) or "shipped lighttpd limits",
               d["errors"], fmt(d["kib_per_stream"], "%.1f"),
               ", ".join("%s %.1f" % (k, v) for k, v in d["kib_per_stream_parts"].items() if k != "total")))
    if e:
        say("(e) wrk 2xx %d, spend_logs rows %d, upstream calls %d, backlog 0 after %.2f s; "
            "CPU s over wrk + drain: %s"
            % (e["wrk_2xx"], e["rows"], e["upstream_calls"], e["drain_s"],
               ", ".join("%s %.2f" % (g, sum(v)) for g, v in e["window_cpu_s"].items())))
    say("")
    res["targets"] = report_targets(a, a1, ir, ttfb, rows, d, e, f, hold_n)
    if complaints:
        say("")
        say("llmgw logged warn/err lines (count, message):")
        for l, n in sorted(complaints.items(), key=lambda kv: -kv[1])[:10]:
            say("  %6d  %s" % (n, l[:300]))
    return 0


def report_targets(a, a1, ir, ttfb, rows, d, e, f, hold_n):
    """The PASS/FAIL lines against issue 19's targets of the scenarios that
    ran: verdict, label, measured, needed. Returns {key: measured}."""
    out = []  # (key, label, ok, measured text, needed text, value)

    def t(key, label, val, need, ok, shown, needed):
        out.append((key, label, None if val is None else ok, shown, needed, val))

    def ratio(x, y):
        return x / y if x is not None and y else None

    if a:
        lg, fl = a["llmgw"], a["floor"]
        v = ratio(lg["cpu_per_1k"], fl["cpu_per_1k"])
        t("a_cpu_floor", "(a) CPU/req <= 2.0 x floor's", v, 2.0, v is not None and v <= 2.0,
          "%s x (llmgw %s, floor %s ms)" % (fmt(v), fmt(lg["cpu_per_1k"], "%.3f"), fmt(fl["cpu_per_1k"], "%.3f")),
          "<= 2.0 x")
        v = ratio(lg["rps"], fl["rps"])
        t("a_rps_floor", "(a) req/s >= 0.5 x floor's", v, 0.5, v is not None and v >= 0.5,
          "%s x (llmgw %.0f, floor %.0f req/s)" % (fmt(v), lg["rps"], fl["rps"]), ">= 0.5 x")
        pk = a.get("portkey")
        v = ratio(lg["rps"], pk["rps"]) if pk else None
        t("a_rps_portkey", "(a) req/s >= 15 x Portkey's", v, 15, v is not None and v >= 15,
          "%s x (portkey %s req/s)" % (fmt(v), fmt(pk and pk["rps"], "%.0f")) if pk else "n/a (no portkey)",
          ">= 15 x")
    if ir:
        v = ir["chat"]["per_request"]
        t("ir_chat", "(ir) chat Ir/request <= 100,000", v, 1e5, v <= 1e5, "%.0f Ir" % v, "<= 100000")
    if a1:
        v = a1["llmgw"]["p50"] - a1["nginx"]["p50"]
        t("a_c1_dp50", "(a) c=1 p50 <= nginx + 0.1 ms", v, 0.1, v <= 0.1,
          "%+.3f ms (llmgw %.3f, nginx %.3f)" % (v, a1["llmgw"]["p50"], a1["nginx"]["p50"]), "<= +0.100 ms")
    if ttfb:
        v = ttfb["llmgw"]["p50"] - ttfb["direct"]["p50"]
        t("b_ttfb_dp50", "(b) first chunk <= direct + 0.2 ms", v, 0.2, v <= 0.2,
          "%+.3f ms (llmgw %.3f, direct %.3f p50)" % (v, ttfb["llmgw"]["p50"], ttfb["direct"]["p50"]),
          "<= +0.200 ms")
    b = dict(rows).get("(b) stream 20")
    if b:
        v = b["llmgw"]["cpu_per_1k"]
        t("b_stream_cpu_ms", "(b) 20-chunk stream <= 0.25 CPU ms", v, 0.25, v is not None and v <= 0.25,
          "%s ms per stream" % fmt(v, "%.3f"), "<= 0.250 ms")
    if d:
        at = "" if hold_n >= 10000 else " (target at 10000: run --streams 10000)"
        t("d_errors", "(d) %d streams: 0 errors" % hold_n, d["errors"], 0, d["errors"] == 0,
          "%d errors, at most %d open at once%s" % (d["errors"], d["most_open"], at), "0")
        v = d["kib_per_stream"]
        t("d_kib_per_stream", "(d) <= 24 KiB RSS per open stream", v, 24, v is not None and v <= 24,
          "%s KiB (lighttpd %s, llmgw-chat %s, other %s)" % (
              fmt(v, "%.1f"), *(fmt(d["kib_per_stream_parts"].get(k), "%.1f")
                                for k in ("lighttpd", "llmgw-chat", "other families"))), "<= 24 KiB")
    if e:
        ok = e["rows"] >= e["wrk_2xx"] and e["rows"] == e["upstream_calls"] and e["drain_s"] <= 2
        t("e_ok", "(e) no spend row lost", ok, True, ok,
          "rows %d vs wrk 2xx %d (+%d in flight when wrk stopped), upstream %d, drained %.2f s"
          % (e["rows"], e["wrk_2xx"], e["rows"] - e["wrk_2xx"], e["upstream_calls"], e["drain_s"]),
          "rows == upstream calls >= 2xx, drained <= 2 s")
        v = e["pg_ms_per_row"]
        t("e_pg_ms_per_row", "(e) PostgreSQL <= 0.010 CPU ms/row", v, 0.01, v is not None and v <= 0.010,
          "%s ms (postgres %.2f s / %d rows)" % (fmt(v, "%.4f"), sum(e["window_cpu_s"].get("postgres", (0, 0))),
                                                e["rows"]), "<= 0.0100 ms")
    if f and "64 KiB" in f:
        v = f["64 KiB"].get("llmgw_extra_ms")
        t("f_64k_extra_ms", "(f) 64 KiB body <= small + 0.1 CPU ms", v, 0.1, v is not None and v <= 0.1,
          "%+.3f ms (llmgw %.3f vs %.3f; nginx %+.3f)" % (v, f["64 KiB"]["llmgw"]["cpu_per_1k"],
                                                          f["small"]["llmgw"]["cpu_per_1k"],
                                                          f["64 KiB"]["nginx_extra_ms"]), "<= +0.100 ms")
    say("targets (issue 19): verdict, target, measured, needed")
    for key, label, ok, shown, needed, _ in out:
        say("%s  %-40s %s  (need %s)" % (verdict(ok), label, shown, needed))
    return {key: val for key, _, _, _, _, val in out}


def lighttpd_limits(streams):
    """({LLMGW_LIGHTTPD_*: value}, what it means) for (d): lighttpd holds
    two descriptors per stream (client, FastCGI) and stops accepting at 90 %
    of server.max-fds, each process within its own RLIMIT_NOFILE, which only
    CAP_SYS_RESOURCE raises past the hard limit: above that, more lighttpd
    processes (server.max-worker) share the listening socket."""
    need = 2 * streams + 1024
    if need <= 16384 * 0.9 and streams + 256 <= 4096:
        return {}, "the shipped limits (max-connections 4096, max-fds 16384)"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:  # can this process (root, capabilities) raise it? lighttpd then can
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        cap = 1 << 20
    except (ValueError, OSError):
        cap = hard
    fds = min(cap, max(16384, int(need / 0.9) + 1))
    workers = -(-need // int(fds * 0.9 - 256))
    conns = min(streams + 256, fds // 2) if workers == 1 else fds // 2 - 128
    env = {"LLMGW_LIGHTTPD_MAX_CONNECTIONS": str(conns), "LLMGW_LIGHTTPD_MAX_FDS": str(fds)}
    if workers > 1:
        env["LLMGW_LIGHTTPD_WORKERS"] = str(workers)
    return env, ("max-connections %d, max-fds %d%s (RLIMIT_NOFILE hard limit %d%s)"
                 % (conns, fds, ", max-worker %d" % workers if workers > 1 else "", hard,
                    "" if cap > hard else ", not raisable here: no CAP_SYS_RESOURCE"))

if __name__ == "__main__":
    sys.exit(main())
