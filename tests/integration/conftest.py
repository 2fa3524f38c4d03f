"""Integration fixtures: a real PostgreSQL cluster, spawn-fcgi workers and
lighttpd (or Apache) on free loopback ports, all started through
deploy/llmgwctl (the same scripts and templates as `make demo`) in a private
temporary directory, and torn down by pid file, also when a test fails.

The front-facing tests run behind both web fronts: they take the `front`
fixture (parametrized lighttpd / apache) and a stack for it, `front_relay`,
`front_keys`, `twin(stack, front)` or `make_stack(..., front=front)`."""
import atexit
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TREE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CTL = os.path.join(TREE, "deploy", "llmgwctl")
MASTER_KEY = "sk-test-master-0123456789-wxyz"  # its tail is no hex: request ids never contain it
APACHE_BIN = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
# The front of stacks that name none (LLMGW_TEST_FRONT=apache runs the whole
# suite behind Apache).
DEFAULT_FRONT = os.environ.get("LLMGW_TEST_FRONT", "lighttpd")


def apache_missing():
    """Why the Apache front cannot run here, or None."""
    for f in (APACHE_BIN, os.path.join(APACHE_MODULES, "mod_proxy_fcgi.so"),
              os.path.join(APACHE_MODULES, "mod_mpm_event.so")):
        if not os.path.exists(f):
            return ("%s is missing: apache2 is not installed "
                    "(deploy/install-deps.sh --test installs apache2-bin)" % f)
    return None


FRONTS = ["lighttpd", pytest.param("apache", marks=pytest.mark.skipif(
    apache_missing() is not None, reason=str(apache_missing())))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def request(port, method, path, body=None, headers=None, timeout=30):
    """One HTTP request on a fresh connection; returns a Response."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict(headers or {}, **{"Content-Type": "application/json"})
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data, time.monotonic() - t0)
    finally:
        conn.close()


def assert_openai_error(resp, status, etype=None):
    """The body is {"error":{"message","type","param","code"}}, code = status."""
    assert resp.status == status, resp
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["code"] == str(status)
    assert isinstance(err["message"], str) and err["message"]
    if etype is not None:
        assert err["type"] == etype, err
    return err


class Pg:
    """The cluster shared by every stack of the session."""

    def __init__(self, base):
        self.dir = os.path.join(base, "pg")
        self.env = dict(os.environ, LLMGW_VAR=os.path.join(base, "pgvar"),
                        LLMGW_PG_DIR=self.dir, LLMGW_PG_FAST="1",
                        # Every stack of the session stays up until its
                        # end, each process holding a connection per
                        # busy thread, a listener and a heartbeat: 300
                        # ran out late in a full run (503s in
                        # test_user_limits).
                        LLMGW_PG_MAX_CONNECTIONS="1500")

    def ctl(self, *args, check=True):
        return subprocess.run([CTL, *args], env=self.env, check=check,
                              capture_output=True, text=True, timeout=120)

    def start(self):
        self.ctl("pg-start")

    def stop(self):
        self.ctl("pg-stop", check=False)

    @property
    def sock(self):
        return os.path.join(self.dir, "run")

    def conninfo(self, db="llmgw"):
        return "host=%s user=llmgw dbname=%s" % (self.sock, db)

    def psql(self, sql, db="llmgw"):
        out = subprocess.run(["psql", "-h", self.sock, "-U", "llmgw", "-d", db,
                              "-tAX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def createdb(self, name):
        self.psql("DROP DATABASE IF EXISTS %s" % name, db="postgres")
        self.psql("CREATE DATABASE %s" % name, db="postgres")


class Stack:
    """Workers + lighttpd or Apache rendered from conf/llmgw.conf and deploy/."""

    def __init__(self, base, name, pg, upstream, overrides=(), db="llmgw",
                 front=None):
        self.front = front or DEFAULT_FRONT
        self.name = name
        self.var = os.path.join(base, name if self.front == "lighttpd"
                                else name + "-" + self.front)
        self.port = free_port()
        self.pg = pg
        self.overrides = tuple(overrides)
        self.db = db
        lines = ["database.conninfo=" + pg.conninfo(db),
                 "gateway.processes=2", "gateway.threads=8",
                 "gateway.shutdown_timeout_s=10",
                 # The per-client buckets are tested on their own
                 # (test_limits.py, test_client_limits.py): every test
                 # client is 127.0.0.1, and many tests fail on purpose.
                 "rate_limit.rps=0", "rate_limit.auth_failures_per_min=0"]
        lines += list(overrides)
        self.env = dict(os.environ, LLMGW_VAR=self.var, LLMGW_FRONT=self.front,
                        LLMGW_LISTEN="127.0.0.1:%d" % self.port,
                        LLMGW_PG_DIR=pg.dir, LLMGW_MASTER_KEY=MASTER_KEY,
                        LLMGW_CONF_OVERRIDES="\n".join(lines))
        self.upstream = upstream
        self.started = False

    def ctl(self, *args, check=True):
        r = subprocess.run([CTL, *args], env=self.env, capture_output=True,
                           text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("llmgwctl %s failed:\n%s%s" % (args, r.stdout, r.stderr))
        return r

    def start(self):
        self.started = True
        self.ctl("render", self.upstream)
        self.ctl("workers-start")
        self.ctl("front-start")
        return self

    def stop(self):
        if self.started:
            self.ctl("front-stop", check=False)
            self.ctl("workers-stop", check=False)
            self.started = False

    def request(self, method, path, body=None, headers=None, timeout=30):
        return request(self.port, method, path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def conf(self):
        return os.path.join(self.var, "llmgw.conf")

    def log(self, family):
        with open(os.path.join(self.var, "log", family + ".log")) as f:
            return f.read()

    def pid(self, name):
        with open(os.path.join(self.var, "run", name + ".pid")) as f:
            return int(f.read())

    def children(self, name):
        """Worker process pids under a family's supervisor."""
        out = subprocess.run(["pgrep", "-P", str(self.pid(name))],
                             capture_output=True, text=True)
        return sorted(int(p) for p in out.stdout.split())


class FakeUpstream:
    """A tiny stand-in upstream for health probes: /health answers after
    `delay` seconds with `status`; every request is recorded."""

    def __init__(self):
        self.delay = 0.0
        self.status = 200
        self.seen = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.seen.append(("GET", self.path))
                time.sleep(outer.delay)
                body = b"OK"
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                outer.seen.append(("POST", self.path))
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


_cleanups = []


def _cleanup_all():
    while _cleanups:
        try:
            _cleanups.pop()()
        except Exception:
            pass


atexit.register(_cleanup_all)


@pytest.fixture(scope="session")
def base_dir():
    d = tempfile.mkdtemp(prefix="llmgw-it-")
    os.chmod(d, 0o755)
    yield d
    _cleanup_all()
    if os.environ.get("LLMGW_KEEP_TEST_DIR") != "1":
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(base_dir):
    p = Pg(base_dir)
    _cleanups.append(p.stop)
    p.start()
    r = subprocess.run([os.path.join(TREE, "bin", "llmgw-migrate"), "-d",
                        p.conninfo(), "-m", os.path.join(TREE, "migrations")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    yield p
    p.stop()


@pytest.fixture(scope="session")
def fake_upstream():
    u = FakeUpstream()
    yield u
    u.close()


@pytest.fixture(scope="session")
def make_stack(base_dir, pg):
    """Factory: make_stack(name, upstream_url, overrides=[...], db=...,
    front="lighttpd"|"apache")."""
    made = []

    def make(name, upstream, overrides=(), db="llmgw", front=None):
        s = Stack(base_dir, name, pg, upstream, overrides, db, front)
        made.append(s)
        _cleanups.append(s.stop)
        return s.start()

    yield make
    for s in made:
        s.stop()


@pytest.fixture(params=FRONTS)
def front(request):
    """The web front a front-facing test runs behind: each test that takes
    it runs once behind lighttpd and once behind Apache (skipped, with the
    reason, where apache2 is not installed)."""
    return request.param


@pytest.fixture(scope="session")
def twin(make_stack):
    """twin(stack, front): `stack` itself if it runs behind `front`, else the
    same stack (name, upstream, overrides, database) behind `front`, made
    on first use and kept for the session."""
    made = {}

    def get(stack, front):
        if stack.front == front:
            return stack
        key = (stack.name, front)
        if key not in made or not made[key].started:
            made[key] = make_stack(stack.name, stack.upstream, stack.overrides,
                                   stack.db, front=front)
        return made[key]

    return get


@pytest.fixture(scope="session")
def stack(make_stack, fake_upstream):
    """The default stack: health family in front of the fake upstream."""
    return make_stack("main", fake_upstream.url)


class Mock:
    """bin/mock-upstream (tests/mock/mock_upstream.c) on a free port."""

    def __init__(self, base, name="mock", args=()):
        self.port_file = os.path.join(base, name + ".port")
        self.log = open(os.path.join(base, name + ".log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(TREE, "bin", "mock-upstream"), "--port", "0",
             "--port-file", self.port_file, "--quiet", *args],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                break
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())
        self.url = "http://127.0.0.1:%d" % self.port

    def get(self, path):
        return request(self.port, "GET", path).json()

    def post(self, path, body):
        return request(self.port, "POST", path, body)

    def last(self):
        return self.get("/__last")

    def stats(self):
        return self.get("/__stats")

    def reset(self):
        self.post("/__reset", {})
        self.post("/__control", {})

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def mock(base_dir):
    m = Mock(base_dir)
    _cleanups.append(m.close)
    yield m
    m.close()


AUTH = {"Authorization": "Bearer " + MASTER_KEY}


@pytest.fixture(scope="session")
def relay(make_stack, mock):
    """Chat, embeddings and health families in front of the C mock."""
    return make_stack("relay", mock.url, [
        "gateway.threads=64",
        "upstream.stream_keepalive_s=1",
        "upstream.first_byte_timeout_s=3",
        "upstream.idle_timeout_s=3",
        "aliases.fb-test=m@fault=500, qwen3-30b-a3b",
        "aliases.fb-down=x@fault=drop_before, qwen2.5-14b-instruct",
    ])


@pytest.fixture
def front_relay(relay, front, twin):
    """`relay` behind each front."""
    return twin(relay, front)


RAW_KEYS = []  # every raw key the tests saw: none may be stored or logged


def jwt_b64(data):
    import base64
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=None, alg="HS256", key_pem=None, header=None):
    """Sign claims: HS256 with secret, RS256/ES256 with openssl and key_pem."""
    import hashlib
    import hmac
    head = jwt_b64(header or {"alg": alg, "typ": "JWT"})
    signing = (head + "." + jwt_b64(claims)).encode()
    if alg == "none":
        return head + "." + jwt_b64(claims) + "."
    if alg == "HS256":
        sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    else:
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_pem],
                             input=signing, capture_output=True, check=True).stdout
        if alg == "ES256":
            sig = der_to_raw_ecdsa(sig)
    return signing.decode() + "." + jwt_b64(sig)


def der_to_raw_ecdsa(der):
    """ASN.1 SEQUENCE{INTEGER r, INTEGER s} -> r||s, 32 bytes each."""
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(32, b"\0")
        i += 2 + n
    return out


class JwtKeys:
    def __init__(self, base):
        self.dir = os.path.join(base, "jwt")
        os.makedirs(self.dir, exist_ok=True)
        self.secret = "jwt-test-secret-0123456789abcdef0123456789"
        self.secret_file = os.path.join(self.dir, "secret")
        open(self.secret_file, "w").write(self.secret + "\n")
        self.rsa = os.path.join(self.dir, "rsa.pem")
        self.rsa_pub = os.path.join(self.dir, "rsa.pub.pem")
        self.ec = os.path.join(self.dir, "ec.pem")
        self.ec_pub = os.path.join(self.dir, "ec.pub.pem")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.rsa)
        run("openssl", "pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub)
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ec)
        run("openssl", "pkey", "-in", self.ec, "-pubout", "-out", self.ec_pub)


@pytest.fixture(scope="session")
def jwt_keys(base_dir):
    return JwtKeys(base_dir)


@pytest.fixture(scope="session")
def keys_stack(make_stack, mock, jwt_keys):
    """Every family, with JWTs (HS256 secret + RS256 public key) accepted."""
    return make_stack("keys", mock.url, [
        "gateway.threads=16",
        "auth.jwt_secret_file=" + jwt_keys.secret_file,
        "auth.jwt_public_key_file=" + jwt_keys.rsa_pub,
        "auth.jwt_issuer=https://issuer.test",
        "auth.jwt_audience=llmgw",
    ])


@pytest.fixture
def front_keys(keys_stack, front, twin):
    """`keys_stack` behind each front."""
    return twin(keys_stack, front)


def post(stack, path, body, headers=AUTH, timeout=30):
    return stack.request("POST", path, body=body, headers=headers, timeout=timeout)


def open_stream(stack, key, chunks=50, delay=100):
    """A slow stream (the mock's chunks and delay) opened with key, read up
    to its first event; the socket, still open."""
    body = ('{"model":"qwen3-30b-a3b@chunks=%d,chunk_delay_ms=%d","stream":true,'
            '"messages":[{"role":"user","content":"x"}]}' % (chunks, delay)).encode()
    s = socket.create_connection(("127.0.0.1", stack.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + key.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
              + b"\r\n\r\n" + body)
    got = b""
    while b"data: " not in got:
        got += s.recv(4096)
    return s


def bearer(key):
    return {"Authorization": "Bearer " + key}


def new_key(stack, **fields):
    """POST /key/generate with the master key; the whole answer. Its raw key
    is remembered for the search of the database and logs (test_keys)."""
    r = post(stack, "/key/generate", fields)
    assert r.status == 200, r
    out = r.json()
    RAW_KEYS.append(out["key"])
    return out


def wait_json_row(pg, sql, what, timeout=15):
    """The one row sql (a SELECT to_jsonb(...)) returns, decoded, polled
    for until it is there: rows come through the spool and shipper, not at
    once. AssertionError naming what when none came within timeout s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = pg.psql(sql)
        if out:
            return json.loads(out)
        time.sleep(0.1)
    raise AssertionError("no %s within %g s" % (what, timeout))


def spend_row(pg, rid, timeout=15):
    """The spend_logs row of request rid, once shipped."""
    return wait_json_row(pg, "SELECT to_jsonb(s) FROM spend_logs s "
                         "WHERE request_id = '%s'" % rid,
                         "spend row for " + rid, timeout)
