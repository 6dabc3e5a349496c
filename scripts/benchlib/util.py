"""Shared plumbing for the benchmark: logging, bounded waits, free ports, process-tree
memory, medians and percentiles, and the raw-results CSV (one row per run per figure per
system)."""
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))   # conftest, remote_peers, pop3_helpers

# The tests' own: one set of handed-out ports for the Postmesh rig (conftest) and the rest.
from conftest import free_port  # noqa: E402,F401


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def wait_for(predicate, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def run(args, timeout, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)


# ------------------------------------------------------------------ memory

def _proc_table():
    """pid -> (ppid, comm) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(entry.name)] = (ppid, comm)
    return table


def descendants(pid):
    """pid and all its descendants."""
    table = _proc_table()
    kids = {}
    for p, (pp, _) in table.items():
        kids.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def children_named(pid, comm):
    return [p for p, (pp, c) in _proc_table().items() if pp == pid and c == comm]


def rss_kb(pid, field="VmRSS"):
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


def count_files(*dirs):
    n = 0
    for d in dirs:
        try:
            n += sum(1 for e in os.scandir(d) if not e.name.startswith("."))
        except FileNotFoundError:
            pass
    return n


# ------------------------------------------------------------------ statistics

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


class Results:
    """Raw numbers, one CSV row per run per figure per system, written as they come (a run
    cut short still leaves what it measured)."""

    FIELDS = ["figure", "system", "run", "value", "unit", "note"]

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = []
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(self.FIELDS)

    def add(self, figure, system, run_no, value, unit, note=""):
        row = {"figure": figure, "system": system, "run": run_no, "value": value, "unit": unit, "note": note}
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self.FIELDS])
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        log(f"{figure} {system} run {run_no}: {shown} {unit} {note}".rstrip())

    def values(self, figure, system):
        return [r["value"] for r in self.rows if r["figure"] == figure and r["system"] == system
                and r["value"] is not None]

    def median(self, figure, system):
        return median(self.values(figure, system))

    def notes(self, figure, system):
        return sorted({r["note"] for r in self.rows if r["figure"] == figure and r["system"] == system and r["note"]})
