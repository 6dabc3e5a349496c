"""The queue's promises: a 250 means committed and synced (the strace test) and survives a
SIGKILL of the queue, submissions share commits, a full store is a temporary error and nothing
acknowledged is lost. Full disks and full maps on a real small filesystem: test_disk_full.py."""
import os
import smtplib
import threading

import pytest

from conftest import wait_for
from syscall_trace import STRACE, Tracer, descendants


def message(i, size=200):
    body = ("x" * 70 + "\r\n") * max(1, size // 72)
    return f"Subject: test {i}\r\nMessage-ID: <m{i}@client.test>\r\n\r\n{body}"


def send_many(port, count, sessions, results, size=200, stop=None):
    """Each session sends count/sessions messages; results[i] = queue id or None."""
    per = count // sessions

    def worker(w):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
                for k in range(per):
                    i = w * per + k
                    if stop is not None and stop.is_set():
                        return
                    try:
                        s.sendmail("sender@client.test", ["user@example.test"], message(i, size))
                        results[i] = s.qid if hasattr(s, "qid") else "ok"
                    except smtplib.SMTPResponseException as e:
                        results[i] = None
                        if e.smtp_code == 421:
                            return
        except (OSError, smtplib.SMTPException):
            return

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


class RecordingSMTP(smtplib.SMTP):
    """smtplib that remembers the queue id from '250 2.0.0 Ok: queued as ID'."""
    def data(self, msg):
        code, resp = super().data(msg)
        self.qid = resp.decode().rsplit(" ", 1)[-1] if code == 250 else None
        return code, resp


def send_recording(port, n, sent, lock, stop):
    with RecordingSMTP("127.0.0.1", port, timeout=20) as s:
        for i in range(n):
            if stop.is_set():
                return
            try:
                s.sendmail("sender@client.test", ["user@example.test"], message(i))
            except smtplib.SMTPResponseException:
                continue
            except (smtplib.SMTPServerDisconnected, OSError):
                return
            if s.qid:
                with lock:
                    sent.append(s.qid)


def test_every_250_survives_sigkill_of_the_queue(pm):
    """Every message that got a 250 is still listed after the queue was SIGKILLed mid-stream
    and restarted: the 250 came after the LMDB commit (not from memory), and a restart loads
    every committed record. It does NOT show that anything reached the disk: a SIGKILL leaves
    the kernel's page cache intact, so this passes with MDB_NOSYNC too. That the data file
    was synced before each 250 is checked by test_every_250_follows_a_sync_of_the_store."""
    pm.add_user("user@example.test")
    pm.start("queue", "smtpd")
    sent, lock, stop = [], threading.Lock(), threading.Event()
    threads = [threading.Thread(target=send_recording, args=(pm.port("smtp"), 40, sent, lock, stop))
               for _ in range(10)]
    for t in threads:
        t.start()
    wait_for(lambda: len(sent) >= 50, 30, what="50 accepted messages")
    pm.kill("queue")          # SIGKILL in the middle of the stream
    stop.set()
    for t in threads:
        t.join(30)
    acknowledged = set(sent)
    assert len(acknowledged) >= 50
    pm.start("queue")
    listed = {row["id"] for row in pm.queue_list()}
    missing = acknowledged - listed
    assert not missing, f"{len(missing)} acknowledged messages lost: {sorted(missing)[:5]}"
    assert "event=store_loaded" in pm.log("queue")


STORE_WRITES = ("write", "writev", "pwrite64", "pwritev", "pwritev2")


def store_sync_violations(tracer, queue_pid, acked):
    """For each acknowledged queue id X, what was not durable when smtpd wrote `250 ... X`.

    The window of X's commit in the queue's main thread runs from its `event=received id=X`
    log line to its `event=committed id=X` line: the first commit after a submission arrives
    holds it, and the reply is queued just before the `committed` line. Every write to the
    LMDB data file in that window (data pages, then the meta page) must be durable before the
    smtpd's write of the 250: written through an O_DSYNC/O_SYNC descriptor, or followed by a
    completed fsync/fdatasync of the data file (or sync/syncfs). A window without any write
    is a violation too (nothing was written, or it was written in a way this check cannot
    see, e.g. MDB_WRITEMAP: adapt the check then)."""
    calls = tracer.calls()
    received, committed, replied = {}, {}, {}
    writes, syncs = [], []
    for c in calls:
        if c.pid == queue_pid:
            if c.name == "write" and c.fd == 2:
                for event, table in (("received", received), ("committed", committed)):
                    i = c.args.find(f"event={event} id=")
                    if i >= 0:
                        table.setdefault(c.args[i + len(event) + 10:][:16], c.start)
            elif c.name in STORE_WRITES and c.path.endswith("/data.mdb") and c.result > 0:
                writes.append(c)
            elif c.result == 0 and (c.name in ("sync", "syncfs") or
                                    (c.name in ("fsync", "fdatasync") and c.path.endswith("/data.mdb"))):
                syncs.append(c)
        elif c.name in ("write", "writev", "sendto", "sendmsg"):
            i = c.args.find("250 2.0.0 Ok: queued as ")
            if i >= 0:
                replied.setdefault(c.args[i + 24:][:16], c.start)
    problems = []
    for qid in acked:
        if qid not in replied or qid not in received or qid not in committed:
            problems.append(f"{qid}: not in the trace (250 {qid in replied}, received {qid in received}, "
                            f"committed {qid in committed})")
            continue
        deadline = replied[qid]
        window = [w for w in writes if received[qid] <= w.start <= committed[qid]]
        if not window:
            problems.append(f"{qid}: no write to data.mdb between received and committed")
        for w in window:
            if tracer.open_flags(queue_pid, w.fd) & os.O_DSYNC:
                if w.end > deadline:
                    problems.append(f"{qid}: O_DSYNC {w.name} at {w.start:.6f} still running at the 250")
            elif not any(s.start >= w.end and s.end <= deadline for s in syncs):
                problems.append(f"{qid}: {w.name}(fd {w.fd}) at {w.start:.6f} not synced before the 250 "
                                f"at {deadline:.6f}")
    return problems


@pytest.mark.skipif(not STRACE or os.geteuid() != 0, reason="needs strace and root (ptrace)")
def test_every_250_follows_a_sync_of_the_store(pm, tmp_path):
    """What a SIGKILL cannot show: that the LMDB data file was synced (fdatasync, or an O_DSYNC
    write for the meta page) after the message was written and before its 250 left smtpd.
    strace watches the queue and the smtpd worker while several clients submit at once
    (so commits are shared); fails e.g. with MDB_NOSYNC or MDB_NOMETASYNC in store.c, or
    with a reply sent before the commit."""
    pm.add_user("user@example.test")
    pm.start("queue", "smtpd")
    queue_pid = pm.procs["queue"].pid
    tracer = Tracer(tmp_path / "strace", [queue_pid, *descendants(pm.procs["smtpd"].pid)])
    sent, lock, stop = [], threading.Lock(), threading.Event()
    try:
        threads = [threading.Thread(target=send_recording, args=(pm.port("smtp"), 10, sent, lock, stop))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stop.set()
    finally:
        tracer.stop()
    assert len(set(sent)) == 60, f"only {len(sent)} of 60 messages accepted"
    problems = store_sync_violations(tracer, queue_pid, sorted(set(sent)))
    early = {p.split(":", 1)[0] for p in problems}
    assert not problems, f"{len(early)} of 60 acknowledged before they were durable:\n" + "\n".join(problems[:10])
    assert pm.procs["queue"].poll() is None and pm.procs["smtpd"].poll() is None


def test_concurrent_submissions_share_commits(pm):
    pm.add_user("user@example.test")
    pm.start("queue", "smtpd")
    results = [None] * 200
    send_many(pm.port("smtp"), 200, 20, results)
    assert all(results), "every message accepted"
    status = pm.cli("status").stdout
    fields = dict(kv.split("=", 1) for kv in status.split() if "=" in kv)
    assert int(fields["committed_total"]) == 200
    # Group commit: 20 sessions at once must not need one fsync per message.
    assert int(fields["commits_total"]) < 200, status


def test_full_store_is_a_temporary_error_and_loses_nothing(pm):
    pm.configure(queue={"map_size_mb": 1}, smtpd={"max_message_size": 10 * 1024 * 1024})
    pm.add_user("user@example.test")
    pm.start("queue", "smtpd")
    accepted, refused = [], []
    with RecordingSMTP("127.0.0.1", pm.port("smtp"), timeout=20) as s:
        for i in range(20):
            try:
                s.sendmail("sender@client.test", ["user@example.test"], message(i, 100_000))
                accepted.append(s.qid)
            except smtplib.SMTPDataError as e:
                refused.append((e.smtp_code, e.smtp_error))
                break
    assert refused, "a 1 MiB store cannot hold 20 messages of 100 KB"
    code, text = refused[0]
    assert code == 452 and b"4.3.1" in text, refused
    assert accepted
    # The queue is alive, still lists everything it acknowledged, and still answers.
    listed = {row["id"] for row in pm.queue_list()}
    assert set(accepted) <= listed
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=20) as s:
        assert s.noop()[0] == 250
    pm.stop("queue")
    pm.start("queue")
    assert set(accepted) <= {row["id"] for row in pm.queue_list()}


def test_mail_loop_is_refused(pm):
    pm.add_user("user@example.test")
    pm.start("queue", "smtpd")
    headers = "".join(f"Received: from hop{i}.test by hop{i+1}.test; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
                      for i in range(101))
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=20) as s:
        try:
            s.sendmail("a@client.test", ["user@example.test"], headers + "Subject: loop\r\n\r\nbody\r\n")
            raise AssertionError("loop accepted")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 554 and b"5.4.6" in e.smtp_error
    assert pm.queue_list() == []
