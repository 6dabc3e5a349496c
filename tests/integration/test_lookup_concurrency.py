"""RCPT and AUTH look-ups that do not queue behind one password hash (issue 12):

- password checks run in parallel, one helper per core: of two AUTHs of a deliberately
  slow hash (SHA512-CRYPT with many rounds) started together, each helper computes one
  (CPU time from /proc; with a single password helper one process computes both);
- while AUTHs wait on slow hashes, another session's RCPT to a local user is answered
  before any of them (the recipients have their own helper);
- a sandbox remembers a recipient that exists for smtpd.lookup_cache_ttl seconds: a user
  removed from the users file is still accepted within the ttl, refused once it expired,
  and at once with the cache off (ttl 0).
"""
import base64
import crypt
import os
import re
import smtplib
import threading
import time

import pytest

from conftest import wait_for
from smtpd_helpers import client_context, enable_tls

SLOW = "slow@example.test"
LOCAL = "local@example.test"
CPUS = os.cpu_count() or 1


def write_users(pm, rounds, *extra):
    lines = [f"{SLOW}:{{SHA512-CRYPT}}{crypt.crypt('slowpass', f'$6$rounds={rounds}$saltsalt$')}"]
    lines.append(f"{LOCAL}:{{SHA512-CRYPT}}{crypt.crypt('x', '$6$saltsalt$')}")
    lines += list(extra)
    (pm.root / "users").write_text("\n".join(lines) + "\n")


def auth_session(pm):
    c = smtplib.SMTP("127.0.0.1", pm.port("submission"), timeout=30)
    c.ehlo("auth.test")
    c.starttls(context=client_context())
    c.ehlo("auth.test")
    return c


def auth(c):
    token = base64.b64encode(f"\0{SLOW}\0slowpass".encode()).decode()
    t0 = time.monotonic()
    code, _ = c.docmd("AUTH", f"PLAIN {token}")
    return code, time.monotonic() - t0


def rcpt_time(pm, rcpt=LOCAL):
    c = smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30)
    c.ehlo("rcpt.test")
    c.mail("a@remote.test")
    t0 = time.monotonic()
    code, _ = c.rcpt(rcpt)
    took = time.monotonic() - t0
    c.quit()
    return code, took


def timed_hash(rounds):
    t0 = time.monotonic()
    crypt.crypt("slowpass", f"$6$rounds={rounds}$othersalt$")
    return time.monotonic() - t0


@pytest.fixture
def slow_mx(pm):
    # about 0.4 s a hash on this machine, measured rather than assumed
    rounds = 400000
    per = timed_hash(rounds)
    rounds = max(50000, int(rounds * 0.4 / max(per, 0.01)))
    write_users(pm, rounds)
    enable_tls(pm)
    pm.start("queue", "smtpd")
    return pm


def helper_cpu(pid):
    """utime + stime of a process, in clock ticks."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


@pytest.mark.skipif(CPUS < 2, reason="parallel hashing needs two cores")
def test_password_checks_run_in_parallel(slow_mx):
    """Two AUTHs at once: each password helper computes one of the hashes (CPU time from
    /proc, so a busy machine cannot make it pass or fail). With one password helper, or
    a parent that gave both to the same helper, one helper would spend two hashes."""
    pm = slow_mx
    helpers = [int(p) for p in re.findall(r"event=helper_started helper=smtpd-auth pid=(\d+)", pm.log("smtpd"))]
    assert len(helpers) == min(CPUS, 4), f"password helpers: {helpers}"
    for _ in range(2):  # also each helper's first load of the users file
        c = auth_session(pm)
        assert auth(c)[0] == 235
        c.quit()
    # one hash, in CPU ticks (wall time would count a busy machine's waits)
    c = auth_session(pm)
    before = [helper_cpu(p) for p in helpers]
    assert auth(c)[0] == 235
    hash_ticks = sum(helper_cpu(p) - b for p, b in zip(helpers, before))
    c.quit()
    assert hash_ticks >= 5, f"a hash took {hash_ticks} ticks: too fast to tell"
    sessions = [auth_session(pm) for _ in range(2)]
    results = [None, None]
    before = [helper_cpu(p) for p in helpers]

    def run(i):
        results[i] = auth(sessions[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r and r[0] == 235 for r in results), results
    spent = sorted((helper_cpu(p) - b for p, b in zip(helpers, before)), reverse=True)
    # A hash is computed whole by one helper, so the less busy helper having spent half a
    # hash means it computed one of the two; one helper computing both leaves the other at
    # ~0. No upper bound on the busier one: a hash costs more CPU time while the other core
    # hashes too (shared caches, clock), so "two hashes' worth" is not a sharp line.
    assert spent[1] >= 0.5 * hash_ticks, f"CPU ticks per helper {spent}, one hash {hash_ticks}"
    for s in sessions:
        s.quit()


def test_rcpt_is_answered_while_auths_hash(slow_mx):
    """Judged by order, not by a wall-clock bound: the RCPT's answer comes while the password
    helpers are still computing the first hashes (none of the AUTHs has been answered yet). A
    RCPT queued behind a password check would be answered after at least one of them; a busy
    machine slows the hashes as much as the RCPT."""
    pm = slow_mx
    helpers = [int(p) for p in re.findall(r"event=helper_started helper=smtpd-auth pid=(\d+)", pm.log("smtpd"))]
    probe = smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30)
    probe.ehlo("rcpt.test")
    probe.mail("a@remote.test")
    sessions = [auth_session(pm) for _ in range(4)]
    done = []                                       # (monotonic time of the answer, (code, took))
    before = sum(helper_cpu(p) for p in helpers)

    def run(s):
        result = auth(s)
        done.append((time.monotonic(), result))
    threads = [threading.Thread(target=run, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    # The hashes have started: the password helpers are spending CPU time.
    wait_for(lambda: sum(helper_cpu(p) for p in helpers) >= before + 2 or done, 10, interval=0.005,
             what="the password helpers to start hashing")
    code, _ = probe.rcpt(LOCAL)
    answered = time.monotonic()
    for t in threads:
        t.join(30)
    probe.quit()
    assert code == 250
    assert len(done) == len(sessions) and all(r[0] == 235 for _, r in done), done
    first_auth = min(when for when, _ in done)
    assert answered < first_auth, (f"RCPT answered {answered - first_auth:.3f}s after the first AUTH: it waited "
                                   f"behind a password check (AUTHs took {sorted(round(r[1], 2) for _, r in done)})")
    for s in sessions:
        s.quit()


def remove_local(pm):
    users = pm.root / "users"
    text = "".join(line + "\n" for line in users.read_text().splitlines() if not line.startswith(LOCAL))
    users.write_text(text)


@pytest.mark.parametrize("ttl", [4, 0])
def test_existing_recipient_is_remembered_for_the_ttl(pm, ttl):
    write_users(pm, 5000)
    pm.configure(smtpd={"sandboxes": 1, "lookup_cache_ttl": ttl})
    pm.start("queue", "smtpd")
    t_first = time.monotonic()
    assert rcpt_time(pm)[0] == 250
    remove_local(pm)
    code = rcpt_time(pm)[0]
    if ttl == 0:
        assert code == 550  # no cache: the helper sees the new file at once
        return
    if time.monotonic() - t_first < ttl - 1:
        assert code == 250, "an existing recipient was not remembered"
    wait_for(lambda: rcpt_time(pm)[0] == 550, ttl + 5, what="the cached answer to expire")
