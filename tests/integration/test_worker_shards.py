"""Workers across queue shards: two postmesh-queue processes on loopback, each with its own
state_dir (its own LMDB) and its own listen endpoints, one delivery and one mta configured
with both (queue.endpoint and queue.control as lists). Mail submitted to each shard directly
(a bus client with smtpd's key) is delivered from both, locally and to an aiosmtpd peer;
with one shard killed the workers go on delivering the other's mail; restarted, the killed
shard's pending mail is delivered too. Every message arrives exactly once."""
import copy
import itertools
import signal
import subprocess
import time
from pathlib import Path

import pytest
import zmq

import bus_wire as wire
from conftest import BIN, free_port, to_libconfig, wait_for
from remote_peers import AioSink

PEER = "127.0.0.6"
_rid = itertools.count(1)


def launch(pm, name, svc, conf):
    log_path = pm.root / f"{name}.log"
    pm.logs[name] = log_path
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as logf:
        pm.procs[name] = subprocess.Popen([*getattr(pm, "exec_prefix", []), str(BIN / f"postmesh-{svc}"), "-c",
                                           str(conf)], stdout=logf, stderr=subprocess.STDOUT, cwd=pm.root)
    pm.wait_started(name, offset, timeout=15)


class Shard:
    """One queue shard: its config (the common one plus its own state_dir and binds)."""

    def __init__(self, pm, name, endpoint, control):
        self.pm, self.name, self.endpoint = pm, name, endpoint
        settings = copy.deepcopy(pm.settings)
        state = pm.root / f"{name}-state"
        state.mkdir(exist_ok=True)
        settings["state_dir"] = str(state)
        settings.setdefault("bus", {})["keys_dir"] = str(pm.state / "keys")   # one set of keys
        settings["queue"].update(listen=endpoint, control_listen=control)
        self.conf = pm.root / f"{name}.conf"
        self.conf.write_text("".join(f"{k} = {to_libconfig(v)};\n" for k, v in settings.items()))

    def start(self):
        launch(self.pm, self.name, "queue", self.conf)

    def log(self):
        return self.pm.log(self.name)

    def removed(self, qid):
        return f"event=removed id={qid}" in self.log()

    def joined(self, kind):
        return sum(1 for line in self.log().splitlines() if "event=worker_joined" in line and f"kind={kind}" in line)


class Submitter:
    """What smtpd does, to one shard: a DEALER with smtpd's key, Submit, wait for COMMITTED."""

    def __init__(self, pm, ctx, endpoint):
        keys = pm.state / "keys"
        pub, sec = (keys / "smtpd.key").read_text().split()[:2]
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.curve_publickey, self.sock.curve_secretkey = pub.encode(), sec.encode()
        self.sock.curve_serverkey = (keys / "queue.pub").read_text().strip().encode()
        self.sock.connect(endpoint)

    def submit(self, rcpt, subject):
        rid = next(_rid)
        body = f"From: alice@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nhello\r\n"
        self.sock.send(wire.submit(rid, "alice@example.test", rcpt, body))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.sock.poll(200):
                reply = wire.parse_submit_reply(wire.decode(self.sock.recv()))
                if reply and reply[0] == rid:
                    assert reply[1] == wire.COMMITTED and reply[2], reply
                    return reply[2]
        raise AssertionError(f"no commit for {subject}")


@pytest.fixture
def rig(pm, tmp_path):
    port = free_port(PEER)
    sink = AioSink(PEER, port, tmp_path)
    ctx = zmq.Context()
    ea, eb = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    ca, cb = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    pm.add_user("alice@example.test")
    pm.configure(trusted_networks=["127.0.0.0/8"],
                 queue={"endpoint": [ea, eb], "control": [ca, cb], "job_lease": 600, "retry_min": 1,
                        "retry_max": 2},
                 mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 20})
    pm.ensure_keys()
    shards = [Shard(pm, "queue-a", ea, ca), Shard(pm, "queue-b", eb, cb)]
    try:
        yield {"pm": pm, "sink": sink, "shards": shards, "ctx": ctx}
    finally:
        pm.stop_all()
        sink.stop()
        ctx.destroy(linger=0)


def local_copies(pm):
    new = Path(pm.settings["state_dir"]) / "mail" / "example.test" / "alice" / "Maildir" / "new"
    return sorted(p.name for p in new.glob("*")) if new.exists() else []


def remote_subjects(sink):
    return [m["content"].split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in sink.messages]


def test_workers_deliver_from_every_shard_and_ride_out_one_going_away(rig):
    pm, sink, (a, b), ctx = rig["pm"], rig["sink"], rig["shards"], rig["ctx"]
    a.start()
    b.start()
    pm.start("delivery", "mta")
    for shard in (a, b):
        wait_for(lambda: shard.joined("delivery") and shard.joined("mta"), 10, what=f"both workers at {shard.name}")
    assert "shards=2" in pm.log("mta") and "shards=2" in pm.log("delivery")
    to_a, to_b = Submitter(pm, ctx, a.endpoint), Submitter(pm, ctx, b.endpoint)

    # Both shards' mail is delivered, local and remote.
    qids = {a: [to_a.submit("alice@example.test", "a-local-1"), to_a.submit(f"bob@[{PEER}]", "a-remote-1")],
            b: [to_b.submit("alice@example.test", "b-local-1"), to_b.submit(f"bob@[{PEER}]", "b-remote-1")]}
    for shard, ids in qids.items():
        for qid in ids:
            wait_for(lambda: shard.removed(qid), 15, what=f"{qid} delivered from {shard.name}")
    assert sorted(remote_subjects(sink)) == ["a-remote-1", "b-remote-1"]
    assert len(local_copies(pm)) == 2

    # Mail on shard b that cannot go yet (the peer says 451), then shard b dies.
    sink.handler.rcpt_reply[f"carol@[{PEER}]"] = "451 4.7.1 later"
    pending = to_b.submit(f"carol@[{PEER}]", "b-pending")
    wait_for(lambda: f"event=rcpt_deferred id={pending}" in b.log(), 10, what="the deferral on shard b")
    pm.kill("queue-b")

    # Shard a's mail keeps flowing, with the workers' half to shard b gone.
    t0 = time.monotonic()
    more = [to_a.submit("alice@example.test", "a-local-2"), to_a.submit(f"bob@[{PEER}]", "a-remote-2")]
    for qid in more:
        wait_for(lambda: a.removed(qid), 10, what=f"{qid} delivered from shard a while b is down")
    assert time.monotonic() - t0 < 10
    assert "a-remote-2" in remote_subjects(sink) and len(local_copies(pm)) == 3

    # Shard b comes back with its store: the workers find it again and its mail goes out.
    del sink.handler.rcpt_reply[f"carol@[{PEER}]"]
    b.start()
    wait_for(lambda: b.log().count("event=worker_joined") >= 4, 15, what="the workers back at shard b")
    wait_for(lambda: b.removed(pending), 15, what="shard b's pending mail delivered after its restart")
    late = to_b.submit("alice@example.test", "b-local-2")
    wait_for(lambda: b.removed(late), 10, what="new mail on the restarted shard b")

    subjects = remote_subjects(sink)
    assert sorted(subjects) == ["a-remote-1", "a-remote-2", "b-pending", "b-remote-1"], subjects
    assert len(local_copies(pm)) == 4
    assert pm.procs["mta"].poll() is None and pm.procs["delivery"].poll() is None
