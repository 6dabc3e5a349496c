"""Alias expansion stays cheap whatever the RCPTs repeat: one 1,000-member alias named through
1,000 RCPTs blocked the single-threaded queue for 5.2 s per message, and every other message
waited. smtpd answers a repeated RCPT without asking its parent again; the queue
de-duplicates across RCPTs in O(1) each and walks each alias once per message; the total per
message is capped (10,000, or smtpd.max_recipients if larger), and the RCPTs beyond the cap
fail with 5.5.3 for a DSN while the rest of the message is kept.

No mta runs: the members are remote, so the messages stay in the queue to be inspected."""
import smtplib
import threading
import time

import pytest

from conftest import BIN, wait_for
from smtpd_helpers import queue_show

pytestmark = pytest.mark.skipif(not (BIN / "postmesh-queue").exists() or not (BIN / "postmesh-smtpd").exists(),
                                reason="needs postmesh-queue and postmesh-smtpd")

MEMBERS = 1000
SENDER = "sender@client.test"


def members(prefix, n=MEMBERS):
    return [f"{prefix}{i}@remote.test" for i in range(n)]


def write_aliases(pm, entries):
    """One entry per alias, ten targets per (continuation) line: lines are limited to 8 KiB."""
    text = []
    for name, targets in entries:
        chunks = [", ".join(targets[i:i + 10]) for i in range(0, len(targets), 10)]
        text.append(f"{name}: " + ",\n    ".join(chunks) + "\n")
    (pm.root / "aliases").write_text("".join(text))
    pm.configure(trusted_networks=["127.0.0.0/8"])  # the plain remote RCPTs are relayed


def queued(pm, qid):
    """The recipient lines of `queue show`."""
    return [line for line in queue_show(pm, qid).splitlines() if line.startswith("recipient: ")]


def received_nrcpt(pm, qid):
    line = wait_for(lambda: next((l for l in pm.log("queue").splitlines()
                                  if "event=received" in l and f"id={qid}" in l), None), 10,
                    what=f"event=received for {qid}")
    return int(line.split(" nrcpt=", 1)[1].split()[0])


def send(pm, rcpts, before_data=None, timeout=60):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=timeout) as s:
        s.ehlo("client.test")
        code, resp = s.mail(SENDER)
        assert code == 250, resp
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        if before_data:
            before_data()
        code, resp = s.data(b"Subject: aliases\r\n\r\nbody\r\n")
        assert code == 250, resp
        return resp.decode().rsplit(" ", 1)[-1]


def test_repeated_rcpt_is_stored_once(pm):
    """The reported case: 1,000 RCPTs of one 1,000-member alias (in either case). Every one
    is answered 250 and counts towards smtpd.max_recipients (as in Postfix); the queue walks
    the alias once and stores the 1,000 members once each, without stalling (it used to
    take over 5 s, and smtpd gave up on it with 451)."""
    write_aliases(pm, [("big@example.test", members("m"))])
    pm.start("queue", "smtpd")
    rcpts = ["big@example.test" if i % 2 else "Big@Example.TEST" for i in range(1000)]
    qid = send(pm, rcpts)
    assert received_nrcpt(pm, qid) == 1000
    lines = queued(pm, qid)
    assert len(lines) == MEMBERS
    assert len({l.split()[1].lower() for l in lines}) == MEMBERS
    commit = wait_for(lambda: next((l for l in pm.log("smtpd").splitlines() if f"event=queued id={qid}" in l), None),
                      10, what="smtpd's event=queued")
    assert "nrcpt=1000" in commit


def test_many_aliases_of_one_list_do_not_stall_the_queue(pm):
    """1,000 different aliases that all lead to the same 1,000 members, one RCPT each (smtpd
    cannot merge them): the queue used to compare each of the 10^6 results with every
    recipient kept so far, seconds during which no other message was committed. A small
    message sent meanwhile must be answered promptly, and the big one stores 1,000
    recipients."""
    entries = [("big@example.test", members("m"))] + [(f"l{i}@example.test", ["big@example.test"])
                                                      for i in range(1000)]
    write_aliases(pm, entries)
    pm.start("queue", "smtpd")
    ready, result = threading.Event(), {}

    def big():
        try:
            result["qid"] = send(pm, [f"l{i}@example.test" for i in range(1000)], before_data=ready.set)
        except Exception as e:  # reported by the main thread
            result["error"] = e
        finally:
            ready.set()

    t = threading.Thread(target=big, daemon=True)
    t.start()
    assert ready.wait(120), "the big message never reached DATA"
    # Small unrelated messages, one after another, until the big one is committed (bounded in
    # count and time): each must be answered quickly.
    latencies, deadline = [], time.monotonic() + 30
    while t.is_alive() and len(latencies) < 200 and time.monotonic() < deadline:
        t0 = time.monotonic()
        send(pm, ["other@remote.test"], timeout=30)
        latencies.append(time.monotonic() - t0)
    # One more after it, in case the big one was committed before the first small one left.
    t0 = time.monotonic()
    send(pm, ["other@remote.test"], timeout=30)
    latencies.append(time.monotonic() - t0)
    t.join(60)
    assert "error" not in result, result.get("error")
    assert max(latencies) < 1.5, f"a small message waited {max(latencies):.2f} s ({len(latencies)} sent)"
    qid = result["qid"]
    assert received_nrcpt(pm, qid) == 1000
    lines = queued(pm, qid)
    assert len(lines) == MEMBERS
    assert {l.split()[1] for l in lines} == {f"<{m}>" for m in members("m")}


def test_expansion_cap_fails_the_excess_rcpts_only(pm):
    """Eleven RCPTs of eleven distinct 1,000-member aliases: 11,000 addresses, over the cap
    of 10,000. The first ten RCPTs are kept (10,000 recipients); the eleventh, which does
    not fit, is kept as one failed recipient with 5.5.3 (its DSN goes to the sender), and so
    is a new plain RCPT after it; one naming a member given already costs nothing."""
    write_aliases(pm, [(f"list{k}@example.test", members(f"k{k}x")) for k in range(11)])
    pm.start("queue", "smtpd")
    t0 = time.monotonic()
    qid = send(pm, [f"list{k}@example.test" for k in range(11)] + ["K3x5@remote.test", "plain@remote.test"])
    assert time.monotonic() - t0 < 10
    lines = queued(pm, qid)
    assert len(lines) == 10 * MEMBERS + 2, len(lines)
    failed = [l.split()[1] for l in lines if "state=failed" in l]
    assert failed == ["<list10@example.test>", "<plain@remote.test>"], failed
    assert all("too many recipients after alias expansion" in l for l in lines if "state=failed" in l)
    assert sum(1 for l in lines if l.lower().startswith("recipient: <k3x5@remote.test> ")) == 1
    log = pm.log("queue")
    assert f"event=alias_error id={qid} to=list10@example.test status=5.5.3" in log
