"""Graceful drain on SIGTERM (issue 11), seen from real clients:

- smtpd: a DATA transfer under way when SIGTERM comes (half the body before, the rest after)
  gets its 250 once the queue committed, and the message is delivered; an idle session is
  told `421 4.3.2` at once; a new connection is refused (not left hanging in a backlog
  nobody accepts from); a session in the middle of a transaction is answered normally
  until smtpd.drain_timeout and then told 421; the whole smtpd (parent, worker, helpers)
  exits before the deadline + 2 s.
- pop3d: the same shape: a session with nothing to lose (not logged in, or logged in
  without DELE marks) is told `-ERR [SYS/TEMP] shutting down` at once, one with marks only
  its QUIT applies goes on until pop3d.drain_timeout (and a QUIT then does apply them),
  new connections are refused, the process exits in time.
"""
import re
import signal
import socket
import time

import pytest

from conftest import wait_for
from pop3_helpers import RawPOP3, add_user as pop3_add_user, messages, put_message
from smtpd_helpers import RawSMTP, add_user, wait_log

ALICE = "alice@example.test"
DRAIN = 3


def refused(port, timeout=2.0):
    """True if a connection to port is refused (or reset before it says anything); False if
    it is accepted and greeted or left hanging."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return True
    try:
        s.settimeout(timeout)
        data = s.recv(100)
        return data == b""  # accepted then closed at once also tells the client to go
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False  # hanging: the failure this test is about
    finally:
        s.close()


def sigterm(pm, svc):
    proc = pm.procs[svc]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_log(pm, svc, "event=draining")
    return proc, t0


def exited_within(proc, t0, limit):
    try:
        proc.wait(timeout=limit - (time.monotonic() - t0))
    except Exception:
        raise AssertionError(f"still running {limit:.1f}s after SIGTERM")
    return time.monotonic() - t0


@pytest.fixture
def mx(pm):
    add_user(pm, ALICE, "secret")
    pm.configure(smtpd={"drain_timeout": DRAIN}, queue={"job_lease": 5})
    pm.start("queue", "delivery", "smtpd", timeout=20)
    return pm


def test_smtpd_drain_finishes_data_refuses_new_and_exits(mx):
    pm = mx
    port = pm.port("smtp")
    busy = RawSMTP(port)
    assert busy.cmd("EHLO busy.test")[0] == 250
    assert busy.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    assert busy.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    busy.send(b"Subject: drained\r\nMessage-ID: <drain-1@remote.test>\r\n\r\nfirst half\r\n")
    idle = RawSMTP(port)
    assert idle.cmd("EHLO idle.test")[0] == 250

    proc, t0 = sigterm(pm, "smtpd")
    # both sessions come from one address, so one worker holds them (the others drain with none)
    wait_for(lambda: re.search(r"event=draining signal=15 sessions=2 ", pm.log("smtpd")), 5,
             what="the worker with both sessions draining")
    # The idle session is told at once, and closed.
    code, lines = idle.reply()
    assert code == 421 and lines[0] == "4.3.2 mx.example.test shutting down", (code, lines)
    assert idle.closed_by_server(timeout=3)
    # Nobody accepts new connections any more: refused, not left hanging.
    assert refused(port)
    # The transfer under way goes on: the rest of the body, then the queue's answer.
    busy.send(b"second half\r\n.\r\n")
    code, lines = busy.reply()
    assert code == 250, (code, lines)
    # Its transaction over, the session is idle: 421 next, not silence.
    code, _ = busy.reply()
    assert code == 421
    elapsed = exited_within(proc, t0, DRAIN + 2)
    assert elapsed < DRAIN + 2
    log = pm.log("smtpd")
    assert "event=stopped" in log
    # What was acknowledged is delivered.
    got = wait_for(lambda: messages(pm, ALICE), timeout=30, what="the drained message in the mailbox")
    body = got[0].read_bytes()
    assert b"first half\r\nsecond half\r\n" in body.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    busy.close()
    idle.close()


def test_smtpd_drain_deadline_tells_421_to_open_transactions(mx):
    pm = mx
    port = pm.port("smtp")
    s = RawSMTP(port)
    assert s.cmd("EHLO slow.test")[0] == 250
    assert s.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    proc, t0 = sigterm(pm, "smtpd")
    # Until the deadline a session with a transaction open is answered as ever.
    assert s.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
    assert s.cmd("NOOP")[0] == 250
    # Then it is told 421 without asking again.
    code, lines = s.reply()
    told = time.monotonic() - t0
    assert code == 421 and "shutting down" in lines[0]
    assert DRAIN - 1 <= told < DRAIN + 2, told
    exited_within(proc, t0, DRAIN + 2)
    s.close()


BOB = "bob@example.test"


@pytest.fixture
def pop(pm):
    pop3_add_user(pm, ALICE, "secret")
    pop3_add_user(pm, BOB, "secret")
    put_message(pm, ALICE, "1.msg", b"Subject: one\r\n\r\nbody\r\n")
    put_message(pm, BOB, "1.msg", b"Subject: bob\r\n\r\nbody\r\n")
    pm.configure(pop3d={"drain_timeout": 2, "plaintext_auth_loopback": True})
    pm.start("pop3d")
    return pm


def pop_login(port, user):
    c = RawPOP3(port)
    assert c.line().startswith(b"+OK")
    assert c.cmd(f"USER {user}").startswith(b"+OK")
    assert c.cmd("PASS secret").startswith(b"+OK")
    return c


def test_pop3d_drain(pop):
    pm = pop
    port = pm.port("pop3")
    # Logged in with a DELE mark that only its QUIT applies: in the middle of something.
    marking = pop_login(port, ALICE)
    assert marking.cmd("DELE 1").startswith(b"+OK")
    # Logged in with nothing to lose, and not logged in at all: both idle.
    reader = pop_login(port, BOB)
    idle = RawPOP3(port)
    assert idle.line().startswith(b"+OK")

    proc, t0 = sigterm(pm, "pop3d")
    assert idle.line() == b"-ERR [SYS/TEMP] shutting down"
    assert reader.line() == b"-ERR [SYS/TEMP] shutting down"
    assert idle.closed(timeout=3) and reader.closed(timeout=3)
    assert refused(port)
    # The session with its marks goes on until the deadline ...
    assert marking.cmd("STAT").startswith(b"+OK 0 ")
    assert marking.cmd("NOOP").startswith(b"+OK")
    # ... then it is told, without asking again.
    assert marking.line(timeout=5) == b"-ERR [SYS/TEMP] shutting down"
    assert 1 <= time.monotonic() - t0 < 4
    exited_within(proc, t0, 2 + 2)
    assert "event=stopped" in pm.log("pop3d")
    # No UPDATE happened: the messages are all still there.
    assert len(messages(pm, ALICE)) == 1 and len(messages(pm, BOB)) == 1
    for c in (marking, reader, idle):
        c.close()


def test_pop3d_quit_during_drain_applies_deletions(pop):
    """A client that finishes within the deadline finishes for real: its QUIT updates."""
    pm = pop
    c = pop_login(pm.port("pop3"), ALICE)
    assert c.cmd("DELE 1").startswith(b"+OK")
    proc, t0 = sigterm(pm, "pop3d")
    assert c.cmd("QUIT").startswith(b"+OK")
    exited_within(proc, t0, 2 + 2)
    assert messages(pm, ALICE) == []
    c.close()


def smtpd_worker_pid(pm):
    """The smtpd worker: the parent's child running as postmesh-smtpd (its helpers run as
    postmesh-auth)."""
    import pwd
    from pathlib import Path
    uid = pwd.getpwnam("postmesh-smtpd").pw_uid
    parent = pm.procs["smtpd"].pid
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except FileNotFoundError:
            continue  # a child that exited between the two reads (the old worker, a helper)
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()
        if int(uids[1]) == uid:
            return int(child)
    return None


def test_a_worker_restarted_after_its_drain_serves_the_port_again(mx):
    """SIGTERM to the worker alone (an operator's kill, the OOM killer's cousin): it shuts its
    listening sockets down while it drains; the parent restarts a worker, which must find the
    port listening again rather than refusing every client from then on."""
    pm = mx
    port = pm.port("smtp")
    first = wait_for(lambda: smtpd_worker_pid(pm), timeout=10, what="the smtpd worker")
    import os
    os.kill(first, signal.SIGTERM)
    wait_for(lambda: (smtpd_worker_pid(pm) or first) != first, timeout=15, what="a new smtpd worker")

    def greeted():
        try:
            c = RawSMTP(port)
        except OSError:
            return False
        try:
            return c.cmd("EHLO again.test")[0] == 250
        finally:
            c.close()
    wait_for(greeted, timeout=15, what="smtpd serving again after its worker restarted")
