"""The Debian package, installed into the real system (issue 20).

Builds two packages (`make deb`, the second with a higher version), installs
the first with dpkg -i, points /etc/llmgw/llmgw.conf at a PostgreSQL cluster
of its own and the C mock upstream, and starts the families and the
installed lighttpd site the way a host without systemd does: with the
installed `llmgw-families start` and `llmgw-families front-start` (PID 1 is
not systemd here nor in CI; LLMGW_NO_SYSTEMD=1 makes that explicit). Then:
health, a virtual key, a chat and its spend row; logrotate with the
installed rule (the families reopen their log on SIGHUP); the second package
installed over the first while requests run (its postinst migrates and
rolls the families one at a time: no failed request, one spend row each);
a rollout that meets a family whose new program is not ready (it stops
there, the old programs keep serving); remove and purge (nothing of the package left, the llmgw user gone).

Root only (it installs into /etc, /usr, /var); skipped when not root or
when an llmgw package is already installed. Whatever happens, the finally
clause stops what the package started and purges it. Its ports are free
ports, its state is the package's (/run/llmgw, /var/lib/llmgw), not the
source tree's var/."""
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import TREE, Mock, Pg, free_port, request

# No systemd as PID 1 (here and in CI): the maintainer scripts and the test
# use llmgw-families' own supervision. Shorter readiness and drain waits
# than the defaults (2 s each) keep the rollout of five families short.
ENV = dict(os.environ, LLMGW_NO_SYSTEMD="1", LLMGW_READY_S="1", LLMGW_DRAIN_S="1")
CTL = os.path.join(TREE, "deploy", "llmgwctl")


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "llmgw"],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 and "installed" in r.stdout else None


def dpkg(*args, timeout=120):
    """dpkg, waiting for its lock when another apt/dpkg holds it."""
    deadline = time.time() + 90
    while True:
        r = subprocess.run(["dpkg", *args], env=ENV, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode == 0 or "lock" not in r.stderr or time.time() > deadline:
            return r
        time.sleep(1)


def sh(*args, **kw):
    return subprocess.run(list(args), env=ENV, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 60), **kw)


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: root only"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb missing"),
]


def build(version):
    r = subprocess.run(["make", "--no-print-directory", "-C", TREE, "deb",
                        "DEB_VERSION=" + version], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    return os.path.join(TREE, "build", "deb", "llmgw_%s_%s.deb" % (version, arch))


def pids():
    out = {}
    for f in ("health", "chat", "embeddings", "keys", "spend"):
        p = "/run/llmgw/%s.pid" % f
        if os.path.exists(p):
            out[f] = int(open(p).read())
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def cleanup():
    """Stop what the package started and purge it (also after a failure)."""
    if os.path.exists("/usr/sbin/llmgw-families"):
        sh("llmgw-families", "front-stop")
        sh("llmgw-families", "stop", timeout=120)
    if installed() or subprocess.run(["dpkg", "-s", "llmgw"],
                                     capture_output=True).returncode == 0:
        dpkg("--purge", "llmgw")


def test_package_install_upgrade_purge():
    if installed():
        pytest.skip("an llmgw package is installed here already: not touching it")
    try:
        pwd.getpwnam("llmgw")
        user_before = True
    except KeyError:
        user_before = False
    version = open(os.path.join(TREE, "VERSION")).read().strip()
    t0 = time.time()
    deb1 = build(version + "+test1")
    deb2 = build(version + "+test2")
    # lintian meanwhile (the package must have no error; README lists the
    # warnings left and why).
    assert shutil.which("lintian"), "lintian missing (deploy/install-deps.sh --test)"
    lint = subprocess.Popen(["lintian", "--no-tag-display-limit", deb1],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = tempfile.mkdtemp(prefix="llmgw-pkg-")
    os.chmod(base, 0o755)
    pg = Pg(base)
    mock = None
    try:
        # A cluster of our own; its socket reachable by the llmgw user the
        # families run as (trust auth: a throwaway cluster in a fresh dir).
        pg.start()
        pg.ctl("pg-stop")
        with open(os.path.join(pg.dir, "data", "postgresql.conf"), "a") as f:
            f.write("unix_socket_permissions = 0777\n")
        pg.start()
        os.chmod(pg.dir, 0o755)
        mock = Mock(base)
        port = free_port()

        r = dpkg("-i", deb1)
        assert r.returncode == 0, r.stdout + r.stderr
        # What the package made.
        u = pwd.getpwnam("llmgw")
        st = os.stat("/var/lib/llmgw/spool")
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == u.pw_uid
        st = os.stat("/etc/llmgw/master.key")
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == u.pw_uid
        master = open("/etc/llmgw/master.key").read().strip()
        assert master.startswith("sk-") and len(master) > 40
        st = os.stat("/var/log/llmgw")
        assert st.st_uid == u.pw_uid and st.st_gid == grp.getgrnam("adm").gr_gid
        conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "llmgw").stdout
        for c in ("/etc/llmgw/llmgw.conf", "/etc/llmgw/lighttpd.conf",
                  "/etc/cron.d/llmgw", "/etc/logrotate.d/llmgw"):
            assert c in conffiles, conffiles
        files = [l for l in sh("dpkg", "-L", "llmgw").stdout.split("\n") if l]
        assert "/usr/lib/llmgw/llmgw-chat" in files
        assert "/usr/share/llmgw/migrations/001_init.sql" in files
        # Nothing runs before the operator configures it.
        assert pids() == {}

        # Configure as an operator would: the database, the upstream, the
        # front's port (the test's free port), small worker counts.
        r = sh(CTL, "render-conf", "/etc/llmgw/llmgw.conf", "/etc/llmgw/llmgw.conf",
               "database.conninfo=" + pg.conninfo(),
               "upstream.base_url=" + mock.url,
               "gateway.listen=127.0.0.1:%d" % port,
               "gateway.processes=1", "gateway.threads=8",
               "rate_limit.rps=1000", "rate_limit.burst=2000",
               "prices.qwen3-30b-a3b=1.5 2.5")
        assert r.returncode == 0, r.stderr
        site = open("/etc/llmgw/lighttpd.conf").read()
        assert "server.port            = 4000" in site
        with open("/etc/llmgw/lighttpd.conf", "w") as f:
            f.write(site.replace("server.port            = 4000",
                                 "server.port            = %d" % port))

        r = sh("llmgw-families", "start", timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "migration(s) applied" in r.stdout
        r = sh("llmgw-families", "front-start")
        assert r.returncode == 0, r.stdout + r.stderr
        started = pids()
        assert set(started) == {"health", "chat", "embeddings", "keys", "spend"}
        for pid in started.values():
            assert pwd.getpwuid(os.stat("/proc/%d" % pid).st_uid).pw_name == "llmgw"

        deadline = time.time() + 20
        while True:
            try:
                h = request(port, "GET", "/health/readiness")
                if h.status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "not ready"
            time.sleep(0.2)
        assert h.json()["database"] == "connected", h.json()

        admin = {"Authorization": "Bearer " + master}
        k = request(port, "POST", "/key/generate", {"key_alias": "pkg"}, admin)
        assert k.status == 200, k
        vkey = {"Authorization": "Bearer " + k.json()["key"]}
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": "hello there friend"}]}
        c = request(port, "POST", "/v1/chat/completions", body, vkey)
        assert c.status == 200, c
        assert c.json()["choices"][0]["message"]["content"]

        def rows():
            return int(pg.psql("SELECT count(*) FROM spend_logs WHERE status = 200 AND api_key <> ''"))

        def wait_rows(n, timeout=20):
            deadline = time.time() + timeout
            while rows() < n and time.time() < deadline:
                time.sleep(0.1)
            return rows()

        assert wait_rows(1) == 1
        assert float(pg.psql("SELECT spend FROM spend_logs")) > 0

        # logrotate with the installed rule: the log moves aside, the
        # postrotate SIGHUP makes every family open a new one.
        assert shutil.which("logrotate"), "logrotate missing (deploy/install-deps.sh --test)"
        r = sh("logrotate", "-f", "-s", os.path.join(base, "logrotate.state"),
               "/etc/logrotate.d/llmgw")
        assert r.returncode == 0, r.stderr
        assert os.path.exists("/var/log/llmgw/llmgw.log.1")
        c = request(port, "POST", "/v1/chat/completions", body, vkey)
        assert c.status == 200, c
        deadline = time.time() + 10
        while not (os.path.exists("/var/log/llmgw/llmgw.log") and
                   "chat" in open("/var/log/llmgw/llmgw.log").read()):
            assert time.time() < deadline, "no new llmgw.log after logrotate"
            time.sleep(0.1)
        assert wait_rows(2) == 2

        # The upgrade, under load: two clients chatting all along.
        statuses, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                try:
                    statuses.append(request(port, "POST", "/v1/chat/completions",
                                            body, vkey, timeout=30).status)
                except OSError as e:
                    statuses.append(repr(e))
                time.sleep(0.02)  # ~40 requests/s in all, under the limits

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            r = dpkg("-i", deb2, timeout=300)
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "+test2" in installed()
        bad = [s for s in statuses if s != 200]
        assert not bad and len(statuses) > 20, (len(statuses), bad[:5])
        rolled = pids()
        assert set(rolled) == set(started)
        for f, pid in rolled.items():
            assert pid != started[f], f
            assert alive(pid) and not alive(started[f]), f
        # The conffiles the test edited are kept (unchanged in the package).
        assert "server.port            = %d" % port in open("/etc/llmgw/lighttpd.conf").read()
        assert master == open("/etc/llmgw/master.key").read().strip()
        # Every answered request has its row: none lost in the rollout.
        want = 2 + len(statuses)
        assert wait_rows(want) == want
        assert request(port, "GET", "/health/readiness").status == 200

        # A rollout that meets a family whose new program is not ready
        # (here a chat program that passes its check, then exits) stops
        # there: health is replaced, chat and the ones after it keep their
        # old programs, and chat keeps answering.
        chat = "/usr/lib/llmgw/llmgw-chat"
        shutil.copy2(chat, os.path.join(base, "llmgw-chat"))
        with open(chat + ".tmp", "w") as f:
            f.write('#!/bin/sh\ncase " $* " in *" -t "*) exit 0 ;; esac\nexit 1\n')
        os.chmod(chat + ".tmp", 0o755)
        os.rename(chat + ".tmp", chat)
        try:
            r = sh("llmgw-families", "restart", timeout=120)
        finally:
            shutil.copy2(os.path.join(base, "llmgw-chat"), chat + ".tmp")
            os.rename(chat + ".tmp", chat)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "new llmgw-chat is not ready" in r.stderr, r.stderr
        assert "rollout stopped" in r.stderr
        after = pids()
        assert after["health"] != rolled["health"] and alive(after["health"])
        for f in ("chat", "embeddings", "keys", "spend"):
            assert after[f] == rolled[f] and alive(after[f]), f
        assert not os.path.exists("/run/llmgw/chat.new.sock")
        c = request(port, "POST", "/v1/chat/completions", body, vkey)
        assert c.status == 200, c
        assert request(port, "GET", "/health/readiness").status == 200
        rolled = after

        # Remove: the programs go, the configuration and state stay.
        r = dpkg("--remove", "llmgw")
        assert r.returncode == 0, r.stdout + r.stderr
        for pid in rolled.values():
            assert not alive(pid)
        for f in files:
            if os.path.isfile(f) and f not in conffiles:
                raise AssertionError("%s left after remove" % f)
        assert os.path.exists("/etc/llmgw/llmgw.conf")
        assert os.path.exists("/etc/llmgw/master.key")
        # Purge: nothing left, the user gone.
        r = dpkg("--purge", "llmgw")
        assert r.returncode == 0, r.stdout + r.stderr
        left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
        left += [d for d in ("/etc/llmgw", "/var/lib/llmgw", "/var/log/llmgw",
                             "/run/llmgw", "/usr/lib/llmgw", "/usr/share/llmgw")
                 if os.path.lexists(d)]
        assert not left, left
        if not user_before:  # else not the package's user: it stays
            with pytest.raises(KeyError):
                pwd.getpwnam("llmgw")
        assert subprocess.run(["dpkg", "-s", "llmgw"], capture_output=True).returncode != 0
        out = lint.communicate(timeout=120)[0]
        errors = [l for l in out.splitlines() if l.startswith("E:")]
        assert not errors, out
        warnings = sorted({l.split()[2] for l in out.splitlines() if l.startswith("W:")})
        assert set(warnings) <= {"missing-systemd-timer-for-cron-script"}, out
        print("package test: %.1f s, %d requests during the upgrade" %
              (time.time() - t0, len(statuses)))
    finally:
        if lint.poll() is None:
            lint.kill()
        cleanup()
        if mock is not None:
            mock.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
