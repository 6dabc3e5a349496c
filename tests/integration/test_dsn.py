"""DSN (RFC 3461) end to end: smtplib with NOTIFY/RET/ENVID/ORCPT -> smtpd -> queue ->
delivery (local success) or mta -> aiosmtpd peers on 127.0.0.2 (offers DSN: the parameters
are passed on; refuses gone@ with 550, defers slow@ with 451) and 127.0.0.3 (no DSN: a
"relayed" notice) -> the bouncer's notices into the sender's own mailbox. Every case has a
sender mailbox of its own, so "exactly these notices" is a count of that mailbox once the
message has left the queue (notices are committed before the message is removed), or, for
delays, once the queue has logged its decision.

All cases are sent at once by a module fixture (the queue works on them in parallel), then
each test checks one case. RFC 3461 section 4.1: NOTIFY unset means FAILURE and DELAY;
NEVER means nothing; SUCCESS asks for "delivered" (local) or "relayed" (a next hop without
DSN) and nothing when the next hop takes DSN (it reports, 5.2.2.1)."""
import email
import email.policy
import re
import smtplib

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from conftest import BIN, Postmesh, traversable, wait_for
from pop3_helpers import add_user, messages
from remote_peers import Dnsmasq, Recorder, common_port

SERVICES = ("resolver", "queue", "mta", "delivery", "bouncer", "smtpd")
ZONE = ["--mx-host=dsn.test,mx.dsn.test,10", "--host-record=mx.dsn.test,127.0.0.2",
        "--mx-host=plain.test,mx.plain.test,10", "--host-record=mx.plain.test,127.0.0.3"]
BODY = (b"From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: dsn case\r\n"
        b"Message-ID: <dsn-case@example.test>\r\n\r\nTHE-BODY-TEXT\r\n")
# Over the 50,000 octets RET=FULL returns whole (Postfix's bounce_size_limit).
BIG_BODY = BODY + b"".join(b"%06d THE-BIG-BODY-TEXT\r\n" % i for i in range(3000))
DSN_PARAM = re.compile(r"\s+(RET|ENVID|NOTIFY|ORCPT)=\S*", re.I)

pytestmark = pytest.mark.skipif(
    not all((BIN / f"postmesh-{s}").exists() for s in SERVICES),
    reason="needs every service binary of the DSN path")


class DsnSMTP(SMTP):
    """aiosmtpd offering DSN: records MAIL/RCPT arguments as sent, takes the DSN parameters
    off before aiosmtpd's own checks (which refuse parameters they do not know)."""

    async def smtp_MAIL(self, arg):
        self.event_handler.commands.append(f"MAIL {arg}")
        return await super().smtp_MAIL(DSN_PARAM.sub("", arg) if arg else arg)

    async def smtp_RCPT(self, arg):
        self.event_handler.commands.append(f"RCPT {arg}")
        return await super().smtp_RCPT(DSN_PARAM.sub("", arg) if arg else arg)


class DsnRecorder(Recorder):
    def __init__(self, offer_dsn):
        super().__init__()
        self.offer_dsn = offer_dsn
        self.commands = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.offer_dsn:
            responses.insert(len(responses) - 1, "250-DSN")
        return responses


class Peer(Controller):
    def __init__(self, host, port, offer_dsn):
        self.recorder = DsnRecorder(offer_dsn)
        super().__init__(self.recorder, hostname=host, port=port, decode_data=False, ready_timeout=10)

    def factory(self):
        return DsnSMTP(self.handler, decode_data=False)


# (name, recipient, MAIL options, RCPT options)
CASES = [
    # Local delivery succeeds.
    ("local_success", "carol@example.test", ["ENVID=QQ+2Bcase1"], ["NOTIFY=SUCCESS", "ORCPT=rfc822;Carol+2Bx@example.test"]),
    ("local_unset", "carol@example.test", [], []),
    ("local_failure", "carol@example.test", [], ["NOTIFY=FAILURE"]),
    ("local_delay", "carol@example.test", [], ["NOTIFY=DELAY"]),
    ("local_never", "carol@example.test", [], ["NOTIFY=NEVER"]),
    # A remote 550.
    ("fail_unset", "gone@dsn.test", [], []),
    ("fail_failure", "gone@dsn.test", ["RET=FULL", "ENVID=ENV-FULL"], ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;orig@example.test"]),
    ("fail_hdrs", "gone@dsn.test", ["RET=HDRS"], ["NOTIFY=FAILURE"]),
    ("fail_full_big", "gone@dsn.test", ["RET=FULL"], []),  # BIG_BODY: over the return limit
    ("fail_success", "gone@dsn.test", [], ["NOTIFY=SUCCESS"]),
    ("fail_delay", "gone@dsn.test", [], ["NOTIFY=DELAY"]),
    ("fail_never", "gone@dsn.test", [], ["NOTIFY=NEVER"]),
    # A remote 451 until past queue.delay_warning.
    ("delay_unset", "slow@dsn.test", [], []),
    ("delay_delay", "slow@dsn.test", ["ENVID=ENV-SLOW"], ["NOTIFY=DELAY"]),
    ("delay_never", "slow@dsn.test", [], ["NOTIFY=NEVER"]),
    ("delay_failure", "slow@dsn.test", [], ["NOTIFY=FAILURE"]),
    # Remote success: a next hop with DSN gets the parameters; one without: "relayed".
    ("remote_dsn", "ok@dsn.test", ["RET=HDRS", "ENVID=E+2B1"], ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;ok+3Dx@dsn.test"]),
    ("remote_plain", "ok@plain.test", [], ["NOTIFY=SUCCESS"]),
]


def sender_of(name):
    return f"{name.replace('_', '.')}@example.test"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("dsn"))
    pm = Postmesh(root)
    dns = Dnsmasq(root, ZONE)
    port = common_port("127.0.0.2", "127.0.0.3")
    dsn_peer = Peer("127.0.0.2", port, True)
    plain_peer = Peer("127.0.0.3", port, False)
    for peer in (dsn_peer, plain_peer):
        peer.start()
    dsn_peer.recorder.rcpt_reply["gone@dsn.test"] = "550 5.1.1 <gone@dsn.test>: no such user here"
    dsn_peer.recorder.rcpt_reply["slow@dsn.test"] = "451 4.2.0 mailbox busy, try later"
    add_user(pm, "carol@example.test", "secret")
    for name in [c[0] for c in CASES] + ["restart_success"]:
        add_user(pm, sender_of(name), "secret")
    pm.configure(trusted_networks=["127.0.0.0/8"],
                 queue={"retry_min": 1, "retry_max": 2, "job_lease": 20, "max_lifetime": 3600,
                        "delay_warning": 2},
                 resolver={"nameservers": [dns.nameserver], "timeout": 2},
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10})
    pm.start(*SERVICES, timeout=20)
    qids = {}
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        assert s.has_extn("dsn")
        for name, rcpt, mail_opts, rcpt_opts in CASES:
            assert s.mail(sender_of(name), mail_opts)[0] == 250
            code, text = s.rcpt(rcpt, rcpt_opts)
            assert code == 250, (name, text)
            code, text = s.data(BIG_BODY if name.endswith("_big") else BODY)
            assert code == 250, text
            qids[name] = text.decode().rsplit(" ", 1)[-1]
    yield {"pm": pm, "qids": qids, "dsn_peer": dsn_peer.recorder, "plain_peer": plain_peer.recorder}
    pm.stop_all()
    for peer in (dsn_peer, plain_peer):
        peer.stop()
    dns.stop()


def removed(pm, qid, timeout=40):
    wait_for(lambda: f"event=removed id={qid} " in pm.log("queue"), timeout, what=f"{qid} to leave the queue")


def notices(pm, name):
    """The sender's mailbox, parsed; the bouncer's log names each DSN it made per queue id."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in messages(pm, sender_of(name))]


def dsn_count(pm, qid):
    return sum(1 for line in pm.log("bouncer").splitlines() if "event=dsn " in line and f" id={qid} " in line)


def one_notice(world, name):
    pm, qid = world["pm"], world["qids"][name]
    wait_for(lambda: messages(pm, sender_of(name)), 40, what=f"the notice for {name}")
    [msg] = notices(pm, name)
    assert msg.get_content_type() == "multipart/report"
    parts = msg.get_payload()
    blocks = parts[1].get_payload()
    assert blocks[0]["X-Postmesh-Queue-ID"] == qid
    return msg, blocks[0], blocks[1:], parts


def no_notice(world, name):
    pm, qid = world["pm"], world["qids"][name]
    removed(pm, qid)
    assert dsn_count(pm, qid) == 0
    assert notices(pm, name) == []


# ------------------------------------------------------------------ local success

def test_local_success_notice(world):
    msg, per_msg, [r], parts = one_notice(world, "local_success")
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert per_msg["Original-Envelope-Id"] == "QQ+case1"
    assert r["Action"] == "delivered" and r["Status"].startswith("2.")
    assert r["Final-Recipient"] == "rfc822; carol@example.test"
    assert r["Original-Recipient"] == "rfc822; Carol+x@example.test"
    assert "successfully delivered" in parts[0].get_content()
    assert parts[2].get_content_type() == "text/rfc822-headers"
    pm, qid = world["pm"], world["qids"]["local_success"]
    removed(pm, qid)
    assert dsn_count(pm, qid) == 1 and len(notices(pm, "local_success")) == 1
    assert f"event=success_notice_sent id={qid} " in pm.log("queue")
    assert len(messages(pm, "carol@example.test")) >= 5  # every local case was delivered


@pytest.mark.parametrize("name", ["local_unset", "local_failure", "local_delay", "local_never"])
def test_local_success_without_notify_success_is_silent(world, name):
    no_notice(world, name)


# ------------------------------------------------------------------ permanent failure

def test_failure_notice_by_default_returns_headers(world):
    msg, per_msg, [r], parts = one_notice(world, "fail_unset")
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert r["Action"] == "failed" and r["Status"] == "5.1.1"
    assert "Original-Envelope-Id" not in per_msg and "Original-Recipient" not in r
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert b"THE-BODY-TEXT" not in msg.as_bytes()
    no_more = world["qids"]["fail_unset"]
    removed(world["pm"], no_more)
    assert dsn_count(world["pm"], no_more) == 1


def test_failure_notice_ret_full_envid_orcpt(world):
    msg, per_msg, [r], parts = one_notice(world, "fail_failure")
    assert per_msg["Original-Envelope-Id"] == "ENV-FULL"
    assert r["Action"] == "failed"
    assert r["Original-Recipient"] == "rfc822; orig@example.test"
    assert parts[2].get_content_type() == "message/rfc822"
    returned = parts[2].get_payload()[0]
    assert returned["Subject"] == "dsn case"
    assert b"THE-BODY-TEXT" in msg.as_bytes()


def test_failure_notice_ret_hdrs(world):
    msg, _, [r], parts = one_notice(world, "fail_hdrs")
    assert r["Action"] == "failed"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: dsn case" in parts[2].get_payload()
    assert b"THE-BODY-TEXT" not in msg.as_bytes()


def test_failure_notice_ret_full_of_a_big_message_returns_its_headers(world):
    """A notice as big as the message may meet the size limit that refused it; sent to <>,
    a refused notice is lost. Past 50,000 octets RET=FULL returns the headers."""
    msg, _, [r], parts = one_notice(world, "fail_full_big")
    assert r["Action"] == "failed"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Subject: dsn case" in parts[2].get_payload()
    assert b"THE-BIG-BODY-TEXT" not in msg.as_bytes()
    assert len(msg.as_bytes()) < 20000


@pytest.mark.parametrize("name", ["fail_success", "fail_delay", "fail_never"])
def test_failure_without_notify_failure_is_silent(world, name):
    no_notice(world, name)
    assert f"event=bounce_suppressed id={world['qids'][name]} " in world["pm"].log("queue")


# ------------------------------------------------------------------ delay

@pytest.mark.parametrize("name", ["delay_unset", "delay_delay"])
def test_delay_warning(world, name):
    msg, per_msg, [r], _ = one_notice(world, name)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert r["Action"] == "delayed" and r["Status"].startswith("4.")
    if name == "delay_delay":
        assert per_msg["Original-Envelope-Id"] == "ENV-SLOW"
    pm, qid = world["pm"], world["qids"][name]
    wait_for(lambda: f"event=delay_notice_sent id={qid} " in pm.log("queue"), 20, what="the warning's commit")
    assert dsn_count(pm, qid) == 1
    pm.cli("queue", "delete", qid)


@pytest.mark.parametrize("name", ["delay_never", "delay_failure"])
def test_delay_without_notify_delay_is_silent(world, name):
    pm, qid = world["pm"], world["qids"][name]
    wait_for(lambda: f"event=delay_notice_suppressed id={qid} " in pm.log("queue"), 30,
             what=f"the queue's delay decision for {name}")
    assert dsn_count(pm, qid) == 0 and notices(pm, name) == []
    pm.cli("queue", "delete", qid)


# ------------------------------------------------------------------ remote success

def test_next_hop_with_dsn_gets_the_parameters_and_we_stay_silent(world):
    no_notice(world, "remote_dsn")
    cmds = world["dsn_peer"].commands
    mail = next(c for c in cmds if c.startswith("MAIL") and "remote.dsn@" in c)
    assert mail.endswith(" RET=HDRS ENVID=E+2B1"), mail
    rcpt = [c for c in cmds if c.startswith("RCPT") and "ok@dsn.test" in c]
    assert rcpt == ["RCPT TO:<ok@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;ok+3Dx@dsn.test"], cmds
    # Not passed on to a server that did not offer it, and nothing added when none was given.
    assert not any(DSN_PARAM.search(c) for c in world["plain_peer"].commands)
    assert "RCPT TO:<gone@dsn.test>" in cmds  # fail_unset: no parameters were given


def test_next_hop_without_dsn_gives_a_relayed_notice(world):
    msg, _, [r], parts = one_notice(world, "remote_plain")
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert r["Action"] == "relayed" and r["Final-Recipient"] == "rfc822; ok@plain.test"
    assert r["Remote-MTA"] == "dns; mx.plain.test"
    assert "relayed" in parts[0].get_content()
    pm, qid = world["pm"], world["qids"]["remote_plain"]
    removed(pm, qid)
    assert dsn_count(pm, qid) == 1


# ------------------------------------------------------------------ smtpd refusals

def test_smtpd_refuses_bad_parameters(world):
    pm = world["pm"]
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        assert s.mail("a@example.test", ["RET=BODY"])[0] == 501
        assert s.mail("a@example.test", ["RET=FULL", "RET=HDRS"])[0] == 501
        assert s.mail("a@example.test", ["ENVID=" + "x" * 101])[0] == 501
        assert s.mail("a@example.test", ["ENVID=a+0Ab"])[0] == 501
        assert s.mail("a@example.test", ["ENVID=" + "x" * 100])[0] == 250
        assert s.rcpt("carol@example.test", ["NOTIFY=NEVER,SUCCESS"]) == (
            501, b"5.5.4 Bad NOTIFY parameter (NEVER, or SUCCESS,FAILURE,DELAY)")
        assert s.rcpt("carol@example.test", ["NOTIFY=DELAY", "NOTIFY=DELAY"])[0] == 501
        assert s.rcpt("carol@example.test", ["ORCPT=rfc822"])[0] == 501
        assert s.rcpt("carol@example.test", ["ORCPT=rfc822;" + "a" * 494])[0] == 501
        assert s.rcpt("carol@example.test", ["ORCPT=rfc822;" + "a" * 493])[0] == 250
        s.rset()
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.helo("client.example.test")  # no EHLO: no parameters
        assert s.docmd("MAIL FROM:<a@example.test> RET=FULL")[0] == 555
        assert s.docmd("MAIL FROM:<a@example.test>")[0] == 250
        assert s.docmd("RCPT TO:<carol@example.test> NOTIFY=NEVER")[0] == 555


# ------------------------------------------------------------------ restart

def test_success_notice_owed_survives_a_queue_restart(world):
    """The notice owed is stored with the recipient: a queue stopped before the bouncer could
    send it sends it after its restart, once."""
    pm, name = world["pm"], "restart_success"
    pm.stop("bouncer")
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        assert s.mail(sender_of(name), ["ENVID=RESTART"])[0] == 250
        assert s.rcpt("carol@example.test", ["NOTIFY=SUCCESS"])[0] == 250
        code, text = s.data(BODY)
        assert code == 250, text
        qid = text.decode().rsplit(" ", 1)[-1]
    wait_for(lambda: f"event=rcpt_delivered id={qid} " in pm.log("queue"), 20, what="the local delivery")
    pm.stop("queue")
    offset = len(pm.log("queue"))
    pm.start("queue", timeout=20)
    assert f"event=success_notice_sent id={qid} " not in pm.log("queue")  # no bouncer yet
    pm.start("bouncer", timeout=20)
    wait_for(lambda: messages(pm, sender_of(name)), 40, what="the notice after the restart")
    removed(pm, qid)
    [msg] = notices(pm, name)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert dsn_count(pm, qid) == 1
    assert pm.log("queue")[offset:].count(f"event=success_notice_sent id={qid} ") == 1
    # Delivered once, before the restart: the owed notice came from the stored record.
    assert pm.log("queue").count(f"event=rcpt_delivered id={qid} ") == 1
