"""CHUNKING / BDAT (RFC 3030) in smtpd and in the mta's client, with raw sockets (the exact
octets of each chunk, pipelined writes, half-close) and smtplib where it serves. smtpd reads
exactly the announced octets whatever it answers, so a refused chunk (before MAIL, over the
size limit, after RSET) leaves the session in step; STARTTLS inside a transaction is refused
and no partial message survives it; the delivered message is the chunks' octets, with no
dot-unstuffing and no end-of-data scan. The mta sends one "BDAT <n> LAST" to a peer that
offers CHUNKING (a small scripted peer below: Postfix 3.7's smtp-sink does not offer it)
and DATA to one that does not. After every test a fresh client must still be served."""
import socket
import ssl
import threading
import time

import pytest

from conftest import Postmesh, traversable, wait_for
from pop3_helpers import add_user, maildir, messages
from remote_peers import Dnsmasq, common_port
from smtpd_helpers import RawSMTP, client_context, enable_tls

ALICE = "alice@example.test"
MAX_SIZE = 20000
PEER_IP = "127.0.0.5"


class ChunkingPeer:
    """A next hop offering PIPELINING and CHUNKING (or not): records the commands and the
    octets of each BDAT chunk, answers 250 (or bdat_reply) after the whole chunk."""

    def __init__(self, host, port, chunking=True):
        self.chunking = chunking
        self.commands, self.chunks, self.data = [], [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        buf = b""

        def need(n):
            nonlocal buf
            while len(buf) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError
                buf += chunk

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                need(len(buf) + 1)
            out, buf = buf.split(b"\r\n", 1)
            return out.decode(errors="replace")

        try:
            conn.sendall(b"220 peer.test ESMTP\r\n")
            while True:
                cmd = line()
                self.commands.append(cmd)
                verb = cmd.split(" ")[0].upper()
                if verb == "EHLO":
                    conn.sendall(b"250-peer.test\r\n250-PIPELINING\r\n" + (b"250-CHUNKING\r\n" if self.chunking else b"")
                                 + b"250 8BITMIME\r\n")
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == "BDAT" and self.chunking:
                    n = int(cmd.split(" ")[1])
                    need(n)
                    self.chunks.append(buf[:n])
                    buf = buf[n:]
                    conn.sendall(b"250 2.0.0 Ok: chunk of %d octets\r\n" % n)
                elif verb == "DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    lines = []
                    while (text := line()) != ".":
                        lines.append(text)
                    self.data.append("\r\n".join(lines) + "\r\n")
                    conn.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")
        except (OSError, ConnectionError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.running = False
        self.sock.close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("bdat"))
    pm = Postmesh(root)
    peer_port = common_port("127.0.0.1", PEER_IP, "127.0.0.6")
    peer = ChunkingPeer(PEER_IP, peer_port)
    plain_peer = ChunkingPeer("127.0.0.6", peer_port, chunking=False)
    dns = Dnsmasq(root, ["--mx-host=chunk.test,mx.chunk.test,10", f"--host-record=mx.chunk.test,{PEER_IP}",
                         "--mx-host=plain.test,mx.plain.test,10", "--host-record=mx.plain.test,127.0.0.6"])
    try:
        add_user(pm, ALICE, "secret")
        enable_tls(pm, max_message_size=MAX_SIZE, max_errors=100, timeout_data=2)
        pm.configure(trusted_networks=["127.0.0.1/32"],
                     resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": peer_port, "connect_timeout": 3, "command_timeout": 10})
        pm.start("resolver", "queue", "delivery", "mta", "smtpd", timeout=20)
        pm.peer, pm.plain_peer = peer, plain_peer
        yield pm
    finally:
        pm.stop_all()
        dns.stop()
        peer.stop()
        plain_peer.stop()


@pytest.fixture(autouse=True)
def still_serving(mx):
    """After each test: smtpd is alive and a new client gets its whole dialogue."""
    yield
    assert mx.procs["smtpd"].poll() is None, mx.log("smtpd")[-3000:]
    c = RawSMTP(mx.port("smtp"))
    assert c.cmd("EHLO after.test")[0] == 250
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("QUIT")[0] == 221
    c.close()
    log = mx.log("smtpd")
    assert "AddressSanitizer" not in log and "runtime error" not in log


def envelope(c, rcpt=ALICE):
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250


def delivered(mx, count):
    """The mailbox's messages once there are count of them (bytes, oldest first)."""
    found = wait_for(lambda: (m := messages(mx, ALICE)) and len(m) >= count and m, 30,
                     what=f"{count} message(s) for {ALICE}")
    return [p.read_bytes() for p in sorted(found, key=lambda p: p.stat().st_mtime_ns)]


def clear_mailbox(mx):
    for p in messages(mx, ALICE):
        p.unlink()


def trace_then(got, original):
    """got = our trace headers (Return-Path, Delivered-To, Received) + original, exactly."""
    assert got.endswith(original), got[-300:]
    head = got[:len(got) - len(original)]
    assert head.startswith(b"Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.test\r\nReceived: ")
    assert head.endswith(b"\r\n")


# Text with what DATA would treat specially: a lone dot line, leading dots, "\r\n.\r\n".
TRICKY = (b"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: chunks\r\n\r\n"
          b"first\r\n.\r\nnot the end\r\n..two dots stay two\r\n.one dot\r\n" + b"x" * 900 + b"\r\nlast\r\n")


def test_ehlo_offers_chunking_not_binarymime(mx):
    c = RawSMTP(mx.port("smtp"))
    code, lines = c.cmd("EHLO client.test")
    assert "CHUNKING" in lines and not any("BINARYMIME" in w for w in lines)
    assert c.cmd("MAIL FROM:<a@remote.test> BODY=BINARYMIME") == (555, ["5.5.4 BODY=BINARYMIME not supported"])
    assert c.cmd("MAIL FROM:<a@remote.test> BODY=8BITMIME")[0] == 250
    c.close()


def test_single_bdat_last_delivered_intact(mx):
    clear_mailbox(mx)
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT %d LAST\r\n" % len(TRICKY) + TRICKY)
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0], lines
    assert c.cmd("QUIT")[0] == 221
    [got] = delivered(mx, 1)
    trace_then(got, TRICKY)
    assert "stage=BDAT" not in mx.log("smtpd")


def test_many_chunks_pipelined_in_one_write_and_bdat_0_last(mx):
    clear_mailbox(mx)
    c = RawSMTP(mx.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    # Cut anywhere: inside a CRLF, inside "\r\n.\r\n", one octet alone.
    cuts = [0, 5, 6, 80, 81, 82, 83, 84, 85, 300, len(TRICKY)]
    pieces = [TRICKY[a:b] for a, b in zip(cuts, cuts[1:])]
    wire = b"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
    wire += b"".join(b"BDAT %d\r\n" % len(p) + p for p in pieces) + b"BDAT 0 LAST\r\nQUIT\r\n"
    c.send(wire)
    assert c.reply()[0] == 250 and c.reply()[0] == 250
    for p in pieces:
        assert c.reply() == (250, [f"2.0.0 {len(p)} octets received"])
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0]
    assert c.reply()[0] == 221
    [got] = delivered(mx, 1)
    trace_then(got, TRICKY)


def test_bdat_0_last_alone_and_a_missing_final_crlf(mx):
    clear_mailbox(mx)
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    assert c.cmd("BDAT 0 LAST")[0] == 250
    assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    text = b"Subject: x\r\n\r\nno CRLF"
    c.send(b"BDAT %d LAST\r\n" % len(text) + text)
    assert c.reply()[0] == 250
    first, second = delivered(mx, 2)
    assert first.endswith(b"\r\n") and b"Subject" not in first  # trace headers only
    trace_then(second, b"Subject: x\r\n\r\nno CRLF\r\n")  # the queue keeps CRLF line ends


def test_bdat_before_mail_reads_its_chunk(mx):
    c = RawSMTP(mx.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    # The chunk holds what looks like commands: none of it may run.
    chunk = b"QUIT\r\nMAIL FROM:<x@y.test>\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    assert c.reply() == (250, ["2.0.0 Ok"])
    # No recipient yet: 503 after the chunk, and the transaction is over.
    assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    c.send(b"BDAT 4\r\nRSETNOOP\r\n")
    assert c.reply() == (503, ["5.5.1 Error: need RCPT command"])
    assert c.reply() == (250, ["2.0.0 Ok"])
    assert c.cmd("RCPT TO:<alice@example.test>") == (503, ["5.5.1 Error: need MAIL command"])
    c.close()


def test_rset_between_chunks_discards_the_message(mx):
    clear_mailbox(mx)
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT 9\r\nSubject: ")
    assert c.reply() == (250, ["2.0.0 9 octets received"])
    assert c.cmd("RSET") == (250, ["2.0.0 Ok"])
    # Its later chunks belong to no transaction.
    c.send(b"BDAT 10 LAST\r\nlost\r\n\r\n\r\n")
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    # A new transaction starts empty: nothing of the first survives.
    envelope(c)
    c.send(b"BDAT 12 LAST\r\nSubject: y\r\n")
    assert c.reply()[0] == 250
    [got] = delivered(mx, 1)
    trace_then(got, b"Subject: y\r\n")
    # EHLO resets too.
    envelope(c)
    c.send(b"BDAT 4\r\nabc\n")
    assert c.reply() == (550, ["5.5.2 Error: bare <LF> received"])  # refused, session goes on
    envelope(c)
    c.send(b"BDAT 5\r\nabc\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("EHLO again.test")[0] == 250
    c.send(b"BDAT 1 LAST\r\nx")
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    c.close()


def test_data_after_bdat_refused(mx):
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT 3\r\nab\r")
    assert c.reply()[0] == 250
    assert c.cmd("DATA") == (503, ["5.5.1 Error: DATA after BDAT"])
    assert c.cmd("RSET")[0] == 250
    c.close()


def test_chunks_over_the_size_limit(mx):
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    big = (b"y" * 70 + b"\r\n") * (MAX_SIZE // 72 + 10)
    c.send(b"BDAT %d LAST\r\n" % len(big) + big + b"NOOP\r\n")
    assert c.reply() == (552, ["5.3.4 Error: message file too big"])
    assert c.reply() == (250, ["2.0.0 Ok"])  # in step: the chunk was read to its end
    # Over the limit only with the second chunk; a third chunk finds no transaction.
    envelope(c)
    half = big[:MAX_SIZE // 2 + 100]
    c.send(b"BDAT %d\r\n" % len(half) + half + b"BDAT %d\r\n" % len(half) + half + b"BDAT 2 LAST\r\nxx")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 552
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    # A size that fits no counter: framing is lost, 501 and the session ends.
    envelope(c)
    c.send(b"BDAT 99999999999999999999 LAST\r\nwhatever")
    assert c.reply() == (501, ["5.5.4 Syntax: BDAT size [LAST]"])
    assert c.closed_by_server()


def test_starttls_in_a_bdat_transaction_refused_then_bdat_over_tls(mx):
    clear_mailbox(mx)
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT 12\r\nSubject: a\r\n")
    assert c.reply()[0] == 250
    assert c.cmd("STARTTLS") == (503, ["5.5.1 Error: MAIL transaction in progress"])
    c.send(b"BDAT 5 LAST\r\n\r\nb\r\n")  # the transaction is intact: this message is delivered
    assert c.reply()[0] == 250
    [got] = delivered(mx, 1)
    trace_then(got, b"Subject: a\r\n\r\nb\r\n")
    clear_mailbox(mx)
    # STARTTLS between transactions, then BDAT inside TLS.
    assert c.cmd("EHLO client.test")[0] == 250
    c.starttls()
    code, lines = c.cmd("EHLO client.test")
    assert "CHUNKING" in lines
    assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    c.send(b"BDAT 7\r\nSubject")
    c.send(b"BDAT 9 LAST\r\n: tls\r\n\r\n")
    assert c.reply()[0] == 250 and c.reply()[0] == 250
    assert c.cmd("QUIT")[0] == 221
    [got] = delivered(mx, 1)
    trace_then(got, b"Subject: tls\r\n\r\n")
    assert b"with ESMTPS" in got


def test_a_stalled_chunk_times_out_as_data_does(mx):
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT 100 LAST\r\n0123456789")
    start = time.monotonic()
    code, lines = c.reply()  # smtpd.timeout_data is 2 s here
    assert code == 421 and "timeout exceeded" in lines[0], lines
    assert 1.5 < time.monotonic() - start < 8
    assert c.closed_by_server()
    wait_for(lambda: "state=data reason=idle" in mx.log("smtpd"), 5, what="the timeout's log line")


def test_half_close_after_bdat_last_and_quit(mx):
    clear_mailbox(mx)
    s = socket.create_connection(("127.0.0.1", mx.port("smtp")), timeout=15)
    s.sendall(b"EHLO client.test\r\nMAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
              b"BDAT 13 LAST\r\nSubject: hc\r\n" + b"QUIT\r\n")
    s.shutdown(socket.SHUT_WR)
    buf, deadline = b"", time.monotonic() + 15
    while time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    assert b"queued as" in buf and buf.endswith(b"221 2.0.0 Bye\r\n"), buf
    [got] = delivered(mx, 1)
    trace_then(got, b"Subject: hc\r\n")


def queued_ids(mx):
    return [line.split(" id=")[1].split()[0] for line in mx.log("smtpd").splitlines() if "event=queued" in line]


def test_mta_sends_bdat_to_a_peer_offering_chunking(mx):
    import smtplib
    body = TRICKY.replace(b"alice@example.test", b"bob@chunk.test")
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=30) as s:
        s.sendmail("sender@remote.test", ["bob@chunk.test"], body)
    chunks = wait_for(lambda: mx.peer.chunks, 30, what="a BDAT chunk at the peer")
    [chunk] = chunks
    cmds = mx.peer.commands
    bdat = [c for c in cmds if c.startswith("BDAT")]
    assert bdat == [f"BDAT {len(chunk)} LAST"], cmds
    assert "DATA" not in cmds
    assert cmds.index(bdat[0]) > cmds.index("RCPT TO:<bob@chunk.test>")
    assert chunk.endswith(body) and chunk.startswith(b"Received: ")
    wait_for(lambda: "event=delivered" in mx.log("mta") or "status=sent" in mx.log("mta"), 20,
             what="the mta's delivery")
    # A peer without CHUNKING gets DATA, the same octets once unstuffed.
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=30) as s:
        s.sendmail("sender@remote.test", ["carol@plain.test"], body)
    [text] = wait_for(lambda: mx.plain_peer.data, 30, what="DATA at the plain peer")
    assert not [c for c in mx.plain_peer.commands if c.startswith("BDAT")]
    unstuffed = "\r\n".join(line[1:] if line.startswith(".") else line for line in text.split("\r\n"))
    assert unstuffed.encode().endswith(body)
