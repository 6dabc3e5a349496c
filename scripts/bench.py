#!/usr/bin/python3
"""`make bench`: Postmesh against a Postfix instance set up for the same jobs (and Dovecot
for POP3), in the same run, on loopback. Run through scripts/bench, which owns the temporary
directory and the trap that stops Postfix and our services however the run ends.

Figures (the median of BENCH_RUNS runs, at least 3; the systems alternate within a run):
  the limit (smtp-source into smtp-sink; postal's own ceiling the same way), intake with smtp-source / loadgen (EHLO,
  PIPELINING; p50/p99 end-of-DATA -> 250) / postal (plain and STARTTLS), relay end to end
  into smtp-sink (Postmesh via a loopback dnsmasq), relay to BENCH_RELAY_DOMAINS domains with every
  domain looked up (and once more with DNSSEC validation, Postmesh only), local delivery end to end into a Maildir
  (Postfix: virtual(8)), connect+EHLO+QUIT latency, smtpd RSS with 1,000 and 10,000 idle
  EHLO'd sessions, POP3 retrieval of a BENCH_POP3_MESSAGES mailbox (Dovecot's pop3 on a
  copy of the same Maildir), and scripts/deepqueue.py's figures when that script exists.
Raw numbers: build/bench/results.csv; the table: build/bench/table.md and README "Benchmark".

  --smoke or BENCH_QUICK=1: tiny counts, one run, under a minute (tests/integration/
  test_bench_smoke.py); exits 1 if a figure is missing or zero.
  BENCH_MESSAGES=2000 BENCH_SESSIONS=20 BENCH_SIZE=10240 BENCH_RUNS=3 BENCH_POSTAL_SECONDS=8
  BENCH_POSTAL_THREADS=20 BENCH_IDLE=1000,10000 BENCH_POSTFIX_IDLE=1000 BENCH_LATENCY=500
  BENCH_POP3_MESSAGES=5000 BENCH_RELAY_DOMAINS=100 BENCH_DEEPQUEUE=1000000 BENCH_TIMEOUT=120 BENCH_OUT=build/bench
  BENCH_README=1 (replace the README section; the smoke run never does) POSTMESH_BIN LOADGEN
"""
import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import figures, report                          # noqa: E402
from benchlib.clients import Postal, Sink                             # noqa: E402
from benchlib.dovecot import Dovecot                          # noqa: E402
from benchlib.postfix import PostfixRig                       # noqa: E402
from benchlib.postmesh import PostmeshRig                     # noqa: E402
from benchlib.util import REPO, Results, free_port, log, run  # noqa: E402


class Config:
    def __init__(self, smoke):
        def env(name, default, full_lo=1):
            value = int(os.environ.get(name, default))
            if value < full_lo:
                sys.exit(f"bench: {name}={value} is below {full_lo}")
            return value
        q = smoke
        self.smoke = smoke
        self.messages = env("BENCH_MESSAGES", 40 if q else 2000)
        self.sessions = env("BENCH_SESSIONS", 4 if q else 20)
        self.size = env("BENCH_SIZE", 10240, 1024)
        self.runs = env("BENCH_RUNS", 1 if q else 3, 1 if q else 3)
        self.postal_seconds = env("BENCH_POSTAL_SECONDS", 2 if q else 8)
        self.postal_threads = env("BENCH_POSTAL_THREADS", 4 if q else 20)
        self.idle_counts = [int(x) for x in os.environ.get("BENCH_IDLE", "50,200" if q else "1000,10000").split(",")]
        self.postfix_idle = env("BENCH_POSTFIX_IDLE", 50 if q else 1000)
        self.latency_count = env("BENCH_LATENCY", 30 if q else 500)
        self.pop3_messages = env("BENCH_POP3_MESSAGES", 100 if q else 5000)
        self.deepqueue = env("BENCH_DEEPQUEUE", 2000 if q else 1000000)
        self.timeout = env("BENCH_TIMEOUT", 60 if q else 120, 10)
        self.relay_domains = env("BENCH_RELAY_DOMAINS", 10 if q else 100)
        self.out = Path(os.environ.get("BENCH_OUT", REPO / "build" / "bench"))
        self.readme = os.environ.get("BENCH_README", "0" if q else "1") == "1"


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def build_loadgen(root: Path):
    exe = os.environ.get("LOADGEN")
    if exe and Path(exe).exists():
        return str(Path(exe).resolve())
    exe = root / "loadgen"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libevent"], capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(REPO / "scripts" / "loadgen.c"), *flags], check=True, timeout=120)
    return str(exe)


def make_pop3_maildir(path: Path, count: int, size: int):
    """A Maildir as delivery writes it (CRLF, Return-Path and Delivered-To first)."""
    for d in ("tmp", "new", "cur"):
        (path / d).mkdir(parents=True)
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - 300) // len(line))
    base = int(time.time()) - count
    for i in range(count):
        head = (f"Return-Path: <sender{i}@client.test>\r\nDelivered-To: {figures.POP_USER}\r\n"
                f"From: <sender{i}@client.test>\r\nTo: <{figures.POP_USER}>\r\nSubject: message {i}\r\n"
                f"Message-ID: <{i}.bench@client.test>\r\n\r\n").encode()
        f = path / "new" / f"{base + i}.M{i}P1.bench.test"
        f.write_bytes(head + body)
        os.utime(f, (base + i, base + i))


class Context:
    def __init__(self, cfg, root, results, sink, loadgen):
        self.cfg, self.root, self.results, self.sink, self.loadgen = cfg, root, results, sink, loadgen


# The order within a run: the cheap, sensitive figures first, the heavy ones later.
SMTP_FIGURES = [figures.connect_ehlo_quit, figures.intake_smtp_source, figures.intake_loadgen,
                figures.intake_loadgen_newconn, figures.intake_postal, figures.intake_postal_tls, figures.relay_e2e, figures.relay_domains,
                figures.relay_domains_dnssec, figures.idle_rss]
MAILBOX_FIGURES = ("smtp_source", "loadgen", "loadgen_newconn", "intake_postal", "intake_postal_tls")


def run_deepqueue(cfg, results, bin_dir, root):
    """scripts/deepqueue.py (another part of issue 12) when it exists. It writes into a
    directory of its own here (a fresh deepqueue.csv: header and this run's row), which is
    then appended to BENCH_OUT/deepqueue.csv (started anew if its columns changed)."""
    script = REPO / "scripts" / "deepqueue.py"
    if not script.exists():
        log("deep queue: scripts/deepqueue.py does not exist yet: skipped")
        results.add("deepqueue", "postmesh", 0, None, "", "skipped: scripts/deepqueue.py not there yet")
        return None
    own = root / "deepqueue"
    env = dict(os.environ, BENCH_OUT=str(own), POSTMESH_BIN=str(bin_dir))
    try:
        r = subprocess.run(["/usr/bin/python3", str(script), "--messages", str(cfg.deepqueue)], env=env,
                           timeout=max(600, cfg.timeout), cwd=REPO, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        results.add("deepqueue", "postmesh", 0, None, "", "deepqueue.py timed out")
        return None
    sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
    fresh = own / "deepqueue.csv"
    if r.returncode != 0 or not fresh.exists():
        results.add("deepqueue", "postmesh", 0, None, "", f"deepqueue.py exited {r.returncode}")
        return None
    lines = fresh.read_text().splitlines()
    kept = cfg.out / "deepqueue.csv"
    if kept.exists() and kept.read_text().splitlines()[:1] == lines[:1]:
        with open(kept, "a") as f:
            f.write("".join(line + "\n" for line in lines[1:]))
    else:
        kept.write_text("".join(line + "\n" for line in lines))
    rows = list(csv.reader(lines))
    for row in rows[1:]:
        for key, value in zip(rows[0], row):
            try:
                results.add(f"deepqueue_{key}", "postmesh", 1, float(value), "")
            except ValueError:
                pass
    return rows


def main():
    smoke = "--smoke" in sys.argv[2:] or os.environ.get("BENCH_QUICK") == "1"
    if len(sys.argv) < 2:
        sys.exit("usage: sh scripts/bench [--smoke]   (bench.py needs the temporary directory the wrapper made)")
    root = Path(sys.argv[1])
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    cfg = Config(smoke)
    if os.geteuid() != 0:
        sys.exit("bench: needs root (a private Postfix instance, Dovecot, the service users)")
    r = run(["sh", str(REPO / "scripts" / "install-deps.sh"), "--bench"], timeout=900)
    if r.returncode != 0:
        sys.exit(f"bench: install-deps.sh --bench failed: {r.stderr}")
    bin_dir = Path(os.environ.get("POSTMESH_BIN", REPO / "build" / "bin")).resolve()
    nofile = raise_nofile(max(cfg.idle_counts) * 2 + 2000)   # inherited by smtpd and loadgen
    if nofile < max(cfg.idle_counts) + 500:
        sys.exit(f"bench: nofile limit {nofile} is too low for {max(cfg.idle_counts)} idle sessions")
    loadgen = build_loadgen(root)
    results = Results(cfg.out / "results.csv")
    started = time.monotonic()
    print(f"Postmesh benchmark: {cfg.messages} messages of {cfg.size} bytes over {cfg.sessions} sessions, "
          f"{cfg.runs} run(s), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at start"
          + (" (smoke)" if smoke else ""), flush=True)

    sink = pm = pf = None
    try:
        sink = Sink(root, free_port(), host="127.0.0.2")
        pm = PostmeshRig(root / "postmesh", bin_dir, sink.port, max(cfg.idle_counts),
                         max(512, cfg.messages * cfg.size * 12 // 2**20), cfg.relay_domains)
        pf = PostfixRig(root / "postfix", sink.port, cfg.postfix_idle + 200, pm.root / "cert.pem",
                        pm.root / "key.pem")
        for run_no in range(1, cfg.runs + 1):
            for fig in MAILBOX_FIGURES:
                for rig in (pm, pf):
                    rig.add_mailbox(figures.mailbox(fig, run_no), "bench")
        pm.add_mailbox(figures.POP_USER, figures.POP_PASSWORD)
        pm.start()
        pm.write_pids([sink.proc.pid])
        pf.start()
        ctx = Context(cfg, root, results, sink, loadgen)
        for run_no in range(1, cfg.runs + 1):
            figures.limit_sink(ctx, run_no)
            figures.limit_postal(ctx, run_no)
            for fig in SMTP_FIGURES:
                for rig in ((pm, pf) if run_no % 2 else (pf, pm)):
                    fig(ctx, rig, run_no)
                    rig.check_alive()
        pf.stop()
        pop3(cfg, root, pm, results)
        pm.stop()
        pm = None
        deep = run_deepqueue(cfg, results, bin_dir, root)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        Postal.stop_all()
        for thing in (pf, pm, sink):
            if thing is not None:
                try:
                    thing.stop()
                except Exception as e:   # stop the others anyway
                    log(f"stopping {thing}: {e}")
        (root / "pids").write_text("")
    return finish(cfg, results, deep, time.monotonic() - started, pf_version=pf.version() if pf else "?")


def pop3(cfg, root, pm, results):
    source = root / "pop3-source"
    make_pop3_maildir(source, cfg.pop3_messages, cfg.size)
    pm.install_pop3_mailbox(figures.POP_USER, source)
    dove = Dovecot(root / "dovecot", figures.POP_USER, figures.POP_PASSWORD, source)
    try:
        dove.start()
        for run_no in range(1, cfg.runs + 1):
            for server in ((pm, dove) if run_no % 2 else (dove, pm)):
                figures.pop3_retrieval(Context(cfg, root, results, None, None), _Pop(server), run_no)
    finally:
        dove.stop()


class _Pop:
    """The POP3 face of a system: its name and port."""
    def __init__(self, server):
        self.name = server.name
        self.pop3_port = server.pop3_port


def finish(cfg, results, deep, seconds, pf_version):
    header = (f"`make bench`, {time.strftime('%Y-%m-%d')}: {os.cpu_count()} CPUs, loopback, "
              f"median of {cfg.runs} run(s); {cfg.messages} messages of {cfg.size // 1024} KiB over "
              f"{cfg.sessions} sessions for smtp-source/loadgen/relay/local (relay to many domains: "
              f"{cfg.relay_domains}), postal {cfg.postal_threads} "
              f"threads for {cfg.postal_seconds} s (counted in the mailbox), {cfg.latency_count} sequential "
              f"smtplib sessions, POP3 mailbox of {cfg.pop3_messages}. Postfix {pf_version} "
              f"(virtual(8) Maildir, transport to the same sink, smtpd one process per session: "
              f"measured up to {cfg.postfix_idle:,} idle sessions, beyond that scaled linearly), "
              f"Dovecot {Dovecot.version(None) if shutil.which('dovecot') else '?'}. Raw runs: "
              f"build/bench/results.csv.")
    lines, missing = report.table(results, cfg, header)
    lines += report.targets_lines(results, cfg)
    lines += report.dnssec_lines(results)
    notes = report.notes_lines(results)
    if notes:
        lines += ["", "Notes:", *notes]
    if deep:
        lines += report.deepqueue_lines(deep)
    else:
        lines += ["", "Deep queue: " + ("; ".join(results.notes("deepqueue", "postmesh")) or "not run")]
    md = "\n".join(lines) + "\n"
    (cfg.out / "table.md").write_text(md)
    print(md)
    print(f"bench: {seconds:.0f} s; raw numbers in {cfg.out / 'results.csv'}, table in {cfg.out / 'table.md'}")
    if cfg.readme:
        report.update_readme(REPO / "README.md", md)
        print("bench: README.md section Benchmark updated")
    if missing:
        print(f"bench: figures missing or zero: {', '.join(missing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
