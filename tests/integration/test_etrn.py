"""ETRN (RFC 1985) end to end: smtpd -> every queue shard (Etrn) -> the deferred mail for the
node is due now -> mta -> the node's MX (smtp-sink on 127.0.0.2, found through dnsmasq).

- a message for example.net deferred while its MX was down is delivered at once when a
  trusted client says ETRN example.net after the MX came back (retry_min is 300 s), 250;
  then nothing waits any more: 251;
- "ETRN example.net" is that domain only, "ETRN @example.net" its subdomains too;
- refused: an untrusted client 502 (ETRN is not offered to it), one of our domains or a node
  outside smtpd.etrn_domains 459;
- with two queue shards both start their share; with one shard dead and none started, 458.
"""
import smtplib
import time

import pytest

from conftest import free_port, wait_for
from remote_peers import Dnsmasq, SmtpSink, common_port
from smtpd_helpers import RawSMTP
from test_queue_shards import shard_config

SERVICES = ("resolver", "queue", "mta", "smtpd")
MX = "127.0.0.2"
TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.3"
ZONE = ["--mx-host=example.net,mx.example.net,10", "--mx-host=sub.example.net,mx.example.net,10",
        f"--host-record=mx.example.net,{MX}"]
RETRY_MIN = 300


@pytest.fixture
def net(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE)
    net = {"pm": pm, "port": common_port(MX), "sink": None, "root": tmp_path}
    pm.configure(trusted_networks=[f"{TRUSTED}/32"],
                 queue={"retry_min": RETRY_MIN, "retry_max": 2 * RETRY_MIN, "job_lease": 30},
                 resolver={"nameservers": [dns.nameserver], "timeout": 2},
                 mta={"remote_port": net["port"], "connect_timeout": 2, "command_timeout": 10})
    try:
        yield net
    finally:
        pm.stop_all()
        if net["sink"]:
            net["sink"].stop()
        dns.stop()


def mx_up(net):
    net["sink"] = SmtpSink(MX, net["port"], net["root"])
    return net["sink"]


def send(pm, rcpt, n=1):
    with smtplib.SMTP(TRUSTED, pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.net")
        for i in range(n):
            s.sendmail("sender@example.test", [rcpt], f"Subject: etrn {i}\r\n\r\nfor {rcpt}\r\n")


def logs(pm, *procs):
    return "".join(pm.log(p) for p in procs)


def deferred(pm, n, *procs):
    procs = procs or ("queue",)
    wait_for(lambda: logs(pm, *procs).count("event=rcpt_deferred") >= n, 30, what=f"{n} deferrals")


def etrn(pm, node, source=TRUSTED):
    c = RawSMTP(pm.port("smtp"), source=source, timeout=30)
    assert c.cmd("EHLO client.example.net")[0] == 250
    reply = c.cmd(f"ETRN {node}")
    c.cmd("QUIT")
    c.close()
    return reply


def test_etrn_delivers_deferred_mail_at_once(net):
    pm = net["pm"]
    pm.start(*SERVICES, timeout=20)
    send(pm, "bob@example.net")
    deferred(pm, 1)                      # the MX is down: next try in RETRY_MIN seconds
    sink = mx_up(net)
    t0 = time.monotonic()
    assert etrn(pm, "example.net") == (250, ["2.0.0 Queuing for node example.net started"])
    wait_for(lambda: sink.dumps(), 30, interval=0.2, what="the message at the node's MX")
    assert time.monotonic() - t0 < RETRY_MIN / 10
    assert b"for bob@example.net" in sink.dumps()[0]
    wait_for(lambda: "event=rcpt_delivered" in pm.log("queue"), 10, what="the delivery recorded")
    assert "event=etrn_started" in pm.log("queue")
    # Delivered: nothing waits for the node any more.
    assert etrn(pm, "example.net") == (251, ["2.0.0 No messages waiting for node example.net"])
    assert "event=etrn client=127.0.0.1:" in pm.log("smtpd")


def test_repeated_etrn_gives_one_attempt_not_one_per_etrn(net):
    """A client repeating ETRN for a node whose MX stays down gets 250 each time, but each
    recipient has one attempt in the node's ETRN window, not one per ETRN: the retry
    schedule is not skipped by asking again (the review saw 94 ETRNs make 470 connections)."""
    pm = net["pm"]
    pm.start(*SERVICES, timeout=20)
    send(pm, "bob@example.net", n=2)
    deferred(pm, 2)                                  # the MX is down and stays down
    assert etrn(pm, "example.net")[0] == 250
    deferred(pm, 4)                                  # the attempt this ETRN gave them
    dispatched = pm.log("queue").count("event=dispatch ")
    for _ in range(8):
        # Each answer comes after the queue made due what it would and dispatched it.
        assert etrn(pm, "example.net") == (250, ["2.0.0 Queuing for node example.net started"])
    assert pm.log("queue").count("event=dispatch ") == dispatched, pm.log("queue")[-3000:]
    assert pm.log("queue").count("event=rcpt_deferred") == 4


def test_etrn_of_a_domain_and_of_its_subdomains(net):
    pm = net["pm"]
    pm.start(*SERVICES, timeout=20)
    send(pm, "carol@sub.example.net")
    deferred(pm, 1)
    sink = mx_up(net)
    # The domain alone is not its subdomain.
    assert etrn(pm, "example.net") == (251, ["2.0.0 No messages waiting for node example.net"])
    assert etrn(pm, "@example.net") == (250, ["2.0.0 Queuing for node @example.net started"])
    wait_for(lambda: sink.dumps(), 30, interval=0.2, what="the subdomain's message delivered")


def test_etrn_refused_to_untrusted_clients_and_for_nodes_not_allowed(net):
    pm = net["pm"]
    pm.configure(smtpd={"etrn_domains": ["example.net"]})
    pm.start(*SERVICES, timeout=20)
    send(pm, "bob@example.net")
    deferred(pm, 1)
    mx_up(net)
    # Not offered to a client outside trusted_networks, and refused.
    c = RawSMTP(pm.port("smtp"), source=UNTRUSTED)
    code, lines = c.cmd("EHLO client.example.net")
    assert code == 250 and "ETRN" not in lines
    assert c.cmd("ETRN example.net") == (502, ["5.7.0 Error: ETRN not available"])
    c.close()
    # Our own domain, and one outside smtpd.etrn_domains.
    assert etrn(pm, "example.test") == (459, ["4.7.1 Node example.test not allowed: mail for it is delivered here"])
    assert etrn(pm, "other.net") == (459, ["4.7.1 Node other.net not allowed: not an ETRN domain here"])
    # None of that reached the queue: the message still waits for its retry.
    assert "event=etrn_started" not in pm.log("queue") and "event=etrn " not in pm.log("queue")
    assert not net["sink"].dumps()
    # The listed domain is started.
    assert etrn(pm, "EXAMPLE.net")[0] == 250
    wait_for(lambda: net["sink"].dumps(), 30, interval=0.2, what="the message delivered")


@pytest.fixture
def two_shards(net):
    pm = net["pm"]
    e1, c1 = pm.settings["queue"]["endpoint"], pm.settings["queue"]["control"]
    e2, c2 = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    pm.configure(queue={"endpoint": [e1, e2], "control": [c1, c2], "listen": e1, "control_listen": c1})
    conf2 = shard_config(pm, e2, c2, pm.root / "state2", pm.root / "queue2.conf")
    pm.start("queue", timeout=20)
    pm.start("queue", name="queue2", conf=conf2, timeout=20)
    pm.start("resolver", "mta", "smtpd", timeout=20)
    wait_for(lambda: pm.log("smtpd").count("event=queue_shard_up") >= 2, 10, what="smtpd sees both shards")
    return net


def test_etrn_starts_every_shards_share(two_shards):
    net = two_shards
    pm = net["pm"]
    send(pm, "bob@example.net", n=4)     # round robin: some on each shard
    deferred(pm, 4, "queue", "queue2")
    assert "event=rcpt_deferred" in pm.log("queue") and "event=rcpt_deferred" in pm.log("queue2")
    sink = mx_up(net)
    assert etrn(pm, "example.net") == (250, ["2.0.0 Queuing for node example.net started"])
    wait_for(lambda: len(sink.dumps()) == 4, 30, interval=0.2, what="all four delivered")
    assert "event=etrn_started" in pm.log("queue") and "event=etrn_started" in pm.log("queue2")
    wait_for(lambda: "result=started messages=4 shards=2 failed=0" in pm.log("smtpd"), 5, what="the sum logged")


def test_etrn_with_a_shard_down_and_nothing_started_is_458(two_shards):
    pm = two_shards["pm"]
    pm.kill("queue2")
    t0 = time.monotonic()
    # The shard that is up has nothing for the node; the other cannot say: not 251.
    assert etrn(pm, "example.net") == (458, ["4.3.0 Unable to queue messages for node example.net"])
    assert time.monotonic() - t0 < pm.settings["smtpd"]["submit_timeout"] + 5
    assert etrn(pm, "example.net")[0] == 458
