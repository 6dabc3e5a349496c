"""Remote delivery end to end, nothing of ours stood in for: smtplib -> smtpd -> queue ->
mta (-> resolver -> dnsmasq) -> a real SMTP server on 127.0.0.x; failures come back as RFC
3464 DSNs through bouncer -> queue -> delivery -> the sender's Maildir -> pop3d -> poplib.
Short retry settings so a 451 is retried within seconds."""
import email
import email.policy
import smtplib
import time

import pytest

from conftest import free_udp_port, wait_for
from pop3_helpers import add_user, make_tls_pair, messages, retrieve_all
from remote_peers import common_port, AioSink, Dnsmasq

ALICE = "alice@example.test"
SERVICES = ("resolver", "queue", "mta", "delivery", "bouncer", "smtpd", "pop3d")

ZONE = [
    "--mx-host=remote.test,mx1.remote.test,10", "--host-record=mx1.remote.test,127.0.0.2",
    "--mx-host=backup.test,mx1.backup.test,10", "--mx-host=backup.test,mx2.backup.test,20",
    "--host-record=mx1.backup.test,127.0.0.3", "--host-record=mx2.backup.test,127.0.0.2",
    "--dns-rr=nullmx.test,15,000000",
]

BODY = (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@remote.test>\r\nSubject: across the net\r\n"
        b"Message-ID: <remote-1@example.test>\r\n\r\nHello Bob,\r\n.a dot line\r\n..\r\n" +
        b"y" * 900 + b"\r\nbye\r\n")



@pytest.fixture
def net(pm, tmp_path):
    dead = free_udp_port()
    dns = Dnsmasq(tmp_path, ZONE + [f"--server=/dnsdead.test/127.0.0.1#{dead}"])
    sink = None
    try:
        port = common_port("127.0.0.2", "127.0.0.3")
        sink = AioSink("127.0.0.2", port, tmp_path)
        add_user(pm, ALICE, "secret")
        cert, key = make_tls_pair(pm.root)
        pm.configure(trusted_networks=["127.0.0.0/8"], tls={"certificate": str(cert), "key": str(key)},
                     queue={"retry_min": 1, "retry_max": 2, "job_lease": 20, "max_lifetime": 3600},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10})
        yield {"pm": pm, "sink": sink, "port": port}
    finally:
        pm.stop_all()
        if sink:
            sink.stop()
        dns.stop()


def start(pm):
    pm.start(*SERVICES, timeout=20)


def send(pm, sender, rcpts, body=BODY):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        s.sendmail(sender, rcpts, body)


def queue_ids(pm, svc="smtpd"):
    return [line.split("id=")[1].split()[0] for line in pm.log(svc).splitlines() if "event=queued" in line
            or "event=accepted" in line and "id=" in line]


def wait_empty_queue(pm, timeout=40):
    def empty():
        assert pm.procs["queue"].poll() is None, pm.log("queue")[-2000:]
        return not pm.queue_list()
    wait_for(empty, timeout, what="the queue to empty")


def dsn_fields(raw: bytes):
    """(message, per-recipient fields) of a multipart/report DSN, asserting its shape."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    blocks = status[0].get_payload()      # [per-message fields, per-recipient fields...]
    return msg, blocks[1:]


def wait_dsns(pm, count, timeout=40):
    wait_for(lambda: len(messages(pm, ALICE)) >= count, timeout, what=f"{count} DSN(s) for {ALICE}")
    return retrieve_all(pm, ALICE, "secret")


def test_relayed_mail_arrives_intact(net):
    pm, sink = net["pm"], net["sink"]
    start(pm)
    send(pm, ALICE, ["bob@remote.test"])
    wait_for(lambda: sink.messages, 30, what="the message at the remote MX")
    [msg] = sink.messages
    assert msg["rcpt_tos"] == ["bob@remote.test"] and msg["mail_from"] == ALICE
    assert msg["content"].endswith(BODY)                  # after smtpd's Received: header
    assert msg["content"].startswith(b"Received: ")
    wait_empty_queue(pm)
    assert f"relay=mx1.remote.test[127.0.0.2]:{net['port']}" in pm.log("mta")
    assert "event=delivered" in pm.log("mta")


def test_first_mx_refuses_the_second_accepts(net):
    pm, sink = net["pm"], net["sink"]          # mx1.backup.test (127.0.0.3) is closed
    start(pm)
    send(pm, ALICE, ["carol@backup.test"])
    wait_for(lambda: sink.messages, 30, what="delivery through the backup MX")
    assert sink.messages[0]["rcpt_tos"] == ["carol@backup.test"]
    log = pm.log("mta")
    assert "relay=mx1.backup.test[127.0.0.3]" in log and "relay=mx2.backup.test[127.0.0.2]" in log
    wait_empty_queue(pm)


def test_451_then_250_is_delivered_after_a_retry(net):
    pm, sink = net["pm"], net["sink"]
    sink.handler.data_replies += ["451 4.3.0 greylisted, try again", "451 4.3.0 greylisted, try again"]
    start(pm)
    send(pm, ALICE, ["dave@remote.test"])
    wait_for(lambda: sink.messages, 40, what="delivery after the 451s")
    log = pm.log("mta")
    assert log.count("event=deferred") >= 2 and "greylisted" in log
    assert "event=delivered" in log
    wait_empty_queue(pm)
    assert messages(pm, ALICE) == []           # no delay notice, no bounce


def test_550_bounces_a_dsn_into_the_senders_mailbox(net):
    pm, sink = net["pm"], net["sink"]
    sink.handler.rcpt_reply["gone@remote.test"] = "550 5.1.1 <gone@remote.test>: no such user here"
    start(pm)
    send(pm, ALICE, ["gone@remote.test", "bob@remote.test"])
    [dsn] = wait_dsns(pm, 1)
    msg, rcpts = dsn_fields(dsn)
    assert msg["Auto-Submitted"].startswith("auto-replied")
    assert len(rcpts) == 1
    r = rcpts[0]
    assert "gone@remote.test" in r["Final-Recipient"]
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"
    assert "no such user here" in r["Diagnostic-Code"]
    assert "mx1.remote.test" in r["Remote-MTA"]
    assert [m["rcpt_tos"] for m in sink.messages] == [["bob@remote.test"]]   # the other one went through
    wait_empty_queue(pm)


def test_null_mx_and_nxdomain_bounce_without_connecting(net):
    pm, sink = net["pm"], net["sink"]
    start(pm)
    send(pm, ALICE, ["x@nullmx.test"])
    send(pm, ALICE, ["y@no-such-domain.test"])
    dsns = wait_dsns(pm, 2)
    statuses = sorted(dsn_fields(d)[1][0]["Status"] for d in dsns)
    assert statuses == ["5.1.10", "5.1.2"]
    log = pm.log("mta")
    assert "event=connecting" not in log
    assert log.count("event=bounced") == 2 and log.count("relay=none") == 2
    assert sink.handler.sessions == 0
    wait_empty_queue(pm)


def test_dns_timeout_is_deferred_not_bounced(net):
    pm = net["pm"]
    start(pm)
    send(pm, ALICE, ["z@dnsdead.test"])
    wait_for(lambda: "dsn=4.4.3" in pm.log("mta"), 30, what="a deferral for the DNS timeout")
    time.sleep(2)
    rows = pm.queue_list()
    assert len(rows) == 1 and "z@dnsdead.test" in rows[0]["line"]
    assert messages(pm, ALICE) == []
    assert "event=bounced" not in pm.log("mta")


def test_expired_while_deferred_is_bounced(net):
    pm = net["pm"]
    pm.configure(queue={"max_lifetime": 4})
    start(pm)
    send(pm, ALICE, ["late@dnsdead.test"])
    [dsn] = wait_dsns(pm, 1, timeout=60)
    _, rcpts = dsn_fields(dsn)
    assert rcpts[0]["Action"] == "failed" and rcpts[0]["Status"].startswith("4.")
    wait_empty_queue(pm)


def test_failed_null_sender_message_is_not_bounced(net):
    pm, sink = net["pm"], net["sink"]
    sink.handler.rcpt_reply["gone@remote.test"] = "550 5.1.1 no such user"
    start(pm)
    send(pm, "", ["gone@remote.test"])
    wait_for(lambda: "event=bounced" in pm.log("mta"), 30, what="the 550")
    wait_empty_queue(pm)
    time.sleep(1)
    assert messages(pm, ALICE) == []
    assert "event=bounced" in pm.log("mta")
