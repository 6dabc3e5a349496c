"""Key files caught while they are written, against a real postmesh-queue and pyzmq peers.

A ZAP denial is final for a peer: libzmq does not reconnect after it. So the queue must never
deny a key because its reader once saw the key file half-written: the file written in place
(an editor, `cp`, `echo KEY > f`, Python's write_bytes) leaves the keys directory's mtime
alone, and the queue used to re-read only when that mtime changed. The CI flake this found:
test_job_identity listed two keys with write_bytes; the first key's knock made the queue read
the second file between its creation and its write, and the second key was denied for good."""
import re
import threading
import time

import zmq

import bus_wire as wire
from conftest import write_key


def dealer(pm, zctx, pair):
    s = zctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_publickey, s.curve_secretkey = pair
    s.curve_serverkey = (pm.state / "keys" / "queue.pub").read_text().strip().encode()
    s.connect(pm.settings["queue"]["endpoint"])
    return s


_rid = iter(range(1, 1_000_000))


def pinged(sock, timeout_ms):
    """Sends a Ping; True if its answer comes within timeout_ms (a refused or denied peer gets none)."""
    rid = next(_rid)
    sock.send(wire.ping(rid))
    deadline = time.monotonic() + timeout_ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1) and wire.first(wire.decode(sock.recv()), 2, 0) == rid:
            return True
    return False


def test_a_key_file_read_half_written_is_admitted_once_whole(pm, zctx):
    pm.start("queue")
    keys = pm.state / "keys"
    late, other = zmq.curve_keypair(), zmq.curve_keypair()
    with open(keys / "smtpd.late.pub", "wb") as f:
        f.write(late[0][:20])      # created and half written, the writer not done yet
        f.flush()
        # Another key knocks: its reload reads the half-written file.
        write_key(keys, "delivery.other", other[0])
        first = dealer(pm, zctx, other)
        assert pinged(first, 10000), pm.log("queue")[-2000:]
        assert re.search(r"event=bus_key_\w+ .*file=smtpd\.late\.pub", pm.log("queue")), pm.log("queue")[-2000:]
        f.write(late[0][20:] + b"\n")
    # Whole now: its first knock is admitted (the directory itself did not change).
    s = dealer(pm, zctx, late)
    assert pinged(s, 10000), "the key read half-written was denied:\n" + pm.log("queue")[-2000:]
    first.close()
    s.close()


def test_a_key_file_rewritten_in_place_keeps_its_peer_admitted(pm, zctx):
    """The same key written again in place, in a loop (truncate, half, pause, the rest), while
    its peer talks on a live connection and reconnects: every reload that meets the file half
    written (an unknown key's knock makes one; the periodic one every 5 s) keeps its key."""
    pm.start("queue")
    keys = pm.state / "keys"
    pair = zmq.curve_keypair()
    write_key(keys, "smtpd.loop", pair[0])
    live = dealer(pm, zctx, pair)
    assert pinged(live, 10000), pm.log("queue")[-2000:]

    stop = threading.Event()

    def rewrite():
        with open(keys / "smtpd.loop.pub", "r+b") as f:
            for _ in range(2000):                          # bounded: about 20 ms a round
                if stop.is_set():
                    return
                f.seek(0)
                f.truncate()
                f.write(pair[0][:20])
                f.flush()
                time.sleep(0.015)
                f.write(pair[0][20:] + b"\n")
                f.flush()
                time.sleep(0.003)

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    half_read = re.compile(r"event=bus_key_\w+ .*file=smtpd\.loop\.pub")
    try:
        deadline = time.monotonic() + 20
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            assert pinged(live, 3000), f"live peer refused (round {rounds}):\n" + pm.log("queue")[-2000:]
            if rounds % 5 == 0:
                # A stranger knocks (denied, and it makes the queue read the directory again) ...
                stranger = dealer(pm, zctx, zmq.curve_keypair())
                time.sleep(0.05)
                stranger.close()
                # ... and the peer reconnects.
                again = dealer(pm, zctx, pair)
                assert pinged(again, 5000), f"reconnect denied (round {rounds}):\n" + pm.log("queue")[-2000:]
                again.close()
            if rounds >= 30 and len(half_read.findall(pm.log("queue"))) >= 3:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no reload met the file half-written:\n" + pm.log("queue")[-2000:])
    finally:
        stop.set()
        writer.join(5)
    live.close()
