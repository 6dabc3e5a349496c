"""`make bench` must not rot: its smoke mode (tiny counts, one run) measures every figure for
Postmesh and for its reference (Postfix, Dovecot, smtp-sink) with the real clients, and every
figure must come out present and non-zero, in the CSV and in the table (the deep-queue ones
too, once scripts/deepqueue.py exists). The bench also stops
everything it started (no Postfix or Dovecot left behind)."""
import csv
import os
import subprocess

import pytest

from conftest import BIN, REPO

# (figure, systems that must have a positive value for it)
SMOKE_IDLE = (50, 200)
EXPECTED = [("limit_sink", ("smtp-sink",)), ("limit_postal", ("smtp-sink",))] + [
    (fig, ("postmesh", "postfix")) for fig in (
        "intake_smtp_source", "local_e2e", "intake_loadgen", "loadgen_p50", "loadgen_p99",
        "intake_loadgen_newconn", "loadgen_newconn_p50", "loadgen_newconn_p99", "intake_postal",
        "intake_postal_tls", "relay_e2e", "relay_domains", "ehlo_p50", "ehlo_p99", f"idle_rss_{SMOKE_IDLE[0]}",
        f"idle_pss_{SMOKE_IDLE[0]}")
] + [(f"idle_rss_{SMOKE_IDLE[1]}", ("postmesh",)), (f"idle_pss_{SMOKE_IDLE[1]}", ("postmesh",)),
     ("relay_domains_dnssec", ("postmesh",)), ("pop3_retr", ("postmesh", "dovecot"))]


def running(comm):
    out = subprocess.run(["pgrep", "-x", comm], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


MARK = "POSTMESH_BENCH_SMOKE=%d" % os.getpid()


def the_benchs(pid):
    """Whether pid is one the bench started: the other pytest worker runs smtp-sink (and
    more) at the same time. The bench's clients inherit MARK from its environment; Postfix
    cleans its daemons' environment, but master works in the bench's own directory
    (/tmp/postmesh-bench.*, which scripts/bench makes), and Dovecot is given its config from
    there."""
    try:
        if MARK.encode() in open(f"/proc/{pid}/environ", "rb").read().split(b"\0"):
            return True
        if b"postmesh-bench." in open(f"/proc/{pid}/cmdline", "rb").read():
            return True
        return "postmesh-bench." in os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False  # gone meanwhile


@pytest.mark.skipif(os.geteuid() != 0, reason="the bench runs a private Postfix instance and Dovecot as root")
def test_bench_smoke_measures_every_figure(tmp_path):
    before = {c: running(c) for c in ("master", "dovecot", "smtp-sink", "postal")}
    env = dict(os.environ, POSTMESH_BENCH_SMOKE=str(os.getpid()), POSTMESH_BIN=str(BIN), BENCH_OUT=str(tmp_path / "out"), BENCH_README="0",
               BENCH_IDLE=",".join(map(str, SMOKE_IDLE)), BENCH_POSTFIX_IDLE=str(SMOKE_IDLE[0]))
    loadgen = BIN.parent / "tools" / "loadgen"
    if loadgen.exists():
        env["LOADGEN"] = str(loadgen)
    r = subprocess.run(["sh", str(REPO / "scripts" / "bench"), "--smoke"], env=env, capture_output=True,
                       text=True, timeout=240)
    out = r.stdout + r.stderr[-6000:]

    rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    values = {}
    for row in rows:
        if row["value"] not in ("", "None"):
            values.setdefault((row["figure"], row["system"]), []).append(float(row["value"]))
    expected = list(EXPECTED)
    if (REPO / "scripts" / "deepqueue.py").exists():   # the deep-queue figures, once that script exists
        expected += [("deepqueue_intake_msgs", ("postmesh",)), ("deepqueue_due_to_dispatch_ms", ("postmesh",))]
    problems = [f"{fig}/{system}" for fig, systems in expected for system in systems
                if not values.get((fig, system)) or min(values[(fig, system)]) <= 0]
    assert not problems, f"figures missing or zero: {problems}\n{out}"
    assert r.returncode == 0, out

    table = (tmp_path / "out" / "table.md").read_text()
    for label in ("the limit", "intake, loadgen", "relay end to end", "local delivery end to end",
                  "connect+EHLO+QUIT", "idle EHLO'd sessions", "POP3"):
        assert label in table, table
    assert "| n/a |" not in table.replace("| | ", ""), table

    # nothing the bench started survives it
    for comm, pids in before.items():
        left = {pid for pid in running(comm) - pids if the_benchs(pid)}
        assert not left, f"{comm} left running by the bench: {left}"
