"""Hosts made of network namespaces, for tests that need several machines.

A Lab makes one namespace per host, named lgwt<pid>-<host> so that two runs
never collide and a run that died can be recognised, and joins hosts with
point-to-point veth pairs created inside the namespaces themselves
(`ip -n NS link add ... peer ... netns NS2`): no interface, address or
route ever appears in the namespace the tests run in. Addresses come from
198.18.0.0/15 (RFC 2544, reserved for network benchmarks) and exist only
inside the lab. Loopback is up in every host.

Processes run in a host through `ip netns exec` (lab.run, lab.popen) or,
for HTTP calls from the test process, on threads that have entered the
host's namespace with setns(2) (lab.pool, lab.call): a socket belongs to
the namespace of the thread that made it.

lab.destroy() (idempotent; also registered with atexit) kills what still
runs in the lab's namespaces, by pid, and deletes them. A lab left behind
by a run that was killed (its pid gone) is removed by the next Lab().
"""
import atexit
import concurrent.futures
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
PREFIX = "lgwt"

_libc = ctypes.CDLL(None, use_errno=True)


class Unavailable(Exception):
    """Namespaces cannot be made here (not root, no iproute2, no veth...)."""


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def _pids(ns):
    r = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _kill_all(ns, sig=signal.SIGKILL):
    for pid in _pids(ns):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _delete(ns):
    """Kill what runs in ns (by pid) and delete it."""
    for _ in range(50):
        if not _pids(ns):
            break
        _kill_all(ns)
        time.sleep(0.05)
    _ip("netns", "del", ns, check=False)


def _reap_stale():
    """Remove the namespaces of earlier runs whose process is gone."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"(%s(\d+)-\S+)" % PREFIX, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            _delete(m.group(1))


def enter(ns):
    """Move the calling thread into namespace ns (this thread only)."""
    fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (ns, os.strerror(e)))
    finally:
        os.close(fd)


class Lab:
    def __init__(self, tag=None):
        if os.geteuid() != 0:
            raise Unavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise Unavailable("no ip command (iproute2)")
        _reap_stale()
        self.tag = tag or "%s%d" % (PREFIX, os.getpid())
        self.hosts = {}  # host -> namespace name
        self.links = {}  # (a, b) -> interface name in a
        self.pools = []
        probe = self.tag + "-probe"
        r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable("ip netns add failed: %s" % r.stderr.strip())
        r = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
                check=False)
        _delete(probe)
        if r.returncode != 0:
            raise Unavailable("no veth pairs: %s" % r.stderr.strip())
        atexit.register(self.destroy)

    def ns(self, host):
        return self.hosts[host]

    def add_host(self, host):
        ns = "%s-%s" % (self.tag, host)
        _ip("netns", "add", ns)
        self.hosts[host] = ns
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def link(self, a, addr_a, b, addr_b, prefix=24):
        """A veth pair between hosts a and b, named to-<b> in a and to-<a>
        in b, with addresses addr_a and addr_b on a /prefix."""
        ia, ib = "to-" + b, "to-" + a
        _ip("-n", self.ns(a), "link", "add", ia, "type", "veth", "peer", "name", ib,
            "netns", self.ns(b))
        for host, ifname, addr in ((a, ia, addr_a), (b, ib, addr_b)):
            _ip("-n", self.ns(host), "addr", "add", "%s/%d" % (addr, prefix), "dev", ifname)
            _ip("-n", self.ns(host), "link", "set", ifname, "up")
        self.links[(a, b)] = ia
        self.links[(b, a)] = ib

    def set_link(self, host, peer, up):
        """`ip link set up|down` on host's end of its link to peer."""
        _ip("-n", self.ns(host), "link", "set", self.links[(host, peer)],
            "up" if up else "down")

    def argv(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def run(self, host, argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        return subprocess.run(self.argv(host, argv), **kw)

    def popen(self, host, argv, **kw):
        return subprocess.Popen(self.argv(host, argv), **kw)

    def pool(self, host, threads):
        """A thread pool whose threads live in host's namespace."""
        p = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, initializer=enter, initargs=(self.ns(host),),
            thread_name_prefix="ns-" + host)
        self.pools.append(p)
        return p

    def call(self, host, fn, *args, **kw):
        """fn(*args, **kw) on a thread inside host's namespace."""
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=1, initializer=enter, initargs=(self.ns(host),)) as p:
            return p.submit(fn, *args, **kw).result()

    def destroy(self):
        for p in self.pools:
            p.shutdown(wait=False, cancel_futures=True)
        self.pools = []
        for ns in self.hosts.values():
            _delete(ns)
        self.hosts = {}
