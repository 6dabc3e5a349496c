"""postmesh-mta on its own: driven through the bus contract of docs/internals.md ("Work
dispatch") by a stand-in for the queue's dispatcher, with the real resolver, a real DNS
server (dnsmasq) and real SMTP servers (aiosmtpd, Postfix's smtp-sink) on 127.0.0.x.
test_remote_delivery.py runs the same paths end to end with the real queue."""
import signal
import socket
import threading
import time

import pytest

import remote_proto as rp
from conftest import free_udp_port, wait_for
from remote_peers import common_port, AioSink, Dispatcher, Dnsmasq, SmtpSink

ZONE = [
    "--mx-host=remote.test,mx1.remote.test,10", "--mx-host=remote.test,mx2.remote.test,20",
    "--host-record=mx1.remote.test,127.0.0.2", "--host-record=mx2.remote.test,127.0.0.3",
    "--mx-host=tls.test,mx.tls.test,10", "--host-record=mx.tls.test,127.0.0.4",
    "--mx-host=pipe.test,mx.pipe.test,10", "--host-record=mx.pipe.test,127.0.0.5",
    "--mx-host=hostile.test,mx.hostile.test,10", "--host-record=mx.hostile.test,127.0.0.6",
    "--mx-host=greet.test,mx1.greet.test,10", "--mx-host=greet.test,mx2.greet.test,20",
    "--host-record=mx1.greet.test,127.0.0.7", "--host-record=mx2.greet.test,127.0.0.3",
    "--mx-host=slow.test,mx.slow.test,10", "--host-record=mx.slow.test,127.0.0.8",
    "--dns-rr=nullmx.test,15,000000",
]

BODY = (b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: intact?\r\n\r\n"
        b"line one\r\n.leading dot\r\n..two dots\r\n.\r\n" + b"x" * 990 + b"\r\n"
        b"caf\xc3\xa9 8-bit\r\n\r\nlast line\r\n")



@pytest.fixture
def env(pm, tmp_path):
    dead = free_udp_port()
    dns = Dnsmasq(tmp_path, ZONE + [f"--server=/dnsdead.test/127.0.0.1#{dead}"])
    stuff = {"pm": pm, "root": tmp_path, "peers": [dns], "queue": None}
    try:
        stuff["port"] = common_port(*(f"127.0.0.{last}" for last in range(2, 9)))
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": stuff["port"], "connect_timeout": 3, "command_timeout": 5})
        pm.start("resolver")
        stuff["queue"] = Dispatcher(pm)
        yield stuff
    finally:
        pm.stop_all()
        if stuff["queue"]:
            stuff["queue"].close()
        for peer in stuff["peers"]:
            peer.stop()


def start_mta(env, **mta):
    if mta:
        env["pm"].configure(mta=mta)
    env["pm"].start("mta")
    env["queue"].wait_worker()
    return env["queue"]


def aio(env, host, tls=False, broken_tls=False):
    sink = AioSink(host, env["port"], env["root"], tls=tls, broken_tls=broken_tls)
    env["peers"].append(sink)
    return sink


def by_index(result):
    return {r["index"]: r for r in result["results"]}


def mta_log(env):
    return env["pm"].log("mta")


def test_delivers_over_starttls_with_the_body_intact(env):
    sink = aio(env, "127.0.0.4", tls=True)
    q = start_mta(env)
    job = q.send_job(["bob@tls.test"], "tls.test", body=BODY, queue_id="00000000000000A1")
    r = by_index(q.result(job))[0]
    assert (r["status"], r["dsn_status"], r["remote_mta"]) == (rp.DELIVERED, "2.0.0", "mx.tls.test")
    assert r["text"].startswith("250 2.0.0")
    [msg] = sink.messages
    assert msg["content"] == BODY
    assert msg["tls"] and msg["mail_from"] == "alice@example.test" and msg["rcpt_tos"] == ["bob@tls.test"]
    assert msg["helo"] == "mx.example.test"
    log = mta_log(env)
    assert f"event=delivered id=00000000000000A1 to=bob@tls.test relay=mx.tls.test[127.0.0.4]:{env['port']}" in log
    assert "event=tls id=00000000000000A1" in log


def test_broken_starttls_is_retried_in_the_clear(env):
    sink = aio(env, "127.0.0.4", broken_tls=True)
    q = start_mta(env)
    r = by_index(q.result(q.send_job(["bob@tls.test"], "tls.test", body=BODY)))[0]
    assert r["status"] == rp.DELIVERED
    [msg] = sink.messages
    assert not msg["tls"] and msg["content"] == BODY
    assert "retry=plaintext" in mta_log(env)


def test_tls_verify_refuses_an_unverifiable_server(env):
    sink = aio(env, "127.0.0.4", tls=True)       # self-signed
    q = start_mta(env, tls_verify=True)
    r = by_index(q.result(q.send_job(["bob@tls.test"], "tls.test")))[0]
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5")
    assert "certificate verify failed" in r["text"]
    assert sink.messages == [] and "retry=plaintext" not in mta_log(env)


def test_pipelining_peer_gets_every_recipient(env):
    sink = SmtpSink("127.0.0.5", env["port"], env["root"])
    env["peers"].append(sink)
    q = start_mta(env)
    rcpts = [f"user{i}@pipe.test" for i in range(5)]
    job = q.send_job(rcpts, "pipe.test", body=BODY)
    results = by_index(q.result(job))
    assert sorted(results) == list(range(5))
    assert all(r["status"] == rp.DELIVERED for r in results.values())
    wait_for(lambda: sink.dumps(), 5, what="smtp-sink dump")
    [dump] = sink.dumps()
    for a in rcpts:
        assert f"<{a}>".encode() in dump
    assert BODY.replace(b"\r\n", b"\n") in dump   # smtp-sink stores LF line ends


def test_per_recipient_verdicts_keep_the_remote_text(env):
    sink = aio(env, "127.0.0.4")
    sink.handler.rcpt_reply["gone@tls.test"] = "550 5.1.1 <gone@tls.test>: no such user here"
    sink.handler.rcpt_reply["full@tls.test"] = "452 4.2.2 mailbox full, come back later"
    q = start_mta(env)
    job = q.send_job(["ok@tls.test", "gone@tls.test", "full@tls.test"], "tls.test")
    res = by_index(q.result(job))
    assert res[0]["status"] == rp.DELIVERED
    assert (res[1]["status"], res[1]["dsn_status"]) == (rp.PERMFAIL, "5.1.1")
    assert res[1]["text"] == "550 5.1.1 <gone@tls.test>: no such user here"
    assert res[1]["remote_mta"] == "mx.tls.test"
    assert (res[2]["status"], res[2]["dsn_status"]) == (rp.TEMPFAIL, "4.2.2")
    assert "mailbox full" in res[2]["text"]
    assert [m["rcpt_tos"] for m in sink.messages] == [["ok@tls.test"]]
    log = mta_log(env)
    assert "event=bounced" in log and "to=gone@tls.test" in log and "event=deferred" in log


def test_first_mx_refuses_connection_second_accepts(env):
    sink = aio(env, "127.0.0.3")      # mx1 (127.0.0.2) has nothing listening
    q = start_mta(env)
    job = q.send_job(["bob@remote.test"], "remote.test")
    r = by_index(q.result(job))[0]
    assert (r["status"], r["remote_mta"]) == (rp.DELIVERED, "mx2.remote.test")
    assert len(sink.messages) == 1
    assert "relay=mx1.remote.test[127.0.0.2]" in mta_log(env)   # it was tried first


def test_4xx_greeting_moves_on_to_the_next_mx(env):
    busy = SmtpSink("127.0.0.7", env["port"], env["root"], "-Q", "CONNECT")   # 421 at once
    env["peers"].append(busy)
    sink = aio(env, "127.0.0.3")
    q = start_mta(env)
    job = q.send_job(["bob@greet.test"], "greet.test")
    r = by_index(q.result(job))[0]
    assert (r["status"], r["remote_mta"]) == (rp.DELIVERED, "mx2.greet.test")
    assert len(sink.messages) == 1
    assert "421" in mta_log(env)


def test_all_mx_temporary_is_deferred_with_the_last_reason(env):
    busy = SmtpSink("127.0.0.4", env["port"], env["root"], "-r", "RCPT")   # 4xx to every RCPT
    env["peers"].append(busy)
    q = start_mta(env)
    job = q.send_job(["a@tls.test", "b@tls.test"], "tls.test")
    for r in q.result(job)["results"]:
        assert r["status"] == rp.TEMPFAIL and r["text"].startswith("450")


def test_data_451_then_250_on_the_next_job(env):
    sink = aio(env, "127.0.0.4")
    sink.handler.data_replies.append("451 4.3.0 try again later")
    q = start_mta(env)
    first = by_index(q.result(q.send_job(["bob@tls.test"], "tls.test")))[0]
    assert (first["status"], first["dsn_status"], first["text"]) == (rp.TEMPFAIL, "4.3.0", "451 4.3.0 try again later")
    second = by_index(q.result(q.send_job(["bob@tls.test"], "tls.test")))[0]
    assert second["status"] == rp.DELIVERED and len(sink.messages) == 1


def test_dns_verdicts_apply_to_all_recipients_without_connecting(env):
    q = start_mta(env)
    cases = {"nullmx.test": (rp.PERMFAIL, "5.1.10"), "nowhere.test": (rp.PERMFAIL, "5.1.2"),
             "dnsdead.test": (rp.TEMPFAIL, "4.4.3")}
    jobs = {q.send_job([f"a@{d}", f"b@{d}"], d, queue_id=f"{0xB0 + i:016X}"): (d, want)
            for i, (d, want) in enumerate(cases.items())}
    for job, (domain, want) in jobs.items():
        results = q.result(job)["results"]
        assert len(results) == 2
        for r in results:
            assert (r["status"], r["dsn_status"]) == want, (domain, r)
            assert r["remote_mta"] == ""
    log = mta_log(env)
    assert "event=connecting" not in log
    assert log.count("relay=none") == 6          # one verdict line per recipient, no relay


def test_address_literal_needs_no_dns(env):
    sink = aio(env, "127.0.0.3")
    q = start_mta(env)
    r = by_index(q.result(q.send_job(["bob@[127.0.0.3]"], "[127.0.0.3]")))[0]
    assert r["status"] == rp.DELIVERED and sink.messages[0]["rcpt_tos"] == ["bob@[127.0.0.3]"]


class HostileServer:
    """Greets with a reply line that never ends."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.sendall(b"220-" + b"A" * 100000)
                time.sleep(1)
            except OSError:
                pass
            conn.close()

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


def test_hostile_server_is_cut_off_and_the_mta_goes_on(env):
    env["peers"].append(HostileServer("127.0.0.6", env["port"]))
    sink = aio(env, "127.0.0.4")
    q = start_mta(env)
    bad = by_index(q.result(q.send_job(["x@hostile.test"], "hostile.test")))[0]
    assert bad["status"] == rp.TEMPFAIL and "too long" in bad["text"]
    good = by_index(q.result(q.send_job(["y@tls.test"], "tls.test")))[0]
    assert good["status"] == rp.DELIVERED and len(sink.messages) == 1
    assert env["pm"].procs["mta"].poll() is None


def test_per_domain_limit_without_blocking_other_domains(env):
    slow = SmtpSink("127.0.0.8", env["port"], env["root"], "-w", "1")   # 1 s before answering DATA
    env["peers"].append(slow)
    aio(env, "127.0.0.4")
    q = start_mta(env, max_per_domain=2, max_concurrency=10)
    assert q.credits[0]["credits"] == 10 and q.credits[0]["kind"] == rp.WORKER_MTA
    assert q.credits[0]["worker_name"].startswith("mta-")
    t0 = time.monotonic()
    slow_jobs = [q.send_job([f"u{i}@slow.test"], "slow.test") for i in range(6)]
    fast = q.send_job(["v@tls.test"], "tls.test")
    assert by_index(q.result(fast))[0]["status"] == rp.DELIVERED
    # Judged by order: the other domain's result comes before any slow.test job is done (each
    # takes at least 1 s), not after a first pair of them.
    assert not set(slow_jobs) & set(q.results), "another domain waited behind slow.test"
    for job in slow_jobs:
        assert by_index(q.result(job))[0]["status"] == rp.DELIVERED
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.8, f"6 jobs, 2 at a time, 1 s each took only {elapsed:.1f}s"
    assert elapsed < 8


def test_result_is_kept_while_the_queue_is_away(env):
    slow = SmtpSink("127.0.0.8", env["port"], env["root"], "-w", "2")
    env["peers"].append(slow)
    q = start_mta(env)
    job = q.send_job(["x@slow.test"], "slow.test", queue_id="00000000000000D1")
    wait_for(lambda: "event=connecting id=00000000000000D1" in mta_log(env), 10, what="connection")
    q.close()                                   # the queue goes away mid-delivery ...
    wait_for(lambda: "event=result_held id=00000000000000D1" in mta_log(env), 15, what="held result")
    back = Dispatcher(env["pm"])                 # ... and comes back
    env["queue"] = back
    r = by_index(back.result(job, timeout=15))[0]
    assert r["status"] == rp.DELIVERED
    assert back.credits, "the mta announced itself to the returning queue"


def test_heartbeat_credit_and_clean_shutdown_hands_the_job_back(env):
    slow = SmtpSink("127.0.0.8", env["port"], env["root"], "-w", "30")
    env["peers"].append(slow)
    q = start_mta(env)
    n0 = len(q.credits)
    wait_for(lambda: q.pump() or len(q.credits) >= n0 + 2, 7, what="two heartbeats")
    job = q.send_job(["stuck@slow.test"], "slow.test", queue_id="00000000000000C1")
    wait_for(lambda: "event=connecting id=00000000000000C1" in mta_log(env), 10, what="connection")
    time.sleep(0.5)
    assert env["pm"].stop("mta", signal.SIGTERM) == 0
    r = by_index(q.result(job, timeout=5))[0]
    assert (r["status"], r["dsn_status"]) == (rp.RETURNED, "4.3.2")


def test_job_held_back_by_its_domain_limit_is_returned_before_its_lease_is_half_gone(env):
    """A job waiting for a slot of a busy domain goes back to the queue (RETURNED: no attempt
    counted) once half its lease is gone, rather than start a delivery cut short by its lease."""
    slow = SmtpSink("127.0.0.8", env["port"], env["root"], "-w", "30")   # DATA never answered in time
    env["peers"].append(slow)
    q = start_mta(env, max_per_domain=1, max_concurrency=10)
    busy = q.send_job(["a@slow.test"], "slow.test", queue_id="00000000000000E1")
    wait_for(lambda: "event=connecting id=00000000000000E1" in mta_log(env), 10, what="connection")
    t0 = time.monotonic()
    held = q.send_job(["b@slow.test"], "slow.test", queue_id="00000000000000E2", lease=4)
    r = by_index(q.result(held, timeout=4))[0]
    took = time.monotonic() - t0
    assert r["status"] == rp.RETURNED and "waited too long" in r["text"], r
    assert 1.5 <= took < 3.8, f"returned after {took:.1f}s, lease 4 s"
    assert busy not in q.results, "the running delivery is not touched"
    assert "event=connecting id=00000000000000E2" not in mta_log(env)
