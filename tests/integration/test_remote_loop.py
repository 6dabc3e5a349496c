"""Mail loops caught by the mta as Postfix catches them ("mail for X loops back to myself",
5.4.6): an MX address and port that is one of our own smtpd listeners, or a server that
greets or answers EHLO with our own hostname. First end to end with the real services and
this Postmesh's own smtpd as the MX, then the mta alone (driven through the bus contract)
for the finer rules: a backup MX that is us leaves only the better ones."""
import email
import email.policy
import smtplib

import pytest

import remote_proto as rp
from conftest import wait_for
from pop3_helpers import add_user, messages
from remote_peers import common_port, AioSink, Dispatcher, Dnsmasq
from scripted_smtp import ScriptedSmtp

ALICE = "alice@example.test"
HOSTNAME = "mx.example.test"        # conftest's hostname setting: what our smtpd greets with


def smtpd_queue_ids(pm):
    return [line.split(" id=")[1].split()[0] for line in pm.log("smtpd").splitlines() if "event=queued" in line]


def dsn_statuses(path):
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
    [status] = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    return [block["Status"] for block in status.get_payload()[1:]]


def test_mx_pointing_at_our_own_smtpd_bounces_after_one_round(pm, tmp_path):
    """loop.test's MX is 127.0.0.1 and mta.remote_port is our smtpd's port: without loop
    detection the message goes round through smtpd until the hop limit (about 100 times)."""
    dns = Dnsmasq(tmp_path, ["--mx-host=loop.test,mx.loop.test,10", "--host-record=mx.loop.test,127.0.0.1"])
    try:
        add_user(pm, ALICE, "secret")
        pm.configure(trusted_networks=["127.0.0.0/8"],
                     queue={"retry_min": 1, "retry_max": 2, "job_lease": 20},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": pm.port("smtp"), "connect_timeout": 3, "command_timeout": 10})
        pm.start("resolver", "queue", "mta", "delivery", "bouncer", "smtpd", timeout=20)
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.sendmail(ALICE, ["bob@loop.test"], b"Subject: round and round\r\nMessage-ID: <loop-1@example.test>\r\n"
                       b"\r\nhello\r\n")
        [qid] = smtpd_queue_ids(pm)
        wait_for(lambda: f"event=rcpt_failed id={qid}" in pm.log("queue"), 30, what="the 5.4.6 verdict")
        [dsn] = wait_for(lambda: messages(pm, ALICE), 30, what="the bounce")
        assert dsn_statuses(dsn) == ["5.4.6"]
        assert "mail for loop.test loops back to myself" in dsn.read_text(errors="replace")
        failed = [line for line in pm.log("queue").splitlines() if "event=rcpt_failed" in line]
        assert len(failed) == 1 and "dsn=5.4.6" in failed[0]
        mta = pm.log("mta")
        assert mta.count("event=bounced") == 1 and "dsn=5.4.6" in mta
        assert f"event=connecting id={qid}" not in mta           # caught before connecting
        # One round: the only message smtpd ever took is ours, from our only connection.
        assert smtpd_queue_ids(pm) == [qid]
        assert pm.log("smtpd").count("event=connect ") == 1
        wait_for(lambda: not pm.queue_list(), 20, what="the queue to empty")
    finally:
        pm.stop_all()
        dns.stop()


# ---------------------------------------------------------------- the mta alone

ZONE = [
    # the best (only) MX greets, or answers EHLO, with our hostname
    "--mx-host=greet.test,mx.greet.test,10", "--host-record=mx.greet.test,127.0.0.7",
    "--mx-host=ehlo.test,mx.ehlo.test,10", "--host-record=mx.ehlo.test,127.0.0.6",
    # a lesser MX greets with our hostname, the best one is down
    "--mx-host=lesser.test,mx1.lesser.test,10", "--mx-host=lesser.test,mx2.lesser.test,20",
    "--host-record=mx1.lesser.test,127.0.0.4", "--host-record=mx2.lesser.test,127.0.0.7",
    # 127.0.0.9 is one of our listeners (see smtpd.listen below)
    "--mx-host=primary.test,mx1.primary.test,10", "--mx-host=primary.test,mx2.primary.test,20",
    "--host-record=mx1.primary.test,127.0.0.9", "--host-record=mx2.primary.test,127.0.0.3",
    "--mx-host=backup.test,mx1.backup.test,10", "--mx-host=backup.test,mx2.backup.test,20",
    "--host-record=mx1.backup.test,127.0.0.3", "--host-record=mx2.backup.test,127.0.0.9",
    "--mx-host=downbackup.test,mx1.downbackup.test,10", "--mx-host=downbackup.test,mx2.downbackup.test,20",
    "--mx-host=downbackup.test,mx3.downbackup.test,30",
    "--host-record=mx1.downbackup.test,127.0.0.4", "--host-record=mx2.downbackup.test,127.0.0.9",
    "--host-record=mx3.downbackup.test,127.0.0.3",
    "--host-record=implicit.test,127.0.0.9",                  # no MX: the A record is the MX
]



@pytest.fixture
def env(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE)
    peers, queue = [dns], None
    try:
        port = common_port(*(f"127.0.0.{last}" for last in (3, 4, 6, 7, 9)))
        listen = pm.settings["smtpd"]["listen"] + [{"address": f"127.0.0.9:{port}", "mode": "smtp"}]
        pm.configure(smtpd={"listen": listen}, resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 5})
        pm.start("resolver")
        # Something on our "own" address that records any connection the mta must not make.
        ours = ScriptedSmtp("127.0.0.9", port, greeting="220 elsewhere.test ESMTP")
        peers.append(ours)
        queue = Dispatcher(pm)
        pm.start("mta")
        queue.wait_worker()
        yield {"pm": pm, "q": queue, "port": port, "peers": peers, "root": tmp_path, "ours": ours}
    finally:
        pm.stop_all()
        if queue:
            queue.close()
        for p in peers:
            p.stop()


def peer(env, cls, *args, **kw):
    p = cls(*args, **kw)
    env["peers"].append(p)
    return p


def results(env, rcpts, domain):
    job = env["q"].send_job(rcpts, domain)
    return {r["index"]: r for r in env["q"].result(job)["results"]}


def test_best_mx_greeting_with_our_hostname_is_a_loop(env):
    greet = peer(env, ScriptedSmtp, "127.0.0.7", env["port"], greeting=f"220 {HOSTNAME} ESMTP Postmesh")
    res = results(env, ["a@greet.test", "b@greet.test"], "greet.test")
    for r in res.values():
        assert (r["status"], r["dsn_status"]) == (rp.PERMFAIL, "5.4.6")
        assert r["text"] == "5.4.6 mail for greet.test loops back to myself"
    [conn] = greet.connections()
    assert conn["commands"] == ["QUIT"]                     # not even EHLO
    assert "event=mail_loop" in env["pm"].log("mta")


def test_best_mx_answering_ehlo_with_our_hostname_is_a_loop(env):
    ehlo = peer(env, ScriptedSmtp, "127.0.0.6", env["port"], greeting="220 proxy.ehlo.test ESMTP",
                ehlo=f"250-{HOSTNAME}\r\n250 8BITMIME")
    [r] = results(env, ["a@ehlo.test"], "ehlo.test").values()
    assert (r["status"], r["dsn_status"], r["text"]) == (rp.PERMFAIL, "5.4.6",
                                                          "5.4.6 mail for ehlo.test loops back to myself")
    [conn] = ehlo.connections()
    assert conn["commands"] == [f"EHLO {HOSTNAME}", "QUIT"]   # no MAIL FROM


def test_lesser_mx_greeting_with_our_hostname_defers(env):
    """As Postfix: only the best MX being us is final (4.4.6 for a lesser one)."""
    peer(env, ScriptedSmtp, "127.0.0.7", env["port"], greeting=f"220 {HOSTNAME} ESMTP")   # mx1 .4 is down
    [r] = results(env, ["a@lesser.test"], "lesser.test").values()
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.4.6")
    assert r["text"] == "4.4.6 mail for lesser.test loops back to myself"


def test_our_listener_as_best_mx_bounces_without_connecting(env):
    sink = peer(env, AioSink, "127.0.0.3", env["port"], env["root"])       # mx2, less preferred
    for domain in ("primary.test", "implicit.test", "[127.0.0.9]"):
        [r] = results(env, [f"a@{domain}"], domain).values()
        assert (r["status"], r["dsn_status"]) == (rp.PERMFAIL, "5.4.6"), domain
        assert r["text"] == f"5.4.6 mail for {domain} loops back to myself"
    assert env["ours"].connections() == [] and sink.messages == []
    assert "event=connecting" not in env["pm"].log("mta")


def test_our_listener_as_backup_mx_leaves_only_the_better_ones(env):
    sink = peer(env, AioSink, "127.0.0.3", env["port"], env["root"])
    [r] = results(env, ["a@backup.test"], "backup.test").values()
    assert (r["status"], r["remote_mta"]) == (rp.DELIVERED, "mx1.backup.test")
    # The better MX is down: wait for it; neither we nor the MX behind us are tried.
    [r] = results(env, ["b@downbackup.test"], "downbackup.test").values()
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.4.1")
    assert [m["rcpt_tos"] for m in sink.messages] == [["a@backup.test"]]
    assert env["ours"].connections() == []
    log = env["pm"].log("mta")
    assert "relay=mx1.downbackup.test[127.0.0.4]" in log and "mx3.downbackup.test" not in log
