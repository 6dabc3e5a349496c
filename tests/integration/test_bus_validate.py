"""Every bus message is checked once where it is decoded (common/bus_valid.c), against a real
postmesh-queue and postmesh-resolver: a malformed message from a key whose role may send it is
refused with one `event=bus_refused` line naming that key, its role, the field and the
problem; it changes nothing; a refused request is answered (so its sender neither waits nor
asks again); and the service goes on to serve the next, well-formed message. The clients are
pyzmq sockets with the services' own keys, speaking raw BusMessages (bus_wire.py)."""
import re
import time

import pytest
import zmq

import bus_wire as wire
from conftest import wait_for

BODY = b"Subject: edge\r\n\r\nhello\r\n"
SUBMIT_PERMFAIL = 2      # SubmitReply.Status
RESOLVE_PERMFAIL = 2     # ResolveReply.Status


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def dealer(zctx, pm, service, key, endpoint=None):
    """A DEALER to service's endpoint holding key's own pair (as that service would)."""
    keys = pm.state / "keys"
    pub, sec = (keys / f"{key}.key").read_text().split()[:2]
    s = zctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_publickey, s.curve_secretkey = pub.encode(), sec.encode()
    s.curve_serverkey = (keys / f"{service}.pub").read_text().strip().encode()
    s.connect(endpoint or pm.settings[service]["endpoint"])
    return s


def answer(sock, rid, timeout=10.0):
    """The frame answering request rid (other frames are skipped), decoded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(200):
            fields = wire.decode(sock.recv())
            if wire.first(fields, 2, 0) == rid:
                return fields
    raise AssertionError(f"no answer to request {rid}")


def refusals(pm, svc):
    return re.findall(r"event=bus_refused .*", pm.log(svc))


def wait_refused(pm, svc, before, pattern):
    wait_for(lambda: any(re.search(pattern, line) for line in refusals(pm, svc)[before:]), 10,
             what=f"a bus_refused line of {svc} matching {pattern}")


def recipient_state(pm, qid):
    """(state, attempts) of the message's one recipient, from `postmesh queue show`."""
    out = pm.cli("queue", "show", qid).stdout
    m = re.search(r"recipient: <[^>]*> state=(\S+) attempts=(\d+)", out)
    assert m, out
    return m.group(1), int(m.group(2))


def test_a_malformed_submit_is_refused_and_the_next_one_committed(pm, zctx):
    pm.start("queue")
    smtpd = dealer(zctx, pm, "queue", "smtpd")
    n = len(refusals(pm, "queue"))
    # A recipient that would carry a second command into the mta's SMTP dialogue.
    smtpd.send(wire.submit(1, "bob@example.net", "alice@example.test\r\nRCPT TO:<mallory@example.net>", BODY))
    reply = wire.parse_submit_reply(answer(smtpd, 1))
    assert reply[1] == SUBMIT_PERMFAIL and reply[2] == "", reply
    assert reply[3] == "5.5.4 invalid submit: recipients[0] control_character", reply
    wait_refused(pm, "queue", n, r"key=smtpd role=smtpd body=submit reason=invalid field=recipients\[0\] "
                                 r"problem=control_character bytes=\d+$")
    # A sender past the longest address: refused the same way.
    smtpd.send(wire.submit(2, "b" * 400 + "@example.net", "alice@example.test", BODY))
    assert wire.parse_submit_reply(answer(smtpd, 2))[1] == SUBMIT_PERMFAIL
    wait_refused(pm, "queue", n, r"key=smtpd role=smtpd body=submit reason=invalid field=sender problem=too_long")
    assert pm.queue_list() == []

    smtpd.send(wire.submit(3, "bob@example.net", "alice@example.test", BODY))
    _, status, qid, text = wire.parse_submit_reply(answer(smtpd, 3))
    assert status == wire.COMMITTED and qid, text
    assert [row["id"] for row in pm.queue_list()] == [qid]
    assert pm.procs["queue"].poll() is None
    smtpd.close()


def test_a_malformed_job_result_changes_nothing_and_the_next_one_is_applied(pm, zctx):
    pm.configure(queue={"job_lease": 60})
    pm.start("queue")
    smtpd = dealer(zctx, pm, "queue", "smtpd")
    smtpd.send(wire.submit(1, "bob@example.net", "alice@example.test", BODY))
    _, status, qid, _ = wire.parse_submit_reply(answer(smtpd, 1))
    assert status == wire.COMMITTED
    delivery = dealer(zctx, pm, "queue", "delivery")
    delivery.send(wire.credit(wire.WORKER_DELIVERY, 1, "edge-test", 0))
    deadline, job = time.monotonic() + 10, None
    while job is None and time.monotonic() < deadline:
        if delivery.poll(200):
            job = wire.parse_job(wire.decode(delivery.recv()))
    assert job and job["queue_id"] == qid, pm.log("queue")[-2000:]

    n = len(refusals(pm, "queue"))
    # A status the proto does not have (protobuf-c would hand the number over as it came).
    delivery.send(wire.job_result(job["job_id"], qid, [(0, 9, "2.0.0", "delivered?")], job["epoch"],
                                  wire.WORKER_DELIVERY))
    wait_refused(pm, "queue", n, r"key=delivery role=delivery body=job_result reason=invalid "
                                 r"field=results\[0\]\.status problem=unknown_value")
    delivery.send(wire.ping(77))               # a barrier: everything sent before was handled
    answer(delivery, 77)
    assert recipient_state(pm, qid) == ("active", 0)   # still the job's, no attempt counted

    delivery.send(wire.job_result(job["job_id"], qid, [(0, wire.DELIVERED, "2.0.0", "ok")], job["epoch"],
                                  wire.WORKER_DELIVERY))
    wait_for(lambda: pm.queue_list() == [], 10, what="the message delivered by the well-formed result")
    assert re.search(rf"event=rcpt_delivered id={qid} ", pm.log("queue"))
    assert pm.procs["queue"].poll() is None
    smtpd.close()
    delivery.close()


def test_a_malformed_resolve_request_is_refused_and_the_next_one_looked_up(pm, zctx):
    pm.start("resolver")
    mta = dealer(zctx, pm, "resolver", "mta")
    n = len(refusals(pm, "resolver"))
    mta.send(wire.resolve(1, "remote.test", kind=7))
    assert wire.parse_resolve_reply(answer(mta, 1))[1:] == (RESOLVE_PERMFAIL, "5.5.4",
                                                             "invalid resolve: kind unknown_value")
    wait_refused(pm, "resolver", n, r"key=mta role=mta body=resolve reason=invalid field=kind problem=unknown_value")
    mta.send(wire.resolve(2, "remote.test\r\nx"))
    assert wire.parse_resolve_reply(answer(mta, 2))[1:3] == (RESOLVE_PERMFAIL, "5.5.4")
    wait_refused(pm, "resolver", n, r"key=mta role=mta body=resolve reason=invalid field=name "
                                    r"problem=control_character")

    # Well formed but not a domain: the lookup's own answer, so the request reached it.
    mta.send(wire.resolve(3, "a..b.test"))
    _, status, dsn, text = wire.parse_resolve_reply(answer(mta, 3))
    assert (status, dsn) == (RESOLVE_PERMFAIL, "5.1.2") and "not a valid domain name" in text, text
    assert pm.procs["resolver"].poll() is None
    mta.close()
