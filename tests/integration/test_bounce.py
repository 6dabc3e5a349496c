"""Bounces end to end, nothing of ours stood in for: smtplib -> smtpd -> queue -> mta
(-> resolver -> dnsmasq) -> an SMTP server on 127.0.0.2 that refuses; the queue hands the
failure to the bouncer, whose RFC 3464 DSN goes back through the queue with a null sender to
the original sender: local delivery into a Maildir, or the mta for a remote sender.
Short retry settings so deferrals, delay warnings and expiry happen within seconds."""
import email
import email.policy
import email.utils
import smtplib
import time

import pytest

from conftest import BIN, free_port, wait_for
from pop3_helpers import add_user, make_tls_pair, messages
from remote_peers import AioSink, Dnsmasq

ALICE = "alice@example.test"
SERVICES = ("resolver", "queue", "mta", "delivery", "bouncer", "smtpd")
ZONE = ["--mx-host=remote.test,mx1.remote.test,10", "--host-record=mx1.remote.test,127.0.0.2"]

BODY = (b"From: Alice <alice@example.test>\r\nTo: Gone <gone@remote.test>\r\nSubject: across the net\r\n"
        b"Message-ID: <bounce-1@example.test>\r\n\r\nBODY-NOT-RETURNED\r\n")

pytestmark = pytest.mark.skipif(
    not all((BIN / f"postmesh-{s}").exists() for s in SERVICES),
    reason="needs every service binary of the bounce path")


@pytest.fixture
def net(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE)
    port = free_port("127.0.0.2")
    sink = AioSink("127.0.0.2", port, tmp_path)
    sink.handler.rcpt_reply["gone@remote.test"] = "550 5.1.1 <gone@remote.test>: no such user here"
    add_user(pm, ALICE, "secret")
    cert, key = make_tls_pair(pm.root)
    pm.configure(trusted_networks=["127.0.0.0/8"], tls={"certificate": str(cert), "key": str(key)},
                 queue={"retry_min": 1, "retry_max": 2, "job_lease": 20, "max_lifetime": 3600,
                        "delay_warning": 0},
                 resolver={"nameservers": [dns.nameserver], "timeout": 2},
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10})
    yield {"pm": pm, "sink": sink}
    pm.stop_all()
    sink.stop()
    dns.stop()


def send(pm, sender, rcpts, body=BODY):
    """Sends one message; returns its queue id from smtpd's "250 ... queued as ID"."""
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        code, _ = s.mail(sender)
        assert code == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, text = s.data(body)
        assert code == 250, text
        return text.decode().rsplit(" ", 1)[-1]


def wait_mailbox(pm, count, address=ALICE, timeout=40):
    wait_for(lambda: len(messages(pm, address)) >= count, timeout, what=f"{count} message(s) for {address}")
    return [p.read_bytes() for p in messages(pm, address)]


def wait_queue_empty(pm, timeout=40):
    def empty():
        assert pm.procs["queue"].poll() is None, pm.log("queue")[-2000:]
        return not pm.queue_list()
    wait_for(empty, timeout, what="the queue to empty")


def parse_dsn(raw: bytes):
    """(message, per-message fields, [per-recipient fields], [parts]) with the DSN's shape checked."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", raw[:2000]
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "text/rfc822-headers"]
    blocks = parts[1].get_payload()
    return msg, blocks[0], blocks[1:], parts


def dsn_id_from_log(pm, qid):
    for line in pm.log("bouncer").splitlines():
        if "event=dsn " in line and f" id={qid} " in line:
            return line.split("dsn_id=")[1].split()[0]
    return None


def test_550_returns_a_dsn_to_the_local_sender(net):
    pm = net["pm"]
    pm.start(*SERVICES, timeout=20)
    qid = send(pm, ALICE, ["gone@remote.test"])
    [raw] = wait_mailbox(pm, 1)
    msg, per_msg, rcpts, parts = parse_dsn(raw)

    # Envelope: null sender, to the original sender (delivery records both).
    assert msg["Return-Path"] == "<>"
    assert msg["Delivered-To"] == ALICE
    # The DSN's own header fields.
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert f"\nTo: <{ALICE}>\r\n".encode() in raw
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"].endswith("@mx.example.test>")
    assert email.utils.parsedate_to_datetime(msg["Date"]) is not None

    # Per-message fields name this system and the original message.
    assert per_msg["Reporting-MTA"] == "dns; mx.example.test"
    assert per_msg["X-Postmesh-Queue-ID"] == qid
    assert abs(email.utils.parsedate_to_datetime(per_msg["Arrival-Date"]).timestamp() - time.time()) < 120

    # One recipient block with the remote server's own words.
    [r] = rcpts
    assert r["Final-Recipient"] == "rfc822; gone@remote.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx1.remote.test"
    assert r["Diagnostic-Code"].startswith("smtp; 550")
    assert "no such user here" in r["Diagnostic-Code"]
    assert email.utils.parsedate_to_datetime(r["Last-Attempt-Date"]) is not None
    assert "Original-Recipient" not in r and "Will-Retry-Until" not in r

    human = parts[0].get_content()
    assert "<gone@remote.test>: host mx1.remote.test" in human and "no such user here" in human
    returned = parts[2].get_payload()
    assert "Subject: across the net" in returned and "<bounce-1@example.test>" in returned
    assert b"BODY-NOT-RETURNED" not in raw

    # One grep follows the bounce: the bouncer names both queue ids.
    dsn_id = dsn_id_from_log(pm, qid)
    assert dsn_id and dsn_id != qid
    assert f"to={ALICE} action=failed" in pm.log("bouncer")
    assert dsn_id in pm.log("delivery")
    wait_queue_empty(pm)


def test_dsn_to_a_remote_sender_leaves_with_a_null_envelope_sender(net):
    pm, sink = net["pm"], net["sink"]
    pm.start(*SERVICES, timeout=20)
    qid = send(pm, "carol@remote.test", ["gone@remote.test"])
    wait_for(lambda: sink.messages, 40, what="the DSN at carol's MX")
    [m] = sink.messages
    assert m["mail_from"] in ("", "<>")
    assert m["rcpt_tos"] == ["carol@remote.test"]
    msg, per_msg, [r], _ = parse_dsn(m["content"])
    assert b"\nTo: <carol@remote.test>\r\n" in m["content"]
    assert per_msg["X-Postmesh-Queue-ID"] == qid
    assert r["Status"] == "5.1.1" and "no such user here" in r["Diagnostic-Code"]
    wait_queue_empty(pm)


def test_delay_warning_once_then_bounce_on_expiry(net):
    pm, sink = net["pm"], net["sink"]
    sink.handler.rcpt_reply["slow@remote.test"] = "451 4.2.0 mailbox busy, try later"
    pm.configure(queue={"delay_warning": 2, "max_lifetime": 10})
    pm.start(*SERVICES, timeout=20)
    qid = send(pm, ALICE, ["slow@remote.test"])

    [raw] = wait_mailbox(pm, 1, timeout=30)
    msg, per_msg, [r], parts = parse_dsn(raw)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert per_msg["X-Postmesh-Queue-ID"] == qid
    assert r["Action"] == "delayed" and r["Status"].startswith("4.")
    assert "try later" in r["Diagnostic-Code"]
    arrival = email.utils.parsedate_to_datetime(per_msg["Arrival-Date"])
    until = email.utils.parsedate_to_datetime(r["Will-Retry-Until"])
    assert (until - arrival).total_seconds() == 10
    assert "THIS IS A WARNING ONLY" in parts[0].get_content()
    assert any(qid in row["line"] or row["id"] == qid for row in pm.queue_list())   # still queued

    # Past max_lifetime the recipient fails: a second DSN, the real bounce; no second warning.
    raws = wait_mailbox(pm, 2, timeout=60)
    subjects = sorted(email.message_from_bytes(x, policy=email.policy.default)["Subject"] for x in raws)
    assert subjects == ["Delayed Mail (still being retried)", "Undelivered Mail Returned to Sender"]
    bounce = next(x for x in raws if b"Subject: Undelivered" in x)
    _, per_msg, [r], _ = parse_dsn(bounce)
    assert per_msg["X-Postmesh-Queue-ID"] == qid
    assert r["Action"] == "failed" and r["Final-Recipient"] == "rfc822; slow@remote.test"
    wait_queue_empty(pm)
    time.sleep(1)
    assert len(messages(pm, ALICE)) == 2
    log = pm.log("bouncer")
    assert f"id={qid} " in log and "action=delayed" in log and "action=failed" in log


def test_null_sender_failure_is_not_bounced(net):
    pm = net["pm"]
    pm.start(*SERVICES, timeout=20)
    silent = send(pm, "", ["gone@remote.test"])
    # A normal message failing the same way afterwards proves the bounce path works, so the
    # absence of a DSN for the first one means something.
    loud = send(pm, ALICE, ["gone@remote.test"])
    [raw] = wait_mailbox(pm, 1)
    _, per_msg, _, _ = parse_dsn(raw)
    assert per_msg["X-Postmesh-Queue-ID"] == loud
    wait_queue_empty(pm)
    time.sleep(1)
    assert len(messages(pm, ALICE)) == 1
    assert dsn_id_from_log(pm, silent) is None
    assert dsn_id_from_log(pm, loud) is not None
    assert silent in pm.log("queue")     # the failure is logged, not mailed


def test_bounce_waits_for_a_bouncer(net):
    pm = net["pm"]
    pm.start(*(s for s in SERVICES if s != "bouncer"), timeout=20)
    qid = send(pm, ALICE, ["gone@remote.test"])
    wait_for(lambda: "gone@remote.test" in pm.log("mta") and "550" in pm.log("mta"), 30, what="the 550")
    time.sleep(2)
    assert messages(pm, ALICE) == []
    assert [row for row in pm.queue_list() if row["id"] == qid]   # kept until someone can bounce it
    pm.start("bouncer")
    [raw] = wait_mailbox(pm, 1)
    assert parse_dsn(raw)[1]["X-Postmesh-Queue-ID"] == qid
    wait_queue_empty(pm)
