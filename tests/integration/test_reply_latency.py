"""Replies leave whole and at once, seen from real clients. smtplib's connect + EHLO + QUIT
took 44 ms against Postfix's 0.4 ms: the multi-line EHLO reply left a line per write and its
tail waited behind Nagle for the client's delayed ACK (~40 ms). A client that pipelines
(MAIL, RCPT and DATA in one write) paid the same for every reply after the first. The
threshold is far below that stall and far above what the machine needs (about 1 ms)."""
import poplib
import smtplib
import socket
import statistics
import time

from smtpd_helpers import RawSMTP

STALL_MS = 20  # the stall is ~40 ms; a whole reply takes about 1 ms here


def median_ms(fn, n=15):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def test_ehlo_reply_leaves_whole(pm):
    pm.start("queue", "smtpd")
    port = pm.port("smtp")

    def session():
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        s.ehlo("client.test")
        s.quit()
    session()  # warm up
    ms = median_ms(session)
    assert ms < STALL_MS, f"connect + EHLO + QUIT took {ms:.1f} ms (median)"


def test_pipelined_replies_do_not_wait(pm):
    pm.add_user("alice@example.test")
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250

    def pipelined():
        c.send(b"MAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRSET\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    pipelined()
    ms = median_ms(pipelined)
    c.close()
    assert ms < STALL_MS, f"three pipelined replies took {ms:.1f} ms (median)"


def test_pop3_multiline_response_leaves_whole(pm):
    pm.start("pop3d")
    port = pm.port("pop3")

    def session():
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.capa()
        p.quit()
    session()
    ms = median_ms(session)
    assert ms < STALL_MS, f"connect + CAPA + QUIT took {ms:.1f} ms (median)"


# ------------------------------------------------------------------ pop3d, a whole session


def test_pop3_session_replies_do_not_wait(pm):
    """Every step of a real client's session (connect, CAPA, USER/PASS, STAT, LIST, UIDL, TOP,
    RETR, QUIT) with poplib; 44 ms for any of them would be a reply's tail behind Nagle."""
    from pop3_helpers import add_user, put_message
    add_user(pm, "alice@example.test", "secret")
    for i in range(20):  # the last one 80 KB: RETR streams it in more than one write
        put_message(pm, "alice@example.test", f"{1700000000 + i}.M{i}.test",
                    f"Subject: {i}\r\n\r\n".encode() + b"a line of the body\r\n" * 200 * (i + 1))
    pm.start("pop3d")
    port = pm.port("pop3")
    steps = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        steps.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return out

    def session():
        p = timed("connect", lambda: poplib.POP3("127.0.0.1", port, timeout=10))
        timed("CAPA", p.capa)
        timed("USER", lambda: p.user("alice@example.test"))
        timed("PASS", lambda: p.pass_("secret"))
        assert timed("STAT", p.stat)[0] == 20
        assert len(timed("LIST", p.list)[1]) == 20
        assert len(timed("UIDL", p.uidl)[1]) == 20
        timed("TOP", lambda: p.top(3, 5))
        timed("RETR", lambda: p.retr(20))
        timed("QUIT", p.quit)
    session()  # warm up
    steps.clear()
    for _ in range(7):
        session()
    slow = {k: round(statistics.median(v), 1) for k, v in steps.items() if statistics.median(v) >= STALL_MS}
    assert not slow, f"median ms per step: {slow}"


# ------------------------------------------------------------------ mta


class RecordingNextHop:
    """A raw SMTP server on host:port that offers PIPELINING and records every read it
    makes (time, bytes) and every reply it sends (time), so a test can see how the mta's
    commands arrive: MAIL, RCPT... and DATA in one read, and nothing waiting ~40 ms."""

    EHLO = b"250-next.hop.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"

    def __init__(self, host, port):
        import threading
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sessions = []  # one list per connection: ("in", t, bytes) / ("out", t, bytes)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._serve(conn)

    def _serve(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(10)
        events = []
        self.sessions.append(events)

        def send(data):
            conn.sendall(data)
            events.append(("out", time.monotonic(), data))
        send(b"220 next.hop.test ESMTP\r\n")
        buf, in_data = b"", False
        while True:
            try:
                chunk = conn.recv(8192)  # a real server reads through a small buffer
            except OSError:
                return
            if not chunk:
                return
            events.append(("in", time.monotonic(), chunk))
            buf += chunk
            replies = b""
            while True:
                if in_data:
                    end = buf.find(b"\r\n.\r\n")
                    if end < 0:
                        break
                    buf, in_data = buf[end + 5:], False
                    replies += b"250 2.0.0 queued\r\n"
                    continue
                eol = buf.find(b"\r\n")
                if eol < 0:
                    break
                line, buf = buf[:eol].upper(), buf[eol + 2:]
                if line.startswith(b"EHLO"):
                    replies += self.EHLO
                elif line.startswith(b"DATA"):
                    replies += b"354 go ahead\r\n"
                    in_data = True
                    buf = b"\r\n" + buf  # the body's first line may be the end already
                elif line.startswith(b"QUIT"):
                    send(replies + b"221 bye\r\n")
                    return
                else:
                    replies += b"250 2.1.0 ok\r\n"
            if replies:
                send(replies)

    def stop(self):
        self.sock.close()


def test_mta_pipelines_in_one_write_and_never_waits(pm, tmp_path):
    """The mta to a next hop that offers PIPELINING: MAIL FROM, every RCPT TO and DATA arrive
    in one read; each of the mta's turns (EHLO after the greeting, the envelope after EHLO,
    the body and its dot after 354, QUIT after the final 250) follows the server's reply
    within a few ms (Nagle + delayed ACK would make it ~40 ms). A body of 300 KB is refilled
    from the output's low-water mark, so its tail is a small write after large ones."""
    import remote_proto as rp
    from remote_peers import common_port, Dispatcher, Dnsmasq
    dns = Dnsmasq(tmp_path, ["--mx-host=hop.test,mx.hop.test,10", "--host-record=mx.hop.test,127.0.0.2"])
    port = common_port("127.0.0.2")
    hop = RecordingNextHop("127.0.0.2", port)
    queue = None
    try:
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10})
        pm.start("resolver")
        queue = Dispatcher(pm)
        pm.start("mta")
        queue.wait_worker()
        rcpts = [f"r{i}@hop.test" for i in range(3)]
        for n in range(8):
            body = b"Subject: latency\r\n\r\n" + (b"y" * 998 + b"\r\n") * (300 if n % 2 else 2)
            result = queue.result(queue.send_job(rcpts, "hop.test", body=body), timeout=20)
            assert all(r.get("status", 0) == rp.DELIVERED for r in result["results"]), result
        assert len(hop.sessions) == 8
        gaps = {}
        for events in hop.sessions:
            ins = [e for e in events if e[0] == "in"]
            envelope = [e for e in ins if b"MAIL FROM:" in e[2]]
            assert len(envelope) == 1, [e[2][:80] for e in ins]
            assert all(f"RCPT TO:<{r}>".encode() in envelope[0][2] for r in rcpts) and b"DATA\r\n" in envelope[0][2], \
                f"MAIL, RCPT and DATA did not arrive in one read: {envelope[0][2]!r}"
            # the time from each reply of ours to the last read before our next reply: the
            # mta's whole turn (for the body, the arrival of its final dot)
            for i, (kind, t, data) in enumerate(events):
                if kind != "out" or data.startswith(b"221"):
                    continue
                turn = [e for e in events[i + 1:] if e[0] == "out"][:1]
                reads = [e for e in events[i + 1:(events.index(turn[0]) if turn else len(events))] if e[0] == "in"]
                if reads:
                    last_line = data.rstrip(b"\r\n").split(b"\r\n")[-1].decode()
                    gaps.setdefault(last_line, []).append((reads[-1][1] - t) * 1000)
        slow = {k: round(max(v), 1) for k, v in gaps.items() if statistics.median(v) >= STALL_MS}
        assert not slow, f"the mta's turn after these replies took (ms, worst): {slow}"
    finally:
        pm.stop_all()
        if queue:
            queue.close()
        hop.stop()
        dns.stop()
