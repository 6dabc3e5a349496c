"""Fault injection: nothing acknowledged is lost, whatever restarts.

The whole set runs under `postmesh run` with a real sink (aiosmtpd on 127.0.0.2, found
through dnsmasq MX records) and local Maildirs. Clients send a bounded mix of local,
remote, mixed and partly refused mail and retry on any temporary failure like an MTA, while
every service in turn is SIGKILLed at a random moment (the privsep ones as a whole process
group, their sandbox alone, or their parent) and restarted by the supervisor. Afterwards
(fault_load.verify): every message that got a 250 is in each local mailbox exactly once
(more only if an earlier attempt of the client was uncertain), at the sink at least once,
its refused recipient bounced to the sender; nothing arrived that no attempt completed;
every 250's queue id is the file that was delivered, and the queue logged its end.

The short run is part of `make test`; POSTMESH_TEST_LONG=1 (`make test-long`) runs the long
one (more mail, every service killed several times) FAULT_REPEAT times (default 5).
FAULT_SEED fixes the random choices (the seed is printed).

Also, each on its own: a queue restart while jobs are out (a stale result must never mark
another message delivered), the resolver down (remote mail deferred, then delivered), and
the queue down or hung (smtpd answers 451 within submit_timeout and recovers by itself).
"""
import asyncio
import os
import random
import re
import signal
import smtplib
import time

import pytest

from conftest import BIN, wait_for
from fault_load import (SERVICES, Clients, Killer, PopReader, Rig, alive, kill_schedule,
                        plan, pop_stat, queue_log_problems, unexpected_exits, verify, wait_queue_empty)
from pop3_helpers import add_user, make_tls_pair, messages
from remote_peers import AioSink, Dnsmasq, common_port

pytestmark = pytest.mark.skipif(not all((BIN / f"postmesh-{s}").exists() for s in SERVICES),
                                reason="needs every service binary")

LONG = os.environ.get("POSTMESH_TEST_LONG") == "1"
SHORT_RUN = dict(messages=300, clients=8, window=24.0, rounds=1, burst=24, drain=45)
LONG_RUN = dict(messages=2000, clients=12, window=150.0, rounds=3, burst=40, drain=120)
REPEAT = int(os.environ.get("FAULT_REPEAT", "5")) if LONG else 1


def evidence(run_log, qids, limit=12):
    """The log lines about these queue ids, for the failure message."""
    out = []
    for q in qids:
        lines = [ln for ln in run_log.splitlines() if f"id={q}" in ln]
        out.append(f"--- {q}\n" + "\n".join(lines[-limit:]))
    return "\n".join(out)


@pytest.fixture
def rig(pm):
    r = Rig(pm)
    yield r
    r.close()


@pytest.mark.parametrize("repeat", range(REPEAT))
def test_kill_every_service_under_load(pm, rig, repeat):
    params = LONG_RUN if LONG else SHORT_RUN
    seed = int(os.environ.get("FAULT_SEED", "0")) or random.randrange(1, 1 << 30)
    rng = random.Random(seed + repeat)
    notes = []

    def say(line):
        notes.append(line)
        print(line, flush=True)
    say(f"faults: seed={seed + repeat} long={LONG} {params}")

    sv = rig.supervisor
    sv.start()
    schedule = kill_schedule(rng, params["rounds"], window=params["window"])
    nbursts = sum(svc in ("queue", "smtpd") for _a, svc, _m in schedule)
    msgs = plan(params["messages"] + nbursts * params["burst"], rig.users, f"{seed}-{repeat}", rng)
    window = params["window"]
    clients = Clients(pm.port("smtp"), msgs[:params["messages"]], params["clients"], window,
                      deadline=time.monotonic() + window + 60, rng=rng, reserve=msgs[params["messages"]:])
    pop = PopReader(pm.port("pop3"), rig.users, clients.stop, max_seconds=window + 200)
    rig.stops.append(clients.stop)
    clients.start()
    killer = Killer(sv, schedule, clients.t0, say, clients=clients, burst_size=params["burst"], rng=rng)
    killer.start()
    pop.start()
    killer.join(window + 120)
    assert not killer.is_alive(), "the killer is stuck"
    assert not killer.errors, f"a service did not come back: {killer.errors}\n{sv.log()[-6000:]}"
    assert clients.join(window + 120), "clients still running"
    clients.stop.set()
    pop.join(20)
    assert not clients.errors, clients.errors
    assert len(killer.kills) == len(schedule)

    leftover = wait_queue_empty(pm, sv, params["drain"])
    run_log = sv.log()
    exits = unexpected_exits(run_log, killer.kills)

    # Everything the queue finished is where it belongs by now; give the last files and the
    # sink a moment, then judge.
    try:
        wait_for(lambda: not verify(msgs, pm, rig.users, rig.sink, killer.kills)[0], 10, interval=0.5,
                 what="every promise")
    except AssertionError:
        pass
    problems, stats = verify(msgs, pm, rig.users, rig.sink, killer.kills)
    problems += queue_log_problems(run_log, msgs)
    summary = (f"faults: messages={stats['messages']} acked={stats['acked']} attempts={stats['attempts']} "
               f"uncertain={stats['maybe_attempts']} local_expected={stats['local_expected']} "
               f"local_copies={stats['local_copies']} local_duplicates={stats['local_duplicates']} "
               f"orphans={stats['orphans']} remote_expected={stats['remote_expected']} "
               f"remote_copies={stats['remote_copies']} remote_duplicates={stats['remote_duplicates']} "
               f"dsn_expected={stats['dsn_expected']} dsns={stats['dsns']} kills={len(killer.kills)} "
               f"pop_sessions_ok={pop.ok} pop_failed={pop.failed}")
    say(summary)
    say("faults: kills " + ", ".join(f"{svc}/{mode}({rec:.1f}s)" for (_t, svc, mode, _p, rec) in killer.kills))
    if problems or leftover:
        qids = list(dict.fromkeys(q for p in problems for q in re.findall(r"\b[0-9A-F]{16}\b", p)))[:6]
        kills = [n for n in notes if n.startswith("kill ")]
        pytest.fail(f"{len(problems)} broken promises (seed {seed + repeat}):\n" + "\n".join(problems[:30]) +
                    (f"\nqueue not empty after {params['drain']}s:\n{leftover[:3000]}" if leftover else "") +
                    f"\n{summary}\nkills: {kills}\nunexpected exits: {exits}\n" + evidence(run_log, qids))
    assert not exits, exits
    assert stats["acked"] == stats["messages"]

    # Every service is up, and POP3 shows each mailbox as it is on disk.
    for svc in SERVICES:
        assert alive(sv.pid(svc)), f"{svc} is not running"
    for user in rig.users:
        on_disk = len(messages(pm, user))
        wait_for(lambda: pop_stat(pm.port("pop3"), user) == on_disk, 20, interval=0.5,
                 what=f"POP3 to show {on_disk} messages for {user}")


# ---------------------------------------------------------------------------- queue restart

class HoldingHandler:
    """aiosmtpd handler: DATA for a held recipient is answered only once the test releases
    it (then 250, or the scripted reply); every other recipient's DATA gets 250 at once."""

    def __init__(self):
        self.loop = None
        self.gates = {}        # address -> asyncio.Event
        self.replies = {}      # address -> final reply when released
        self.arrived = []      # (rcpt, message-id) of every DATA begun
        self.accepted = []     # (rcpt, message-id) answered 250

    def gate(self, address, reply="250 2.0.0 Ok"):
        self.replies[address] = reply
        self.gates[address] = None

    def release(self, address):
        def go():
            ev = self.gates.get(address)
            if ev is None:
                ev = self.gates[address] = asyncio.Event()
            ev.set()
        self.loop.call_soon_threadsafe(go)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.loop = asyncio.get_running_loop()
        m = re.search(rb"^Message-ID:\s*<([^>]+)>", envelope.original_content or envelope.content, re.M | re.I)
        mid = m.group(1).decode() if m else None
        rcpt = envelope.rcpt_tos[0]
        self.arrived.append((rcpt, mid))
        if rcpt in self.gates:
            ev = self.gates[rcpt]
            if ev is None:
                ev = self.gates[rcpt] = asyncio.Event()
            await ev.wait()
            reply = self.replies[rcpt]
        else:
            reply = "250 2.0.0 Ok"
        if reply.startswith("250"):
            self.accepted.append((rcpt, mid))
        return reply


def send(pm, sender, rcpts, msgid, subject="t"):
    body = (f"From: <{sender}>\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n\r\nhello\r\n").encode()
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.test")
        s.mail(sender)
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(body)
        assert code == 250, resp
        return resp.decode().rsplit(" ", 1)[-1]


def test_stale_results_from_before_a_queue_restart_touch_no_other_message(pm, tmp_path):
    """A message's MX holds its DATA reply while the queue restarts; the new queue numbers its
    jobs afresh and has a different message out under the number the old job had. When the
    MX answers, the mta's result for the old job reaches the new queue: it must not mark the
    other message (whose MX never accepted it) delivered; the held one is delivered or retried,
    never removed undelivered."""
    from aiosmtpd.controller import Controller
    port = common_port("127.0.0.2")
    dns = Dnsmasq(tmp_path, ["--mx-host=hold.test,mx.hold.test,10", "--host-record=mx.hold.test,127.0.0.2",
                             "--mx-host=stuck.test,mx.stuck.test,10", "--host-record=mx.stuck.test,127.0.0.2"])
    handler = HoldingHandler()
    ctl = Controller(handler, hostname="127.0.0.2", port=port, decode_data=False, ready_timeout=10)
    ctl.start()
    try:
        add_user(pm, "alice@example.test", "pw")
        cert, key = make_tls_pair(pm.root)
        pm.configure(trusted_networks=["127.0.0.0/8"], tls={"certificate": str(cert), "key": str(key)},
                     queue={"retry_min": 1, "retry_max": 2, "job_lease": 60, "max_lifetime": 3600},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 60})
        handler.gate("a@hold.test")                                   # 250 once released
        handler.gate("b@stuck.test", "451 4.3.0 not today")           # never accepted
        pm.start("queue", "resolver", "mta", "delivery", "smtpd", timeout=20)

        # Old queue: X (local, done) uses one job number, A the next; A's DATA is held.
        x = send(pm, "alice@example.test", ["alice@example.test"], "x@client.test")
        wait_for(lambda: f"event=removed id={x}" in pm.log("queue"), 20, what="X delivered and removed")
        a = send(pm, "alice@example.test", ["a@hold.test"], "a@client.test")
        wait_for(lambda: ("a@hold.test", "a@client.test") in handler.arrived, 20, what="A's DATA at the MX")
        old_jobs = re.findall(rf"event=dispatch id={a} job=(\S+)", pm.log("queue"))

        # The queue restarts; A is dispatched again (the MX holds that copy too), then B,
        # whose MX will only ever say 451, under the number A's old job had.
        pm.kill("queue")
        offset = len(pm.log("queue"))
        pm.start("queue")
        wait_for(lambda: f"event=dispatch id={a}" in pm.log("queue")[offset:], 20, what="A dispatched again")
        b = send(pm, "alice@example.test", ["b@stuck.test"], "b@client.test")
        wait_for(lambda: ("b@stuck.test", "b@client.test") in handler.arrived, 20, what="B's DATA at the MX")
        new_log = pm.log("queue")[offset:]
        new_b_jobs = re.findall(rf"event=dispatch id={b} job=(\S+)", new_log)
        print(f"A={a} old jobs {old_jobs}; B={b} new jobs {new_b_jobs}")

        # The MX accepts A (both sessions): the old job's result and the new one's go back.
        handler.release("a@hold.test")
        wait_for(lambda: len(re.findall(rf"event=delivered id={a} ", pm.log("mta"))) >= 2, 30,
                 what="the mta's two deliveries of A")
        # Then B's MX says 451. The mta sends B's result after A's two, the queue applies them
        # in that order: once B's own result shows in the log, A's stale one was handled.
        handler.release("b@stuck.test")
        wait_for(lambda: re.search(rf"event=(rcpt_deferred|stale_result \S+) id={b}", pm.log("queue")[offset:]), 30,
                 what="B's result at the queue")
        log = pm.log("queue")[offset:]
        about = "\n".join(ln for ln in log.splitlines() if f"id={b}" in ln or f"id={a}" in ln or "stale" in ln)
        if f"event=rcpt_delivered id={b}" in log or f"event=removed id={b}" in log:
            pytest.fail(f"B ({b}), never accepted by its MX, was marked delivered or removed after the queue "
                        f"restart (old jobs of A {old_jobs}, new jobs of B {new_b_jobs}):\n{about}")
        assert f"event=rcpt_deferred id={b}" in log, about
        listed = {row["id"] for row in pm.queue_list()}
        assert b in listed, f"B vanished: {listed}\n{log}"
        assert ("b@stuck.test", "b@client.test") not in handler.accepted
        wait_for(lambda: a not in {row["id"] for row in pm.queue_list()}, 30, what="A to leave the queue")
        assert ("a@hold.test", "a@client.test") in handler.accepted
        assert f"event=removed id={a}" in pm.log("queue")[offset:]
    finally:
        pm.stop_all()
        ctl.stop()
        dns.stop()


# ---------------------------------------------------------------------------- resolver down

def test_resolver_down_defers_remote_mail_then_delivers_it(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ["--mx-host=remote.test,mx.remote.test,10", "--host-record=mx.remote.test,127.0.0.2"])
    port = common_port("127.0.0.2")
    sink = AioSink("127.0.0.2", port, tmp_path)
    try:
        add_user(pm, "alice@example.test", "pw")
        cert, key = make_tls_pair(pm.root)
        # retry_min long: only the flush may bring the retry forward
        pm.configure(trusted_networks=["127.0.0.0/8"], tls={"certificate": str(cert), "key": str(key)},
                     queue={"retry_min": 300, "retry_max": 600, "job_lease": 30, "max_lifetime": 3600},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10})
        pm.start("queue", "resolver", "mta", "delivery", "bouncer", "smtpd", timeout=20)
        pm.stop("resolver", signal.SIGKILL)
        t0 = time.monotonic()
        q = send(pm, "alice@example.test", ["bob@remote.test"], "resolver-down@client.test")
        wait_for(lambda: f"event=rcpt_deferred id={q}" in pm.log("queue"), 30,
                 what="a deferral while the resolver is down")
        took = time.monotonic() - t0
        line = next(ln for ln in pm.log("queue").splitlines() if f"event=rcpt_deferred id={q}" in ln)
        assert re.search(r"dsn=4\.", line), line
        assert not sink.messages
        assert q in {row["id"] for row in pm.queue_list()}
        assert f"event=bounced id={q}" not in pm.log("queue")
        assert messages(pm, "alice@example.test") == []       # no bounce, no delay notice
        print(f"deferred after {took:.1f}s: {line}")

        pm.start("resolver")
        pm.cli("queue", "flush")
        wait_for(lambda: sink.messages, 30, what="delivery once the resolver is back")
        assert sink.messages[0]["rcpt_tos"] == ["bob@remote.test"]
        wait_for(lambda: q not in {row["id"] for row in pm.queue_list()}, 20, what="the queue to finish it")
        assert messages(pm, "alice@example.test") == []
    finally:
        pm.stop_all()
        sink.stop()
        dns.stop()


# ---------------------------------------------------------------------------- queue down

def smtp_once(pm, msgid, timeout=30):
    """(code of the DATA reply, seconds from the final dot to that reply)."""
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=timeout) as s:
        s.ehlo("client.test")
        assert s.mail("sender@client.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        s.putcmd("data")
        assert s.getreply()[0] == 354
        s.send(f"Subject: q\r\nMessage-ID: <{msgid}>\r\n\r\nhi\r\n.\r\n".encode())
        t0 = time.monotonic()
        code, resp = s.getreply()
        return code, resp, time.monotonic() - t0


def test_queue_down_or_hung_gets_451_within_submit_timeout_and_smtpd_recovers(pm):
    add_user(pm, "alice@example.test", "pw")
    pm.configure(smtpd={"submit_timeout": 4}, queue={"retry_min": 1, "retry_max": 2})
    pm.start("queue", "delivery", "smtpd", timeout=20)
    smtpd_pid = pm.procs["smtpd"].pid
    sandboxes_before = pm.log("smtpd").count("event=sandbox_started")
    assert sandboxes_before > 0
    code, _, _ = smtp_once(pm, "before@client.test")
    assert code == 250

    # Queue gone: 451 (the bus has no peer), well within submit_timeout.
    pm.kill("queue")
    code, resp, took = smtp_once(pm, "down@client.test")
    assert code == 451 and b"4.3." in resp, (code, resp)
    assert took <= 4 + 1.5, took

    # Queue there but hung (SIGSTOP): the submission goes out and no reply comes: 451 at
    # submit_timeout, not a hang and not a 250.
    pm.start("queue")
    code, _, _ = smtp_once(pm, "back1@client.test")
    assert code == 250
    os.kill(pm.procs["queue"].pid, signal.SIGSTOP)
    try:
        code, resp, took = smtp_once(pm, "hung@client.test")
    finally:
        os.kill(pm.procs["queue"].pid, signal.SIGCONT)
    assert code == 451 and b"4.3." in resp, (code, resp)
    assert 3.0 <= took <= 4 + 1.5, took

    # The same smtpd process (and sandbox) serves again, and the mail is delivered.
    code, resp, _ = smtp_once(pm, "after@client.test")
    assert code == 250, resp
    assert pm.procs["smtpd"].poll() is None and pm.procs["smtpd"].pid == smtpd_pid
    assert pm.log("smtpd").count("event=sandbox_started") == sandboxes_before, pm.log("smtpd")

    def delivered(mid):
        return sum(mid.encode() in p.read_bytes() for p in messages(pm, "alice@example.test"))
    wait_for(lambda: delivered("after@client.test") == 1 and delivered("back1@client.test") == 1
             and delivered("before@client.test") == 1, 20, what="the acknowledged mail delivered")
    assert delivered("down@client.test") == 0        # never reached any queue
    # "hung" got 451; the queue may still have committed it once it woke: at most one copy
    assert delivered("hung@client.test") <= 1
