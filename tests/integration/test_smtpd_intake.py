"""smtpd intake (issue 2, 3): SMTP dialogue, queueing only after commit, limits, relay policy,
recipient checks, and 451 when the queue is gone or silent. Clients: smtplib, smtp-source, swaks."""
import concurrent.futures
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import wait_for
from smtpd_helpers import RawSMTP, add_alias, add_user, queue_ids, queue_show, status, wait_log

MSG = "From: a@x.test\r\nTo: u@example.test\r\nSubject: test\r\n\r\nhello\r\n"


@pytest.fixture
def mx(pm):
    add_user(pm, "u@example.test", "pw")
    pm.start("queue", "smtpd")
    return pm


def smtp(pm, mode="smtp"):
    return smtplib.SMTP("127.0.0.1", pm.port(mode), timeout=30)


def queued_id(reply_text):
    m = re.search(r"queued as ([0-9A-F]{16})", reply_text)
    assert m, reply_text
    return m.group(1)


def test_message_accepted_and_listed(mx):
    with smtp(mx) as s:
        code, text = s.ehlo("client.test")
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8"):
            assert s.has_extn(ext), ext
        assert s.esmtp_features["size"] == "36700160"
        assert s.mail("a@x.test") == (250, b"2.1.0 Ok")
        assert s.rcpt("u@example.test") == (250, b"2.1.5 Ok")
        code, text = s.data(MSG + "..dot-stuffed line\r\n")
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
        qid = queued_id(text.decode())
    assert queue_ids(mx) == [qid]
    shown = queue_show(mx, qid)
    assert "sender: <a@x.test>" in shown and "recipient: <u@example.test>" in shown
    # The Received: header records the client's HELO and IP, us, the protocol and the recipient.
    assert re.search(r"Received: from client\.test \(\[127\.0\.0\.1\]\)\s+by mx\.example\.test \(Postmesh\) "
                     r"with ESMTP\s+for <u@example\.test>;", shown), shown
    log = mx.log("smtpd")
    assert f"event=queued id={qid} client=127.0.0.1:" in log and "from=<a@x.test> nrcpt=1" in log


def test_dialogue_replies(mx):
    c = RawSMTP(mx.port("smtp"))
    assert c.greeting == (220, ["mx.example.test ESMTP Postmesh"])
    assert status(c.cmd("MAIL FROM:<a@x.test>")) == (503, "5.5.1")      # before HELO
    assert c.cmd("HELO client.test") == (250, ["mx.example.test"])
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (503, "5.5.1")  # before MAIL
    assert status(c.cmd("DATA")) == (503, "5.5.1")
    assert status(c.cmd("NOOP")) == (250, "2.0.0")
    assert status(c.cmd("VRFY u")) == (252, "2.0.0")
    assert status(c.cmd("HELP")) == (214, "2.0.0")
    assert status(c.cmd("EXPN list")) == (502, "5.5.1")
    assert status(c.cmd("FOO")) == (502, "5.5.2")
    assert status(c.cmd("MAIL FROM:<a@x.test> SIZE=10")) == (555, "5.5.4")  # ESMTP parameter after HELO
    assert status(c.cmd("MAIL FROM:<a@x.test>")) == (250, "2.1.0")
    assert status(c.cmd("MAIL FROM:<a@x.test>")) == (503, "5.5.1")      # nested
    assert status(c.cmd("DATA")) == (503, "5.5.1")                       # no RCPT yet
    assert status(c.cmd("RSET")) == (250, "2.0.0")
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (503, "5.5.1")  # RSET ended the transaction
    assert status(c.cmd("QUIT")) == (221, "2.0.0")
    assert c.closed_by_server()
    assert queue_ids(mx) == []


def test_pipelined_transaction(mx):
    """PIPELINING: a whole transaction in one write gets its replies in order."""
    c = RawSMTP(mx.port("smtp"))
    c.send("EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<u@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nDATA\r\n")
    assert c.reply()[0] == 250
    assert status(c.reply()) == (250, "2.1.0")
    assert status(c.reply()) == (250, "2.1.5")
    assert status(c.reply()) == (550, "5.1.1")
    assert c.reply()[0] == 354
    c.send(MSG + ".\r\nMAIL FROM:<>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
    first = c.reply()
    assert status(first) == (250, "2.0.0")
    assert status(c.reply()) == (250, "2.1.0")
    assert status(c.reply()) == (250, "2.1.5")
    assert c.reply()[0] == 354
    c.send("Subject: second\r\n\r\nx\r\n.\r\nQUIT\r\n")
    second = c.reply()
    assert status(second) == (250, "2.0.0")
    assert status(c.reply()) == (221, "2.0.0")
    ids = sorted([queued_id(first[1][0]), queued_id(second[1][0])])
    assert sorted(queue_ids(mx)) == ids


def test_smtp_source_200_messages_20_sessions(mx):
    r = subprocess.run(["/usr/sbin/smtp-source", "-s", "20", "-m", "200", "-f", "a@x.test", "-t", "u@example.test",
                        "-M", "client.test", f"127.0.0.1:{mx.port('smtp')}"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    ids = queue_ids(mx)
    assert len(ids) == 200 and len(set(ids)) == 200
    logged = re.findall(r"event=queued id=([0-9A-F]{16})", mx.log("smtpd"))
    assert sorted(logged) == sorted(ids)     # every 250 is one stored message, exactly once


def test_swaks_concurrent(mx):
    def one(i):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(mx.port("smtp")), "--from", "a@x.test",
                            "--to", "u@example.test", "--helo", "client.test", "--header", f"Subject: swaks {i}",
                            "--pipeline", "--timeout", "30"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return queued_id(r.stdout)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(one, range(20)))
    assert len(set(ids)) == 20
    assert sorted(queue_ids(mx)) == sorted(ids)


def test_size_limit(pm):
    add_user(pm, "u@example.test", "pw")
    pm.configure(smtpd={"max_message_size": 10000})
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    c.cmd("EHLO client.test")
    # Declared too big: refused at MAIL.
    assert status(c.cmd("MAIL FROM:<a@x.test> SIZE=10001")) == (552, "5.3.4")
    assert status(c.cmd("MAIL FROM:<a@x.test> SIZE=10000")) == (250, "2.1.0")
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (250, "2.1.5")
    assert c.cmd("DATA")[0] == 354
    # Not declared (or lied about): refused at the end of DATA, nothing stored.
    c.send(("x" * 98 + "\r\n") * 110 + ".\r\n")
    assert status(c.reply()) == (552, "5.3.4")
    # The session goes on; a message that fits is accepted.
    assert status(c.cmd("MAIL FROM:<a@x.test>")) == (250, "2.1.0")
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (250, "2.1.5")
    assert c.cmd("DATA")[0] == 354
    c.send(("x" * 98 + "\r\n") * 90 + ".\r\n")
    ok = c.reply()
    assert status(ok) == (250, "2.0.0")
    assert queue_ids(pm) == [queued_id(ok[1][0])]
    assert "reason=size" in pm.log("smtpd")


def test_relay_denied_and_trusted_network(pm):
    add_user(pm, "u@example.test", "pw")
    pm.start("queue", "smtpd")
    with smtp(pm) as s:
        s.ehlo("client.test")
        s.mail("a@x.test")
        assert s.rcpt("someone@remote.test") == (554, b"5.7.1 <someone@remote.test>: Relay access denied")
        assert s.rcpt("u@example.test")[0] == 250
    assert queue_ids(pm) == []
    pm.stop("smtpd")
    pm.configure(trusted_networks=["10.0.0.0/8", "127.0.0.0/8"])
    pm.start("smtpd")
    with smtp(pm) as s:
        s.ehlo("client.test")
        assert s.sendmail("a@x.test", ["someone@remote.test"], MSG) == {}
    assert len(queue_ids(pm)) == 1


def test_unknown_local_recipient_and_reload(mx):
    with smtp(mx) as s:
        s.ehlo("client.test")
        s.mail("a@x.test")
        code, text = s.rcpt("bob@example.test")
        assert (code, text[:6]) == (550, b"5.1.1 ")
        assert s.rcpt("U@Example.TEST")[0] == 250          # addresses compare case-insensitively
        # Users and aliases are re-read when they change.
        add_user(mx, "bob@example.test", "pw")
        add_alias(mx, "team@example.test", "u@example.test", "x@remote.test")
        time.sleep(1.1)
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.rcpt("team@example.test")[0] == 250
        assert s.rcpt("Postmaster")[0] == 250                # RFC 5321 4.5.1: accepted, user or not
        s.rset()
    add_alias(mx, "postmaster", "u@example.test")
    time.sleep(1.1)
    with smtp(mx) as s:
        s.ehlo("client.test")
        s.mail("")
        assert s.rcpt("Postmaster")[0] == 250
        code, text = s.data(MSG)
        assert code == 250
    # <Postmaster> was stored as postmaster@<first local domain> (the queue then expands the alias).
    assert "for <postmaster@example.test>;" in queue_show(mx, queued_id(text.decode()))


def test_max_recipients(pm):
    add_user(pm, "u@example.test", "pw")
    pm.configure(smtpd={"max_recipients": 3})
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@x.test>")
    for _ in range(3):
        assert status(c.cmd("RCPT TO:<u@example.test>")) == (250, "2.1.5")
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (452, "4.5.3")
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + ".\r\n")
    assert status(c.reply()) == (250, "2.0.0")
    assert "recipient: <u@example.test>" in queue_show(pm, queue_ids(pm)[0])


def every_sandbox_said(pm, event, offset=0):
    """True once every smtpd sandbox logged event (a regex) after offset in the log."""
    log = pm.log("smtpd")
    sandboxes = set(re.findall(r"event=sandbox_started sandbox=smtpd pid=(\d+)", log))
    return sandboxes and sandboxes <= set(re.findall(rf"pid=(\d+) level=\w+ event={event}", log[offset:]))


def test_queue_down_gives_451_never_250(pm):
    add_user(pm, "u@example.test", "pw")
    pm.configure(smtpd={"submit_timeout": 2})
    pm.start("queue", "smtpd")
    # 1. Queue alive but silent (stopped with SIGSTOP): 451 after submit_timeout. Only once
    # every sandbox is connected (the queue answered its Ping): stopped during the handshake,
    # the queue would never be connected, which is part 2 (451 after the 1 s send window).
    wait_for(lambda: every_sandbox_said(pm, "queue_shard_up"), 10, what="every sandbox connected to the queue")
    queue = pm.procs["queue"]
    queue.send_signal(signal.SIGSTOP)
    try:
        c = RawSMTP(pm.port("smtp"))
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@x.test>")
        c.cmd("RCPT TO:<u@example.test>")
        assert c.cmd("DATA")[0] == 354
        t0 = time.monotonic()
        c.send(MSG + ".\r\n")
        assert status(c.reply()) == (451, "4.3.0")
        elapsed = time.monotonic() - t0
        assert 1.5 < elapsed < 4.0, elapsed
        # The session is still usable after the 451.
        assert status(c.cmd("NOOP")) == (250, "2.0.0")
        # A second client disconnects while its message waits for the queue.
        d = RawSMTP(pm.port("smtp"))
        d.cmd("EHLO client.test")
        d.cmd("MAIL FROM:<a@x.test>")
        d.cmd("RCPT TO:<u@example.test>")
        d.cmd("DATA")
        d.send(MSG + ".\r\n")
        time.sleep(0.3)
        d.close()
    finally:
        queue.send_signal(signal.SIGCONT)
    # The late replies are logged and dropped: no crash, and the server keeps serving.
    wait_log(pm, "smtpd", "event=submit_late")
    assert status(c.cmd("NOOP")) == (250, "2.0.0")
    c.close()
    # 2. Queue gone: not connected, 451 at once (after the send window of 1 s).
    offset = len(pm.log("smtpd"))
    pm.stop("queue")
    wait_for(lambda: every_sandbox_said(pm, r"queue_shard_down \S+ \S+ reason=not_connected", offset), 10,
             what="every sandbox to see the queue gone")
    with smtp(pm) as s:
        s.ehlo("client.test")
        s.mail("a@x.test")
        s.rcpt("u@example.test")
        t0 = time.monotonic()
        code, text = s.data(MSG)
        assert (code, text[:5]) == (451, b"4.3.0")
        assert time.monotonic() - t0 < 2.5
    assert pm.procs["smtpd"].poll() is None
    assert "250 2.0.0 Ok: queued" not in pm.log("smtpd")


def test_timeouts_and_connection_limits(pm):
    pm.configure(smtpd={"timeout_command": 1, "max_connections": 3, "max_connections_per_ip": 2})
    pm.start("queue", "smtpd")
    a = RawSMTP(pm.port("smtp"))
    b = RawSMTP(pm.port("smtp"))
    # A third connection from the same IP: per-IP limit.
    c = RawSMTP(pm.port("smtp"), greet=False)
    code, text = c.reply()
    assert (code, text[0][:5]) == (421, "4.7.0")
    assert c.closed_by_server()
    # An idle session times out with 421 4.4.2.
    t0 = time.monotonic()
    assert status(a.reply()) == (421, "4.4.2")
    assert 0.8 < time.monotonic() - t0 < 3
    assert a.closed_by_server()
    b.close()
    wait_for(lambda: pm.log("smtpd").count("event=disconnect") >= 2, 5, what="disconnects")
    d = RawSMTP(pm.port("smtp"))
    assert status(d.cmd("NOOP")) == (250, "2.0.0")



def test_smtputf8_and_8bit_headers(mx):
    c = RawSMTP(mx.port("smtp"))
    ehlo = c.cmd("EHLO client.test")
    assert "SMTPUTF8" in ehlo[1]
    # An 8-bit address needs SMTPUTF8; with it the address is accepted and stored as-is.
    assert status(c.cmd("MAIL FROM:<j\u00f6rg@x.test>".encode())) == (553, "5.6.7")
    assert status(c.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.test> SMTPUTF8 BODY=8BITMIME".encode())) == (250, "2.1.0")
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (250, "2.1.5")
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: gr\u00fc\u00dfe\r\n\r\n\u00e4\u00f6\u00fc\r\n.\r\n".encode())
    first = c.reply()
    assert status(first) == (250, "2.0.0")
    # 8-bit headers without SMTPUTF8 are accepted too, as Postfix does.
    assert status(c.cmd("MAIL FROM:<a@x.test>")) == (250, "2.1.0")
    assert status(c.cmd("RCPT TO:<u@example.test>")) == (250, "2.1.5")
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: gr\u00fc\u00dfe\r\n\r\nx\r\n.\r\n".encode())
    assert status(c.reply()) == (250, "2.0.0")
    shown = queue_show(mx, queued_id(first[1][0]))
    assert "sender: <j\u00f6rg@b\u00fccher.test>" in shown and "with UTF8SMTP" in shown


def test_queue_refusals_reach_the_client(pm):
    """PERMFAIL (a mail loop) is 554 with the queue's code; a full store is 452 4.3.1."""
    add_user(pm, "u@example.test", "pw")
    pm.configure(queue={"map_size_mb": 1}, smtpd={"max_message_size": 4 * 1024 * 1024})
    pm.start("queue", "smtpd")
    with smtp(pm) as s:
        s.ehlo("client.test")
        loop = "".join(f"Received: from hop{i}.test by relay.test; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
                       for i in range(101))
        s.mail("a@x.test")
        s.rcpt("u@example.test")
        code, text = s.data(loop + "Subject: loop\r\n\r\nx\r\n")
        assert (code, text[:6]) == (554, b"5.4.6 ")
        s.mail("a@x.test")
        s.rcpt("u@example.test")
        code, text = s.data("Subject: big\r\n\r\n" + ("z" * 998 + "\r\n") * 2000)
        assert (code, text[:6]) == (452, b"4.3.1 ")
        # Still serving: a small message fits.
        assert s.sendmail("a@x.test", ["u@example.test"], MSG) == {}
    assert len(queue_ids(pm)) == 1


def test_trickling_client_times_out(pm):
    """A client that sends a byte now and then never trips the idle timeout, but a command
    (or DATA) must be complete within its deadline: 421 4.4.2 and hang up."""
    pm.configure(smtpd={"timeout_command": 2})
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    t0 = time.monotonic()
    code = None
    for ch in "NOOP " + "x" * 30:
        try:
            c.send(ch)
        except OSError:
            break
        time.sleep(0.4)
        c.sock.settimeout(0.01)
        try:
            data = c.sock.recv(1000)
        except (socket.timeout, BlockingIOError):
            continue
        code = data[:9]
        break
    assert code == b"421 4.4.2", code
    assert 1.9 < time.monotonic() - t0 < 4.5
    assert "reason=deadline" in pm.log("smtpd")
