"""Real TLS clients interoperate (issue 12): GnuTLS clients (postal, gnutls-cli) over STARTTLS
and implicit TLS, an OpenSSL client whose ClientHello leaves the instant the 220 arrives, a
failed handshake answered with an alert instead of a bare close, and every TLS session of
smtpd and pop3d ending, after its last reply (221, +OK), with the server's close_notify.

postal offers nothing but anonymous Diffie-Hellman over TLS 1.2 (GnuTLS "NORMAL:+ANON-DH"
with anonymous credentials only): smtpd must accept it for opportunistic STARTTLS, as
Postfix does, or every postal connection fails."""
import os
import re
import select
import socket
import ssl
import subprocess
import time

import pytest

from conftest import wait_for
from pop3_helpers import add_user as pop3_add_user
from pop3_helpers import put_message
from smtpd_helpers import RawSMTP, add_user, client_context, enable_tls, wait_log

USER = "u@example.test"
NOT_CLEAN = "non-properly terminated"   # gnutls-cli: EOF without the server's close_notify
CLEAN = "Peer has closed the GnuTLS connection"

needs_gnutls = pytest.mark.skipif(subprocess.run(["which", "gnutls-cli"], capture_output=True).returncode,
                                  reason="gnutls-cli not installed (gnutls-bin)")
needs_postal = pytest.mark.skipif(subprocess.run(["which", "postal"], capture_output=True).returncode,
                                  reason="postal not installed")


@pytest.fixture
def mx(pm):
    add_user(pm, USER, "secret")
    enable_tls(pm)
    pm.start("queue", "smtpd")
    return pm


@pytest.fixture
def pop(pm):
    pop3_add_user(pm, USER, "secret")
    put_message(pm, USER, "0000000000000001.0.mx.example.test", b"Subject: one\r\n\r\nfirst\r\n")
    enable_tls(pm)
    pm.configure(pop3d={"auth_delay": 1})
    pm.start("pop3d")
    return pm


def strict_context():
    """Python's default contexts set OP_IGNORE_UNEXPECTED_EOF, so a session cut without
    close_notify would read as a clean end; this one tells them apart."""
    ctx = client_context()
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    return ctx


def strict_wrap(sock):
    return strict_context().wrap_socket(sock, suppress_ragged_eofs=False)


# ------------------------------------------------------------------ gnutls-cli driver

class GnutlsCli:
    """gnutls-cli as an interactive line client: send a line, wait for the reply that
    matches. Its output (stdout and stderr together) is kept whole for the final checks."""

    def __init__(self, port, *args, timeout=20.0):
        self.proc = subprocess.Popen(["gnutls-cli", "--insecure", "--port", str(port), *args, "127.0.0.1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = b""
        self.mark = 0        # output before this offset has been matched already
        self.timeout = timeout

    def expect(self, pattern):
        """Reads until pattern (a regex on whole lines) matches output not yet matched."""
        rx = re.compile(pattern.encode(), re.M)
        deadline = time.monotonic() + self.timeout
        while True:
            m = rx.search(self.out, self.mark)
            if m:
                self.mark = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not self._read(0):
                raise AssertionError(f"no {pattern!r} from gnutls-cli; output:\n{self.out.decode(errors='replace')}")
            self._read(left)

    def _read(self, wait):
        r, _, _ = select.select([self.proc.stdout], [], [], min(wait, 0.5))
        if not r:
            return False
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        self.out += chunk
        return bool(chunk)

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\r\n")   # sent as it is (no --crlf: it ends only a read's last line)
        self.proc.stdin.flush()

    def finish(self):
        """After the server's last reply: wait for gnutls-cli to see the end of the session
        (stdin stays open, so only the server can end it). Returns the whole output."""
        deadline = time.monotonic() + self.timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        while self._read(0):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"gnutls-cli still running; output:\n{self.out.decode(errors='replace')}")
        self.proc.stdin.close()
        self.proc.stdout.close()
        return self.out.decode(errors="replace")


def assert_clean_close(text):
    assert NOT_CLEAN not in text, text
    assert CLEAN in text, text


# ------------------------------------------------------------------ smtpd

@needs_gnutls
def test_gnutls_cli_starttls_full_transaction_ends_with_close_notify(mx):
    c = GnutlsCli(mx.port("smtp"), "--starttls-proto=smtp")
    c.expect(r"^- Handshake was completed")
    c.send("EHLO client.test")
    c.expect(r"^250 ")
    c.send(f"MAIL FROM:<{USER}>")
    c.expect(r"^250 2\.1\.0")
    c.send(f"RCPT TO:<{USER}>")
    c.expect(r"^250 2\.1\.5")
    c.send("DATA")
    c.expect(r"^354 ")
    for line in ("Subject: over gnutls", "", "hello", "."):
        c.send(line)
    c.expect(r"^250 2\.0\.0 .*queued as [0-9A-F]{16}")
    c.send("QUIT")
    c.expect(r"^221 ")
    assert_clean_close(c.finish())
    assert "event=queued" in mx.log("smtpd")


@needs_gnutls
def test_gnutls_cli_smtps_ends_with_close_notify(mx):
    c = GnutlsCli(mx.port("smtps"))
    c.expect(r"^220 ")
    c.send("EHLO client.test")
    c.expect(r"^250 ")
    c.send("QUIT")
    c.expect(r"^221 ")
    assert_clean_close(c.finish())


@needs_gnutls
def test_gnutls_anonymous_dh_only_client_gets_tls(mx):
    """What postal's GnuTLS session offers: TLS 1.2 anonymous DH and nothing else."""
    c = GnutlsCli(mx.port("smtp"), "--starttls-proto=smtp", "--priority",
                  "NORMAL:-KX-ALL:+ANON-DH:-VERS-TLS1.3")
    c.expect(r"^- Handshake was completed")
    c.send("EHLO client.test")
    c.expect(r"^250 ")
    c.send("QUIT")
    c.expect(r"^221 ")
    text = c.finish()
    assert "ANON-DH" in text, text
    assert_clean_close(text)


def test_authenticated_suite_preferred_over_anonymous(mx):
    """A client offering both gets a certificate: anonymous suites are a last resort."""
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ADH-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0")
    c = RawSMTP(mx.port("smtp"))
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS")[0] == 220
    c.sock = ctx.wrap_socket(c.sock)
    assert c.sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert c.sock.getpeercert(binary_form=True)
    c.close()


@needs_postal
def test_postal_starttls_delivers_without_failures(mx, tmp_path):
    users = tmp_path / "postal-users"
    users.write_text(USER + "\n")
    errf = open(tmp_path / "postal.err", "wb")
    # 2 threads, up to 3 messages per connection, bodies up to 2 KiB, every connection TLS
    proc = subprocess.Popen(["postal", "-m", "2", "-t", "2", "-c", "3", "-s", "100",
                             f"[127.0.0.1]{mx.port('smtp')}", str(users)],
                            stdout=subprocess.DEVNULL, stderr=errf, cwd=tmp_path)  # postal.log stays there
    try:
        wanted = 30

        def progress():
            log = mx.log("smtpd")
            failures = (tmp_path / "postal.err").read_text(errors="replace")
            assert "Can't" not in failures and "event=tls_error" not in log, \
                f"postal: {failures[-2000:]}\nsmtpd: {log[-3000:]}"
            return log.count("event=queued") >= wanted and log.count("event=tls ") >= 10
        wait_for(progress, timeout=40, what=f"{wanted} messages from postal over STARTTLS")
    finally:
        proc.terminate()          # SIGINT does not stop postal in any useful time
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errf.close()
    failures = (tmp_path / "postal.err").read_text(errors="replace")
    assert "Can't" not in failures, failures
    log = mx.log("smtpd")
    assert "event=tls_error" not in log
    assert re.search(r"event=tls client=\S+ version=TLSv1\.2 cipher=ADH-", log), "postal's anonymous DH suite"


def test_clienthello_right_after_220(mx):
    """The ClientHello is built before STARTTLS is sent and leaves, alone, the moment the 220
    has arrived: the handshake must complete, then SMTP goes on over TLS and ends with 221
    and the server's close_notify."""
    ctx = strict_context()
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, outg, server_side=False)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outg.read()
    assert hello[:1] == b"\x16"
    sock = socket.create_connection(("127.0.0.1", mx.port("smtp")), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""

    def until(marker):
        nonlocal buf
        while marker not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"closed waiting for {marker!r}: {buf!r}"
            buf += chunk
        line, buf = buf.split(marker, 1)
        return line
    until(b"\r\n")                                          # 220 greeting
    sock.sendall(b"EHLO client.test\r\n")
    until(b"250 HELP\r\n")
    sock.sendall(b"STARTTLS\r\n")
    assert until(b"\r\n").startswith(b"220 2.0.0")
    assert buf == b""
    sock.sendall(hello)                                     # no pause at all
    deadline = time.monotonic() + 10
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outg.pending:
                sock.sendall(outg.read())
            assert time.monotonic() < deadline, "handshake did not complete"
            data = sock.recv(65536)
            assert data, "server closed during the handshake"
            inc.write(data)
    if outg.pending:
        sock.sendall(outg.read())

    def tls_reply(line):
        tls.write(line)
        sock.sendall(outg.read())
        got = b""
        while not re.search(rb"(^|\n)\d{3} [^\n]*\n", got):
            try:
                chunk = tls.read(65536)
                assert chunk, f"TLS closed after {got!r}"
                got += chunk
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                assert data, f"closed after {got!r}"
                inc.write(data)
        return got
    assert tls_reply(b"EHLO client.test\r\n").startswith(b"250-mx.example.test")
    assert tls_reply(b"QUIT\r\n").startswith(b"221 ")
    # then the server's close_notify: the TLS layer ends cleanly (read returns b''), not
    # with a bare TCP EOF (SSLEOFError)
    deadline = time.monotonic() + 10
    while True:
        assert time.monotonic() < deadline, "no end of the TLS session"
        try:
            assert tls.read(65536) == b"", "nothing may follow the 221"
            break
        except ssl.SSLWantReadError:
            data = sock.recv(65536)
            if data:
                inc.write(data)
            else:
                inc.write_eof()
    sock.close()


def tls_quit_then_close_notify(sock, line, expect):
    """Sends the closing command, reads its reply, then the TLS stream must end with a
    close_notify (recv returns b''); an EOF without one raises SSLEOFError."""
    sock.sendall(line)
    got = b""
    while not (expect in got and got.endswith(b"\r\n")):
        chunk = sock.recv(65536)
        assert chunk, f"closed before the reply: {got!r}"
        got += chunk
    assert got.startswith(expect), got
    sock.settimeout(10)
    assert sock.recv(65536) == b""           # an SSLError (unexpected EOF) without close_notify


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_smtp_quit_221_then_close_notify(mx, mode):
    if mode == "smtps":
        c = RawSMTP(mx.port("smtps"), greet=False)
        c.sock = strict_wrap(c.sock)
        assert c.reply()[0] == 220
    else:
        c = RawSMTP(mx.port("smtp"))
        c.cmd("EHLO client.test")
        assert c.cmd("STARTTLS")[0] == 220
        c.sock = strict_wrap(c.sock)
    assert c.cmd("EHLO client.test")[0] == 250
    tls_quit_then_close_notify(c.sock, b"QUIT\r\n", b"221 2.0.0")
    c.close()


def test_failed_handshake_is_answered_with_an_alert(mx):
    """A client with nothing in common gets a handshake_failure alert, not a bare close
    (GnuTLS clients otherwise report only that the connection was cut)."""
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA256")          # RSA key exchange: impossible with our EC certificate
    c = RawSMTP(mx.port("smtp"))
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS")[0] == 220
    with pytest.raises(ssl.SSLError) as e:
        ctx.wrap_socket(c.sock)
    assert "alert handshake failure" in str(e.value), repr(e.value)
    c.close()
    # logged as the TLS error it is, not as a client gone during the handshake
    wait_log(mx, "smtpd", "reason=tls_error")
    assert re.search(r'event=tls_error client=\S+ error="?[^"\n]*no shared cipher', mx.log("smtpd"))


# ------------------------------------------------------------------ pop3d

@needs_gnutls
def test_gnutls_cli_pop3_stls_ends_with_close_notify(pop):
    c = GnutlsCli(pop.port("pop3"), "--starttls-proto=pop3")
    c.expect(r"^- Handshake was completed")
    c.send(f"USER {USER}")
    c.expect(r"^\+OK")
    c.send("PASS secret")
    c.expect(r"^\+OK .*")
    c.send("STAT")
    c.expect(r"^\+OK 1 ")
    c.send("QUIT")
    c.expect(r"^\+OK")
    assert_clean_close(c.finish())


@needs_gnutls
def test_gnutls_cli_pop3s_ends_with_close_notify(pop):
    c = GnutlsCli(pop.port("pop3s"))
    c.expect(r"^\+OK")
    c.send("CAPA")
    c.expect(r"^\.\s*$")
    c.send("QUIT")
    c.expect(r"^\+OK")
    assert_clean_close(c.finish())


@pytest.mark.parametrize("mode", ["stls", "pop3s"])
def test_pop3_quit_ok_then_close_notify(pop, mode):
    if mode == "pop3s":
        sock = strict_wrap(socket.create_connection(("127.0.0.1", pop.port("pop3s")), timeout=10))
        f = sock.makefile("rb")
        assert f.readline().startswith(b"+OK")
    else:
        raw = socket.create_connection(("127.0.0.1", pop.port("pop3")), timeout=10)
        f = raw.makefile("rb")
        assert f.readline().startswith(b"+OK")
        raw.sendall(b"STLS\r\n")
        assert f.readline().startswith(b"+OK")
        sock = strict_wrap(raw)
        f = sock.makefile("rb")
    sock.sendall(f"USER {USER}\r\n".encode())
    assert f.readline().startswith(b"+OK")
    sock.sendall(b"PASS secret\r\n")
    assert f.readline().startswith(b"+OK")
    f.close()
    tls_quit_then_close_notify(sock, b"QUIT\r\n", b"+OK")
    sock.close()
