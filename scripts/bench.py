#!/usr/bin/python3
"""Postmesh vs Postfix on loopback (run through scripts/bench, which owns the temp dir and
the trap that always stops Postfix).

1. Postmesh: queue + smtpd from POSTMESH_BIN in a temporary state dir. smtpd memory per idle
   session (VmRSS of smtpd and its children before/after opening BENCH_IDLE sessions that
   got their greeting), then smtp-source -s SESSIONS -l SIZE -m MESSAGES: accepted messages
   per second (the queue commits and syncs each one before smtpd's 250; no delivery workers
   run, so mail stays queued).
2. Postfix: an instance with its own config_directory, queue_directory and data_directory in
   the temp dir, inet_interfaces=127.0.0.1 on a free port, no chroot, fsync as shipped, every
   message discarded by the discard transport. Same smtp-source run; memory per idle session
   over a few sessions (one smtpd process each).
Every wait is bounded; each smtp-source run is limited to BENCH_TIMEOUT seconds.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("POSTMESH_BIN", REPO / "build" / "bin"))
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
POSTFIX = "/usr/sbin/postfix"


def env_int(name, default, lo, hi):
    value = int(os.environ.get(name, default))
    if not lo <= value <= hi:
        sys.exit(f"bench: {name}={value} is out of range [{lo}, {hi}]")
    return value


MESSAGES = env_int("BENCH_MESSAGES", 2000, 1, 100000)
SESSIONS = env_int("BENCH_SESSIONS", 20, 1, 100)
SIZE = env_int("BENCH_SIZE", 10240, 100, 10 * 1024 * 1024)
IDLE = env_int("BENCH_IDLE", 1000, 1, 5000)
POSTFIX_IDLE = env_int("BENCH_POSTFIX_IDLE", 20, 1, 80)   # one process each: keep it small
TIMEOUT = env_int("BENCH_TIMEOUT", 300, 10, 3600)


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


# ------------------------------------------------------------------ memory


def status_kb(pid, field="VmRSS"):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    """Direct children of pid, with their command names."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out.append((int(entry.name), comm))
    return out


def tree_rss_kb(pid):
    """VmRSS of pid and all its descendants (privilege-separated workers included)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += status_kb(p)
        todo.extend(c for c, _ in children(p))
    return total


def open_idle_sessions(port, count, timeout=60):
    """count connections that each received a 220 greeting; they then stay silent."""
    socks, pending = [], {}
    deadline = time.monotonic() + timeout
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        pending[s.fileno()] = (s, b"")
        # Read greetings as we go so the server never has too many unanswered accepts.
        while len(pending) > 64 and time.monotonic() < deadline:
            collect_greetings(pending, socks, 0.5)
    while pending and time.monotonic() < deadline:
        collect_greetings(pending, socks, 0.5)
    if pending:
        for s, _ in pending.values():
            s.close()
        raise RuntimeError(f"{len(pending)} of {count} sessions got no greeting")
    return socks


def collect_greetings(pending, done, wait):
    ready, _, _ = select.select([s for s, _ in pending.values()], [], [], wait)
    for s in ready:
        sock, buf = pending.pop(s.fileno())
        try:
            data = sock.recv(512)
        except BlockingIOError:
            pending[s.fileno()] = (sock, buf)
            continue
        buf += data
        if not data or (b"\n" in buf and not buf.startswith(b"220")):
            sock.close()
            raise RuntimeError(f"session refused: {buf[:200]!r}")
        if b"\n" in buf:
            done.append(sock)
        else:
            pending[s.fileno()] = (sock, buf)


def close_all(socks):
    for s in socks:
        s.close()


# ------------------------------------------------------------------ smtp-source


def smtp_source(port, rcpt):
    args = [SMTP_SOURCE, "-s", str(SESSIONS), "-l", str(SIZE), "-m", str(MESSAGES), "-c",
            "-f", "bench@example.test", "-t", rcpt, f"127.0.0.1:{port}"]
    start = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        log(f"smtp-source exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return elapsed


# ------------------------------------------------------------------ Postmesh


def to_libconfig(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + " ".join(f"{k} = {to_libconfig(v)};" for k, v in value.items()) + " }"
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return "( " + ", ".join(to_libconfig(v) for v in value) + " )"
        return "[ " + ", ".join(to_libconfig(v) for v in value) + " ]"
    raise TypeError(value)


class Postmesh:
    def __init__(self, root: Path):
        self.root = root / "postmesh"
        self.root.mkdir()
        (self.root / "users").touch()
        self.port = free_port()
        self.procs = {}
        settings = {
            "hostname": "bench.postmesh.test",
            "state_dir": str(self.root / "state"),
            "domains": ["example.test"],
            "users_file": str(self.root / "users"),
            "trusted_networks": ["127.0.0.0/8"],       # smtp-source relays to a remote domain
            "queue": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "control": f"tcp://127.0.0.1:{free_port()}",
                      "map_size_mb": max(256, MESSAGES * SIZE * 3 // 2**20)},
            "resolver": {"endpoint": f"tcp://127.0.0.1:{free_port()}"},
            "smtpd": {"listen": [{"address": f"127.0.0.1:{self.port}", "mode": "smtp"}],
                      "max_connections": IDLE + SESSIONS + 100,
                      "max_connections_per_ip": IDLE + SESSIONS + 100},
        }
        (self.root / "state").mkdir()
        self.conf = self.root / "postmesh.conf"
        self.conf.write_text("".join(f"{k} = {to_libconfig(v)};\n" for k, v in settings.items()))
        self.pids = root / "pids"

    def start(self, svc):
        logf = self.root / f"{svc}.log"
        with open(logf, "ab") as out:
            p = subprocess.Popen([str(BIN / f"postmesh-{svc}"), "-c", str(self.conf)], stdout=out,
                                 stderr=subprocess.STDOUT, cwd=self.root)
        self.procs[svc] = p
        with open(self.pids, "a") as f:
            f.write(f"{p.pid}\n")

        def started():
            if p.poll() is not None:
                raise RuntimeError(f"postmesh-{svc} exited {p.returncode}:\n{logf.read_text()[-2000:]}")
            return "event=started" in logf.read_text(errors="replace")
        wait_for(started, 30, f"postmesh-{svc} to start")

    def log(self, svc):
        return (self.root / f"{svc}.log").read_text(errors="replace")

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
        self.pids.write_text("")


def bench_postmesh(root: Path):
    pm = Postmesh(root)
    try:
        pm.start("queue")
        pm.start("smtpd")
        pid = pm.procs["smtpd"].pid
        time.sleep(0.5)
        before = tree_rss_kb(pid)
        socks = open_idle_sessions(pm.port, IDLE)
        time.sleep(0.5)
        after = tree_rss_kb(pid)
        close_all(socks)
        log(f"postmesh: {IDLE} idle sessions, smtpd VmRSS {before} kB -> {after} kB")
        time.sleep(1)  # let smtpd see the closes before the throughput run

        queued_before = pm.log("smtpd").count("event=queued")
        elapsed = smtp_source(pm.port, "sink@bench.test")
        accepted = pm.log("smtpd").count("event=queued") - queued_before
        return {"elapsed": elapsed, "accepted": accepted, "rss_before": before, "rss_after": after}
    finally:
        pm.stop()


# ------------------------------------------------------------------ Postfix


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
# Accept, queue (with the fsyncs Postfix always does), then throw away: the cheapest delivery.
default_transport = discard:bench
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
syslog_name = postfix-bench
"""


class Postfix:
    def __init__(self, root: Path):
        self.dir = root / "postfix"
        self.etc = self.dir / "etc"
        for sub in ("etc", "queue", "data"):
            (self.dir / sub).mkdir(parents=True)
        shutil.chown(self.dir / "data", "postfix", "postfix")
        self.port = free_port()
        (self.etc / "main.cf").write_text(MAIN_CF.format(d=self.dir))
        # Debian's master.cf, with smtpd on our loopback port only and nothing chrooted (the
        # chroot would need copies of /etc files inside the temporary queue directory).
        lines = []
        for line in Path("/usr/share/postfix/master.cf.dist").read_text().splitlines():
            fields = line.split()
            if line[:1].isalpha() and len(fields) >= 8:
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"127.0.0.1:{self.port}"
                fields[4] = "n"
                line = "  ".join(fields)
            lines.append(line)
        (self.etc / "master.cf").write_text("\n".join(lines) + "\n")
        self.maillog = self.dir / "maillog"

    def postfix(self, *args):
        return subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True, text=True, timeout=120)

    def start(self):
        r = self.postfix("start")
        if r.returncode != 0:
            tail = self.maillog.read_text(errors="replace")[-1500:] if self.maillog.exists() else ""
            raise RuntimeError(f"postfix start failed ({r.returncode}): {r.stderr}{tail}")
        wait_for(self.listening, 30, "postfix smtpd to listen")

    def listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(5)
                return s.recv(3) == b"220"
        except OSError:
            return False

    def master_pid(self):
        return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])

    def smtpd_pids(self):
        return [p for p, comm in children(self.master_pid()) if comm == "smtpd"]

    def count(self, pattern):
        if not self.maillog.exists():
            return 0
        return len(re.findall(pattern, self.maillog.read_text(errors="replace")))

    def version(self):
        r = subprocess.run(["/usr/sbin/postconf", "-c", str(self.etc), "-h", "mail_version"], capture_output=True,
                           text=True, timeout=30)
        return r.stdout.strip() or "?"

    def stop(self):
        self.postfix("stop")


def bench_postfix(root: Path):
    pf = Postfix(root)
    try:
        pf.start()
        # Each session is served by its own smtpd process; the one that answered the start
        # probe may be reused, so the figures are per new process.
        before = set(pf.smtpd_pids())
        socks = open_idle_sessions(pf.port, POSTFIX_IDLE)
        time.sleep(0.5)
        procs = [p for p in pf.smtpd_pids() if p not in before]
        rss = sum(status_kb(p) for p in procs)
        pss = sum(pss_kb(p) for p in procs)
        close_all(socks)
        log(f"postfix: {POSTFIX_IDLE} idle sessions in {len(procs)} new smtpd processes, RSS {rss} kB, PSS {pss} kB")

        sent_before = pf.count(r"cleanup\[\d+\]: \w+: message-id=")
        elapsed = smtp_source(pf.port, "sink@bench.test")
        # cleanup logs each accepted message; postlogd writes asynchronously.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            n = pf.count(r"cleanup\[\d+\]: \w+: message-id=") - sent_before
            if n != last:
                last, stable_since = n, time.monotonic()
            if n >= MESSAGES or time.monotonic() - stable_since > 2:
                break
            time.sleep(0.2)
        return {"elapsed": elapsed, "accepted": last, "version": pf.version(), "sessions": POSTFIX_IDLE,
                "procs": len(procs), "rss": rss, "pss": pss}
    finally:
        pf.stop()


# ------------------------------------------------------------------ main


def rate(r):
    return r["accepted"] / r["elapsed"] if r["elapsed"] > 0 else 0.0


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: sh scripts/bench   (bench.py needs the temporary directory the wrapper made)")
    root = Path(sys.argv[1])
    # Turn TERM/HUP into an exception so the finally blocks stop Postfix and our services
    # (the wrapper's trap does it again, in case this process is killed outright).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    for exe in (BIN / "postmesh-queue", BIN / "postmesh-smtpd", Path(SMTP_SOURCE)):
        if not exe.exists():
            sys.exit(f"bench: {exe} is missing (make; apt-get install postfix for smtp-source)")
    load = os.getloadavg()[0]
    print(f"Postmesh benchmark: {MESSAGES} messages of {SIZE} bytes over {SESSIONS} sessions (smtp-source), "
          f"loopback, {os.cpu_count()} CPUs, load {load:.2f} at start")
    ours = bench_postmesh(root)
    print(f"  postmesh (queue+smtpd): {ours['accepted']:6d} accepted in {ours['elapsed']:6.2f} s = "
          f"{rate(ours):8.1f} msg/s")
    theirs = None
    if Path(POSTFIX).exists() and os.geteuid() == 0:
        theirs = bench_postfix(root)
        print(f"  postfix {theirs['version']:<14s}: {theirs['accepted']:6d} accepted in {theirs['elapsed']:6.2f} s = "
              f"{rate(theirs):8.1f} msg/s")
    else:
        print("  postfix: skipped (needs /usr/sbin/postfix and root to run an instance)")
    delta = ours["rss_after"] - ours["rss_before"]
    print(f"  postmesh smtpd, {IDLE} idle sessions: VmRSS {ours['rss_before'] / 1024:.1f} MiB -> "
          f"{ours['rss_after'] / 1024:.1f} MiB = {delta / IDLE:.1f} KiB per session")
    if theirs and theirs["procs"]:
        print(f"  postfix smtpd, {theirs['sessions']} idle sessions ({theirs['procs']} processes): "
              f"{theirs['rss'] / theirs['procs']:.0f} KiB RSS, {theirs['pss'] / theirs['procs']:.0f} KiB PSS "
              f"per session (one process each)")
    if ours["accepted"] < MESSAGES or (theirs and theirs["accepted"] < MESSAGES):
        print("  note: fewer messages accepted than sent (see the smtp-source errors above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
