#!/usr/bin/python3
"""`make soak`: SOAK_SECONDS (default 1800) of steady mixed mail through the whole set under
`postmesh run` (every service `postmesh services` lists for it; local Maildirs, a remote sink
found by MX through dnsmasq, some refused recipients that bounce, POP3 logins), no faults.
Prints the RSS of every service process (sandboxes, job workers and helpers included) at
start, after the warm-up, every SOAK_SAMPLE seconds and at the end, then checks with the
fault suite's ledger that every accepted message arrived. Exit 0 when nothing was lost and
no service restarted.

Environment: SOAK_SECONDS, SOAK_RATE (messages/s, default 8), SOAK_CLIENTS (default 4),
SOAK_SAMPLE (default 300), SOAK_KEEP=1 keeps the state dir, POSTMESH_BIN (the binaries).
"""
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
os.environ.setdefault("POSTMESH_BIN", str(REPO / "build" / "bin"))

from conftest import Postmesh  # noqa: E402
from fault_load import (Clients, PopReader, Rig, plan, queue_log_problems, rss_table, unexpected_exits,  # noqa: E402
                        verify, wait_queue_empty)


def env_int(name, default):
    return int(os.environ.get(name, default))


def totals(rows):
    out = {}
    for svc, _role, _pid, rss in rows:
        out[svc] = out.get(svc, 0) + (rss or 0)
    return out


def main():
    seconds = env_int("SOAK_SECONDS", 1800)
    rate = float(os.environ.get("SOAK_RATE", "8"))
    nclients = env_int("SOAK_CLIENTS", 4)
    sample_every = env_int("SOAK_SAMPLE", 300)
    warmup = min(60, max(10, seconds // 10))
    root = Path(tempfile.mkdtemp(prefix="postmesh-soak-"))
    print(f"soak: {seconds}s at {rate}/s from {nclients} clients, state in {root}", flush=True)
    pm = Postmesh(root)
    rig = Rig(pm, lease=30)
    ok = False
    try:
        sv = rig.supervisor
        sv.start()
        rng = random.Random(env_int("SOAK_SEED", 0) or None)
        msgs = plan(int(seconds * rate), rig.users, f"soak{int(time.time())}", rng)
        clients = Clients(pm.port("smtp"), msgs, nclients, seconds, deadline=time.monotonic() + seconds + 120,
                          rng=rng)
        pop = PopReader(pm.port("pop3"), rig.users, clients.stop, max_seconds=seconds + 600)
        samples = [("start", rss_table(sv))]
        clients.start()
        pop.start()
        t0 = time.monotonic()
        next_sample = t0 + warmup
        while time.monotonic() < t0 + seconds:
            time.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
            if time.monotonic() >= next_sample:
                rows = rss_table(sv)
                samples.append(("warm" if len(samples) == 1 else f"t{time.monotonic() - t0:.0f}", rows))
                done = sum(bool(m.acked) for m in msgs)
                print(f"soak: t={time.monotonic() - t0:.0f}s accepted={done} rss_kib=" +
                      " ".join(f"{k}:{v}" for k, v in totals(rows).items()), flush=True)
                next_sample = time.monotonic() + sample_every
        samples.append(("end", rss_table(sv)))
        clients.join(180)
        clients.stop.set()
        pop.join(20)
        leftover = wait_queue_empty(pm, sv, 180)
        problems, stats = verify(msgs, pm, rig.users, rig.sink, [])
        run_log = sv.log()
        problems += queue_log_problems(run_log, msgs)
        exits = unexpected_exits(run_log, [])

        print("\nRSS (KiB) of every service process: start (idle) / after warm-up / end of load")
        first, warm, last = samples[0][1], samples[1][1] if len(samples) > 2 else samples[0][1], samples[-1][1]
        by_key = {}
        for name, rows in (("start", first), ("warm", warm), ("end", last)):
            for svc, role, pid, rss in rows:
                by_key.setdefault((svc, role), {})[name] = (pid, rss)
        print(f"{'service':<10} {'process':<16} {'start':>8} {'warm':>8} {'end':>8} {'end-warm':>9}  pids")
        for (svc, role), v in sorted(by_key.items()):
            vals = [v.get(k, (None, None)) for k in ("start", "warm", "end")]
            rss = [r if r is not None else 0 for _p, r in vals]
            pids = sorted({p for p, _r in vals if p})
            print(f"{svc:<10} {role:<16} {rss[0]:>8} {rss[1]:>8} {rss[2]:>8} {rss[2] - rss[1]:>+9}  "
                  f"{','.join(map(str, pids))}{'  (restarted)' if len(pids) > 1 else ''}")
        print("\nper service, every sample: " + " | ".join(
            f"{name}: " + " ".join(f"{k}={v}" for k, v in totals(rows).items()) for name, rows in samples))
        print(f"\nsoak: messages={stats['messages']} accepted={stats['acked']} attempts={stats['attempts']} "
              f"local_copies={stats['local_copies']}/{stats['local_expected']} "
              f"remote_copies={stats['remote_copies']}/{stats['remote_expected']} dsns={stats['dsns']}/"
              f"{stats['dsn_expected']} pop_sessions={pop.ok} pop_failed={pop.failed}")
        if leftover:
            print(f"soak: FAIL queue not empty:\n{leftover[:2000]}")
        for p in problems[:30]:
            print(f"soak: FAIL {p}")
        for e in exits:
            print(f"soak: FAIL {e}")
        ok = not leftover and not problems and not exits and not clients.errors
        print("soak: ok" if ok else "soak: FAILED")
    finally:
        rig.close()
        if os.environ.get("SOAK_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
