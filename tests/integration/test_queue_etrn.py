"""ETRN on the queue (RFC 1985), spoken over the bus as smtpd speaks it: an Etrn from an smtpd
key makes the deferred mail waiting for that domain due now (all of it, also what is only in
the store) and is answered with how many messages started; a real mta then delivers them to
a sink that is back. Held mail, other domains and look-alike domains are untouched; only
smtpd's keys may ask. The store is filled by the queue's test hook (test_queue_deep.fill)."""
import contextlib
import json
import re
import time

import pytest
import zmq

import bus_wire as wire
from conftest import wait_for
from remote_peers import Dnsmasq, SmtpSink, common_port
from test_queue_deep import fill

ETRN, ETRN_REPLY = 20, 21                 # BusMessage body fields (proto/postmesh.proto)
STARTED, NOTHING, TEMPFAIL = 0, 1, 2      # EtrnReply.Status
ZONE = ["--mx-host=etrn.test,mx.etrn.test,10", "--mx-host=sub.etrn.test,mx.etrn.test,10",
        "--host-record=mx.etrn.test,127.0.0.2"]


def etrn_frame(rid, domain):
    return wire.bus_message(rid, ETRN, wire.field_bytes(1, domain))


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def dealer(pm, zctx, role):
    """A DEALER on queue.endpoint with the key of role (as `postmesh keys init` made it)."""
    keys = pm.state / "keys"
    pub, sec = (keys / f"{role}.key").read_text().split()[:2]
    s = zctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_publickey, s.curve_secretkey = pub.encode(), sec.encode()
    s.curve_serverkey = (keys / "queue.pub").read_text().strip().encode()
    s.connect(pm.settings["queue"]["endpoint"])
    return s


def ask(sock, rid, domain, timeout=30):
    """Sends Etrn{domain}; returns (status, messages, text) of the reply with rid."""
    sock.send(etrn_frame(rid, domain))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sock.poll(200):
            continue
        fields = wire.decode(sock.recv())
        if ETRN_REPLY in fields and wire.first(fields, 2, 0) == rid:
            r = wire.decode(wire.first(fields, ETRN_REPLY))
            return wire.first(r, 1, STARTED), wire.first(r, 2, 0), wire.first(r, 3, b"").decode()
    raise AssertionError(f"no EtrnReply to request {rid}")


def answers_before_ping(sock, rid):
    """Every frame the queue sends this peer before its answer to a Ping (a barrier)."""
    sock.send(wire.ping(rid))
    seen, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        if not sock.poll(200):
            continue
        fields = wire.decode(sock.recv())
        if wire.PING in fields and wire.first(fields, 2) == rid:
            return seen
        seen.append(fields)
    raise AssertionError("no answer to the ping")


def listing(pm):
    """id -> (state, [(address, next_attempt), ...]) from `queue list --json`."""
    doc = json.loads(pm.cli("queue", "list", "--json").stdout)
    return {m["id"]: (m["state"], [(r["address"], r["next_attempt"]) for r in m["recipients"]])
            for shard in doc["shards"] for m in shard["messages"]}


def ids_to(rows, address):
    return sorted(i for i, (_, rcpts) in rows.items() if rcpts[0][0] == address)


def fill_domains(pm, counts):
    """counts: {recipient: n}: n deferred messages each, due in a day."""
    for rcpt, n in counts.items():
        fill(pm, n, rcpt=rcpt, due=86400)


@pytest.fixture
def world(pm, tmp_path):
    """dnsmasq with etrn.test and sub.etrn.test on mx.etrn.test (127.0.0.2), a sink there."""
    with contextlib.ExitStack() as peers:
        dns = Dnsmasq(tmp_path, ZONE)
        peers.callback(dns.stop)
        port = common_port("127.0.0.2")
        sink = SmtpSink("127.0.0.2", port, tmp_path)
        peers.callback(sink.stop)
        peers.callback(pm.stop_all)  # first: nothing talks to the peers once they go
        pm.configure(queue={"retry_min": 300, "retry_max": 600, "job_lease": 60},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 30})
        yield {"pm": pm, "sink": sink}


def test_etrn_starts_the_deferred_mail_of_the_domain_and_nothing_else(world, zctx):
    pm, sink = world["pm"], world["sink"]
    fill_domains(pm, {"u@etrn.test": 4, "u@sub.etrn.test": 2, "u@badetrn.test": 2, "u@other.test": 2})
    pm.start("resolver", "queue", "mta")
    wait_for(lambda: re.search(r"event=worker_joined .*kind=mta", pm.log("queue")), 10,
             what="the mta's credit")
    before = listing(pm)
    assert len(before) == 10 and all(state == "deferred" for state, _ in before.values()), before
    now = int(time.time())
    assert all(t > now + 80000 for _, rcpts in before.values() for _, t in rcpts)
    etrn_ids = ids_to(before, "u@etrn.test")
    held = etrn_ids[0]
    pm.cli("queue", "hold", held)
    started = etrn_ids[1:]

    smtpd = dealer(pm, zctx, "smtpd")
    # Case as the client sent it; the queue compares without case.
    assert ask(smtpd, 41, "Etrn.Test") == (STARTED, 3, "")
    wait_for(lambda: len(sink.dumps()) >= 3, 30, what="the three messages at the sink")
    wait_for(lambda: not set(started) & set(listing(pm)), 10, what="the three delivered and removed")
    log = pm.log("queue")
    assert re.search(r"event=etrn domain=Etrn\.Test messages=3 status=started", log), log[-3000:]
    for qid in started:
        assert f"event=etrn_started id={qid}" in log
        assert re.search(rf"event=dispatch id={qid} .*kind=mta", log)
        assert f"event=rcpt_delivered id={qid}" in log
    after = listing(pm)
    assert after[held][0] == "hold" and after[held][1] == before[held][1]
    for qid in set(before) - set(etrn_ids):          # the subdomain, the look-alike, the other
        assert after[qid] == before[qid], (qid, after[qid], before[qid])
        assert f"id={qid}" not in log
    assert len(sink.dumps()) == 3

    # "@": the domain and its subdomains; the look-alike still not, the held one still held.
    assert ask(smtpd, 42, "@etrn.test") == (STARTED, 2, "")
    wait_for(lambda: len(sink.dumps()) >= 5, 30, what="the subdomain's messages at the sink")
    rest = listing(pm)
    assert sorted(rest) == sorted([held] + ids_to(before, "u@badetrn.test") + ids_to(before, "u@other.test"))
    assert rest[held][0] == "hold"
    assert all(rest[qid] == before[qid] for qid in rest if qid != held)
    # Nothing waits for a domain nobody sends to (smtpd answers 251 for it).
    assert ask(smtpd, 43, "nowhere.test") == (NOTHING, 0, "")
    assert "event=etrn domain=nowhere.test messages=0 status=nothing" in pm.log("queue")
    smtpd.close()


def test_only_smtpd_may_ask_and_the_mail_becomes_due_now(pm, zctx):
    fill_domains(pm, {"u@etrn.test": 2, "u@other.test": 1})
    pm.start("queue")
    before = listing(pm)
    n = len(re.findall("event=bus_refused", pm.log("queue")))
    for role in ("cli", "mta"):
        s = dealer(pm, zctx, role)
        s.send(etrn_frame(7, "etrn.test"))
        assert not [f for f in answers_before_ping(s, 8) if ETRN_REPLY in f], f"{role} got an answer"
        wait_for(lambda: re.search(rf"event=bus_refused .*key={role} role={role} body=etrn reason=role",
                                   pm.log("queue")), 10, what=f"the refusal of {role}'s Etrn")
        s.close()
    smtpd = dealer(pm, zctx, "smtpd")
    smtpd.send(etrn_frame(9, "x" * 600 + ".test"))  # beyond what one domain can be
    wait_for(lambda: re.search(r"event=bus_refused .*key=smtpd role=smtpd body=etrn reason=size",
                               pm.log("queue")), 10, what="the refusal of an oversized Etrn")
    assert len(re.findall("event=bus_refused", pm.log("queue"))) == n + 3
    assert "event=etrn" not in pm.log("queue")
    assert listing(pm) == before                      # nothing changed before smtpd asked

    t0 = int(time.time()) - 1                        # the queue's time(2) is the coarse clock
    assert ask(smtpd, 10, "etrn.test") == (STARTED, 2, "")
    after = listing(pm)
    for qid, (state, rcpts) in after.items():
        if rcpts[0][0] == "u@etrn.test":              # due now, written to the store
            assert state == "deferred" and t0 <= rcpts[0][1] <= int(time.time()), (qid, after[qid])
        else:
            assert (state, rcpts) == before[qid]
    smtpd.close()
    # Survives a restart: the store says "due now" (no worker runs here to take them).
    pm.stop("queue")
    pm.start("queue")
    assert listing(pm) == after
