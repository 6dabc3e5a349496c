#!/usr/bin/python3
"""Runs the libFuzzer harnesses built in BUILD/fuzz/ (tests/fuzz/fuzz.mk calls this).

Long mode (make fuzz): each fuzzer SECONDS over its seeds (tests/fuzz/corpus/<name>/) and
its persistent work corpus (BUILD/work/<name>/, where new inputs go), JOBS at a time, then
one line per fuzzer: time, execs, exec/s, coverage (cov = edges, ft = features), corpus size
and crashes. Smoke mode (make fuzz-smoke, part of make test): first every reproducer in
tests/fuzz/regress/<name>/ once, then SECONDS of fuzzing from the seeds into a fresh
BUILD/work-smoke/<name>/. Any crash, leak, UB report, timeout or out-of-memory fails the run
(exit 1); the input that did it is in BUILD/work*/<name>/artifacts/.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Per fuzzer: the longest input worth trying (bytes), how long one input may take (s) and,
# for the later ones, their share of the smoke run's seconds (make test's time; their seeds
# and regress/ still run whole).
# The file parsers get room for their line limits (aliases: 8 KiB lines, 64 KiB entries).
OPTIONS = {
    "aliases": {"max_len": 16384},
    "config": {"max_len": 8192},
    "smtp_data": {"max_len": 8192},
    "smtp_command": {"max_len": 16384},
    "queue_bus": {"max_len": 65536},
    "resolver_bus": {"max_len": 8192},
    "dns_answer": {"max_len": 8192},
    "imapd_command": {"max_len": 16384, "smoke_share": 0.5},
    "imapd_mime": {"max_len": 32768, "smoke_share": 0.5},
    "imapd_uidlist": {"smoke_share": 0.5},
}
DEFAULT_MAX_LEN = 4096
TIMEOUT = 20

STATUS_RE = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
STAT_RE = re.compile(r"^stat::(\w+):\s+(\d+)")


def sanitizer_env(build):
    env = dict(os.environ)
    supp = os.path.join(HERE, "lsan.supp")
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:allocator_may_return_null=0:symbolize=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    env["LSAN_OPTIONS"] = "suppressions=" + supp
    for sym in ("/usr/bin/llvm-symbolizer", "/usr/lib/llvm-14/bin/llvm-symbolizer"):
        if os.path.exists(sym):
            env["ASAN_SYMBOLIZER_PATH"] = sym
            break
    # The harnesses' files (the file parsers' inputs, the queue's LMDB store, keys): a
    # directory of this run's own, on tmpfs when there is one (the queue syncs every commit),
    # removed afterwards even if a fuzzer crashed before it could clean up.
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else os.path.abspath(build)
    env["TMPDIR"] = tempfile.mkdtemp(prefix="pm-fuzz-run-", dir=base)
    return env


def files_in(d):
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))


def run_one(name, args, env):
    binary = os.path.join(args.build, "fuzz", "fuzz_" + name)
    work_root = os.path.join(args.build, "work-smoke" if args.smoke else "work")
    work = os.path.join(work_root, name)
    if args.smoke and os.path.isdir(work):
        shutil.rmtree(work)
    corpus_new = os.path.join(work, "corpus")
    artifacts = os.path.join(work, "artifacts")
    os.makedirs(corpus_new, exist_ok=True)
    os.makedirs(artifacts, exist_ok=True)
    log_path = os.path.join(work_root, name + ".log")
    seeds = os.path.join(HERE, "corpus", name)
    regress = os.path.join(HERE, "regress", name)
    opts = OPTIONS.get(name, {})
    common = [
        "-max_len=%d" % opts.get("max_len", DEFAULT_MAX_LEN),
        "-timeout=%d" % TIMEOUT,
        "-rss_limit_mb=2048",
        "-close_fd_mask=2",  # the services' own log lines; reports still come through
        "-artifact_prefix=" + artifacts + "/",
    ]
    dict_path = os.path.join(HERE, "dict", name + ".dict")
    if os.path.exists(dict_path):
        common.append("-dict=" + dict_path)
    result = {"name": name, "log": log_path, "rc": 0, "execs": 0, "exec_s": 0, "cov": 0, "ft": 0,
              "corp": 0, "new": 0, "artifacts": [], "seconds": 0.0, "regress": 0, "note": ""}
    start = time.monotonic()
    with open(log_path, "w") as log:
        # Reproducers first, each once: a fixed bug that comes back fails here, whatever the
        # random part below does.
        reproducers = files_in(regress)
        result["regress"] = len(reproducers)
        if reproducers:
            log.write("== regress: %d inputs\n" % len(reproducers))
            log.flush()
            rc = subprocess.call([binary] + common + reproducers, stdout=log, stderr=subprocess.STDOUT, env=env)
            if rc != 0:
                result["rc"] = rc
                result["note"] = "regress input fails"
        if result["rc"] == 0:
            dirs = [corpus_new] + [d for d in (seeds, regress) if os.path.isdir(d)]
            seconds = max(1, int(args.seconds * opts.get("smoke_share", 1))) if args.smoke else args.seconds
            log.write("== fuzz %ds: %s\n" % (seconds, " ".join(dirs)))
            log.flush()
            cmd = [binary] + common + ["-max_total_time=%d" % seconds, "-print_final_stats=1"]
            if args.smoke:
                cmd.append("-seed=1")  # make test: the same mutations every run, so a failure reproduces
            cmd += dirs
            result["rc"] = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    result["seconds"] = time.monotonic() - start
    with open(log_path, errors="replace") as log:
        for line in log:
            m = STATUS_RE.match(line)
            if m:
                result["cov"], result["ft"], result["corp"] = int(m.group(3)), int(m.group(4)), int(m.group(5))
            m = STAT_RE.match(line)
            if m and m.group(1) == "number_of_executed_units":
                result["execs"] = int(m.group(2))
            if m and m.group(1) == "average_exec_per_sec":
                result["exec_s"] = int(m.group(2))
            if line.startswith("SUMMARY:") and not result["note"]:
                result["note"] = line.strip()[:120]
    result["new"] = len(files_in(corpus_new))
    result["artifacts"] = [a for a in files_in(artifacts) if not os.path.basename(a).startswith("slow-unit-")]
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-fuzz")
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated fuzzer names")
    args = ap.parse_args()
    names = sorted(f[len("fuzz_"):] for f in os.listdir(os.path.join(args.build, "fuzz"))
                   if f.startswith("fuzz_") and os.access(os.path.join(args.build, "fuzz", f), os.X_OK))
    if args.only:
        wanted = args.only.split(",")
        names = [n for n in names if n in wanted]
    if not names:
        print("fuzz: no fuzzers built in %s/fuzz" % args.build)
        return 1
    env = sanitizer_env(args.build)
    mode = "smoke" if args.smoke else "campaign"
    print("fuzz %s: %d fuzzers, %d s each, %d at a time" % (mode, len(names), args.seconds, args.jobs), flush=True)
    start = time.monotonic()
    results = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for r in pool.map(lambda n: run_one(n, args, env), names):
                ok = r["rc"] == 0 and not r["artifacts"]
                print("  %-14s %s" % (r["name"], "ok" if ok else "FAILED (see %s)" % r["log"]), flush=True)
                results.append(r)
    finally:
        shutil.rmtree(env["TMPDIR"], ignore_errors=True)
    lines = ["%-14s %7s %11s %8s %6s %7s %7s %6s %8s  %s" % (
        "fuzzer", "time_s", "execs", "exec/s", "cov", "ft", "corpus", "new", "crashes", "result")]
    failed = 0
    for r in results:
        bad = r["rc"] != 0 or r["artifacts"]
        failed += bool(bad)
        lines.append("%-14s %7.0f %11d %8d %6d %7d %7d %6d %8d  %s" % (
            r["name"], r["seconds"], r["execs"], r["exec_s"], r["cov"], r["ft"], r["corp"], r["new"],
            len(r["artifacts"]), ("FAILED rc=%d %s" % (r["rc"], r["note"])) if bad else "ok"))
        for a in r["artifacts"]:
            lines.append("    input: %s" % a)
    table = "\n".join(lines)
    print(table)
    summary = os.path.join(args.build, "work-smoke" if args.smoke else "work", "summary.txt")
    with open(summary, "w") as f:
        f.write(table + "\n")
    total = time.monotonic() - start
    print("fuzz %s: %d of %d fuzzers clean in %.0f s (table in %s)" % (mode, len(results) - failed, len(results),
                                                                      total, summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
