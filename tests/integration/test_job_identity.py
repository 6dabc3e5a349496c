"""Job identity against the real postmesh-queue: the test is the worker. It speaks the bus with
pyzmq (CurveZMQ with a key it lists in state_dir/keys), takes jobs for messages it submitted
and answers them wrongly on purpose. A result applies only to the outstanding job with the
same epoch, job id, queue id and kind, and only to recipients that job holds; anything else
must leave the message queued with its recipient in flight until the job's lease brings it
back. Also: the stale result of a queue restart, RETURNED, the credit race (jobs_received) and
the queue's per-destination limit for an mta.

Ordering: the queue handles one connection's messages in order, so a Submit without
recipients (answered at once with a refusal) sent after a result is a barrier: when its reply
arrives the result has been applied, and every job the queue sent before it has arrived."""
import itertools
import re
import time

import pytest
import zmq

import bus_wire as wire
from conftest import wait_for, write_key

LOCAL_A, LOCAL_B = "a@example.test", "b@example.test"
REMOTE = "r@remote.test"
BODY = b"Subject: job identity\r\nMessage-ID: <%d@test>\r\n\r\nhello\r\n"
_rid = itertools.count(1000)
_msgno = itertools.count(1)


class FakeWorker:
    """A worker of one kind on its own DEALER (credit, jobs, results), with a key listed in
    the role of its kind, and a second DEALER with an smtpd key for its submissions (one key
    has one role: a worker's key may not submit)."""

    def __init__(self, pm, zctx, kind, name="fake-worker"):
        self.pm, self.kind, self.name = pm, kind, name
        role = {wire.WORKER_DELIVERY: "delivery", wire.WORKER_MTA: "mta", wire.WORKER_BOUNCER: "bouncer"}[kind]
        self.sock = self._dealer(zctx, f"{role}.{name}")
        self.submitter = self._dealer(zctx, f"smtpd.{name}")
        self.jobs = []          # received, not taken by the test yet
        self.received = 0
        self.replies = {}

    def _dealer(self, zctx, key_name):
        keys = self.pm.state / "keys"
        pub, sec = zmq.curve_keypair()
        write_key(keys, key_name, pub)      # admitted: the queue re-reads on a miss
        s = zctx.socket(zmq.DEALER)
        s.linger = 0
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = (keys / "queue.pub").read_text().strip().encode()
        s.connect(self.pm.settings["queue"]["endpoint"])
        return s

    def close(self):
        self.sock.close()
        self.submitter.close()

    def _pump(self, timeout_ms):
        """Reads one frame (of either socket) if one comes within timeout_ms."""
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.submitter, zmq.POLLIN)
        ready = dict(poller.poll(int(timeout_ms)))
        if not ready:
            return False
        for sock in (self.sock, self.submitter):
            if sock not in ready:
                continue
            fields = wire.decode(sock.recv())
            job = wire.parse_job(fields)
            if job is not None:
                self.jobs.append(job)
                self.received += 1
                continue
            if wire.PING in fields:
                self.replies[wire.first(fields, 2, 0)] = "pong"
                continue
            reply = wire.parse_submit_reply(fields)
            assert reply is not None, f"unexpected frame {fields}"
            self.replies[reply[0]] = reply
        return True

    def _wait(self, done, timeout, what):
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.pm.log('queue')[-3000:]}")
            self._pump(min(left, 0.2) * 1000)

    def credit(self, credits, jobs_received=None):
        """Free slots now; jobs_received defaults to every job read so far (a lagging count is
        a test's explicit choice)."""
        self.sock.send(wire.credit(self.kind, credits, self.name,
                                   self.received if jobs_received is None else jobs_received))

    def next_job(self, timeout=10.0, queue_id=None):
        """The next job (for queue_id, skipping others) within timeout."""
        def found():
            return any(queue_id is None or j["queue_id"] == queue_id for j in self.jobs)
        self._wait(found, timeout, f"a job for {queue_id or 'any message'}")
        for i, j in enumerate(self.jobs):
            if queue_id is None or j["queue_id"] == queue_id:
                return self.jobs.pop(i)

    def _request(self, frame_for, sock=None):
        rid = next(_rid)
        (sock or self.submitter).send(frame_for(rid))
        self._wait(lambda: rid in self.replies, 10, f"the reply to request {rid}")
        return self.replies.pop(rid)

    def submit(self, recipients, sender="alice@example.net"):
        _, status, qid, text = self._request(lambda rid: wire.submit(rid, sender, recipients, BODY % next(_msgno)))
        assert status == wire.COMMITTED and qid, text
        return qid

    def sync(self):
        """Barrier: everything sent before is handled, every job sent to us before is read."""
        assert self._request(wire.ping, self.sock) == "pong"

    def answer(self, job, status=wire.DELIVERED, indexes=None, **override):
        """A result for job (every recipient it holds unless indexes), echoing its identity
        except what override replaces (job_id, queue_id, epoch, kind)."""
        if indexes is None:
            indexes = [r["index"] for r in job["recipients"]]
        dsn = {wire.DELIVERED: "2.0.0", wire.RETURNED: "4.3.2", wire.TEMPFAIL: "4.4.1"}.get(status, "5.1.1")
        results = [(i, status, dsn, f"{dsn} fake worker") for i in indexes]
        ident = {"job_id": job["job_id"], "queue_id": job["queue_id"], "epoch": job["epoch"],
                 "kind": job["kind"] or self.kind, **override}
        self.sock.send(wire.job_result(ident["job_id"], ident["queue_id"], results, ident["epoch"], ident["kind"]))


def recipients(pm, qid):
    """{address: (state, attempts)} from `postmesh queue show`, or None if qid is not queued."""
    r = pm.cli("queue", "show", qid, check=False)
    if r.returncode != 0:
        return None
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"recipient: <([^>]*)> state=(\S+) attempts=(\d+)", line)
        if m:
            out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def queued(pm):
    return {row["id"] for row in pm.queue_list()}


def delivered_in_log(pm, qid):
    return re.findall(rf"event=rcpt_delivered id={qid} to=(\S+)", pm.log("queue"))


def start_queue(pm, **queue):
    pm.configure(queue={"job_lease": 2, "retry_min": 60, "retry_max": 120, **queue})
    pm.start("queue")


def assert_untouched(pm, qid, want):
    """The message is queued and each recipient in want has (state, 0 attempts)."""
    assert qid in queued(pm), pm.log("queue")[-3000:]
    got = recipients(pm, qid)
    for addr, state in want.items():
        assert got.get(addr) == (state, 0), (addr, got, pm.log("queue")[-3000:])
    assert delivered_in_log(pm, qid) == [], pm.log("queue")[-3000:]


def wait_delivered(pm, qid, addr):
    wait_for(lambda: addr in delivered_in_log(pm, qid), 10, what=f"{addr} of {qid} delivered")


# ------------------------------------------------------------------ (a)-(e) wrong answers


@pytest.mark.parametrize("wrong", ["epoch", "queue_id", "index", "kind"])
def test_a_wrong_answer_changes_nothing_until_the_lease_brings_the_job_back(pm, zctx, wrong):
    start_queue(pm)
    w = FakeWorker(pm, zctx, wire.WORKER_DELIVERY)
    # The message: a local recipient (the delivery job's) and, for the index case, a remote
    # one no job of this worker holds. The other message is where a wrong queue id points.
    rcpts = [LOCAL_A, REMOTE] if wrong == "index" else [LOCAL_A]
    qid = w.submit(rcpts)
    other = w.submit([LOCAL_B])
    credited_at = time.monotonic()          # the job, and its lease, start after this
    w.credit(1)
    job = w.next_job()
    assert job["queue_id"] == qid and [r["index"] for r in job["recipients"]] == [0], job
    assert job["kind"] == wire.WORKER_DELIVERY and job["lease_seconds"] == 2, job

    bad = {
        "epoch": dict(override={"epoch": job["epoch"] ^ 0x5A5A5A5A or 1}),
        "queue_id": dict(override={"queue_id": other}),
        "index": dict(indexes=[0, 1]),               # 1 (the remote recipient) is not the job's
        "kind": dict(override={"kind": wire.WORKER_MTA}),
    }[wrong]
    w.answer(job, wire.DELIVERED, bad.get("indexes"), **bad.get("override", {}))
    w.sync()

    # Nothing delivered: the recipient is still in flight under the job, no attempt counted;
    # the other message (and the remote recipient) untouched.
    want = {LOCAL_A: "active"}
    if wrong == "index":
        want[REMOTE] = "pending"
    assert_untouched(pm, qid, want)
    assert_untouched(pm, other, {LOCAL_B: "pending"})
    assert not [j for j in w.jobs if j["queue_id"] == qid], "dispatched again before its lease"

    # The lease brings it back: the same recipient in a new job, well after the wrong answer.
    w.credit(3)
    again = w.next_job(timeout=10, queue_id=qid)
    # The lease is 2 s of the queue's monotonic clock (ms) from the dispatch, which came after
    # our credit: never sooner, however slow or fast the machine.
    assert time.monotonic() - credited_at >= 2 - 0.002, "re-dispatched before the lease ran out"
    assert again["job_id"] != job["job_id"] and [r["index"] for r in again["recipients"]] == [0], again
    assert f"event=lease_expired id={qid}" in pm.log("queue")

    # (e) The right answer works.
    w.answer(again)
    wait_delivered(pm, qid, LOCAL_A)
    if wrong == "index":
        assert recipients(pm, qid)[REMOTE] == ("pending", 0)
    else:
        wait_for(lambda: qid not in queued(pm), 10, what=f"{qid} removed")
    assert f"event=rcpt_delivered id={other}" not in pm.log("queue")
    w.close()


# ------------------------------------------------------------------ (f) a queue restart


def test_stale_result_from_before_a_restart_never_delivers_another_message(pm, zctx):
    """The issue's finding: job ids start at 1 again after a restart. A result the worker sends
    across the restart names an old job; the new run gave the same id to another message."""
    start_queue(pm, job_lease=30)
    w = FakeWorker(pm, zctx, wire.WORKER_DELIVERY)
    first = w.submit([LOCAL_A])
    second = w.submit([LOCAL_B])
    w.credit(1)
    old_job = w.next_job()
    assert old_job["queue_id"] == first, old_job
    w.close()

    pm.kill("queue")
    pm.start("queue")
    # The first message waits on hold, so the new run's first job is for the second one.
    pm.cli("queue", "hold", first)
    w2 = FakeWorker(pm, zctx, wire.WORKER_DELIVERY, name="fake-worker-2")
    w2.credit(1)
    new_job = w2.next_job()
    assert new_job["queue_id"] == second, new_job
    assert new_job["job_id"] == old_job["job_id"], (old_job, new_job)      # the collision

    # The old job's DELIVERED result, as a worker sends it after the restart.
    w2.answer(old_job)
    w2.sync()
    assert_untouched(pm, second, {LOCAL_B: "active"})
    assert new_job["epoch"] != old_job["epoch"], (old_job, new_job)
    # What it says of its own message may be honoured (still waiting, not in flight), nothing else.
    assert recipients(pm, first)[LOCAL_A][0] in ("pending", "delivered")

    # The new job's own answer delivers the second message.
    w2.answer(new_job)
    wait_delivered(pm, second, LOCAL_B)
    wait_for(lambda: second not in queued(pm), 10, what=f"{second} removed")
    w2.close()


# ------------------------------------------------------------------ (g) RETURNED


def test_returned_is_dispatched_again_at_once_without_an_attempt(pm, zctx):
    # retry_min 60 and a 30 s lease: a re-dispatch within seconds is neither a retry nor a lease.
    start_queue(pm, job_lease=30)
    w = FakeWorker(pm, zctx, wire.WORKER_DELIVERY)
    qid = w.submit([LOCAL_A])
    w.credit(1)
    job = w.next_job()
    w.answer(job, wire.RETURNED)
    t0 = time.monotonic()
    w.credit(1)
    again = w.next_job(timeout=5, queue_id=qid)
    assert time.monotonic() - t0 < 5
    assert again["job_id"] != job["job_id"], again
    assert recipients(pm, qid) == {LOCAL_A: ("active", 0)}, pm.log("queue")[-3000:]
    assert f"event=rcpt_returned id={qid}" in pm.log("queue")
    w.answer(again)
    wait_delivered(pm, qid, LOCAL_A)
    wait_for(lambda: qid not in queued(pm), 10, what=f"{qid} removed")
    w.close()


# ------------------------------------------------------------------ (h) the credit race


def test_lagging_credit_never_gets_more_jobs_than_free_slots(pm, zctx):
    """A worker counts its free slots before the jobs on their way have arrived, so credits
    repeat with jobs_received behind; the queue subtracts the jobs it sent beyond that count."""
    start_queue(pm, job_lease=30)
    w = FakeWorker(pm, zctx, wire.WORKER_DELIVERY)
    ids = [w.submit([f"u{i}@example.test"]) for i in range(6)]
    # Three heartbeats of "2 free, 0 received" before the worker reads anything.
    for _ in range(3):
        w.credit(2, jobs_received=0)
    w.sync()
    assert len(w.jobs) == 2, [j["queue_id"] for j in w.jobs]
    # Caught up: both jobs held, no slot free.
    w.credit(0)
    w.sync()
    assert w.received == 2
    # One answered: one slot free, one more job; the lagging count again gets nothing extra.
    done = w.jobs.pop(0)
    w.answer(done)
    w.credit(1)
    w.credit(1, jobs_received=2)
    w.sync()
    assert w.received == 3, [j["queue_id"] for j in w.jobs]
    wait_delivered(pm, done["queue_id"], done["recipients"][0]["address"])
    assert len({j["queue_id"] for j in w.jobs} | {done["queue_id"]}) == 3
    assert set(ids) >= {j["queue_id"] for j in w.jobs}
    w.close()


# ------------------------------------------------------------------ per-destination limit


def test_queue_keeps_an_mta_at_max_per_domain_jobs_per_destination(pm, zctx):
    """A slow destination cannot take every slot of an mta: beyond mta.max_per_domain jobs for
    one domain the queue waits, and other domains still get theirs."""
    pm.configure(mta={"max_per_domain": 2})
    start_queue(pm, job_lease=30)
    w = FakeWorker(pm, zctx, wire.WORKER_MTA)
    slow = [w.submit([f"s{i}@slow.test"]) for i in range(4)]
    fast = w.submit(["f@fast.test"])
    w.credit(10)
    w.sync()
    domains = sorted(j["domain"] for j in w.jobs)
    assert domains == ["fast.test", "slow.test", "slow.test"], domains
    # One slow job answered: the third slow message goes out, still two at once.
    done = next(j for j in w.jobs if j["domain"] == "slow.test")
    w.jobs.remove(done)
    w.answer(done)
    w.credit(10)
    w.sync()
    assert sorted(j["domain"] for j in w.jobs) == ["fast.test", "slow.test", "slow.test"]
    assert {j["queue_id"] for j in w.jobs if j["domain"] == "slow.test"} <= set(slow)
    assert fast in {j["queue_id"] for j in w.jobs}
    w.close()
