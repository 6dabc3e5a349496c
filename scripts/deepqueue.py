#!/usr/bin/python3
"""Deep-queue figures (issue 12): Postmesh with N deferred messages in its queue.

  scripts/deepqueue.py [--messages N]        (default 1,000,000)

The store is filled by the queue's test hook (POSTMESH_TEST_QUEUE_FILL, services/queue/
testhook.c; not in release builds): N messages to a remote recipient, next attempt a day
ahead. Then, for the deep queue and for an empty one in the same run:
  - startup_s: from starting postmesh-queue to its event=started (the store is open, the due
    index counted, what is due loaded);
  - queue_rss_mb: the queue process's resident set (VmRSS) after start-up and after the
    intake, and its anonymous part (RssAnon: what it allocated, without LMDB's mapped file);
  - intake_msgs: smtp-source (20 sessions, 10 KiB, one message per connection; 2,000
    messages, fewer for a small N; median of 5 rounds) into smtpd, with delivery running,
    counted in the Maildir;
  - due_to_dispatch_ms: a message written into the running queue's store (the same hook,
    due 2 s later) until the queue's event=dispatch for it (median of 5; 1 for a small N).
Prints the figures and appends a row to build/bench/deepqueue.csv (BENCH_OUT overrides the
directory; the file gets a header when it is new). POSTMESH_BIN: binaries (build/bin)."""
import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import conftest                     # noqa: E402  (the integration tests' harness)
from pop3_helpers import add_user   # noqa: E402

BOX = "deep@example.test"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SESSIONS = 20
SIZE = 10240


def log(msg):
    print(f"deepqueue: {msg}", file=sys.stderr, flush=True)


def rss_mb(pid, field="VmRSS"):
    """VmRSS (all resident pages: the queue's own memory, RssAnon, and the LMDB file pages
    it has mapped, RssFile) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def log_time(line):
    ts = re.search(r"ts=(\S+)Z", line).group(1)
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def fill(pm, n, **env):
    e = dict(os.environ, POSTMESH_TEST_QUEUE_FILL=str(n))
    e.update({f"POSTMESH_TEST_QUEUE_FILL_{k.upper()}": str(v) for k, v in env.items()})
    r = subprocess.run([str(conftest.BIN / "postmesh-queue"), "-c", str(pm.conf_path)], cwd=pm.root, env=e,
                       capture_output=True, text=True, timeout=3600)
    out = r.stdout + r.stderr
    if r.returncode != 0 or "event=test_fill " not in out:
        sys.exit(f"deepqueue: the fill hook failed (a release build has none):\n{out[-2000:]}")
    return next(line for line in out.splitlines() if "event=test_fill " in line)


def count_files(pm):
    md = pm.state / "mail" / "example.test" / "deep" / "Maildir"
    return sum(len(os.listdir(md / d)) for d in ("new", "cur") if (md / d).is_dir())


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def measure(root: Path, deferred: int, intake: int, samples: int):
    root.mkdir(parents=True)
    root.chmod(0o755)
    pm = conftest.Postmesh(root)
    add_user(pm, BOX, "secret")
    # The map holds the filled store (about 1.6 KiB a message with index and free pages).
    map_mb = max(256, deferred * 2 // 1024 + 512)
    pm.configure(debug=False, trusted_networks=["127.0.0.0/8"],
                 queue={"map_size_mb": map_mb, "retry_min": 60, "retry_max": 300, "job_lease": 60,
                        "max_lifetime": 5 * 86400},
                 smtpd={"max_connections": 1000, "max_connections_per_ip": 1000, "submit_timeout": 30,
                        "drain_timeout": 1})
    pm.write_config()
    pm.ensure_keys()
    row = {"deferred": deferred}
    if deferred:
        t = time.monotonic()
        fill(pm, deferred, rcpt="far@deferred.invalid")
        row["fill_s"] = round(time.monotonic() - t, 1)
        log(f"filled {deferred} in {row['fill_s']} s")
    t = time.monotonic()
    pm.start("queue", timeout=600)
    row["startup_s"] = round(time.monotonic() - t, 2)
    qpid = pm.procs["queue"].pid
    row["rss_start_mb"] = round(rss_mb(qpid), 1)
    pm.start("delivery", "smtpd", timeout=30)

    # intake: smtp-source into smtpd, delivery running, counted in the Maildir (median of
    # `samples` rounds: one round is a few seconds, and the machine is not quiet)
    rates = []
    for k in range(samples):
        t = time.monotonic()
        r = subprocess.run([SMTP_SOURCE, "-s", str(SESSIONS), "-l", str(SIZE), "-m", str(intake),
                            "-f", "bench@example.test", "-t", BOX, f"127.0.0.1:{pm.port('smtp')}"],
                           capture_output=True, text=True, timeout=600)
        sent = time.monotonic() - t
        if r.returncode != 0:
            log(f"smtp-source exited {r.returncode}: {r.stderr[-300:]}")
        wait(lambda: count_files(pm) >= intake * (k + 1), 300, f"{intake * (k + 1)} messages in the Maildir")
        rates.append(intake / sent)
    row["intake_msgs"] = round(statistics.median(rates), 1)
    row["intake_rounds"] = [round(x) for x in rates]
    row["rss_after_mb"] = round(rss_mb(qpid), 1)
    row["anon_after_mb"] = round(rss_mb(qpid, "RssAnon"), 1)

    # due -> dispatch: one message written into the live store (LMDB takes several
    # processes), due 2 s later; the queue's loader finds it when its time comes
    lat = []
    for _ in range(samples):
        line = fill(pm, 1, rcpt=BOX, due=2)
        due = int(re.search(r" due=(\d+)", line).group(1))
        qid = re.search(r"last_id=(\w+)", line).group(1)

        def dispatched():
            return [l for l in pm.log("queue").splitlines() if "event=dispatch " in l and f"id={qid}" in l]
        wait(dispatched, 30, f"the dispatch of {qid}")
        lat.append((log_time(dispatched()[0]) - due) * 1000)
    row["due_to_dispatch_ms"] = round(statistics.median(lat), 1)
    pm.stop_all()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1000000, help="deferred messages to queue (1,000,000)")
    args = ap.parse_args()
    conftest.BIN = Path(os.environ.get("POSTMESH_BIN", REPO / "build" / "bin")).resolve()
    out_dir = Path(os.environ.get("BENCH_OUT", REPO / "build" / "bench"))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="deepqueue-"))
    tmp.chmod(0o755)
    try:
        # a smoke run (a few thousand) keeps to a few seconds; the real one sends 2,000
        intake = min(2000, max(100, args.messages // 10))
        samples = 5 if args.messages >= 100000 else 1
        empty = measure(tmp / "empty", 0, intake, samples)
        log(f"empty queue: {empty}")
        deep = measure(tmp / "deep", args.messages, intake, samples)
        log(f"deep queue: {deep}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = deep["intake_msgs"] / empty["intake_msgs"] if empty["intake_msgs"] else 0.0
    fields = {
        "deferred": deep["deferred"],
        "fill_s": deep.get("fill_s", ""),
        "startup_s": deep["startup_s"],
        "startup_empty_s": empty["startup_s"],
        "queue_rss_start_mb": deep["rss_start_mb"],
        "queue_rss_after_intake_mb": deep["rss_after_mb"],
        "queue_anon_after_intake_mb": deep["anon_after_mb"],
        "queue_rss_empty_mb": empty["rss_after_mb"],
        "intake_msgs": deep["intake_msgs"],
        "intake_empty_msgs": empty["intake_msgs"],
        "intake_ratio": round(ratio, 2),
        "due_to_dispatch_ms": deep["due_to_dispatch_ms"],
        "due_to_dispatch_empty_ms": empty["due_to_dispatch_ms"],
    }
    targets = {"startup < 30 s": deep["startup_s"] < 30,
               "queue RSS < 300 MB": max(deep["rss_start_mb"], deep["rss_after_mb"]) < 300,
               "intake >= 80% of empty": ratio >= 0.8,
               "due -> dispatch < 1 s": deep["due_to_dispatch_ms"] < 1000}
    for k, v in fields.items():
        print(f"{k:28} {v}")
    for k, ok in targets.items():
        print(f"target {k:24} {'met' if ok else 'MISSED'}")
    path = out_dir / "deepqueue.csv"
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(fields.keys())
        w.writerow(fields.values())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
