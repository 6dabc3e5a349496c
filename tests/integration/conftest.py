"""Harness for integration tests: real Postmesh binaries on free loopback ports, a generated
config in a temporary state dir, and nothing mocked.

Every service logs `event=started` once it is ready; start() waits for that line.
"""
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from procs import stop_process

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("POSTMESH_BIN", REPO / "build" / "bin"))


_handed_out = set()
_draw = random.Random()     # seeded from the OS: two runs on one machine draw different ports


def _ephemeral_range():
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1", kinds=(socket.SOCK_STREAM,)):
    """A port free now on host (for every socket kind in kinds) and never handed out before in
    this run: the service binds it only later, so two calls must not return the same one.
    Drawn from below the kernel's ephemeral range, where connect() takes source ports from:
    a port from there could go to any outgoing connection (ours, the mta's, ZeroMQ's) between
    now and the service's bind ("Address already in use")."""
    lo = _ephemeral_range()[0]
    first = 10000 if lo > 20000 else 1024
    # Under pytest-xdist (make integration runs two workers) each worker draws from its own
    # slice: the "never handed out" set is per process, and two workers must not both think
    # a port is theirs.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    if workers > 1:
        width = (lo - first) // workers
        first, lo = first + worker * width, first + (worker + 1) * width
    for _ in range(1000):
        port = _draw.randrange(first, lo)
        if port in _handed_out:
            continue
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind((host, port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no fresh free port")


def free_udp_port(host="127.0.0.1"):
    return free_port(host, (socket.SOCK_DGRAM,))


def to_libconfig(value, indent=0):
    """Python values -> libconfig syntax: dict=group, list of dict=list (), list=array []."""
    pad = "  " * indent
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 2**31 else f"{value}L"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        inner = "".join(f"{pad}  {k} = {to_libconfig(v, indent + 1)};\n" for k, v in value.items())
        return "{\n" + inner + pad + "}"
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return "( " + ", ".join(to_libconfig(v, indent + 1) for v in value) + " )"
        return "[ " + ", ".join(to_libconfig(v, indent + 1) for v in value) + " ]"
    raise TypeError(value)


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Postmesh:
    """One Postmesh installation: config, state dir, and the service processes."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "state"
        self.state.mkdir()
        self.conf_path = root / "postmesh.conf"
        self.procs = {}
        self.logs = {}
        self.exec_prefix = []     # e.g. ["ip", "netns", "exec", NS]: run the services on another host
        self.ports = {
            "smtp": free_port(), "submission": free_port(), "smtps": free_port(),
            "pop3": free_port(), "pop3s": free_port(),
            "imap": free_port(), "imaps": free_port(),
        }
        self.settings = {
            "hostname": "mx.example.test",
            "state_dir": str(self.state),
            "domains": ["example.test"],
            "users_file": str(root / "users"),
            "aliases_file": str(root / "aliases"),
            "trusted_networks": [],
            "debug": True,
            "queue": {
                "endpoint": f"tcp://127.0.0.1:{free_port()}",
                "control": f"tcp://127.0.0.1:{free_port()}",
                "map_size_mb": 256,
                "retry_min": 1, "retry_max": 4, "max_lifetime": 3600, "delay_warning": 0,
                "job_lease": 10,
            },
            # DNSSEC validation wants the root's keys from the nameserver, which a test's
            # dnsmasq cannot give: only the DNSSEC tests (their own signed zone) turn it on
            "resolver": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "nameservers": ["127.0.0.1:1"],
                         "timeout": 2, "dnssec": False},
            "smtpd": {
                "listen": [
                    {"address": f"127.0.0.1:{self.ports['smtp']}", "mode": "smtp"},
                    {"address": f"127.0.0.1:{self.ports['submission']}", "mode": "submission"},
                    {"address": f"127.0.0.1:{self.ports['smtps']}", "mode": "smtps"},
                ],
                "submit_timeout": 5,
                "drain_timeout": 2,  # a test stopping smtpd mid-transaction must not wait 30 s
                # SPF/DKIM/DMARC on port 25 want a resolver and add a header: only the tests of
                # them (test_smtpd_authres.py) turn it on; the rest see mail as it came
                "verify_inbound": False,
            },
            "mta": {"remote_port": 25, "connect_timeout": 3, "command_timeout": 10},
            "pop3d": {
                "listen": [
                    {"address": f"127.0.0.1:{self.ports['pop3']}", "mode": "pop3"},
                    {"address": f"127.0.0.1:{self.ports['pop3s']}", "mode": "pop3s"},
                ],
                "drain_timeout": 2,
            },
            "imapd": {
                "listen": [
                    {"address": f"127.0.0.1:{self.ports['imap']}", "mode": "imap"},
                    {"address": f"127.0.0.1:{self.ports['imaps']}", "mode": "imaps"},
                ],
                "drain_timeout": 2,
            },
        }
        (root / "users").touch()
        (root / "aliases").touch()

    # ------------------------------------------------------------------ config
    def configure(self, **changes):
        """Merge changes (nested dicts merge one level deep) into the settings."""
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(self.settings.get(key), dict):
                self.settings[key].update(value)
            else:
                self.settings[key] = value
        self.write_config()

    def write_config(self):
        text = "".join(f"{k} = {to_libconfig(v)};\n" for k, v in self.settings.items())
        self.conf_path.write_text(text)

    # ------------------------------------------------------------------ processes
    def start(self, *services, wait=True, timeout=10.0, name=None, conf=None):
        """name: the process's key in procs/logs instead of the service (a second queue
        shard: start("queue", name="queue2", conf=path)); conf: its own config file."""
        self.write_config()
        self.ensure_keys()
        for svc in services:
            key = name or svc
            log_path = self.root / f"{key}.log"
            self.logs[key] = log_path
            offset = log_path.stat().st_size if log_path.exists() else 0
            logf = open(log_path, "ab")
            self.procs[key] = subprocess.Popen(
                [*self.exec_prefix, str(BIN / f"postmesh-{svc}"), "-c", str(conf or self.conf_path)],
                stdout=logf, stderr=subprocess.STDOUT, cwd=self.root,
            )
            logf.close()
            if wait:
                self.wait_started(key, offset, timeout)
        return self

    def ensure_keys(self):
        """The install step: one keypair per role (`postmesh keys init`), as `postmesh run` does
        first. A service creates only its own pair, and never a server's key a client needs."""
        if self.settings.get("bus", {}).get("curve", True) and not (self.state / "keys").exists() \
                and (BIN / "postmesh").exists():
            self.cli("keys", "init")

    def wait_started(self, svc, offset=0, timeout=10.0):
        def started():
            proc = self.procs[svc]
            if proc.poll() is not None:
                raise AssertionError(f"{svc} exited with {proc.returncode}:\n{self.log(svc)[-3000:]}")
            return "event=started" in self.logs[svc].read_bytes()[offset:].decode(errors="replace")
        wait_for(started, timeout, what=f"{svc} to start")

    def stop(self, svc, sig=signal.SIGTERM, timeout=10.0):
        proc = self.procs.pop(svc, None)
        if proc is None:
            return None
        stop_process(proc, timeout, sig)
        return proc.returncode

    def kill(self, svc):
        return self.stop(svc, signal.SIGKILL)

    def stop_all(self):
        for svc in list(self.procs):
            self.stop(svc)

    def log(self, svc):
        path = self.logs.get(svc, self.root / f"{svc}.log")
        return path.read_text(errors="replace") if path.exists() else ""

    # ------------------------------------------------------------------ users
    def add_user(self, address, password="secret"):
        """Appends a {SHA512-CRYPT} line to the users file (services re-read it on change)."""
        hashed = subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True,
                                check=True).stdout.strip()
        users = Path(self.settings["users_file"])
        with open(users, "a") as f:
            f.write(f"{address}:{{SHA512-CRYPT}}{hashed}\n")
        return address

    # ------------------------------------------------------------------ clients
    def cli(self, *args, input=None, check=True, timeout=30):
        r = subprocess.run([*self.exec_prefix, str(BIN / "postmesh"), "-c", str(self.conf_path), *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"postmesh {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def queue_list(self):
        """Parsed `postmesh queue list`: a list of dicts with at least 'id'."""
        out = self.cli("queue", "list").stdout
        rows = []
        for line in out.splitlines():
            if not line.strip() or line.startswith(("#", "-")) or line.split()[0].lower() in ("id", "queue"):
                continue
            rows.append({"id": line.split()[0], "line": line})
        return rows

    def port(self, mode):
        return self.ports[mode]


def write_key(keys_dir, name, pub):
    """Lists public key pub (bytes, Z85) as keys_dir/<name>.pub the way `postmesh keys` writes
    key files: whole under a temporary name in the same directory (not *.pub, so never read),
    synced, then renamed, so the queue's reader never sees half a key. A test that means a key
    file written in place writes it itself."""
    keys_dir = Path(keys_dir)
    tmp = keys_dir / f".{name}.pub.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, pub + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, keys_dir / f"{name}.pub")


def traversable(path):
    """pytest makes its temporary directories 0700: the queue's reader, running as the queue's
    user, could then not read the aliases file there (as in production with an unreadable
    /etc/postmesh, where the queue refuses to start). Let the service users traverse them, as
    they can /etc. Returns path."""
    # Every level below /tmp: under pytest-xdist the test's directory is one level deeper
    # (/tmp/pytest-of-root/pytest-N/popen-gwK/test0), and a level left 0700 made a test pass
    # or fail by which test had opened it first.
    for d in (path, *path.parents):
        if not str(d).startswith("/tmp/"):
            break
        if d.owner() == "root":
            d.chmod(d.stat().st_mode | 0o011)
    return path


@pytest.fixture
def zctx():
    """A ZeroMQ context for a test's own bus peers, destroyed without lingering."""
    import zmq
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def pm(tmp_path):
    inst = Postmesh(traversable(tmp_path))
    yield inst
    inst.stop_all()
    crashes = crash_lines(inst)
    if crashes:
        pytest.fail("a service process crashed during the test (its supervisor restarted it, so "
                    "the test itself may not notice):\n" + "\n".join(crashes), pytrace=False)


# What a process that died of a bug leaves in its log: the supervisor's line for a sandbox or
# worker killed by SIGABRT (glibc's "double free", abort()) or SIGSEGV/SIGBUS/SIGFPE/SIGILL,
# and the C library's or a sanitizer's own words. No test makes one die like that on purpose.
CRASH_MARKS = re.compile(r"event=sandbox_exited .*signal=(4|6|7|8|11)\b|double free|corrupted|"
                         r"AddressSanitizer|runtime error:|stack smashing")


def crash_lines(inst):
    out = []
    for path in sorted(set(inst.logs.values())):
        if path.exists():
            out += [f"{path.name}: {ln}" for ln in path.read_text(errors="replace").splitlines()
                    if CRASH_MARKS.search(ln)][:5]
    return out
