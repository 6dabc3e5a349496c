"""No remote delivery outlives its job's lease: an MX that accepts the connection and then
stalls (never answers the final dot), or answers everything one byte at a time so each
command stays within mta.command_timeout, is cut off before the lease ends with a temporary
4.4.7 and tried again later -- never a second copy in parallel from a re-dispatched job --
while mail for other domains keeps flowing in the meantime."""
import smtplib
import time

import pytest

import remote_proto as rp
from conftest import wait_for
from remote_peers import common_port, AioSink, Dispatcher, Dnsmasq
from scripted_smtp import ScriptedSmtp

ZONE = ["--mx-host=stall.test,mx.stall.test,10", "--host-record=mx.stall.test,127.0.0.8",
        "--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.2"]



@pytest.fixture
def net(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE)
    peers = [dns]
    try:
        yield {"pm": pm, "dns": dns, "port": common_port("127.0.0.2", "127.0.0.8"), "peers": peers, "root": tmp_path}
    finally:
        pm.stop_all()
        for p in peers:
            p.stop()


def queued_ids(pm):
    return [line.split(" id=")[1].split()[0] for line in pm.log("smtpd").splitlines() if "event=queued" in line]


def send(pm, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.sendmail("alice@example.test", [rcpt], f"Subject: {subject}\r\n\r\nhello\r\n".encode())
    return queued_ids(pm)[-1]


def test_stalled_mx_is_cut_off_within_the_lease_while_other_mail_flows(net):
    pm, port = net["pm"], net["port"]
    lease = 12
    stall = ScriptedSmtp("127.0.0.8", port, greeting="220 mx.stall.test ESMTP", stall_after_dot=True)
    sink = AioSink("127.0.0.2", port, net["root"])
    net["peers"] += [stall, sink]
    pm.configure(trusted_networks=["127.0.0.0/8"],
                 queue={"retry_min": 1, "retry_max": 2, "job_lease": lease},
                 resolver={"nameservers": [net["dns"].nameserver], "timeout": 2},
                 # the per-command timeout alone would hold the stalled session far past the lease
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 60})
    pm.start("resolver", "queue", "mta", "smtpd", timeout=20)

    stuck = send(pm, "x@stall.test", "stuck")
    wait_for(lambda: stall.dots() >= 1, 15, what="the body at the stalled MX")
    flowing = send(pm, "y@remote.test", "flowing")
    wait_for(lambda: sink.messages, 10, what="the other domain's message")
    assert stall.open_connections() == 1, "the other message waited for the stalled one"
    wait_for(lambda: f"event=rcpt_delivered id={flowing}" in pm.log("queue"), 10, what="the other message delivered")

    deferred = f"event=rcpt_deferred id={stuck} to=x@stall.test dsn=4.4.7"
    wait_for(lambda: deferred in pm.log("queue"), lease + 5, what="the 4.4.7 deferral")
    seen = time.monotonic()
    first = stall.connections()[0]
    assert seen - first["opened"] < lease, f"the delivery took {seen - first['opened']:.1f}s, lease {lease}s"
    assert f"event=deadline id={stuck}" in pm.log("mta")
    # ... and it is tried again, after the first attempt was closed, never beside it.
    wait_for(lambda: len(stall.connections()) >= 2, 15, what="the retry")
    first, second = stall.connections()[:2]
    assert first["closed"] is not None and first["closed"] <= second["opened"]
    assert f"event=lease_expired id={stuck}" not in pm.log("queue")


def test_trickling_mx_is_cut_off_within_the_lease(net):
    """Every reply arrives one byte at a time, each within mta.command_timeout, so only the
    job's deadline can end the session before the lease does."""
    pm, port = net["pm"], net["port"]
    trickle = ScriptedSmtp("127.0.0.8", port, greeting="220 slow.test", ehlo="250 slow.test", trickle=0.15)
    net["peers"].append(trickle)
    pm.configure(resolver={"nameservers": [net["dns"].nameserver], "timeout": 2},
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 5})
    pm.start("resolver")
    q = Dispatcher(pm)
    try:
        pm.start("mta")
        q.wait_worker()
        lease = 9
        t0 = time.monotonic()
        job = q.send_job(["x@stall.test"], "stall.test", lease=lease)
        [r] = q.result(job, timeout=lease + 15)["results"]
        elapsed = time.monotonic() - t0
        assert elapsed < lease, f"result after {elapsed:.1f}s, lease {lease}s"
        assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.4.7")
        assert r["text"].startswith("4.4.7 delivery time limit reached")
        assert len(trickle.connections()) == 1 and trickle.connections()[0]["commands"][:1] == ["EHLO mx.example.test"]
        wait_for(lambda: trickle.open_connections() == 0, 5, what="the connection to be closed")
    finally:
        q.close()
