"""The queue's promises: a 250 means committed to disk (survives SIGKILL), submissions share
commits, a full store is a temporary error and nothing acknowledged is lost."""
import smtplib
import threading
import time

from conftest import wait_for


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
