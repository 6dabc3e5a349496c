"""Graceful drain of the workers, as an operator's rolling restart does it: SIGTERM to an mta
in the middle of a slow remote SMTP session, or to delivery in the middle of a write, with a
second worker of the same kind already connected. The stopped worker exits within a few
seconds (podman's default stop timeout is 10 s); a job it had not decided comes back to the
queue as RETURNED and goes at once to the other worker (the lease is 600 s and a deferral
would wait retry_min = 60 s, so either would show); a body the server already has is given
its verdict first, or deferred when none comes. Every message arrives exactly once.

The remote end is a raw SMTP server on loopback whose first sessions stall where the test
says: at RCPT, after the final dot (for ever, or for a while).
"""
import os
import signal
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, free_port, wait_for

PEER = "127.0.0.7"
QUIT_BUDGET = 6.0        # seconds from SIGTERM to exit; podman sends SIGKILL at 10


class StallingPeer:
    """SMTP on PEER:port. Connection k behaves as plan[k] ("ok" past the plan's end):
    "rcpt" never answers the first RCPT; "dot" never answers the final dot; a number answers
    the final dot with 250 after that many seconds. Records per connection the commands,
    whether the dot arrived and whether it was acknowledged (acked: the message was taken)."""

    def __init__(self, port, plan):
        self.plan = list(plan)
        self.conns = []
        self.lock = threading.Lock()
        self.running = True
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((PEER, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def acked(self):
        with self.lock:
            return [c for c in self.conns if c["acked"]]

    def snapshot(self):
        with self.lock:
            return [dict(c, commands=list(c["commands"])) for c in self.conns]

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                how = self.plan[len(self.conns)] if len(self.conns) < len(self.plan) else "ok"
                rec = {"how": how, "commands": [], "dot": False, "acked": False, "body": b"", "closed": False}
                self.conns.append(rec)
            t = threading.Thread(target=self._serve, args=(conn, rec), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn, rec):
        conn.settimeout(0.2)
        buf, data, in_data, stalled = b"", b"", False, False
        try:
            conn.sendall(b"220 peer.test ESMTP\r\n")
            while self.running:
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                buf += chunk
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if stalled:
                        continue
                    if in_data:
                        if line != b".":
                            data += line + b"\r\n"
                            continue
                        in_data = False
                        with self.lock:
                            rec["dot"], rec["body"] = True, data
                        if rec["how"] == "dot":
                            stalled = True
                            continue
                        if isinstance(rec["how"], (int, float)):
                            end = time.monotonic() + rec["how"]
                            while self.running and time.monotonic() < end:
                                time.sleep(0.02)
                        conn.sendall(b"250 2.0.0 Ok: taken\r\n")
                        with self.lock:
                            rec["acked"] = True
                        continue
                    verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
                    with self.lock:
                        rec["commands"].append(verb.decode(errors="replace"))
                    if verb == b"RCPT" and rec["how"] == "rcpt":
                        stalled = True
                        continue
                    reply = {b"EHLO": "250-peer.test\r\n250 8BITMIME", b"HELO": "250 peer.test",
                             b"MAIL": "250 2.1.0 Ok", b"RCPT": "250 2.1.5 Ok", b"DATA": "354 go ahead",
                             b"RSET": "250 2.0.0 Ok", b"NOOP": "250 2.0.0 Ok",
                             b"QUIT": "221 2.0.0 Bye"}.get(verb, "502 5.5.2 unknown")
                    conn.sendall(reply.encode() + b"\r\n")
                    if verb == b"DATA":
                        in_data = True
                    elif verb == b"QUIT":
                        return
        except OSError:
            pass
        finally:
            with self.lock:
                rec["closed"] = True
            conn.close()

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(5)
        self.sock.close()


def start_as(pm, name, svc):
    """A second process of service svc, with the same config, known to pm as name."""
    log_path = pm.root / f"{name}.log"
    pm.logs[name] = log_path
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as logf:
        pm.procs[name] = subprocess.Popen([*getattr(pm, "exec_prefix", []), str(BIN / f"postmesh-{svc}"), "-c",
                                           str(pm.conf_path)], stdout=logf, stderr=subprocess.STDOUT, cwd=pm.root)
    pm.wait_started(name, offset, timeout=15)


def workers_joined(pm, kind):
    return sum(1 for line in pm.log("queue").splitlines() if "event=worker_joined" in line and f"kind={kind}" in line)


def sigterm_and_time(pm, name):
    """SIGTERM, then the seconds until the process is gone (and its exit status)."""
    proc = pm.procs.pop(name)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(QUIT_BUDGET + 4)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{name} still running {QUIT_BUDGET + 4:.0f}s after SIGTERM:\n{pm.log(name)[-3000:]}")
    return time.monotonic() - t0, rc


def submit(pm, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        s.mail("alice@example.test")
        code, _ = s.rcpt(rcpt)
        assert code == 250, code
        code, text = s.data(f"From: alice@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())
        assert code == 250, (code, text)
    return text.decode().split()[-1]


def queue_lines(pm, qid, event):
    return [line for line in pm.log("queue").splitlines() if f"event={event} id={qid}" in line]


def wait_removed(pm, qid, timeout=15):
    wait_for(lambda: queue_lines(pm, qid, "removed"), timeout, what=f"{qid} to leave the queue")


@pytest.fixture
def remote(pm):
    port = free_port(PEER)
    peers = []
    pm.configure(trusted_networks=["127.0.0.0/8"],
                 queue={"job_lease": 600, "retry_min": 60, "retry_max": 120},
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 120})

    def peer(plan):
        p = StallingPeer(port, plan)
        peers.append(p)
        return p
    yield peer
    pm.stop_all()
    for p in peers:
        p.stop()


def test_sigterm_mid_session_hands_the_job_to_the_other_mta_at_once(pm, remote):
    peer = remote(["rcpt"])
    pm.start("queue", "smtpd", "mta")
    qid = submit(pm, f"bob@[{PEER}]", "drain before the dot")
    wait_for(lambda: peer.snapshot() and "RCPT" in peer.snapshot()[0]["commands"], 10, what="the stalled RCPT")
    start_as(pm, "mta2", "mta")
    wait_for(lambda: workers_joined(pm, "mta") >= 2, 10, what="the second mta at the queue")

    took, rc = sigterm_and_time(pm, "mta")
    assert rc == 0, pm.log("mta")[-2000:]
    assert took < QUIT_BUDGET, f"the mta took {took:.1f}s to stop"
    wait_for(lambda: peer.acked(), 8, what="the other mta to deliver it (not after a lease or a retry)")
    wait_removed(pm, qid)

    assert queue_lines(pm, qid, "rcpt_returned"), pm.log("queue")[-3000:]
    assert not queue_lines(pm, qid, "rcpt_deferred"), "handed back, not deferred: no attempt counted"
    assert not [l for l in pm.log("queue").splitlines() if "event=lease_expired" in l]
    assert f"event=returned id={qid}" in pm.log("mta")
    assert f"event=delivered id={qid}" in pm.log("mta2")
    acked = peer.acked()
    assert len(acked) == 1 and b"Subject: drain before the dot" in acked[0]["body"]
    assert not any(c["dot"] for c in peer.snapshot()[:1]), "the first session never sent the body"


def test_sigterm_after_the_body_waits_for_the_verdict(pm, remote):
    """The server has the body and answers 1.5 s later: the draining mta takes that answer
    rather than hang up on it (which would make the outcome unknown: a deferral and maybe a
    second copy)."""
    peer = remote([1.5])
    pm.start("queue", "smtpd", "mta")
    qid = submit(pm, f"carol@[{PEER}]", "drain after the dot")
    wait_for(lambda: peer.snapshot() and peer.snapshot()[0]["dot"], 10, what="the body at the peer")

    took, rc = sigterm_and_time(pm, "mta")
    assert rc == 0
    assert took < QUIT_BUDGET, f"the mta took {took:.1f}s to stop"
    assert not queue_lines(pm, qid, "rcpt_deferred") and not queue_lines(pm, qid, "rcpt_returned"), \
        "hung up on the server's verdict"
    wait_for(lambda: queue_lines(pm, qid, "rcpt_delivered"), 5, what="the verdict at the queue")
    wait_removed(pm, qid)
    assert len(peer.acked()) == 1 and len(peer.snapshot()) == 1
    assert "event=drain_wait deliveries=1" in pm.log("mta")


def test_sigterm_after_the_body_without_a_verdict_defers_then_delivers_once(pm, remote):
    """No answer to the dot at all: the mta gives up after its grace, well before podman's
    SIGKILL, and the outcome is unknown, so the recipient is deferred (not handed back for
    an immediate second copy); the retry delivers it once."""
    pm.configure(queue={"retry_min": 1, "retry_max": 2})
    peer = remote(["dot"])
    pm.start("queue", "smtpd", "mta")
    qid = submit(pm, f"dave@[{PEER}]", "no verdict")
    wait_for(lambda: peer.snapshot() and peer.snapshot()[0]["dot"], 10, what="the body at the peer")
    start_as(pm, "mta2", "mta")
    wait_for(lambda: workers_joined(pm, "mta") >= 2, 10, what="the second mta at the queue")

    took, rc = sigterm_and_time(pm, "mta")
    assert rc == 0
    assert took < QUIT_BUDGET, f"the mta took {took:.1f}s to stop"
    wait_for(lambda: queue_lines(pm, qid, "rcpt_deferred"), 5, what="the deferral")
    assert not queue_lines(pm, qid, "rcpt_returned")
    wait_for(lambda: peer.acked(), 10, what="the retry through the other mta")
    wait_removed(pm, qid)
    acked = peer.acked()
    assert len(acked) == 1 and b"Subject: no verdict" in acked[0]["body"]
    assert f"event=delivered id={qid}" in pm.log("mta2")


def maildir_new(pm, user="alice"):
    return sorted((Path(pm.settings["state_dir"]) / "mail" / "example.test" / user / "Maildir" / "new").glob("*"))


def test_sigterm_mid_write_finishes_the_copy_once(pm, monkeypatch):
    """delivery stopped while a copy is being written (the test stall holds the job 3 s after
    the link into new/): it finishes that job and reports it before it exits, within the
    budget; the queue counts it delivered (no lease, no retry) and there is one copy."""
    pm.add_user("alice@example.test")
    pm.configure(queue={"job_lease": 600, "retry_min": 60, "retry_max": 120}, delivery={"concurrency": 1})
    pm.start("queue", "smtpd")
    monkeypatch.setenv("POSTMESH_TEST_DELIVERY_STALL", "3:new")
    pm.start("delivery")
    monkeypatch.delenv("POSTMESH_TEST_DELIVERY_STALL")
    qid = submit(pm, "alice@example.test", "mid write")
    wait_for(lambda: maildir_new(pm), 10, what="the copy in new/")
    assert not queue_lines(pm, qid, "rcpt_delivered"), "the stall holds the result back"

    took, rc = sigterm_and_time(pm, "delivery")
    assert rc == 0
    assert took < QUIT_BUDGET, f"delivery took {took:.1f}s to stop"
    wait_for(lambda: queue_lines(pm, qid, "rcpt_delivered"), 5, what="the result at the queue")
    wait_removed(pm, qid)
    assert not queue_lines(pm, qid, "rcpt_deferred") and not queue_lines(pm, qid, "rcpt_returned")
    assert f"event=delivered id={qid}" in pm.log("delivery")
    files = maildir_new(pm)
    assert len(files) == 1 and files[0].name.startswith(qid), files
