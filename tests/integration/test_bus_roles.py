"""Roles on the bus, against a real postmesh-queue and postmesh-resolver: every admitted key
speaks only as the role its file name gives it (smtpd and bouncer submit, a worker takes and
answers jobs of its own kind, only cli reaches control); a replica's own key is revoked by
deleting its .pub, even on a connection that is already up; keys load through symlinks as a
Kubernetes Secret presents them, but not from files others may write; oversized frames are
refused before they are buffered, authenticated or not. The clients are pyzmq sockets
speaking real BusMessages (bus_wire.py)."""
import os
import re
import shutil
import socket
import stat
import struct
import time
from pathlib import Path

import pytest
import zmq

import bus_wire as wire
from conftest import wait_for

BODY = b"Subject: roles\r\n\r\nhello\r\n"


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def keypair(keys, name):
    pub, sec = (keys / f"{name}.key").read_text().split()[:2]
    return pub.encode(), sec.encode()


def dealer(zctx, endpoint, server_pub, pair):
    s = zctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_publickey, s.curve_secretkey = pair
    s.curve_serverkey = server_pub
    s.connect(endpoint)
    return s


def recv(sock, timeout_ms):
    return wire.decode(sock.recv()) if sock.poll(timeout_ms) else None


def ping(sock, rid):
    """The queue answers a Ping after everything it sent this peer before: a barrier."""
    sock.send(wire.ping(rid))
    deadline = time.monotonic() + 10
    seen = []
    while time.monotonic() < deadline:
        fields = recv(sock, 200)
        if fields is None:
            continue
        if wire.PING in fields and wire.first(fields, 2) == rid:
            return seen
        seen.append(fields)
    raise AssertionError("no answer to the ping")


def submit_frame(rid, sender="bob@example.net", rcpt="alice@example.test", dsn=False):
    inner = wire.field_bytes(1, sender) + wire.field_bytes(2, rcpt) + wire.field_bytes(3, BODY) \
        + wire.field_bytes(4, "local")
    if dsn:
        inner += wire.field_int(7, 1)
    return wire.bus_message(rid, wire.SUBMIT, inner)


def submitted(sock, rid):
    fields = recv(sock, 10000)
    assert fields is not None and wire.first(fields, 2) == rid, fields
    reply = wire.parse_submit_reply(fields)
    return reply[1], reply[2]


def refusals(pm):
    return re.findall(r"event=bus_refused .*", pm.log("queue"))


def wait_refused(pm, before, pattern):
    wait_for(lambda: any(re.search(pattern, line) for line in refusals(pm)[before:]), 10,
             what=f"a bus_refused line matching {pattern}")


def test_each_key_speaks_only_in_its_role(pm, zctx):
    pm.start("queue")
    keys = pm.state / "keys"
    qpub = (keys / "queue.pub").read_text().strip().encode()
    endpoint, control = pm.settings["queue"]["endpoint"], pm.settings["queue"]["control"]
    as_role = {r: dealer(zctx, endpoint, qpub, keypair(keys, r)) for r in
               ("smtpd", "mta", "delivery", "bouncer", "cli")}

    # smtpd submits: committed. A message now waits for a delivery worker.
    status, qid = submitted_ok = (as_role["smtpd"].send(submit_frame(1)), submitted(as_role["smtpd"], 1))[1]
    assert status == wire.COMMITTED and qid, submitted_ok

    n = len(refusals(pm))
    # The finding: smtpd's key announced credit as a delivery worker and got the body.
    as_role["smtpd"].send(wire.credit(wire.WORKER_DELIVERY, 5, "impostor"))
    wait_refused(pm, n, r"key=smtpd role=smtpd body=credit reason=role")
    assert not [f for f in ping(as_role["smtpd"], 2) if wire.JOB in f], "smtpd's key was given a job"
    # ... nor may it answer for a job, or reach control on either endpoint.
    as_role["smtpd"].send(wire.job_result(1, qid, [(0, wire.DELIVERED, "2.0.0", "forged")], kind=wire.WORKER_DELIVERY))
    wait_refused(pm, n, r"key=smtpd role=smtpd body=job_result reason=role")
    smtpd_on_control = dealer(zctx, control, qpub, keypair(keys, "smtpd"))
    smtpd_on_control.send(wire.control_status(3))
    wait_refused(pm, n, r"key=smtpd role=smtpd body=any reason=role")
    assert recv(smtpd_on_control, 300) is None
    # smtpd may not pass mail off as a DSN (that suppresses its bounces).
    as_role["smtpd"].send(submit_frame(4, sender="", dsn=True))
    wait_refused(pm, n, r"key=smtpd role=smtpd body=submit reason=dsn")

    # A worker speaks only for its own kind, and does not submit.
    as_role["mta"].send(wire.credit(wire.WORKER_DELIVERY, 5, "wrong-kind"))
    wait_refused(pm, n, r"key=mta role=mta body=credit reason=kind")
    assert not [f for f in ping(as_role["mta"], 5) if wire.JOB in f], "an mta was given a local job"
    as_role["delivery"].send(submit_frame(6))
    wait_refused(pm, n, r"key=delivery role=delivery body=submit reason=role")
    # The bouncer submits only DSNs with the null sender.
    as_role["bouncer"].send(submit_frame(7))
    wait_refused(pm, n, r"key=bouncer role=bouncer body=submit reason=dsn")
    # The CLI's key controls, it does not submit.
    as_role["cli"].send(submit_frame(8))
    wait_refused(pm, n, r"key=cli role=cli body=submit reason=role")

    # None of it changed anything: the message is still pending, and the real delivery key
    # (which was there all along) gets its job.
    assert [row["id"] for row in pm.queue_list()] == [qid]
    as_role["delivery"].send(wire.credit(wire.WORKER_DELIVERY, 1, "real", 0))
    fields = recv(as_role["delivery"], 10000)
    assert fields is not None and wire.JOB in fields, pm.log("queue")[-2000:]
    job = wire.parse_job(fields)
    assert job["queue_id"] == qid
    # It answers with another kind: refused; with its own: applied.
    as_role["delivery"].send(wire.job_result(job["job_id"], qid, [(0, wire.DELIVERED, "2.0.0", "x")],
                                             job["epoch"], wire.WORKER_MTA))
    wait_refused(pm, n, r"key=delivery role=delivery body=job_result reason=kind")
    assert [row["id"] for row in pm.queue_list()] == [qid]
    as_role["delivery"].send(wire.job_result(job["job_id"], qid, [(0, wire.DELIVERED, "2.0.0", "ok")],
                                             job["epoch"], wire.WORKER_DELIVERY))
    wait_for(lambda: pm.queue_list() == [], 10, what="the message delivered by the real worker")
    assert "messages=0" in pm.cli("status").stdout
    for s in (*as_role.values(), smtpd_on_control):
        s.close()


def test_a_replica_key_is_revoked_alone_even_on_a_live_connection(pm, zctx):
    pm.start("queue")
    keys = pm.state / "keys"
    pm.cli("keys", "add", "smtpd.r1")
    qpub = (keys / "queue.pub").read_text().strip().encode()
    endpoint = pm.settings["queue"]["endpoint"]
    replica = dealer(zctx, endpoint, qpub, keypair(keys, "smtpd.r1"))
    main = dealer(zctx, endpoint, qpub, keypair(keys, "smtpd"))
    replica.send(submit_frame(1))
    assert submitted(replica, 1)[0] == wire.COMMITTED

    (keys / "smtpd.r1.pub").unlink()
    n = len(refusals(pm))
    # Within the allowlist's periodic re-read (5 s), the same connection's submissions stop.
    deadline, rid = time.monotonic() + 15, 10
    while time.monotonic() < deadline:
        rid += 1
        replica.send(submit_frame(rid))
        if recv(replica, 500) is None and any("key=unlisted" in r for r in refusals(pm)[n:]):
            break
    else:
        raise AssertionError("the revoked key still submits:\n" + pm.log("queue")[-2000:])
    assert "event=bus_refused" in pm.log("queue")
    # The other smtpd key is untouched.
    main.send(submit_frame(99))
    assert submitted(main, 99)[0] == wire.COMMITTED
    replica.close()
    main.close()


def secret_volume(root, files):
    """A directory laid out as Kubernetes mounts a Secret: every name a symlink into ..data,
    itself a symlink to a timestamped directory."""
    vol = root / "secret-keys"
    real = vol / "..2026_12_01_00_00_00.000000000"
    real.mkdir(parents=True)
    for name, (text, mode) in files.items():
        (real / name).write_text(text)
        os.chmod(real / name, mode)
        (vol / name).symlink_to(Path("..data") / name)
    (vol / "..data").symlink_to(real.name)
    return vol


def test_keys_load_through_symlinks_but_not_from_files_others_may_write(pm, zctx):
    pm.write_config()
    pm.ensure_keys()
    keys = pm.state / "keys"
    intruder = zmq.curve_keypair()
    files = {f"{n}.{ext}": ((keys / f"{n}.{ext}").read_text(), 0o600 if ext == "key" else 0o644)
             for n in ("queue", "cli") for ext in ("key", "pub")}
    files["cli.intruder.pub"] = (intruder[0].decode() + "\n", 0o666)   # anyone could have written it
    vol = secret_volume(pm.root, files)
    pm.configure(bus={"keys_dir": str(vol)})
    pm.start("queue")
    log = pm.log("queue")
    # queue.key and cli.pub came through their symlinks: the CLI (its key a symlink too) works.
    assert re.search(r"event=bus_allowlist keys=2 ", log), log
    assert "messages=0" in pm.cli("status").stdout
    assert re.search(r"event=bus_key_skipped .*file=cli\.intruder\.pub .*mode=666", log), log
    # The writable file's key is refused at the handshake.
    s = dealer(zctx, pm.settings["queue"]["control"], files["queue.pub"][0].strip().encode(), intruder)
    s.send(wire.control_status(1))
    assert recv(s, 1000) is None
    wait_for(lambda: "event=bus_denied" in pm.log("queue"), 5, what="the intruder denied")
    s.close()


def test_each_service_needs_only_its_own_secret_key(pm):
    """As in containers: every service gets a keys directory holding its own .key and the
    public keys it needs, nothing else, and mail still flows smtpd -> queue -> delivery."""
    pm.write_config()
    pm.ensure_keys()
    keys = pm.state / "keys"
    need = {
        "queue": ["queue.key", "queue.pub", "smtpd.pub", "delivery.pub", "bouncer.pub", "mta.pub", "cli.pub"],
        "smtpd": ["smtpd.key", "smtpd.pub", "queue.pub", "resolver.pub"],
        "delivery": ["delivery.key", "delivery.pub", "queue.pub"],
        "cli": ["cli.key", "cli.pub", "queue.pub"],
    }
    confs = {}
    for svc, names in need.items():
        d = pm.root / f"keys-{svc}"
        d.mkdir(mode=0o755)
        for n in names:
            shutil.copy2(keys / n, d / n)
        pm.configure(bus={"keys_dir": str(d)})
        confs[svc] = pm.conf_path.read_text()
    shutil.rmtree(keys)          # the shared directory is gone: nobody can fall back on it
    pm.ensure_keys = lambda: None
    pm.add_user("alice@example.test")
    for svc in ("queue", "delivery", "smtpd"):
        pm.conf_path.write_text(confs[svc])
        pm.write_config = lambda: None      # start() must not overwrite this service's config
        pm.start(svc)
    import smtplib
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as c:
        c.ehlo("client.example.net")
        c.sendmail("bob@example.net", ["alice@example.test"], BODY)
    maildir = pm.state / "mail" / "example.test" / "alice" / "Maildir" / "new"
    wait_for(lambda: maildir.exists() and any(maildir.iterdir()), 15, what="delivery with per-service keys")
    for svc, names in need.items():
        assert sorted(p.name for p in (pm.root / f"keys-{svc}").glob("*.key")) == [f"{svc}.key"]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def flood(port, announce, send_bytes):
    """A peer with no key: a ZMTP 3 greeting (CURVE), then a frame header announcing
    `announce` bytes, then as many bytes as the server takes, up to send_bytes. Returns how
    many it took before it closed the connection."""
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"CURVE".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(greeting)
    s.sendall(b"\x06" + struct.pack(">Q", announce))      # long command frame
    chunk, sent = b"\x00" * 65536, 0
    deadline = time.monotonic() + 20
    try:
        while sent < send_bytes and time.monotonic() < deadline:
            sent += s.send(chunk)
    except OSError:
        pass
    s.close()
    return sent


def test_the_resolver_answers_smtpd_and_the_mta_only(pm, zctx):
    """smtpd asks the resolver for its checks (DNS lists, SPF, DKIM, DMARC), the mta for MX
    hosts; every other role's question is dropped (and logged), never answered."""
    pm.start("resolver")
    keys = pm.state / "keys"
    rpub = (keys / "resolver.pub").read_text().strip().encode()
    endpoint = pm.settings["resolver"]["endpoint"]
    # A name the resolver will not ask: answered at once, without any DNS.
    for rid, (role, kind) in enumerate([("smtpd", wire.TXT), ("smtpd", wire.A), ("mta", wire.MX)], 1):
        s = dealer(zctx, endpoint, rpub, keypair(keys, role))
        s.send(wire.resolve(rid, "a..b", kind))
        reply = wire.parse_resolve_reply(recv(s, 5000) or {})
        assert reply and reply[0] == rid and reply[1] == wire.PERMFAIL_RESOLVE, (role, reply)
        s.close()
    for role in ("delivery", "bouncer", "cli"):
        s = dealer(zctx, endpoint, rpub, keypair(keys, role))
        s.send(wire.resolve(9, "a..b", wire.TXT))
        wait_for(lambda: re.search(rf"event=bus_refused .*key={role} role={role} body=any reason=role",
                                   pm.log("resolver")), 10, what=f"the resolver refusing {role}")
        assert recv(s, 300) is None
        s.close()


@pytest.mark.parametrize("service", ["queue", "resolver"])
def test_a_huge_frame_from_a_peer_without_a_key_is_not_buffered(pm, service):
    pm.start(service)
    pid = pm.procs[service].pid
    endpoint = pm.settings[service]["endpoint"]
    port = int(endpoint.rsplit(":", 1)[1])
    before = rss_kib(pid)
    sent = flood(port, 3 << 30, 256 << 20)
    grown = rss_kib(pid) - before
    # The server drops the connection at the header instead of buffering gigabytes.
    assert sent < 64 << 20, f"{service} kept reading: {sent >> 20} MiB taken"
    assert grown < 32 << 10, f"{service} grew by {grown >> 10} MiB"
    assert pm.procs[service].poll() is None


def test_oversized_control_request_and_submission_are_refused(pm, zctx):
    pm.configure(smtpd={"max_message_size": 1 << 20})
    pm.start("queue")
    keys = pm.state / "keys"
    qpub = (keys / "queue.pub").read_text().strip().encode()
    pid = pm.procs["queue"].pid
    before = rss_kib(pid)
    # The finding: with the cli key, a 1 MB control request was answered.
    cli = dealer(zctx, pm.settings["queue"]["control"], qpub, keypair(keys, "cli"))
    big_control = wire.bus_message(5, wire.CONTROL, wire.field_int(1, wire.STATUS) + wire.field_bytes(2, b"x" * (1 << 20)))
    cli.send(big_control)
    assert recv(cli, 1000) is None
    # A Submit far past max_message_size (+ half for a DSN, + 1 MiB) closes the connection.
    smtpd = dealer(zctx, pm.settings["queue"]["endpoint"], qpub, keypair(keys, "smtpd"))
    smtpd.send(wire.submit(6, "bob@example.net", "alice@example.test", b"x" * (8 << 20)))
    assert recv(smtpd, 2000) is None
    assert pm.queue_list() == []
    assert rss_kib(pid) - before < 24 << 10
    assert "messages=0" in pm.cli("status").stdout         # a fresh, small request is answered
    cli.close()
    smtpd.close()


def test_servers_keep_no_directory_open_outside_their_chroot(pm):
    """The chroot escape: a directory descriptor opened before the chroot (the aliases' and
    the keys' directories) lets `..` walk to the real root. The queue and the resolver re-read
    those files through the reader outside the chroot instead, which hands back descriptors
    of regular files only."""
    if os.geteuid() != 0:
        pytest.skip("needs root (no chroot without it)")
    pm.start("queue", "resolver")
    for svc in ("queue", "resolver"):
        pid = pm.procs[svc].pid
        root = os.readlink(f"/proc/{pid}/root")
        assert root != "/", f"{svc} is not chrooted"
        for fd in os.listdir(f"/proc/{pid}/fd"):
            path = f"/proc/{pid}/fd/{fd}"
            try:
                st = os.stat(path)
            except OSError:
                continue
            assert not stat.S_ISDIR(st.st_mode), f"{svc} holds directory fd {fd} -> {os.readlink(path)}"
    # The reader still serves the aliases: a change is seen from inside the chroot.
    aliases = Path(pm.settings["aliases_file"])
    aliases.write_text("team: alice@example.test, bob@example.test\n")
    pm.add_user("alice@example.test")
    pm.add_user("bob@example.test")
    keys = pm.state / "keys"
    ctx = zmq.Context()
    try:
        s = dealer(ctx, pm.settings["queue"]["endpoint"], (keys / "queue.pub").read_text().strip().encode(),
                   keypair(keys, "smtpd"))
        s.send(submit_frame(1, rcpt="team@example.test"))
        status, qid = submitted(s, 1)
        assert status == wire.COMMITTED
        show = pm.cli("queue", "show", qid).stdout
        assert "alice@example.test" in show and "bob@example.test" in show, show
        s.close()
    finally:
        ctx.destroy(linger=0)


def test_a_server_whose_allowlist_cannot_be_read_does_not_start(pm):
    """A keys directory others may write (they could admit any key) is not read; a queue that
    would then admit nobody says so by exiting, not by refusing every peer one by one."""
    pm.write_config()
    pm.ensure_keys()
    keys = pm.state / "keys"
    keys.chmod(0o777)
    pm.start("queue", wait=False)
    proc = pm.procs["queue"]
    wait_for(lambda: proc.poll() is not None, 10, what="the queue to give up")
    assert proc.returncode != 0
    assert re.search(r"event=bus_security_error reason=\"cannot read the keys directory\"", pm.log("queue"))
    keys.chmod(0o755)
    pm.start("queue")
    assert "messages=0" in pm.cli("status").stdout
