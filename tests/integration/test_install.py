"""make install (issue 20): the GNU directories, every template rendered
with them (no @NAME@ left), the rendered lighttpd and Apache sites valid,
and an existing configuration never overwritten (the new one beside it as
.new). Into a DESTDIR: needs no root."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import APACHE_BIN, TREE, apache_missing

DIRS = dict(PREFIX="/opt/gw", SYSCONFDIR="/etc/gw", LOCALSTATEDIR="/srv/gw",
            RUNSTATEDIR="/run/gw")


def make_install(dest, **extra):
    args = ["make", "--no-print-directory", "-C", TREE, "install", "DESTDIR=" + dest]
    args += ["%s=%s" % kv for kv in dict(DIRS, **extra).items()]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


@pytest.fixture
def dest():
    d = tempfile.mkdtemp(prefix="llmgw-install-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_install_layout_and_rendering(dest):
    make_install(dest)
    want = ["opt/gw/bin/llmgw-migrate", "opt/gw/bin/llmgw-langfuse-export",
            "opt/gw/sbin/llmgw-families", "opt/gw/share/llmgw/migrations/001_init.sql",
            "opt/gw/share/llmgw/errors/status-503.html",
            "opt/gw/share/llmgw/llmgw.conf.example",
            "etc/gw/llmgw/llmgw.conf", "etc/gw/llmgw/lighttpd.conf",
            "etc/gw/llmgw/apache.conf", "etc/gw/cron.d/llmgw", "etc/gw/logrotate.d/llmgw",
            "opt/gw/lib/systemd/system/llmgw@.service",
            "opt/gw/lib/systemd/system/llmgw-migrate.service",
            "opt/gw/lib/systemd/system/llmgw-lighttpd.service",
            "opt/gw/lib/tmpfiles.d/llmgw.conf",
            "opt/gw/share/man/man1/llmgw-migrate.1.gz",
            "opt/gw/share/man/man1/llmgw-langfuse-export.1.gz",
            "opt/gw/share/man/man8/llmgw-families.8.gz"]
    want += ["opt/gw/lib/llmgw/llmgw-%s" % f for f in ("health", "chat", "embeddings", "keys", "spend")]
    for f in want:
        assert os.path.isfile(os.path.join(dest, f)), f
    for f in ("opt/gw/bin/llmgw-migrate", "opt/gw/sbin/llmgw-families", "opt/gw/lib/llmgw/llmgw-chat"):
        assert os.access(os.path.join(dest, f), os.X_OK), f
    # Every rendered file names the install paths, no placeholder left.
    for f in want:
        p = os.path.join(dest, f)
        if "/bin/" in f or "/lib/llmgw/" in f or f.endswith((".sql", ".gz")):
            continue
        text = "\n".join(l for l in open(p).read().split("\n")
                         if not l.lstrip().startswith("#"))
        assert not re.search(r"@[A-Z_]+@", text), (f, re.findall(r"@[A-Z_]+@", text))
        assert "/opt/llmgw" not in text, f
    unit = open(os.path.join(dest, "opt/gw/lib/systemd/system/llmgw@.service")).read()
    assert "ExecStart=/usr/bin/spawn-fcgi -n -s /run/gw/llmgw/%i.sock" in unit
    assert "-- /opt/gw/lib/llmgw/llmgw-%i" in unit
    assert "Environment=LLMGW_CONFIG=/etc/gw/llmgw/llmgw.conf" in unit
    mig = open(os.path.join(dest, "opt/gw/lib/systemd/system/llmgw-migrate.service")).read()
    assert "/opt/gw/bin/llmgw-migrate -c /etc/gw/llmgw/llmgw.conf -m /opt/gw/share/llmgw/migrations" in mig
    cron = open(os.path.join(dest, "etc/gw/cron.d/llmgw")).read()
    assert ("llmgw [ -x /opt/gw/bin/llmgw-langfuse-export ] && "
            "/opt/gw/bin/llmgw-langfuse-export -q -c /etc/gw/llmgw/llmgw.conf") in cron
    conf = os.path.join(dest, "etc/gw/llmgw/llmgw.conf")
    got = {}
    for key in ("spend.spool_dir", "auth.master_key_file", "log.file", "gateway.shm_path"):
        sec, k = key.split(".")
        m = re.search(r"^\[%s\][^\[]*?^%s\s*=\s*(\S*)" % (sec, k),
                      open(conf).read(), re.M | re.S)
        got[key] = m.group(1)
    assert got == {"spend.spool_dir": "/srv/gw/lib/llmgw/spool",
                   "auth.master_key_file": "/etc/gw/llmgw/master.key",
                   "log.file": "/srv/gw/log/llmgw/llmgw.log",
                   "gateway.shm_path": "/run/gw/llmgw/llmgw.shm"}
    site = open(os.path.join(dest, "etc/gw/llmgw/lighttpd.conf")).read()
    assert '"socket" => "/run/gw/llmgw/chat.sock"' in site
    assert 'server.errorfile-prefix     = "/opt/gw/share/llmgw/errors/status-"' in site
    assert 'server.username = "www-data"' in site
    # The sites parse (with the error directory the test installed).
    lt = site.replace("/opt/gw/share/llmgw", os.path.join(dest, "opt/gw/share/llmgw"))
    open(os.path.join(dest, "lt.conf"), "w").write(lt)
    r = subprocess.run(["lighttpd", "-tt", "-f", os.path.join(dest, "lt.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if apache_missing() is None:
        ap = open(os.path.join(dest, "etc/gw/llmgw/apache.conf")).read()
        assert '<Proxy "unix:/run/gw/llmgw/chat.sock|fcgi://llmgw-chat/">' in ap
        ap = ap.replace("/opt/gw/share/llmgw", os.path.join(dest, "opt/gw/share/llmgw"))
        ap = ap.replace('ServerRoot      "/srv/gw/lib/llmgw"', 'ServerRoot      "%s"' % dest)
        ap = ap.replace("/run/gw/llmgw", dest).replace("/srv/gw/log/llmgw", dest)
        os.makedirs(os.path.join(dest, "front"))
        open(os.path.join(dest, "ap.conf"), "w").write(ap)
        r = subprocess.run([APACHE_BIN, "-t", "-f", os.path.join(dest, "ap.conf")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_install_keeps_an_existing_configuration(dest):
    make_install(dest)
    conf = os.path.join(dest, "etc/gw/llmgw/llmgw.conf")
    with open(conf, "a") as f:
        f.write("\n# the operator's edit\n")
    mine = open(conf).read()
    r = make_install(dest)
    assert open(conf).read() == mine
    assert os.path.exists(conf + ".new")
    assert "the operator's edit" not in open(conf + ".new").read()
    assert "llmgw.conf exists, new one in" in r.stdout + r.stderr
