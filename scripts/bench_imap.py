#!/usr/bin/python3
"""`make bench`, IMAP part: postmesh-imapd against a real Dovecot (dovecot-imapd, its indexes on
disk as a real installation keeps them), each over its own copy of the same Maildir store, in
the same run, on loopback. Run through scripts/bench-imap, which owns the temporary directory
and the trap that stops Dovecot and our processes however the run ends.

Figures (median of BENCH_RUNS runs, at least 3; the servers alternate within a run):
  imap_fetch_headers  FETCH 1:* BODY.PEEK[HEADER] of a BENCH_IMAP_MESSAGES-message INBOX, in
                      a fresh session (LOGIN, SELECT, then the timed FETCH): messages/s;
                      imap_fetch_headers_first is the first such FETCH after the server
                      started (nothing cached yet, one run);
  imap_idle_p50/p99   IDLE wake-up latency: a session IDLEs on a folder, a message is
                      delivered into it as delivery does (written in tmp/, renamed into
                      new/), time from the rename to the untagged EXISTS (ms; BENCH_IMAP_IDLE
                      deliveries per run, one session).
Raw numbers: BENCH_OUT/imap-results.csv; the table: BENCH_OUT/imap-table.md (and printed).

  --smoke or BENCH_QUICK=1: tiny counts, one run (tests/integration/
  test_imapd_dovecot_compare.py runs it); exits 1 if a figure is missing or zero.
  BENCH_IMAP_MESSAGES=5000 BENCH_IMAP_IDLE=50 BENCH_RUNS=3 BENCH_TIMEOUT=120 BENCH_OUT=build/bench
  POSTMESH_BIN BENCH_IMAP_SERVERS=postmesh,dovecot (one of them alone: its figures only, exit 1)
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.util import REPO, Results, log, percentile  # noqa: E402  (puts tests/integration on the path)

import conftest                                            # noqa: E402
from dovecot_harness import Dovecot                        # noqa: E402
from imap_store import Wire, own_store, start_postmesh, tls_pair   # noqa: E402
from pop3_helpers import add_user                          # noqa: E402

USER, PASSWORD = "imapbench@example.test", "bench-imap-secret"


class Config:
    def __init__(self, smoke):
        def env(name, default, lo=1):
            value = int(os.environ.get(name, default))
            if value < lo:
                sys.exit(f"bench-imap: {name}={value} is below {lo}")
            return value
        self.smoke = smoke
        self.messages = env("BENCH_IMAP_MESSAGES", 200 if smoke else 5000)
        self.idle = env("BENCH_IMAP_IDLE", 5 if smoke else 50)
        self.runs = env("BENCH_RUNS", 1 if smoke else 3, 1 if smoke else 3)
        self.timeout = env("BENCH_TIMEOUT", 60 if smoke else 120, 10)
        self.out = Path(os.environ.get("BENCH_OUT", REPO / "build" / "bench"))
        self.servers = os.environ.get("BENCH_IMAP_SERVERS", "postmesh,dovecot").split(",")


def make_store(mail_root: Path, count: int):
    """An INBOX of count messages as a mailbox of a real user looks after a while: a header
    block of about 1.3 KB (trace fields, a DKIM signature, list headers), short bodies, most
    of them read (in cur/ with :2,S), the newest unread; and an empty folder "Idle"."""
    local, domain = USER.split("@")
    md = mail_root / domain / local / "Maildir"
    for d in ("cur", "new", "tmp", ".Idle/cur", ".Idle/new", ".Idle/tmp"):
        (md / d).mkdir(parents=True, exist_ok=True)
    (md / ".Idle" / "maildirfolder").touch()
    base = int(time.time()) - count * 60
    sig = "b=" + "A1b2C3d4E5f6" * 14
    for i in range(count):
        when = base + i * 60
        head = (f"Return-Path: <list-{i % 37}@lists.example.org>\r\n"
                f"Delivered-To: {USER}\r\n"
                f"Received: from mx{i % 5}.lists.example.org (mx{i % 5}.lists.example.org [192.0.2.{i % 250}])\r\n"
                f"\tby mx.example.test with ESMTPS id {i:08x}; {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(when))}\r\n"
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=lists.example.org; s=sel;\r\n"
                f"\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
                f"\t{sig[:70]}\r\n\t{sig[70:]}\r\n"
                f"From: \"Sender {i % 113}\" <sender{i % 113}@example.org>\r\n"
                f"To: {USER}\r\n"
                f"Subject: [list-{i % 37}] Discussion thread number {i}: on benchmarks and mail\r\n"
                f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(when))}\r\n"
                f"Message-ID: <{i}.{when}@example.org>\r\n"
                f"In-Reply-To: <{max(0, i - 1)}.{when - 60}@example.org>\r\n"
                f"List-Id: <list-{i % 37}.lists.example.org>\r\n"
                f"List-Unsubscribe: <mailto:unsubscribe-{i % 37}@lists.example.org>\r\n"
                f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Transfer-Encoding: 8bit\r\n\r\n")
        body = f"Message {i}.\r\n" + "Some words of the message body, not fetched by this figure.\r\n" * 8
        name = f"{when}.M{i}P1.bench.test"
        path = md / ("new" if i >= count - 20 else "cur") / (name if i >= count - 20 else name + ":2,S")
        path.write_bytes(head.encode() + body.encode())
        os.utime(path, (when, when))
    return md


class Server:
    """One IMAP server over its copy of the store: its name, port, the Maildir it serves."""

    def __init__(self, name, port, maildir, stop):
        self.name, self.port, self.maildir, self.stop = name, port, maildir, stop

    def session(self, timeout):
        c = Wire(self.port, timeout=timeout)
        untagged, tagged = c.command(f'LOGIN "{USER}" "{PASSWORD}"')
        if not tagged.startswith(b"OK"):
            raise RuntimeError(f"{self.name}: LOGIN: {tagged!r}")
        return c


def fetch_headers(srv, cfg):
    """(seconds of the FETCH, messages answered, bytes) in a fresh session."""
    c = srv.session(cfg.timeout)
    try:
        untagged, tagged = c.command("SELECT INBOX")
        if not tagged.startswith(b"OK"):
            raise RuntimeError(f"{srv.name}: SELECT: {tagged!r}")
        c.sock.settimeout(cfg.timeout)
        end = b"\r\nf1 "
        t0 = time.monotonic()
        c.send(b"f1 FETCH 1:* (BODY.PEEK[HEADER])\r\n")
        chunks, tail, total = [], b"\r\n" + c.buf, 0
        while True:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"{srv.name}: connection closed during the FETCH")
            chunks.append(chunk)
            total += len(chunk)
            tail = (tail + chunk)[-4096:]
            at = tail.rfind(end)
            if at >= 0 and tail.endswith(b"\r\n") and b"\r\n" not in tail[at + len(end):-2]:
                break
        elapsed = time.monotonic() - t0
        data = b"".join(chunks)
        status = tail[at + len(end):].split(b" ", 1)[0]
        if status != b"OK":
            raise RuntimeError(f"{srv.name}: FETCH: {tail[at:][:200]!r}")
        return elapsed, data.count(b" FETCH (BODY[HEADER] {"), total
    finally:
        c.close()


def idle_latencies(srv, cfg):
    """Wake-up latencies (ms) of cfg.idle deliveries into the folder Idle, one IDLE each."""
    c = srv.session(cfg.timeout)
    folder = srv.maildir / ".Idle"
    out = []
    try:
        untagged, tagged = c.command("SELECT Idle")
        exists = next(int(l.split()[1]) for l in untagged if l.endswith(b" EXISTS"))
        for i in range(cfg.idle):
            c.send(f"i{i} IDLE\r\n".encode())
            line = c.line()
            if not line.startswith(b"+"):
                raise RuntimeError(f"{srv.name}: IDLE: {line!r}")
            name = f"{time.time_ns()}.M{i}P{os.getpid()}.bench.test"
            tmp = folder / "tmp" / name
            tmp.write_bytes(f"From: idle@example.org\r\nSubject: idle {i}\r\n\r\nwake up\r\n".encode())
            own_store(tmp)
            t0 = time.monotonic()
            os.rename(tmp, folder / "new" / name)
            want = f"* {exists + 1} EXISTS".encode()
            while True:
                line = c.line(timeout=cfg.timeout)
                if line == want:
                    out.append((time.monotonic() - t0) * 1000)
                    break
            exists += 1
            c.send(b"DONE\r\n")
            c.until(f"i{i}")
        c.command("LOGOUT")
    finally:
        c.close()
    return out


def start_servers(root: Path, cfg, bin_dir: Path):
    conftest.BIN = bin_dir
    pm_root = root / "postmesh"
    pm_root.mkdir()
    pm_root.chmod(0o755)
    pm = conftest.Postmesh(pm_root)
    add_user(pm, USER, PASSWORD)
    source = root / "source"
    make_store(source, cfg.messages)
    shutil.copytree(source, pm.state / "mail")
    local, domain = USER.split("@")
    servers, procs = [], []
    if "postmesh" in cfg.servers:
        cert, key = tls_pair(pm_root)
        psrv = start_postmesh(pm, cert, key, max_connections_per_ip=100, idle_timeout=1800, timeout=cfg.timeout)
        servers.append(Server("postmesh", psrv.port("imap"), pm.state / "mail" / domain / local / "Maildir",
                              pm.stop_all))
        procs += pm.procs.values()
    if "dovecot" in cfg.servers:
        dmail = root / "dovecot-mail"
        shutil.copytree(source, dmail)
        own_store(dmail)
        dv = Dovecot(root / "dovecot", dmail, pm.root / "users", index_dir=root / "dovecot-index").start()
        servers.append(Server("dovecot", dv.port("imap"), dmail / domain / local / "Maildir", dv.stop))
        procs.append(dv.proc)
    # for scripts/bench-imap's trap, should this process be killed outright
    (root / "pids").write_text("".join(f"{p.pid}\n" for p in procs))
    return servers


def main():
    smoke = "--smoke" in sys.argv[2:] or os.environ.get("BENCH_QUICK") == "1"
    if len(sys.argv) < 2:
        sys.exit("usage: sh scripts/bench-imap [--smoke]   (bench_imap.py needs the wrapper's directory)")
    root = Path(sys.argv[1])
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    if os.geteuid() != 0:
        sys.exit("bench-imap: needs root (Dovecot, the service users)")
    cfg = Config(smoke)
    bin_dir = Path(os.environ.get("POSTMESH_BIN", REPO / "build" / "bin")).resolve()
    results = Results(cfg.out / "imap-results.csv")
    started = time.monotonic()
    print(f"Postmesh IMAP benchmark: INBOX of {cfg.messages} messages, {cfg.idle} IDLE wake-ups per run, "
          f"{cfg.runs} run(s), {os.cpu_count()} CPUs" + (" (smoke)" if smoke else ""), flush=True)
    servers = []
    try:
        servers = start_servers(root, cfg, bin_dir)
        for srv in servers:   # the first FETCH after start: nothing cached yet
            secs, n, size = fetch_headers(srv, cfg)
            results.add("imap_fetch_headers_first", srv.name, 1, n / secs if n >= cfg.messages else None, "msg/s",
                        f"{secs:.2f}s, {size / 2**20:.1f} MiB" if n >= cfg.messages else f"only {n}")
        for run_no in range(1, cfg.runs + 1):
            for srv in (servers if run_no % 2 else servers[::-1]):
                secs, n, size = fetch_headers(srv, cfg)
                results.add("imap_fetch_headers", srv.name, run_no, n / secs if n >= cfg.messages else None,
                            "msg/s", f"{secs:.3f}s, {size / 2**20:.1f} MiB" if n >= cfg.messages else f"only {n}")
                lat = idle_latencies(srv, cfg)
                results.add("imap_idle_p50", srv.name, run_no, percentile(lat, 0.5), "ms")
                results.add("imap_idle_p99", srv.name, run_no, percentile(lat, 0.99), "ms",
                            f"max {max(lat):.1f} ms of {len(lat)}")
    finally:
        for srv in servers:
            try:
                srv.stop()
            except Exception as e:   # stop the other one anyway
                log(f"stopping {srv.name}: {e}")
        (root / "pids").write_text("")
    return finish(cfg, results, time.monotonic() - started)


ROWS = [("imap_fetch_headers_first", "FETCH 1:* BODY.PEEK[HEADER], first after start", "msg/s", "high"),
        ("imap_fetch_headers", "FETCH 1:* BODY.PEEK[HEADER], fresh session", "msg/s", "high"),
        ("imap_idle_p50", "IDLE wake-up, delivery -> EXISTS, p50", "ms", "low"),
        ("imap_idle_p99", "IDLE wake-up, delivery -> EXISTS, p99", "ms", "low")]


def finish(cfg, results, seconds):
    r = subprocess.run(["/usr/sbin/dovecot", "--version"], capture_output=True, text=True, timeout=10)
    dv = (r.stdout.split() or ["?"])[0]
    lines = [f"IMAP, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPUs, loopback, median of {cfg.runs} run(s); "
             f"INBOX of {cfg.messages:,} messages, {cfg.idle} IDLE wake-ups per run; Dovecot {dv} "
             f"(indexes on disk) on a copy of the same store.", "",
             "| figure | Postmesh | Dovecot | ratio (> 1: Postmesh better) |", "|---|---:|---:|---:|"]
    missing = []
    for fig, label, unit, better in ROWS:
        ours, theirs = results.median(fig, "postmesh"), results.median(fig, "dovecot")
        if not ours or not theirs:
            missing.append(fig)
        ratio = f"{(ours / theirs if better == 'high' else theirs / ours):.2f}x" if ours and theirs else "n/a"
        fmt = (lambda v: "n/a" if v is None else f"{v:.2f}" if unit == "ms" else f"{v:,.0f}")
        lines.append(f"| {label} ({unit}) | {fmt(ours)} | {fmt(theirs)} | {ratio} |")
    md = "\n".join(lines) + "\n"
    (cfg.out / "imap-table.md").write_text(md)
    print(md)
    print(f"bench-imap: {seconds:.0f} s; raw numbers in {cfg.out / 'imap-results.csv'}, table in "
          f"{cfg.out / 'imap-table.md'}")
    if missing:
        print(f"bench-imap: figures missing or zero: {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
