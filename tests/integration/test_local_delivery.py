"""The whole local path with real clients: smtplib -> smtpd -> queue -> delivery -> Maildir
-> pop3d -> poplib. Bodies arrive byte-identical after the added trace headers; aliases fan
out; unknown local users are refused at RCPT; a delivery worker killed in the middle of a
job leaves exactly one copy."""
import os
import poplib
import smtplib
import time

import pytest

from conftest import wait_for
from pop3_helpers import add_user, make_tls_pair, maildir, messages

ALICE, BOB, SENDER = "alice@example.test", "bob@example.test", "sender@remote.test"
SERVICES = ("queue", "delivery", "smtpd", "pop3d")


def configure_mail(pm, aliases="", **queue):
    add_user(pm, ALICE, "secret")
    add_user(pm, BOB, "hunter2")
    (pm.root / "aliases").write_text(aliases)
    cert, key = make_tls_pair(pm.root)
    q = {"job_lease": 5}
    q.update(queue)
    pm.configure(tls={"certificate": str(cert), "key": str(key)}, queue=q, pop3d={"auth_delay": 1})
    return pm


@pytest.fixture
def mail(pm):
    configure_mail(pm, "team@example.test: alice@example.test, bob@example.test\n")
    pm.start(*SERVICES, timeout=20)
    return pm


def send(pm, rcpts, msg: bytes, sender=SENDER):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.remote.test")
        opts = ["BODY=8BITMIME"] if "8bitmime" in s.esmtp_features else []
        s.sendmail(sender, rcpts, msg, mail_options=opts)


def wait_messages(pm, address, count, timeout=30):
    def enough():
        found = messages(pm, address)
        return found if len(found) >= count else None
    return wait_for(enough, timeout=timeout, what=f"{count} message(s) for {address}")


def wait_queue_empty(pm, timeout=30):
    """Every result was committed: the queue holds nothing any more (and is still alive)."""
    def empty():
        if pm.procs["queue"].poll() is not None:
            raise AssertionError("the queue died:\n" + pm.log("queue")[-2000:])
        return not pm.queue_list()
    wait_for(empty, timeout=timeout, what="an empty queue")


def retrieve_all(pm, user=ALICE, password="secret"):
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    p.user(user)
    p.pass_(password)
    n = p.stat()[0]
    out = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, n + 1)]
    p.quit()
    return out


def split_added_headers(delivered: bytes, original: bytes, rcpt=ALICE, sender=SENDER):
    """Checks delivered = Return-Path + Delivered-To + smtpd's Received: + original, exactly."""
    head = f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode()
    assert delivered.startswith(head)
    assert delivered.endswith(original)
    middle = delivered[len(head):len(delivered) - len(original)]
    # only trace headers (Received: and its folded lines) between them
    for line in middle.split(b"\r\n")[:-1]:
        assert line.startswith(b"Received:") or line[:1] in (b" ", b"\t"), line
    assert b"Received:" in middle


def test_roundtrip_body_byte_identical(mail):
    original = (b"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: round trip\r\n"
                b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n"
                + "8-bit: gr\u00fc\u00dfe, caf\u00e9, \u65e5\u672c\r\n".encode()
                + b"x" * 990 + b"\r\n"
                + b".a line starting with a dot\r\n..two dots\r\n.\r\n"
                + b" leading space\r\n\ttab\r\n\r\n\r\nlast line\r\n")
    send(mail, [ALICE], original)
    wait_messages(mail, ALICE, 1)
    (got,) = retrieve_all(mail)
    split_added_headers(got, original)
    assert "event=delivered" in mail.log("delivery")
    wait_queue_empty(mail)


def test_uidl_stable_and_dele_semantics(mail):
    for i in range(3):
        send(mail, [ALICE], f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())
    wait_messages(mail, ALICE, 3)
    p = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=15)
    p.user(ALICE)
    p.pass_("secret")
    uidl1 = p.uidl()[1]
    p.dele(1)
    p.rset()
    p.dele(2)
    p.quit()  # DELE 1 + RSET keeps 1; DELE 2 + QUIT removes 2
    p = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=15)
    p.user(ALICE)
    p.pass_("secret")
    uidl2 = p.uidl()[1]
    p.quit()
    ids1 = [line.split()[1] for line in uidl1]
    ids2 = [line.split()[1] for line in uidl2]
    assert len(ids1) == 3 and len(set(ids1)) == 3
    assert ids2 == [ids1[0], ids1[2]]
    assert len(messages(mail, ALICE)) == 2


def test_alias_with_two_local_targets(mail):
    original = b"Subject: to the team\r\n\r\nhello team\r\n"
    send(mail, ["team@example.test"], original)
    wait_messages(mail, ALICE, 1)
    wait_messages(mail, BOB, 1)
    (a,) = retrieve_all(mail, ALICE, "secret")
    (b,) = retrieve_all(mail, BOB, "hunter2")
    split_added_headers(a, original, rcpt=ALICE)
    split_added_headers(b, original, rcpt=BOB)
    wait_queue_empty(mail)


def test_unknown_local_user_refused_at_rcpt(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt("nobody@example.test")
        assert code == 550 and b"5.1.1" in text
        assert s.rcpt(ALICE)[0] == 250
        code, _ = s.data(b"Subject: partly\r\n\r\nonly alice\r\n")
        assert code == 250
    wait_messages(mail, ALICE, 1)
    assert not maildir(mail, "nobody@example.test").exists()


def test_mailbox_write_error_is_retried_not_lost(mail):
    # A regular file where alice's mailbox directory should be: every write fails (ENOTDIR)
    user_dir = maildir(mail, ALICE).parent
    user_dir.parent.mkdir(parents=True, exist_ok=True)
    user_dir.write_text("not a directory")
    original = b"Subject: retry\r\n\r\nkeep me\r\n"
    send(mail, [ALICE], original)
    wait_for(lambda: "event=deferred" in mail.log("delivery"), timeout=30, what="a temporary failure")
    user_dir.unlink()  # fixed: the queue's retry delivers it
    wait_messages(mail, ALICE, 1, timeout=30)
    (got,) = retrieve_all(mail)
    split_added_headers(got, original)
    wait_queue_empty(mail)


@pytest.mark.parametrize("stall_at", ["tmp", "new"])
def test_worker_killed_mid_job_leaves_one_copy(pm, monkeypatch, stall_at):
    configure_mail(pm, job_lease=2)
    pm.start("queue", timeout=20)
    # A test-only hook makes the worker sleep inside the job: after the tmp/ file is synced
    # ("tmp") or after the copy is linked into new/ ("new"), before it reports the result.
    monkeypatch.setenv("POSTMESH_TEST_DELIVERY_STALL", f"60:{stall_at}")
    pm.start("delivery")
    monkeypatch.delenv("POSTMESH_TEST_DELIVERY_STALL")
    pm.start("smtpd", "pop3d")
    original = b"Subject: exactly once\r\n\r\nonly one copy of me\r\n"
    send(pm, [ALICE], original)
    md = maildir(pm, ALICE)
    where = md / stall_at
    wait_for(lambda: where.is_dir() and any(where.iterdir()), timeout=30, what=f"a file in {stall_at}/")
    pm.kill("delivery")
    offset = len(pm.log("delivery"))
    pm.start("delivery")  # a fresh worker, no stall: the queue re-dispatches after the lease
    wait_for(lambda: "event=delivered" in pm.log("delivery")[offset:], timeout=60, what="the re-dispatched job")
    time.sleep(1)  # a late duplicate would show up now
    files = messages(pm, ALICE)
    assert len(files) == 1, files
    (got,) = retrieve_all(pm)
    split_added_headers(got, original)
    if stall_at == "new":
        assert "duplicate=1" in pm.log("delivery")[offset:]
    wait_queue_empty(pm)
