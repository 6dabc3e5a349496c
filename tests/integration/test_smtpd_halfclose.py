"""smtpd and a client that half-closes (issue 9): a client may send its last commands in one
write and shutdown(SHUT_WR) without waiting for the replies. Everything it sent before its FIN
still counts: a message waiting for the queue gets its 250, the pipelined commands behind it
their replies and QUIT its 221, and only then does smtpd close. Losing the 250 of a committed
message makes the client send it again (a duplicate). Clients: raw sockets (smtplib cannot
half-close), and ssl.SSLObject over a raw socket for TLS (an SSLSocket cannot shut down its
write side and keep reading)."""
import base64
import re
import signal
import socket
import ssl
import time

import pytest

from smtpd_helpers import add_user, client_context, enable_tls, queue_ids, queue_show, wait_log

MSG = "From: a@x.test\r\nTo: u@example.test\r\nMessage-ID: <{mid}@x.test>\r\nSubject: half\r\n\r\nhello\r\n"
REPLY = re.compile(rb"^(\d{3}) (.*?)\r\n", re.M)  # a final reply line, complete


class Plain:
    """A raw TCP client: exact bytes out, shutdown(SHUT_WR), read to EOF."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def recv(self):
        return self.sock.recv(65536)

    def reply(self):
        """The next final reply line (multi-line replies collapse to their last line)."""
        deadline = time.monotonic() + 15
        while True:
            m = REPLY.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return int(m.group(1)), m.group(2).decode()
            assert time.monotonic() < deadline, f"no reply in {self.buf!r}"
            chunk = self.recv()
            assert chunk, f"closed by server (pending {self.buf!r})"
            self.buf += chunk

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def half_close(self):
        self.sock.shutdown(socket.SHUT_WR)

    def read_to_eof(self, timeout=15):
        """Every reply until the server closes: [(code, text)]."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while time.monotonic() < deadline:
            chunk = self.recv()
            if not chunk:
                break
            self.buf += chunk
        else:
            raise AssertionError(f"server did not close (got {self.buf!r})")
        return [(int(c), t.decode()) for c, t in REPLY.findall(self.buf)]


class TLS(Plain):
    """TLS through ssl.SSLObject and memory BIOs over a raw socket, so the client can send a
    close_notify (or not) and shutdown(SHUT_WR) and still read what the server answers."""

    def __init__(self, port, starttls):
        super().__init__(port)
        self.tls, self.eof = None, False
        if starttls:
            assert self.reply()[0] == 220
            assert self.cmd("EHLO client.test")[0] == 250
            assert self.cmd("STARTTLS")[0] == 220
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_context().wrap_bio(self.inc, self.out)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pump(self):
        self._flush()
        chunk = self.sock.recv(65536)
        if not chunk:
            self.inc.write_eof()
        else:
            self.inc.write(chunk)

    def send(self, data):
        if self.tls is None:
            return super().send(data)
        self.tls.write(data.encode() if isinstance(data, str) else data)
        self._flush()

    def recv(self):
        if self.tls is None:
            return super().recv()
        while not self.eof:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pump()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self.eof = True
        return b""

    def half_close(self, close_notify=True):
        if close_notify:
            try:
                self.tls.unwrap()  # writes our close_notify; the server's comes later
            except ssl.SSLWantReadError:
                pass
            self._flush()
        self.sock.shutdown(socket.SHUT_WR)


def start_transaction(c, greeted=False, auth=False):
    if not greeted:
        assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    if auth:
        assert c.cmd("AUTH PLAIN " + base64.b64encode(b"\0u@example.test\0pw").decode())[0] == 235
    assert c.cmd("MAIL FROM:<%s>" % ("u@example.test" if auth else "a@x.test"))[0] == 250
    assert c.cmd("RCPT TO:<u@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354


def queued_id(reply):
    m = re.search(r"queued as ([0-9A-F]{16})", reply[1])
    assert reply[0] == 250 and m, reply
    return m.group(1)


def assert_queued_once(pm, qid, mid):
    assert queue_ids(pm) == [qid]
    assert f"<{mid}@x.test>" in queue_show(pm, qid)


@pytest.fixture
def mx(pm):
    add_user(pm, "u@example.test", "pw")
    pm.start("queue", "smtpd")
    return pm


def test_dot_and_quit_in_one_write_then_half_close(mx):
    c = Plain(mx.port("smtp"))
    start_transaction(c)
    c.send(MSG.format(mid="dotquit") + ".\r\nQUIT\r\n")
    c.half_close()
    replies = c.read_to_eof()
    assert [r[0] for r in replies] == [250, 221], replies
    assert_queued_once(mx, queued_id(replies[0]), "dotquit")


def test_half_close_while_the_queue_is_slow(mx):
    """EOF arrives while the message waits for the queue; the pipelined commands behind the
    dot are still unread then and must be answered in order."""
    queue = mx.procs["queue"]
    c = Plain(mx.port("smtp"))
    start_transaction(c)
    queue.send_signal(signal.SIGSTOP)
    try:
        c.send(MSG.format(mid="slow") + ".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        c.half_close()
        wait_log(mx, "smtpd", "event=client_eof")  # smtpd saw the FIN before the queue answered
    finally:
        queue.send_signal(signal.SIGCONT)
    replies = c.read_to_eof()
    assert [r[0] for r in replies] == [250, 250, 250, 221], replies
    assert_queued_once(mx, queued_id(replies[0]), "slow")
    assert "event=submit_late" not in mx.log("smtpd")


def test_half_close_without_quit(mx):
    """No QUIT: the 250 still comes, then smtpd closes because no more commands can come."""
    c = Plain(mx.port("smtp"))
    start_transaction(c)
    c.send(MSG.format(mid="noquit") + ".\r\n")
    c.half_close()
    replies = c.read_to_eof()
    assert [r[0] for r in replies] == [250], replies
    assert_queued_once(mx, queued_id(replies[0]), "noquit")
    wait_log(mx, "smtpd", "messages=1 errors=0 reason=eof")


def test_half_close_in_the_middle_of_data_queues_nothing(mx):
    c = Plain(mx.port("smtp"))
    start_transaction(c)
    c.send(MSG.format(mid="cut"))  # no end-of-data dot
    c.half_close()
    assert c.read_to_eof() == []
    wait_log(mx, "smtpd", "reason=eof_in_data")
    assert queue_ids(mx) == []


def test_pipelined_envelope_then_half_close(mx):
    """The whole envelope in one write (PIPELINING) behind an unanswered RCPT lookup, then
    EOF: every command is answered before the close."""
    c = Plain(mx.port("smtp"))
    assert c.reply()[0] == 220
    c.send("EHLO client.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<u@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nRSET\r\nQUIT\r\n")
    c.half_close()
    replies = c.read_to_eof()
    assert [r[0] for r in replies] == [250, 250, 250, 550, 250, 221], replies


@pytest.mark.parametrize("close_notify", [True, False], ids=["close_notify", "dirty"])
@pytest.mark.parametrize("mode", ["smtps", "starttls"])
def test_tls_dot_and_quit_then_half_close(pm, mode, close_notify):
    add_user(pm, "u@example.test", "pw")
    enable_tls(pm)
    pm.start("queue", "smtpd")
    queue = pm.procs["queue"]
    mid = f"tls-{mode}-{close_notify}"
    c = TLS(pm.port("smtps" if mode == "smtps" else "smtp"), starttls=mode == "starttls")
    start_transaction(c, greeted=mode == "starttls", auth=mode == "smtps")
    queue.send_signal(signal.SIGSTOP)  # so that the EOF surely comes while the 250 is owed
    try:
        c.send(MSG.format(mid=mid) + ".\r\nQUIT\r\n")
        c.half_close(close_notify)
        wait_log(pm, "smtpd", "event=client_eof")
    finally:
        queue.send_signal(signal.SIGCONT)
    replies = c.read_to_eof()
    assert [r[0] for r in replies] == [250, 221], replies
    assert_queued_once(pm, queued_id(replies[0]), mid)
