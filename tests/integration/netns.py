"""Network namespaces for multi-host tests: one namespace per host, joined by veth pairs to a
bridge that lives in a dedicated "switch" namespace, addresses from a private test range
assigned only inside those namespaces. The root namespace gets no interface, address or route,
so nothing a test sends can leave the test's own network.

Names carry the creating pid and a random tag (parallel and aborted runs do not collide);
Network.close() kills what is still running in the namespaces and deletes them, and a new
Network first removes the namespaces of runs whose process is gone. Interface names live
inside the namespaces (the switch ports, each host's eth0), so they never clash either.

Processes run in a host with `ip netns exec NS ...` (Host.command); Python clients run in a
host by switching the calling thread's network namespace (Host.entered): sockets opened
there belong to that host's network.
"""
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

PREFIX = "pmtest"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable():
    """Why namespaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2's ip is not installed"
    # root without CAP_SYS_ADMIN (an unprivileged container) cannot make namespaces
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()}"
    return None


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _namespaces():
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _kill_inside(ns):
    """SIGKILL every process still in namespace ns (only ever one of ours), then wait a
    little for them to go, so that deleting the namespace frees it."""
    r = _ip("netns", "pids", ns, check=False)
    pids = [int(p) for p in r.stdout.split() if p.isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
        time.sleep(0.02)


def _delete(ns):
    _kill_inside(ns)
    _ip("netns", "delete", ns, check=False)


def sweep_stale():
    """Namespaces left by aborted runs (their creating pid no longer exists)."""
    for ns in _namespaces():
        m = re.match(rf"{PREFIX}-(\d+)-", ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _delete(ns)


class Host:
    """One machine: a namespace with lo up and eth0 on the test network."""

    def __init__(self, network, name, address):
        self.network, self.name, self.address = network, name, address
        self.ns = f"{network.tag}-{name}"

    def command(self, *argv):
        """argv run in this host (ip netns exec execs it: the pid is the program's)."""
        return ["ip", "netns", "exec", self.ns, *map(str, argv)]

    def run(self, *argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(self.command(*argv), **kw)

    @contextlib.contextmanager
    def entered(self):
        """The calling thread's sockets are opened in this host's network meanwhile."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/run/netns/{self.ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.ns}")
            try:
                yield self
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:   # pragma: no cover - would be fatal
                    raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
        finally:
            os.close(target)
            os.close(own)


class Network:
    """A switch namespace with a bridge, and hosts on subnet (the first three octets of a /24)."""

    def __init__(self, subnet="10.231.0"):
        self.subnet = subnet
        self.tag = f"{PREFIX}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.switch = f"{self.tag}-switch"
        self.hosts = {}
        sweep_stale()
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
        except Exception:
            self.close()
            raise

    def add_host(self, name, last_octet):
        host = Host(self, name, f"{self.subnet}.{last_octet}")
        port = f"p{len(self.hosts)}"      # the switch port, inside the switch namespace
        _ip("netns", "add", host.ns)
        self.hosts[name] = host
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.ns, "link", "set", "lo", "up")
        _ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.ns, "link", "set", "eth0", "up")
        return host

    def close(self):
        for host in self.hosts.values():
            _delete(host.ns)
        _delete(self.switch)
        self.hosts = {}

    def leftovers(self):
        return [ns for ns in _namespaces() if ns.startswith(self.tag)]
