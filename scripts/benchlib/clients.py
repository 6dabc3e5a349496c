"""The clients and the sink the figures use: Postfix's smtp-source (HELO) and smtp-sink
(stores nothing, counts), Debian's postal (EHLO, optional STARTTLS; runs until stopped, so
it is given a fixed time), our loadgen (scripts/loadgen.c: EHLO + PIPELINING, per-message
end-of-DATA -> 250 latency; also the 10,000 idle sessions), and smtplib for
connect + EHLO + QUIT."""
import os
import re
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

from .util import log, percentile, run, wait_for
from procs import stop_process  # tests/integration, on the path through util

SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTAL = "/usr/sbin/postal"
FROM = "bench@client.test"


def smtp_source(port, rcpt, messages, sessions, size, timeout, host="127.0.0.1"):
    """Returns (elapsed seconds, exit code). -c: counts; the default one message per session."""
    args = [SMTP_SOURCE, "-s", sessions, "-l", size, "-m", messages, "-f", FROM, "-t", rcpt, f"{host}:{port}"]
    start = time.monotonic()
    try:
        r = run(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"smtp-source did not finish within {timeout}s")
        return time.monotonic() - start, -1
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        log(f"smtp-source exited {r.returncode}: {r.stderr.strip()[-300:]}")
    return elapsed, r.returncode


class Sink:
    """smtp-sink on 127.0.0.2:port; -c writes `sess=N quit=N mesg=N` counters to stdout."""

    def __init__(self, root: Path, port: int, host="127.0.0.2", backlog=1024):
        self.host, self.port = host, port
        self.out = root / f"sink-{port}.out"
        self.outf = open(self.out, "wb")
        self.proc = subprocess.Popen([SMTP_SINK, "-c", "-u", "nobody", f"{host}:{port}", str(backlog)],
                                     stdout=self.outf, stderr=subprocess.STDOUT)
        wait_for(self.listening, 10, "smtp-sink to listen")

    def listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"smtp-sink exited: {self.out.read_text(errors='replace')}")
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.settimeout(2)
                return s.recv(3) == b"220"
        except OSError:
            return False

    def count(self):
        with open(self.out, "rb") as f:
            try:
                f.seek(-200, os.SEEK_END)
            except OSError:
                pass
            tail = f.read().decode(errors="replace")
        found = re.findall(r"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0

    def stop(self):
        stop_process(self.proc)
        self.outf.close()


def parse_kv(line):
    return {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", line)}


def loadgen(exe, port, rcpt, messages, conc, size, timeout, new_conn=False, domains=0):
    """Returns loadgen's figures: messages, failed, msgs_per_s, p50_ms, p99_ms. domains:
    message k goes to the local part of rcpt at d<k mod domains>.<rcpt's domain>."""
    # -S 16: clients from 16 loopback addresses, as an MX sees many (smtpd picks a worker by
    # client address; Postfix does not care).
    args = [exe, "-c", conc, "-m", messages, "-s", size, "-t", rcpt, "-f", FROM, "-T", timeout, "-S", 16]
    if new_conn:
        args.append("-n")
    if domains:
        args += ["-D", domains]
    r = run([*args, f"127.0.0.1:{port}"], timeout=timeout + 30)
    out = parse_kv(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    if r.returncode != 0:
        log(f"loadgen exited {r.returncode}: {r.stdout.strip()} {r.stderr.strip()[-300:]}")
    return out


class IdleSessions:
    """loadgen -I: count sessions that got their EHLO reply, held until close()."""

    def __init__(self, exe, port, count, timeout):
        self.proc = subprocess.Popen([str(exe), "-I", str(count), "-T", str(timeout), f"127.0.0.1:{port}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.count = count
        line = ""
        deadline = time.monotonic() + timeout
        import select
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if not line.startswith(f"ready={count}") or " " in line.strip():
            self.close()
            raise RuntimeError(f"idle sessions: wanted {count}, loadgen said {line.strip()!r}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Postal:
    """postal -t THREADS -c 1 (a new connection per message) [-s 100]: runs until stopped,
    so the bench gives it a fixed time and counts what arrived. Its stdout has per-minute
    counters only; failures are read from its stderr (`Can't ...`)."""

    def __init__(self, root: Path, port, rcpt, threads, size_kb, tls, tag, host="127.0.0.1"):
        users = root / f"postal-users-{tag}"
        users.write_text(rcpt + "\n")
        senders = root / f"postal-senders-{tag}"
        senders.write_text(FROM + "\n")
        self.err = root / f"postal-{tag}.err"
        self.errf = open(self.err, "wb")
        args = [POSTAL, "-t", str(threads), "-c", "1", "-m", str(size_kb), "-M", str(size_kb),
                "-s", "100" if tls else "0", "-f", str(senders), f"[{host}]{port}", str(users)]
        self.proc = subprocess.Popen(args, stdout=self.errf, stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=root)   # whatever postal leaves behind stays in the temp dir
        Postal.live.add(self)

    live = set()

    @classmethod
    def stop_all(cls):
        """Any postal a figure did not get to stop (an exception, Ctrl-C at the wrong time)."""
        for p in list(cls.live):
            p.stop()

    def stop(self):
        Postal.live.discard(self)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)   # it ignores SIGINT
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.errf.close()
        text = self.err.read_text(errors="replace")
        errors = [l for l in text.splitlines() if l.startswith("Can't") or "rror:" in l]
        return len(errors), errors[:3]


def connect_latency(port, count, timeout):
    """count sequential smtplib connect + EHLO + QUIT; returns (p50 ms, p99 ms, failures)."""
    times, failures = [], 0
    deadline = time.monotonic() + timeout
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t = time.perf_counter()
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench.test", timeout=10)
            s.ehlo()
            s.quit()
        except (OSError, smtplib.SMTPException):
            failures += 1
            continue
        times.append((time.perf_counter() - t) * 1000)
    return percentile(times, 0.5), percentile(times, 0.99), failures + (count - len(times) - failures)
