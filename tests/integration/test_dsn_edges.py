"""DSN (RFC 3461/3464) at its edges, end to end: hostile xtext at smtpd (NUL, CR/LF, 8-bit,
bad hexchars: header injection into the report), the null sender asking NOTIFY=SUCCESS, a
hundred recipients each with a 500-character ORCPT through a next hop without DSN (one
"relayed" report holding every one), Submits on the bus that smtpd would never send (a
recipient_dsn count that does not match, ORCPT with CR/LF, 8-bit ENVID and ORCPT), and the
owed success notice across a SIGKILLed queue while a bouncer job of the old epoch is answered
late (kept and sent again, never dropped)."""
import email
import email.policy
import re
import smtplib
import socket

import pytest
import zmq
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

import bus_wire as wire
from conftest import BIN, Postmesh, traversable, wait_for
from pop3_helpers import add_user, messages
from remote_peers import Dnsmasq, Recorder, common_port

SERVICES = ("resolver", "queue", "mta", "delivery", "bouncer", "smtpd")
ZONE = ["--mx-host=plain.test,mx.plain.test,10", "--host-record=mx.plain.test,127.0.0.3"]
BODY = (b"From: Alice <alice@example.test>\r\nTo: someone\r\nSubject: dsn edge\r\n"
        b"Message-ID: <dsn-edge@example.test>\r\n\r\nEDGE-BODY\r\n")

pytestmark = pytest.mark.skipif(
    not all((BIN / f"postmesh-{s}").exists() for s in SERVICES),
    reason="needs every service binary of the DSN path")


class RecordingSMTP(SMTP):
    """aiosmtpd without DSN that records the RCPT arguments as sent."""

    async def smtp_RCPT(self, arg):
        self.event_handler.rcpt_args.append(arg)
        return await super().smtp_RCPT(arg)


class Plain(Recorder):
    def __init__(self):
        super().__init__()
        self.rcpt_args = []


class Peer(Controller):
    def __init__(self, host, port):
        self.recorder = Plain()
        super().__init__(self.recorder, hostname=host, port=port, decode_data=False, ready_timeout=10)

    def factory(self):
        return RecordingSMTP(self.handler, decode_data=False)


SENDERS = ("null.case", "many.orcpt", "bus.8bit", "mixed.case")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("dsnedge"))
    pm = Postmesh(root)
    dns = Dnsmasq(root, ZONE)
    port = common_port("127.0.0.3")
    peer = Peer("127.0.0.3", port)
    peer.start()
    peer.recorder.rcpt_reply["gone@plain.test"] = "550 5.1.1 <gone@plain.test>: no such user"
    for a in ("carol@example.test", *(f"{s}@example.test" for s in SENDERS)):
        add_user(pm, a, "secret")
    pm.configure(trusted_networks=["127.0.0.0/8"],
                 queue={"retry_min": 1, "retry_max": 2, "job_lease": 20},
                 resolver={"nameservers": [dns.nameserver], "timeout": 2},
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10})
    pm.start(*SERVICES, timeout=20)
    yield {"pm": pm, "peer": peer.recorder}
    pm.stop_all()
    peer.stop()
    dns.stop()


def qid_of(reply):
    return reply.decode().rsplit(" ", 1)[-1]


def removed(pm, qid, timeout=20):
    wait_for(lambda: f"event=removed id={qid} " in pm.log("queue"), timeout, what=f"{qid} to leave the queue")


def notices(pm, sender):
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in messages(pm, sender)]


# ------------------------------------------------------------------ smtpd: hostile xtext

BAD_MAIL = ["ENVID=a+00b", "ENVID=a+0D+0AX-Evil:+201", "ENVID=+0d+0a", "ENVID=+C3+A9", "ENVID=a+",
            "ENVID=a+4", "ENVID=+G1", "ENVID=", "ENVID", "RET=FULL RET=FULL", "RET=full,HDRS"]
BAD_RCPT = ["ORCPT=rfc822;a+0D+0AX-Evil:+201@x", "ORCPT=rfc822;a+00@x", "ORCPT=rfc822;+C3+A9@x",
            "ORCPT=rfc822;a+0a@x", "ORCPT=rfc822;", "ORCPT=;a@x", "ORCPT=rfc+3B822;a@x",
            "ORCPT=rfc822;" + "a" * 494, "NOTIFY=SUCCESS,", "NOTIFY=,DELAY", "NOTIFY=NEVER,DELAY",
            "NOTIFY=SUCCESS ORCPT=rfc822;a@x ORCPT=rfc822;b@x"]


def raw_reply(sock_file):
    lines = []
    while True:
        line = sock_file.readline()
        assert line, "connection closed"
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


def test_hostile_xtext_is_refused_and_the_session_goes_on(world):
    """Each refusal is 501 5.5.4 and changes nothing: the next command in the same session is
    taken (a fresh session per case: smtpd drops a client after too many errors)."""
    pm = world["pm"]
    for p in BAD_MAIL:
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.ehlo("client.example.test")
            code, text = s.docmd(f"MAIL FROM:<a@example.test> {p}")
            assert code == 501 and text.startswith(b"5.5.4"), (p, code, text)
            assert s.mail("a@example.test", ["ENVID=ok+2Bfine"])[0] == 250
    for p in BAD_RCPT:
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.ehlo("client.example.test")
            assert s.mail("a@example.test")[0] == 250
            code, text = s.docmd(f"RCPT TO:<carol@example.test> {p}")
            assert code == 501 and text.startswith(b"5.5.4"), (p, code, text)
            assert s.rcpt("carol@example.test", ["NOTIFY=FAILURE", "ORCPT=rfc822;" + "a" * 493])[0] == 250
    # Raw 8-bit and NUL bytes in the parameter (no client library would send them).
    with socket.create_connection(("127.0.0.1", pm.port("smtp")), timeout=30) as c:
        f = c.makefile("rb")
        assert raw_reply(f)[0] == 220
        c.sendall(b"EHLO client.example.test\r\n")
        assert raw_reply(f)[0] == 250
        for line in (b"MAIL FROM:<a@example.test> ENVID=\xc3\xa9nv\r\n",
                     b"MAIL FROM:<a@example.test> ENVID=a\x00b\r\n"):
            c.sendall(line)
            code, text = raw_reply(f)
            assert 500 <= code < 600, (line, text)
        c.sendall(b"MAIL FROM:<a@example.test> ENVID=fine\r\n")
        assert raw_reply(f)[0] == 250
        for line in (b"RCPT TO:<carol@example.test> ORCPT=rfc822;b\xc3\xa9@x\r\n",
                     b"RCPT TO:<carol@example.test> ORCPT=rfc822;b\x01@x\r\n"):
            c.sendall(line)
            code, text = raw_reply(f)
            assert 500 <= code < 600, (line, text)
        c.sendall(b"QUIT\r\n")
        assert raw_reply(f)[0] == 221


# ------------------------------------------------------------------ the null sender

def test_null_sender_asking_success_gets_no_notice(world):
    """RFC 3461 5.2.2 / 6.2: no DSN is ever sent to the null reverse-path; the message is
    delivered and removed, not kept for a notice nobody can get."""
    pm = world["pm"]
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        assert s.mail("<>", ["ENVID=NULL-CASE"])[0] == 250
        assert s.rcpt("carol@example.test", ["NOTIFY=SUCCESS,FAILURE,DELAY"])[0] == 250
        code, text = s.data(BODY)
        assert code == 250, text
        qid = qid_of(text)
    removed(pm, qid)
    assert f"event=rcpt_delivered id={qid} " in pm.log("queue")
    assert f"event=success_notice_sent id={qid} " not in pm.log("queue")
    assert not re.search(rf"event=(dsn|job) id={qid} ", pm.log("bouncer"))


# ------------------------------------------------------------------ many long ORCPTs

def test_hundred_recipients_with_500_char_orcpt_relayed(world):
    """Each RCPT line is 512 + 530 octets at most (RFC 3461 4); the next hop without DSN gets
    none of the parameters; one "relayed" report holds every recipient with its ORCPT whole."""
    pm, peer, sender = world["pm"], world["peer"], "many.orcpt@example.test"
    n = 100
    orcpt = {}
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        assert s.mail(sender, ["RET=HDRS", "ENVID=MANY"])[0] == 250
        for i in range(n):
            rcpt = f"ok{i:03d}@plain.test"
            # 500 characters as sent: "rfc822;" + 493, with an encoded '+' and '=' in each.
            addr = f"o{i:03d}+2Bx+3Dy" + "a" * (493 - 14) + "@x"
            value = "rfc822;" + addr
            assert len(value) == 500
            orcpt[rcpt] = addr.replace("+2B", "+").replace("+3D", "=")
            code, text = s.rcpt(rcpt, ["NOTIFY=SUCCESS,FAILURE,DELAY", "ORCPT=" + value])
            assert code == 250, (rcpt, text)
        code, text = s.data(BODY)
        assert code == 250, text
        qid = qid_of(text)
    removed(pm, qid, timeout=30)
    assert not [a for a in peer.rcpt_args if "ok0" in a and ("ORCPT" in a or "NOTIFY" in a)]
    assert len([a for a in peer.rcpt_args if re.match(r"TO:<ok\d{3}@plain\.test>$", a)]) >= n
    [path] = messages(pm, sender)
    raw = path.read_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    [msg] = notices(pm, sender)
    status = msg.get_payload()[1].get_payload()
    assert status[0]["Original-Envelope-Id"] == "MANY"
    blocks = status[1:]
    assert len(blocks) == n
    seen = {}
    for b in blocks:
        assert b["Action"] == "relayed" and b["Status"].startswith("2.")
        final = b["Final-Recipient"].split(";", 1)[1].strip()
        seen[final] = re.sub(r"\s+", "", b["Original-Recipient"].split(";", 1)[1])
    assert seen == orcpt


# ------------------------------------------------------------------ a failure and a success in one report

def test_failure_and_owed_success_in_one_report(world):
    """RET=FULL, a remote 550 (NOTIFY=FAILURE) and a local delivery (NOTIFY=SUCCESS): one
    report (the queue waits until nothing is in flight) with a "failed" and a "delivered"
    block, the whole message returned, and neither recipient told of twice."""
    pm, sender = world["pm"], "mixed.case@example.test"
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        assert s.mail(sender, ["RET=FULL", "ENVID=MIXED"])[0] == 250
        assert s.rcpt("gone@plain.test", ["NOTIFY=FAILURE"])[0] == 250
        assert s.rcpt("carol@example.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;carol+2Bmixed@example.test"])[0] == 250
        code, text = s.data(BODY)
        assert code == 250, text
        qid = qid_of(text)
    removed(pm, qid)
    [msg] = notices(pm, sender)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    parts = msg.get_payload()
    blocks = {b["Final-Recipient"].split(";", 1)[1].strip(): b for b in parts[1].get_payload()[1:]}
    assert set(blocks) == {"gone@plain.test", "carol@example.test"}
    assert blocks["gone@plain.test"]["Action"] == "failed" and blocks["gone@plain.test"]["Status"] == "5.1.1"
    assert blocks["carol@example.test"]["Action"] == "delivered"
    assert blocks["carol@example.test"]["Original-Recipient"] == "rfc822; carol+mixed@example.test"
    assert parts[2].get_content_type() == "message/rfc822"
    human = parts[0].get_content()
    assert "<carol@example.test>: delivered to mailbox" in human and "It is attached below." in human
    log = pm.log("queue")
    assert log.count(f"event=bounced id={qid} ") == 1 and log.count(f"event=success_notice_sent id={qid} ") == 1


# ------------------------------------------------------------------ the bus: Submits smtpd never sends

def submit_body(sender, rcpts, dsn=(), envid=None):
    inner = wire.field_bytes(1, sender) + b"".join(wire.field_bytes(2, r) for r in rcpts) \
        + wire.field_bytes(3, BODY) + wire.field_bytes(4, "127.0.0.1:1")
    if envid is not None:
        inner += wire.field_bytes(14, envid)
    for notify, orcpt in dsn:
        inner += wire.field_bytes(15, wire.field_int(1, notify) + wire.field_bytes(2, orcpt))
    return inner


@pytest.fixture
def as_smtpd(world):
    pm = world["pm"]
    keys = pm.state / "keys"
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    pub, sec = (keys / "smtpd.key").read_text().split()[:2]
    s.curve_publickey, s.curve_secretkey = pub.encode(), sec.encode()
    s.curve_serverkey = (keys / "queue.pub").read_text().strip().encode()
    s.connect(pm.settings["queue"]["endpoint"])
    yield s
    s.close()
    ctx.destroy(linger=0)


def submit_reply(sock, rid):
    deadline_polls = 50
    while deadline_polls:
        deadline_polls -= 1
        if not sock.poll(200):
            continue
        fields = wire.decode(sock.recv())
        r = wire.parse_submit_reply(fields)
        if r and r[0] == rid:
            return r
    raise AssertionError(f"no SubmitReply {rid}")


def test_queue_refuses_a_recipient_dsn_count_that_does_not_match(world, as_smtpd):
    two = ["carol@example.test", "null.case@example.test"]
    as_smtpd.send(wire.bus_message(11, wire.SUBMIT, submit_body("a@example.test", two, [(1, "rfc822;x@y")])))
    _, status, qid, text = submit_reply(as_smtpd, 11)
    assert status == 2 and text.startswith("5.5.4") and not qid, text
    as_smtpd.send(wire.bus_message(12, wire.SUBMIT, submit_body("a@example.test", two[:1], [(1, ""), (2, "")])))
    _, status, qid, text = submit_reply(as_smtpd, 12)
    assert status == 2 and text.startswith("5.5.4") and not qid, text
    # One each is fine.
    as_smtpd.send(wire.bus_message(13, wire.SUBMIT, submit_body("a@example.test", two[:1], [(8, "")])))
    _, status, qid, _ = submit_reply(as_smtpd, 13)
    assert status == wire.COMMITTED and qid
    removed(world["pm"], qid)


def test_bus_orcpt_or_envid_with_crlf_is_refused_at_the_edge(world, as_smtpd):
    pm = world["pm"]
    for rid, body in ((21, submit_body("crlf.orcpt@example.test", ["carol@example.test"],
                                       [(1, "rfc822;a@x\r\nX-Injected: 1")])),
                      (22, submit_body("crlf.envid@example.test", ["carol@example.test"], [(1, "")],
                                       envid="e\r\nX-Injected: 1")),
                      (23, submit_body("long.envid@example.test", ["carol@example.test"], envid="e" * 101)),
                      (24, submit_body("long.orcpt@example.test", ["carol@example.test"],
                                       [(1, "rfc822;" + "a" * 494)]))):
        n = pm.log("queue").count("event=bus_refused")
        as_smtpd.send(wire.bus_message(rid, wire.SUBMIT, body))
        wait_for(lambda: pm.log("queue").count("event=bus_refused") > n, 10, what=f"submit {rid} refused")
    # A barrier: everything sent before it was handled, and none of it was queued.
    as_smtpd.send(wire.ping(29))
    wait_for(lambda: as_smtpd.poll(200) and wire.PING in wire.decode(as_smtpd.recv()), 10, what="the ping")
    for s in ("crlf.orcpt", "crlf.envid", "long.envid", "long.orcpt"):
        assert f"{s}@example.test" not in pm.log("queue")


def test_bus_8bit_envid_and_orcpt_reach_the_report_as_7bit(world, as_smtpd):
    """smtpd refuses them; a Submit that carries them anyway (a compromised sandbox) gets a
    report whose fields are 7-bit and whole lines, never 8-bit header fields."""
    pm, sender = world["pm"], "bus.8bit@example.test"
    body = submit_body(sender, ["carol@example.test"], [(1, "rfc822;b\u00e9@x")], envid="\u00e9nv")
    as_smtpd.send(wire.bus_message(31, wire.SUBMIT, body))
    _, status, qid, text = submit_reply(as_smtpd, 31)
    if status != wire.COMMITTED:
        pytest.skip(f"the bus refuses 8-bit ENVID/ORCPT already: {text}")
    removed(pm, qid)
    [path] = messages(pm, sender)
    raw = path.read_bytes()
    report = raw.split(b"Content-Type: message/delivery-status", 1)[1].split(b"\r\n--", 1)[0]
    assert all(b < 0x80 for b in report), report
    assert b"\r\nOriginal-Envelope-Id: ?nv\r\n" in report
    assert b"\r\nOriginal-Recipient: rfc822; b?@x\r\n" in report
    assert b"\r\nAction: delivered\r\n" in report


# ------------------------------------------------------------------ a late bouncer result

def test_owed_notice_survives_sigkill_a_late_result_and_a_dead_bouncer(tmp_path):
    """A fake bouncer takes the success-notice job, the queue is SIGKILLed and restarted (a
    new epoch), then the old job's DELIVERED arrives: it must not clear the owed notice (the
    queue cannot know that job's recipients any more); the job goes out again, the fake
    bouncer dies holding it, the lease ends, and the real bouncer's notice ends the message.
    At least once: a notice may be sent twice, never lost."""
    pm = Postmesh(traversable(tmp_path))
    sender = "late.bounce@example.test"
    add_user(pm, sender, "secret")
    add_user(pm, "carol@example.test", "secret")
    pm.configure(queue={"retry_min": 1, "retry_max": 2, "job_lease": 4})  # the bouncer needs > 2 s of lease
    pm.start("queue", "delivery", "smtpd", timeout=20)
    keys = pm.state / "keys"
    ctx = zmq.Context()
    b = ctx.socket(zmq.DEALER)
    b.linger = 0
    pub, sec = (keys / "bouncer.key").read_text().split()[:2]
    b.curve_publickey, b.curve_secretkey = pub.encode(), sec.encode()
    b.curve_serverkey = (keys / "queue.pub").read_text().strip().encode()
    b.connect(pm.settings["queue"]["endpoint"])
    try:
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.ehlo("client.example.test")
            assert s.mail(sender, ["ENVID=LATE"])[0] == 250
            assert s.rcpt("carol@example.test", ["NOTIFY=SUCCESS"])[0] == 250
            code, text = s.data(BODY)
            assert code == 250, text
            qid = qid_of(text)
        wait_for(lambda: f"event=rcpt_delivered id={qid} " in pm.log("queue"), 20, what="the delivery")

        def take_job(received):
            b.send(wire.credit(wire.WORKER_BOUNCER, 1, "fake-bouncer", received))
            for _ in range(50):
                if b.poll(200):
                    job = wire.parse_job(wire.decode(b.recv()))
                    if job and job["queue_id"] == qid:
                        return job
            raise AssertionError("no bouncer job:\n" + pm.log("queue")[-2000:])

        old = take_job(0)
        assert old["kind"] == wire.WORKER_BOUNCER and old["recipients"][0]["address"] == sender
        pm.kill("queue")
        pm.start("queue", timeout=20)
        b.send(wire.job_result(old["job_id"], qid, [(0, wire.DELIVERED, "2.0.0", "2.0.0 DSN queued as X")],
                               old["epoch"], wire.WORKER_BOUNCER))
        wait_for(lambda: f"event=late_result id={qid} " in pm.log("queue"), 10, what="the late result")
        assert f"event=success_notice_sent id={qid} " not in pm.log("queue")
        assert [r["id"] for r in pm.queue_list()] == [qid]
        new = take_job(0)
        assert new["epoch"] != old["epoch"]
        # This bouncer now dies holding the job: its lease brings the notice back, and the
        # real bouncer sends it (once: nobody answered the dead one's job).
        b.close()
        pm.start("bouncer", timeout=20)
        wait_for(lambda: messages(pm, sender), 20, what="the notice from the real bouncer")
        removed(pm, qid)
        [msg] = notices(pm, sender)
        assert msg["Subject"] == "Successful Mail Delivery Report"
        assert msg.get_payload()[1].get_payload()[0]["Original-Envelope-Id"] == "LATE"
        log = pm.log("queue")
        assert f"event=lease_expired id={qid} " in log
        assert log.count(f"event=success_notice_sent id={qid} ") == 1
        assert log.count(f"event=rcpt_delivered id={qid} ") == 1
    finally:
        b.close()  # (again: closing twice is fine)
        ctx.destroy(linger=0)
        pm.stop_all()


# ------------------------------------------------------------------ a short lease

def test_a_lease_of_two_seconds_still_gets_its_notice_out(tmp_path):
    """The bouncer hands back a job with too little lease left to answer in. With a lease of
    2 s every job arrived with "too little" left (the reserve was a fixed 2 s), went back,
    came again at once: tens of thousands of jobs a second, and no notice ever sent. The
    reserve is now at most half the lease."""
    pm = Postmesh(traversable(tmp_path))
    sender = "short.lease@example.test"
    add_user(pm, sender, "secret")
    add_user(pm, "carol@example.test", "secret")
    pm.configure(queue={"retry_min": 1, "retry_max": 2, "job_lease": 2})
    pm.start("queue", "delivery", "bouncer", "smtpd", timeout=20)
    try:
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.ehlo("client.example.test")
            assert s.mail(sender)[0] == 250
            assert s.rcpt("carol@example.test", ["NOTIFY=SUCCESS"])[0] == 250
            code, text = s.data(BODY)
            assert code == 250, text
            qid = qid_of(text)
        removed(pm, qid)
        got = notices(pm, sender)
        assert len(got) == 1 and "Successful Mail Delivery Report" in str(got[0]["Subject"]), got
        handed_back = len(re.findall(rf"event=rcpt_returned id={qid} ", pm.log("queue")))
        assert handed_back == 0, pm.log("queue")[-3000:]
    finally:
        pm.stop_all()
