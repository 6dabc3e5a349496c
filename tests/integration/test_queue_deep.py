"""Deep queues (issue 12): the queue keeps at most queue.active_limit messages in memory and
the rest in LMDB, indexed by when each is due, so dispatch and start-up do not look at what is
not due; `queue list` pages through the store. The store is filled fast by the queue's test
hook (POSTMESH_TEST_QUEUE_FILL, services/queue/testhook.c: compiled out of release builds)."""
import json
import os
import re
import smtplib
import subprocess
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from conftest import BIN, free_port, wait_for
from pop3_helpers import add_user, messages

ALICE = "alice@example.test"


def fill(pm, n, timeout=120, **env):
    """Writes n deferred messages into pm's store with the queue's fill hook; returns the
    hook's log line (event=test_fill ... soon_due=T)."""
    pm.write_config()
    pm.ensure_keys()
    e = dict(os.environ, POSTMESH_TEST_QUEUE_FILL=str(n))
    e.update({f"POSTMESH_TEST_QUEUE_FILL_{k.upper()}": str(v) for k, v in env.items()})
    r = subprocess.run([str(BIN / "postmesh-queue"), "-c", str(pm.conf_path)], cwd=pm.root, env=e,
                       capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "event=test_fill " in out, out[-3000:]
    return next(line for line in out.splitlines() if "event=test_fill " in line)


def status(pm):
    """The queue's counters from `postmesh status` as a dict of ints."""
    text = pm.cli("status").stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def send(pm, n, rcpt=ALICE):
    """n messages over one SMTP session (sendmail raises unless each gets its 250)."""
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        for i in range(n):
            s.sendmail("bob@example.test", [rcpt],
                       f"From: bob@example.test\r\nTo: {rcpt}\r\nSubject: deep {i}\r\n\r\nbody {i}\r\n")


def log_time(line):
    ts = re.search(r"ts=(\S+)Z", line).group(1)
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


@pytest.fixture
def local(pm):
    add_user(pm, ALICE, "secret")
    pm.configure(trusted_networks=["127.0.0.0/8"])
    return pm


def test_active_set_is_bounded_and_every_message_still_delivered(local):
    """active_limit = 50 with 500 deferred messages (due in 2 s) and 60 more submitted over
    SMTP while nothing delivers: at most 50 records in memory, the rest waits in the store;
    once delivery runs all 560 arrive, and memory never held more than the limit."""
    pm = local
    pm.configure(queue={"active_limit": 50})
    fill(pm, 500, due=2, rcpt=ALICE)
    pm.start("queue", "smtpd")
    st = status(pm)
    assert st["messages"] == 500 and st["in_memory"] == 0 and st["deferred"] == 500, st
    send(pm, 60)
    wait_for(lambda: status(pm)["messages"] == 560, timeout=20, what="560 messages queued")
    wait_for(lambda: status(pm)["in_memory"] == 50, timeout=20, what="the active set full")
    assert status(pm)["in_memory"] <= 50
    pm.start("delivery")
    peak = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = status(pm)
        peak = max(peak, st["in_memory"])
        if len(messages(pm, ALICE)) >= 560 and st["messages"] == 0:
            break
        time.sleep(0.1)
    assert len(messages(pm, ALICE)) == 560
    assert status(pm)["messages"] == 0, status(pm)
    # Up to one commit batch of fresh submissions may briefly sit above the limit; nothing
    # near the 560 an unbounded queue would hold.
    assert peak <= 50, peak
    assert "event=rcpt_delivered" in pm.log("queue")


def test_a_due_message_among_100000_deferred_is_dispatched_at_once(local):
    """100,000 deferred messages due tomorrow and one due 3 s after the fill: it is dispatched
    within a second of becoming due, and the queue starts in seconds without reading all
    records (the start-up figure is the time to event=started)."""
    pm = local
    line = fill(pm, 100000, rcpt="far@deferred.invalid", soon=3, soon_rcpt=ALICE)
    soon_due = int(re.search(r"soon_due=(\d+)", line).group(1))
    began = time.monotonic()
    pm.start("queue", timeout=20)
    startup = time.monotonic() - began
    pm.start("delivery")
    assert startup < 10, startup
    st = status(pm)
    assert st["messages"] == 100000 and st["in_memory"] <= 1, st
    wait_for(lambda: len(messages(pm, ALICE)) == 1, timeout=30, what="the due message delivered")
    dispatch = [l for l in pm.log("queue").splitlines() if "event=dispatch " in l and "kind=delivery" in l]
    assert len(dispatch) == 1, dispatch
    late = log_time(dispatch[0]) - soon_due
    assert late < 1.0, f"dispatched {late:.2f} s after it became due"
    assert status(pm)["messages"] == 99999


def test_queue_list_streams_and_one_message_is_found_in_the_store(local):
    """3,500 deferred messages: `queue list` (text and --json) pages through them all; show,
    hold, release and delete find a message that is not in memory; the depth metric counts
    them by state without reading the records."""
    pm = local
    mport = free_port()
    pm.configure(queue={"metrics": f"127.0.0.1:{mport}"})
    fill(pm, 3500, rcpt="far@deferred.invalid")
    pm.start("queue")
    assert status(pm)["in_memory"] == 0
    rows = pm.queue_list()
    ids = [r["id"] for r in rows]
    assert len(ids) == 3500 and len(set(ids)) == 3500 and ids == sorted(ids)
    assert all(" deferred far@deferred.invalid" in r["line"] for r in rows)
    doc = json.loads(pm.cli("queue", "list", "--json").stdout)
    assert doc["ok"] is True and len(doc["shards"]) == 1 and doc["shards"][0]["ok"] is True
    assert [m["id"] for m in doc["shards"][0]["messages"]] == ids

    one = ids[1234]
    shown = pm.cli("queue", "show", one).stdout
    assert f"id: {one}" in shown and "state=deferred" in shown and "Subject: deep queue" in shown
    pm.cli("queue", "hold", one)
    st = status(pm)
    assert st["hold"] == 1 and st["deferred"] == 3499 and st["messages"] == 3500, st

    def metric():
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        return {s: float(v) for s, v in re.findall(r'postmesh_queue_messages\{state="(\w+)"\} (\S+)', body)}
    m = metric()
    assert m.get("hold") == 1 and m.get("deferred") == 3499, m
    pm.cli("queue", "release", one)
    pm.cli("queue", "delete", ids[7])
    st = status(pm)
    assert st["hold"] == 0 and st["messages"] == 3499, st
    r = pm.cli("queue", "show", ids[7], check=False)
    assert r.returncode == 1 and "no message" in r.stderr
    assert len(pm.queue_list()) == 3499


def test_restart_keeps_every_message_and_loads_only_what_is_due(local):
    """A killed queue with 5,000 deferred and 30 new messages (no delivery running) comes back
    with all of them; the new ones are dispatched again once delivery runs, the deferred ones
    stay in the store until their time."""
    pm = local
    fill(pm, 5000, rcpt="far@deferred.invalid")
    pm.start("queue", "smtpd")
    send(pm, 30)
    wait_for(lambda: status(pm)["messages"] == 5030, timeout=20, what="5030 queued")
    pm.kill("queue")
    pm.start("queue", timeout=20)
    st = status(pm)
    assert st["messages"] == 5030 and st["deferred"] == 5000 and st["in_memory"] == 30, st
    pm.start("delivery")
    wait_for(lambda: len(messages(pm, ALICE)) == 30, timeout=30, what="the 30 new messages delivered")
    wait_for(lambda: status(pm)["messages"] == 5000, timeout=10, what="only the deferred left")
    assert len(pm.queue_list()) == 5000


def test_a_store_without_the_index_is_indexed_once_at_start(local):
    """A store written before the due index (no entries): the first start builds it from
    the records; every message is counted and the due ones are delivered."""
    pm = local
    fill(pm, 1000, rcpt="far@deferred.invalid", noindex=1)
    fill(pm, 1, rcpt=ALICE, due=0, noindex=1)
    pm.start("queue", "delivery", timeout=30)
    assert "event=index_built messages=1001" in pm.log("queue")
    wait_for(lambda: len(messages(pm, ALICE)) == 1, timeout=20, what="the due message delivered")
    wait_for(lambda: status(pm)["messages"] == 1000, timeout=10, what="the delivered one removed")
    assert status(pm)["deferred"] == 1000
    pm.stop("queue")
    pm.start("queue")
    assert pm.log("queue").count("event=index_built") == 1


# ---- regressions found in review (issue 12): a stored, acknowledged message never loaded
# again, or waiting behind messages that cannot be dispatched.


def test_a_record_without_index_entry_is_still_delivered(local):
    """Half-built index (a start killed during build_index, or records written by an older
    binary after a downgrade): entries exist but fewer than records, so start-up rebuilds the
    index; the record without an entry is delivered."""
    pm = local
    fill(pm, 5, rcpt="far@deferred.invalid")     # indexed, due tomorrow
    fill(pm, 1, rcpt=ALICE, due=0, noindex=1)    # a due record with no entry
    pm.start("queue", "delivery")
    wait_for(lambda: len(messages(pm, ALICE)) == 1, timeout=15, what="the unindexed due message delivered")
    assert "event=index_rebuild records=6 entries=5" in pm.log("queue")


def test_blocked_messages_do_not_starve_the_active_set(local):
    """active_limit 16, 40 remote messages due now and no mta (as with a stalled destination
    at mta.max_per_domain): they fill the active set; a local message due a second later is
    still loaded and delivered (blocked messages rotate back to the store)."""
    pm = local
    pm.configure(queue={"active_limit": 16})
    fill(pm, 40, due=0, rcpt="far@remote.invalid", soon=1, soon_rcpt=ALICE)
    pm.start("queue", "delivery")
    wait_for(lambda: len(messages(pm, ALICE)) == 1, timeout=15, what="the local message delivered")
    assert status(pm)["in_memory"] <= 16


def test_flush_after_a_max_lifetime_change(local):
    """The stored entries were keyed with max_lifetime 3600 (the tests' config); after a
    restart with another max_lifetime, `queue flush` still finds and flushes every one."""
    pm = local
    fill(pm, 3, rcpt=ALICE)                      # deferred until tomorrow, key = arrival + 1 h
    pm.configure(queue={"max_lifetime": 7200})
    pm.start("queue", "delivery")
    assert status(pm)["messages"] == 3
    out = pm.cli("queue", "flush").stdout
    assert re.search(r"\b3 deferred recipients", out), out
    wait_for(lambda: len(messages(pm, ALICE)) == 3, timeout=15, what="the flushed messages delivered")


def test_hold_after_a_max_lifetime_change_leaves_no_duplicate_entry(local):
    """After a max_lifetime change start-up rebuilds the index (its marker names the config),
    so a message found by id and written again leaves no second entry behind."""
    pm = local
    fill(pm, 3, rcpt=ALICE)
    pm.configure(queue={"max_lifetime": 7200})
    pm.start("queue")
    assert "event=index_rebuild" in pm.log("queue")
    one = pm.queue_list()[0]["id"]
    pm.cli("queue", "hold", one)
    pm.stop("queue")
    pm.start("queue")
    assert "event=index_mismatch" not in pm.log("queue")
    assert pm.log("queue").count("event=index_rebuild") == 1
    assert status(pm)["messages"] == 3, status(pm)


def test_a_message_returned_again_and_again_still_expires(pm):
    """A worker that hands every job back (RETURNED: not attempted) must not keep a message
    queued past queue.max_lifetime: the recipient expires (fails) like a deferred one."""
    import zmq
    import bus_wire as wire
    from test_job_identity import LOCAL_A, FakeWorker
    pm.configure(queue={"max_lifetime": 2, "job_lease": 30, "retry_min": 60, "retry_max": 120})
    pm.start("queue")
    ctx = zmq.Context()
    try:
        w = FakeWorker(pm, ctx, wire.WORKER_DELIVERY)
        qid = w.submit([LOCAL_A])
        expired = f"event=rcpt_expired id={qid}"
        deadline = time.monotonic() + 15
        for _ in range(200):
            if expired in pm.log("queue") or time.monotonic() > deadline:
                break
            w.credit(1)
            job = w.next_job(timeout=5, queue_id=qid)
            w.answer(job, wire.RETURNED)
            w.sync()
            time.sleep(0.1)  # pacing of the hand-backs, not a check
        assert expired in pm.log("queue"), pm.log("queue")[-3000:]
        assert "event=rcpt_returned id=" + qid in pm.log("queue")
        w.close()
    finally:
        ctx.destroy(linger=0)


def test_queue_list_pages_continue_across_queue_restarts(local):
    """The list is paged by id, not by a cursor the queue keeps: a CLI whose queue restarts
    between two pages asks for the next page after the last id it got and loses or repeats
    nothing (spoken on the control socket as the CLI does, with a restart between pages)."""
    import zmq
    import bus_wire as wire
    pm = local
    fill(pm, 2500, rcpt="far@deferred.invalid")
    keys = pm.state / "keys"
    qpub = (keys / "queue.pub").read_text().strip().encode()
    cli_pub, cli_sec = (keys / "cli.key").read_text().split()[:2]
    zctx = zmq.Context.instance()

    def page(request_id, after):
        s = zctx.socket(zmq.DEALER)
        s.linger = 0
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = cli_pub.encode(), cli_sec.encode(), qpub
        s.connect(pm.settings["queue"]["control"])
        try:
            req = wire.field_int(1, 0) + (wire.field_bytes(3, after) if after else b"") + wire.field_int(4, 1000)
            s.send(wire.bus_message(request_id, wire.CONTROL, req))
            assert s.poll(10000), "no reply to LIST"
            reply = wire.decode(wire.decode(s.recv())[wire.CONTROL_REPLY][0])
        finally:
            s.close()
        ids = [wire.decode(item)[1][0].decode() for item in reply.get(3, [])]
        return ids, bool(wire.first(reply, 4, 0))

    pm.start("queue")
    got, after, more, n = [], "", True, 0
    while more and n < 10:
        ids, more = page(n + 1, after)
        got += ids
        after = ids[-1] if ids else after
        n += 1
        pm.kill("queue")           # every page from a queue that never saw the one before
        pm.start("queue", timeout=20)
    assert n == 3 and not more
    assert len(got) == 2500 and got == sorted(set(got))
