"""Bus security against a real postmesh-queue: CurveZMQ with a ZAP allowlist on tcp://
endpoints, 0660 ipc:// sockets, and the queue's own privilege drop. The clients are pyzmq
sockets speaking real BusMessages (encoded by hand, see bus_wire.py)."""
import os
import shutil
import smtplib
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

import bus_wire as wire
from conftest import BIN, wait_for, write_key

FAILED = {zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
          zmq.EVENT_HANDSHAKE_FAILED_AUTH}


def queue_pub(pm):
    return (pm.state / "keys" / "queue.pub").read_text().strip().encode()


def dealer(zctx, endpoint, server_key=None, keypair=None):
    """A DEALER with a handshake monitor; Curve client if keypair is given."""
    s = zctx.socket(zmq.DEALER)
    s.linger = 0
    if keypair:
        s.curve_publickey, s.curve_secretkey = keypair
        s.curve_serverkey = server_key
    mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                               | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    s.connect(endpoint)
    return s, mon


def handshake(mon, timeout=10.0):
    """The first handshake outcome: zmq.EVENT_HANDSHAKE_SUCCEEDED or a failure event."""
    from zmq.utils.monitor import recv_monitor_message
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mon.poll(100):
            return recv_monitor_message(mon)["event"]
    raise AssertionError("no handshake outcome within %.0fs" % timeout)


def recv(sock, timeout_ms):
    return wire.decode(sock.recv()) if sock.poll(timeout_ms) else None


def assert_refused(zctx, endpoint, frame, server_key=None, keypair=None, expect=FAILED):
    """Connects, sends a real request and checks the handshake fails and nothing comes back."""
    s, mon = dealer(zctx, endpoint, server_key, keypair)
    s.send(frame)
    outcome = handshake(mon)
    assert outcome in expect, f"handshake outcome {outcome!r}"
    assert recv(s, 500) is None, "a refused client got an answer"
    s.close()
    mon.close()
    return outcome


def status_reply(fields, request_id):
    assert wire.first(fields, 1) == wire.VERSION and wire.first(fields, 2) == request_id, fields
    reply = wire.decode(wire.first(fields, wire.CONTROL_REPLY, b""))
    assert wire.first(reply, 1) == 1, reply                              # ok
    return wire.first(reply, 2, b"").decode()


def test_unknown_key_and_plain_clients_are_refused_cli_still_works(pm, zctx):
    pm.start("queue")
    control, endpoint = pm.settings["queue"]["control"], pm.settings["queue"]["endpoint"]
    key = queue_pub(pm)

    # A random Curve keypair that knows the queue's real public key: the ZAP handler says no.
    assert_refused(zctx, control, wire.control_status(7), key, zmq.curve_keypair(),
                   expect={zmq.EVENT_HANDSHAKE_FAILED_AUTH})
    wait_for(lambda: "event=bus_denied" in pm.log("queue"), 5, what="event=bus_denied")
    # ... nor can it submit mail on the submission/worker endpoint.
    assert_refused(zctx, endpoint, wire.submit(8, "evil@example.net", "alice@example.test",
                                               b"Subject: x\r\n\r\nspam\r\n"),
                   key, zmq.curve_keypair(), expect={zmq.EVENT_HANDSHAKE_FAILED_AUTH})
    assert pm.log("queue").count("event=bus_denied") >= 2

    # No Curve at all: the mechanisms do not match, nothing is read.
    assert_refused(zctx, control, wire.control_status(9))
    assert_refused(zctx, endpoint, wire.submit(10, "", "alice@example.test", b"Subject: y\r\n\r\nx\r\n"))

    # The queue is alive, stored nothing, and the legitimate CLI (the cli key) still works.
    assert pm.procs["queue"].poll() is None
    assert pm.queue_list() == []
    assert "messages=0" in pm.cli("status").stdout


def test_a_key_added_to_the_keys_dir_is_admitted(pm, zctx):
    pm.start("queue")
    control, endpoint = pm.settings["queue"]["control"], pm.settings["queue"]["endpoint"]
    key = queue_pub(pm)
    client, sender, worker_key = zmq.curve_keypair(), zmq.curve_keypair(), zmq.curve_keypair()

    # Not listed yet: refused ...
    assert_refused(zctx, control, wire.control_status(7), key, client, expect={zmq.EVENT_HANDSHAKE_FAILED_AUTH})
    # ... listed while the queue runs (it re-reads the directory on a miss): admitted, in the
    # role its file name gives it.
    write_key(pm.state / "keys", "cli.test-client", client[0])
    s, mon = dealer(zctx, control, key, client)
    s.send(wire.control_status(7))
    assert handshake(mon) == zmq.EVENT_HANDSHAKE_SUCCEEDED
    fields = recv(s, 10000)
    assert fields is not None, pm.log("queue")[-2000:]
    assert "messages=0" in status_reply(fields, 7)

    # A key listed as smtpd submits a message, which the queue commits.
    write_key(pm.state / "keys", "smtpd.test-sender", sender[0])
    sub, _ = dealer(zctx, endpoint, key, sender)
    sub.send(wire.submit(8, "bob@example.net", "alice@example.test", b"Subject: hi\r\n\r\nhello\r\n"))
    fields = recv(sub, 10000)
    assert fields is not None and wire.first(fields, 2) == 8, fields
    reply = wire.decode(wire.first(fields, wire.SUBMIT_REPLY, b""))
    assert wire.first(reply, 1, 0) == 0, reply                          # COMMITTED
    qid = wire.first(reply, 2, b"").decode()
    assert [row["id"] for row in pm.queue_list()] == [qid]

    # An unknown worker announcing credit gets no job; a listed delivery key gets it.
    assert_refused(zctx, endpoint, wire.credit(wire.WORKER_DELIVERY, 5, "intruder"), key, zmq.curve_keypair(),
                   expect={zmq.EVENT_HANDSHAKE_FAILED_AUTH})
    write_key(pm.state / "keys", "delivery.test-worker", worker_key[0])
    worker, _ = dealer(zctx, endpoint, key, worker_key)
    worker.send(wire.credit(wire.WORKER_DELIVERY, 1, "listed"))
    fields = recv(worker, 10000)
    assert fields is not None, pm.log("queue")[-2000:]
    job = wire.decode(wire.first(fields, wire.JOB, b""))
    assert wire.first(job, 2, b"").decode() == qid, job
    for sock in (s, mon, sub, worker):
        sock.close()


def test_ipc_endpoint_is_0660_and_the_cli_speaks_over_it(pm, zctx):
    # ipc:// serves processes that see the socket path: the CLI and unchrooted tools. The
    # services' sandboxed workers are chrooted away from it and use tcp:// (see README).
    # A directory others may traverse, so the socket's own mode is what keeps them out.
    ipc_dir = Path(tempfile.mkdtemp(prefix="pm-ipc-"))
    try:
        os.chmod(ipc_dir, 0o711)
        sock_path = ipc_dir / "queue.sock"
        if os.geteuid() == 0:
            os.chown(ipc_dir, 0, 1)          # the operator's choice of group: the socket's too
        pm.configure(queue={"control": f"ipc://{sock_path}"})
        pm.start("queue")
        st = sock_path.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        if os.geteuid() == 0:
            assert st.st_gid == 1, st.st_gid        # not whatever gid the binder had

        if os.geteuid() == 0:
            # Another user (not owner, not in the group) is refused by the mode alone.
            probe = ("import socket, os, sys; os.stat(sys.argv[1]); s = socket.socket(socket.AF_UNIX);\n"
                     "try:\n s.connect(sys.argv[1]); print('connected')\n"
                     "except PermissionError: print('refused')\n")
            def as_nobody():
                return subprocess.run([sys.executable, "-c", probe, str(sock_path)], user=65534, group=65534,
                                      extra_groups=[], capture_output=True, text=True, timeout=30)
            r = as_nobody()
            assert r.stdout.strip() == "refused", (r.stdout, r.stderr)
            os.chmod(sock_path, 0o666)      # the control: with a looser mode the same probe gets in
            assert as_nobody().stdout.strip() == "connected"
            os.chmod(sock_path, 0o660)

        assert "messages=0" in pm.cli("status").stdout
    finally:
        pm.stop_all()
        shutil.rmtree(ipc_dir, ignore_errors=True)


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.split()
    return fields


def test_queue_started_as_root_runs_unprivileged_in_its_chroot(pm):
    if os.geteuid() != 0:
        pytest.skip("needs root (without root the queue skips chroot and setuid)")
    pm.start("queue")
    pid = pm.procs["queue"].pid
    assert "event=privsep user=postmesh" in pm.log("queue")
    # Every thread (ZeroMQ's included): no uid/gid 0, no capabilities, no_new_privs, seccomp filter.
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    assert len(tasks) >= 2
    for task in tasks:
        st = proc_status(f"{pid}/task/{task.name}")
        assert all(int(u) != 0 for u in st["Uid"]), st["Uid"]
        assert all(int(g) != 0 for g in st["Gid"]), st["Gid"]
        assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0
        assert st["NoNewPrivs"] == ["1"] and st["Seccomp"] == ["2"], (task.name, st["NoNewPrivs"], st["Seccomp"])
    assert os.readlink(f"/proc/{pid}/root") == str((pm.state / "queue").resolve())
    # And it still works from in there.
    assert "messages=0" in pm.cli("status").stdout
