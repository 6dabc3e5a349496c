"""Per-destination concurrency (issue 12): a destination that stalls (accepts TCP and never
says a word) or crawls (answers every command after a long pause) holds at most
mta.max_per_domain of the mta's slots, so mail for the others keeps flowing at once.

The design is in two places (docs/internals.md "Work dispatch"): the queue gives each mta at
most mta.max_per_domain jobs per domain at a time (services/queue/dispatch.c), and the mta
starts at most that many sessions per domain (services/mta/worker.c pump()), so a job that
slipped past the queue's count waits in the mta's backlog without holding up the jobs behind
it. What is counted here is what the destinations see: connections open at once."""
import smtplib
import socket
import threading
import time

import pytest

from conftest import wait_for
from remote_peers import common_port, Dnsmasq, SmtpSink

SERVICES = ("resolver", "queue", "mta", "smtpd")
ZONE = [
    "--mx-host=fast.test,mx.fast.test,10", "--host-record=mx.fast.test,127.0.0.2",
    "--mx-host=stalled.test,mx.stalled.test,10", "--host-record=mx.stalled.test,127.0.0.3",
    "--mx-host=crawl.test,mx.crawl.test,10", "--host-record=mx.crawl.test,127.0.0.4",
]
MAX_PER_DOMAIN = 2


class CountingServer:
    """Accepts connections and counts how many are open at once. pause=None: never says a
    word (a stalled MX); else answers every command (greeting included) after pause
    seconds, accepting everything (a crawling MX)."""

    def __init__(self, host, port, pause=None):
        self.pause = pause
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.lock = threading.Lock()
        self.open = self.peak = self.total = 0
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.total += 1
                self.peak = max(self.peak, self.open)
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(60)
            if self.pause is None:
                while conn.recv(4096):
                    pass
                return
            time.sleep(self.pause)
            conn.sendall(b"220 crawl.test ESMTP\r\n")
            buf, in_data = b"", False
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while True:
                    if in_data:
                        end = buf.find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        buf, in_data = buf[end + 5:], False
                        time.sleep(self.pause)
                        conn.sendall(b"250 2.0.0 ok\r\n")
                        continue
                    eol = buf.find(b"\r\n")
                    if eol < 0:
                        break
                    line, buf = buf[:eol].upper(), buf[eol + 2:]
                    if line.startswith(b"QUIT"):
                        self._closed(conn)  # the client's session is over: it may not wait for 221
                    time.sleep(self.pause)
                    if line.startswith(b"DATA"):
                        conn.sendall(b"354 go on\r\n")
                        in_data, buf = True, b"\r\n" + buf
                    elif line.startswith(b"QUIT"):
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            self._closed(conn)
            conn.close()

    def _closed(self, conn):
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)
                self.open -= 1

    def stop(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for c in list(self.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def world(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE)
    port = common_port("127.0.0.2", "127.0.0.3", "127.0.0.4")
    peers = []
    try:
        sink = SmtpSink("127.0.0.2", port, tmp_path)
        peers.append(sink)
        stalled = CountingServer("127.0.0.3", port)
        peers.append(stalled)
        crawl = CountingServer("127.0.0.4", port, pause=1.0)
        peers.append(crawl)
        pm.configure(trusted_networks=["127.0.0.0/8"],
                     queue={"retry_min": 300, "retry_max": 600, "job_lease": 60},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "max_concurrency": 6, "max_per_domain": MAX_PER_DOMAIN,
                          "connect_timeout": 3, "command_timeout": 30})
        pm.start(*SERVICES, timeout=20)
        yield {"pm": pm, "sink": sink, "stalled": stalled, "crawl": crawl}
    finally:
        pm.stop_all()
        for p in peers:
            p.stop()
        dns.stop()


def send(pm, domain, n):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        for i in range(n):
            s.sendmail("a@example.test", [f"r{i}@{domain}"], f"Subject: {domain} {i}\r\n\r\nx\r\n")


def test_stalled_and_slow_destinations_keep_to_their_share(world):
    """12 messages for a stalled MX and 12 for one that answers once a second, then 40 for a
    working one, through an mta with 6 slots, 2 per domain: the working domain's mail is
    all delivered within seconds (the stalled sessions would hold their slots for the 30 s
    command timeout), and neither bad destination ever had more than 2 connections open."""
    pm = world["pm"]
    send(pm, "stalled.test", 12)
    send(pm, "crawl.test", 12)
    wait_for(lambda: world["stalled"].open >= MAX_PER_DOMAIN and world["crawl"].open >= MAX_PER_DOMAIN, 10,
             what="both bad destinations to hold their share")
    t0 = time.monotonic()
    send(pm, "fast.test", 40)
    wait_for(lambda: len(world["sink"].dumps()) >= 40, 15, interval=0.2, what="the working domain's mail")
    elapsed = time.monotonic() - t0
    assert elapsed < 15, elapsed
    # The crawling one keeps delivering, 2 at a time (about 8 s a message at 1 s a turn).
    wait_for(lambda: world["crawl"].total >= 4, 30, interval=0.5, what="the crawling domain to make progress")
    assert world["stalled"].peak <= MAX_PER_DOMAIN, world["stalled"].peak
    assert world["crawl"].peak <= MAX_PER_DOMAIN, world["crawl"].peak
    assert world["stalled"].total <= MAX_PER_DOMAIN  # none of its sessions has timed out yet
    deferred = [line for line in pm.log("queue").splitlines() if "event=rcpt_deferred" in line]
    assert deferred == [], deferred  # nothing has timed out yet, and nothing waited its turn as a deferral
    assert "event=job_refused" not in pm.log("mta")
