"""BDAT (RFC 3030) as an attacker who owns the client socket sees it: every way a partial
BDAT message can end (RSET, EHLO, refused STARTTLS, QUIT, FIN or RST mid-chunk, timeout,
552 and 452 mid-chunk, a reset session while the message is in the end-of-message stages
or waiting for the queue) must give the sandbox's body budget back exactly. The budget is
probed from outside: smtpd.body_memory_mb = 1, and two sessions' chunks of half of it each
are accepted only while no byte of it is held anywhere (one octet more is refused: the
probe can fail); a budget that wrapped below zero refuses all.
Also framing (sizes near 2^64, leading zeros, BDAT 0 floods), the reply flood of a client
that does not read, and STARTTLS inside a DATA transaction. Run it against ASan binaries
(POSTMESH_BIN=.../build-<x>-asan/bin): the fixture stops smtpd and checks its log for
AddressSanitizer and UBSan reports."""
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Postmesh, free_port, traversable, wait_for
from pop3_helpers import add_user
from procs import stop_process
from smtpd_helpers import RawSMTP, client_context, enable_tls

HERE = Path(__file__).resolve().parent
ALICE = "alice@example.test"
BUDGET = 1 << 20  # smtpd.body_memory_mb = 1
MAX_SIZE = 600000


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("bdatatk"))
    pm = Postmesh(root)
    add_user(pm, ALICE, "secret")
    milter_port = free_port()
    (root / "milter.jsonl").touch()
    milter = subprocess.Popen(["/usr/bin/python3", str(HERE / "milter_peer.py"), str(milter_port),
                               str(root / "milter.jsonl")], stdout=open(root / "milter.out", "wb"),
                              stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(milter_port), 10, what="the test milter")
        enable_tls(pm, max_message_size=MAX_SIZE, body_memory_mb=1, sandboxes=1, max_errors=1000, timeout_data=1,
                   milters=[{"address": f"inet:127.0.0.1:{milter_port}", "timeout": 2}],
                   milter_default_action="accept")
        pm.configure(trusted_networks=["127.0.0.1/32"])
        pm.start("queue", "smtpd", timeout=20)
        pm.milter_log = root / "milter.jsonl"
        yield pm
        # Everything the sandbox did, to its end. (It ends with _exit(): LeakSanitizer does
        # not run there; leaks are for the unit tests under make unit.)
        pm.stop("smtpd")
        log = pm.log("smtpd")
        assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]
    finally:
        pm.stop_all()
        stop_process(milter, 0.5)  # libmilter's runmilter does not end on SIGTERM at once


def envelope(c, helo=True):
    if helo:
        assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<sender@remote.test>")[0] == 250
    assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250


def lines_of(n):
    """n octets of text: CRLF lines of 100 octets (the last one shorter)."""
    full, rest = divmod(n, 100)
    text = (b"x" * 98 + b"\r\n") * full
    if rest:
        text += b"y" * (rest - 2) + b"\r\n" if rest >= 2 else b"\r\n"[:rest]
    assert len(text) == n
    return text


def probe(mx, extra=0):
    """Two sessions take half of the budget each (max_message_size is less than the whole),
    the second one `extra` octets more, then RSET: the second chunk's reply code."""
    a, b = RawSMTP(mx.port("smtp")), RawSMTP(mx.port("smtp"))
    try:
        codes = []
        for c, n in ((a, BUDGET // 2), (b, BUDGET // 2 + extra)):
            envelope(c)
            c.send(b"BDAT %d\r\n" % n + lines_of(n))
            codes.append(c.reply()[0])
        for c in (a, b):
            assert c.cmd("RSET")[0] == 250
            assert c.cmd("QUIT")[0] == 221
        assert codes[0] == 250, codes
        return codes[1]
    finally:
        a.close()
        b.close()


def assert_budget_whole(mx):
    """All of the budget is free again (sessions that just went may take a moment)."""
    wait_for(lambda: probe(mx) == 250, 5, what="the whole body budget to be free")
    assert "AddressSanitizer" not in mx.log("smtpd")


@pytest.fixture(autouse=True)
def budget_after(mx):
    yield
    assert mx.procs["smtpd"].poll() is None, mx.log("smtpd")[-3000:]
    assert_budget_whole(mx)


def rst(c):
    """Close with a RST, not a FIN: the server sees an error, not an end of input."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sock.close()


def disconnects(mx):
    return mx.log("smtpd").count("event=disconnect")


def test_the_probe_can_fail(mx):
    """One octet over the budget is refused (452), so a leak of one octet would be seen."""
    assert probe(mx) == 250
    assert probe(mx, 1) == 452
    # Over max_message_size by the second chunk: 552.
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    half = lines_of(MAX_SIZE // 2 + 100)
    c.send(b"BDAT %d\r\n" % len(half) + half + b"BDAT %d LAST\r\n" % len(half) + half + b"NOOP\r\n")
    assert c.reply()[0] == 250
    assert c.reply() == (552, ["5.3.4 Error: message file too big"])
    assert c.reply()[0] == 250
    c.close()


def test_every_way_a_partial_message_ends(mx):
    chunk = lines_of(300000)
    # EHLO, QUIT, FIN and RST in the middle of a transaction and of a chunk.
    for end in ("ehlo", "quit", "fin_between", "fin_in_chunk", "rst_in_chunk", "starttls"):
        before = disconnects(mx)
        c = RawSMTP(mx.port("smtp"))
        envelope(c)
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        assert c.reply()[0] == 250
        if end == "ehlo":
            assert c.cmd("EHLO again.test")[0] == 250
            c.send(b"BDAT 3 LAST\r\nabc")
            assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
            c.close()
        elif end == "quit":
            assert c.cmd("QUIT")[0] == 221
            c.close()
        elif end == "fin_between":
            c.sock.shutdown(socket.SHUT_WR)
            assert c.closed_by_server()
        elif end == "fin_in_chunk":
            c.send(b"BDAT 500000 LAST\r\n" + chunk[:1000])
            c.sock.shutdown(socket.SHUT_WR)
            assert c.closed_by_server()
        elif end == "rst_in_chunk":
            c.send(b"BDAT 500000 LAST\r\n" + chunk[:200000])
            rst(c)
        elif end == "starttls":
            # Refused inside the transaction (which stays intact), allowed after RSET.
            assert c.cmd("STARTTLS") == (503, ["5.5.1 Error: MAIL transaction in progress"])
            assert c.cmd("RSET")[0] == 250
            c.starttls()
            envelope(c)
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            assert c.reply()[0] == 250
            c.send(b"BDAT 9000 LAST\r\nabc")
            rst(c)  # mid-chunk, inside TLS
        wait_for(lambda: disconnects(mx) > before, 5, what="the session to end")
        assert_budget_whole(mx)


def test_a_stalled_chunk_times_out_and_gives_its_octets_back(mx):
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    part = lines_of(400000)
    c.send(b"BDAT 500000 LAST\r\n" + part)
    code, lines = c.reply()  # timeout_data is 1 s
    assert code == 421 and "timeout" in lines[0], lines
    assert c.closed_by_server()


def test_452_at_the_start_and_in_the_middle_and_what_was_pipelined_behind(mx):
    # A and C hold most of the budget in unfinished messages.
    a, c = RawSMTP(mx.port("smtp")), RawSMTP(mx.port("smtp"))
    held = lines_of(500000)
    for x in (a, c):
        envelope(x)
        x.send(b"BDAT %d\r\n" % len(held) + held)
        assert x.reply()[0] == 250
    # B's first BDAT finds too little left: 452 once its chunk is read; the chunks pipelined
    # behind it belong to no transaction (503), and nothing of them runs as a command.
    b = RawSMTP(mx.port("smtp"))
    envelope(b)
    b.send(b"BDAT 6\r\nRSET\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
    assert b.reply() == (452, ["4.3.1 Insufficient system storage"])
    assert b.reply() == (503, ["5.5.1 Error: need MAIL command"])
    assert b.reply() == (250, ["2.0.0 Ok"])
    # A's next chunk takes it over the budget in the middle: 452 at its end, all given back.
    more = lines_of(60000)
    a.send(b"BDAT %d\r\n" % len(more) + more + b"BDAT 2 LAST\r\nxx")
    assert a.reply() == (452, ["4.3.1 Insufficient system storage"])
    assert a.reply() == (503, ["5.5.1 Error: need MAIL command"])
    # Now B has the room.
    envelope(b, helo=False)
    b.send(b"BDAT 100000\r\n" + lines_of(100000))
    assert b.reply()[0] == 250
    for x in (a, b, c):
        x.close()


def test_content_refusals_mid_message_give_the_budget_back(mx):
    c = RawSMTP(mx.port("smtp"))
    body = lines_of(200000)
    cases = [
        (b"abc\ndef\r\n", (550, ["5.5.2 Error: bare <LF> received"])),          # bare LF in a middle chunk
        (b"abc\rdef\r\n", (550, ["5.5.2 Error: bare <CR> received"])),          # bare CR
    ]
    assert c.cmd("EHLO client.test")[0] == 250
    for bad, refusal in cases:
        envelope(c, helo=False)
        c.send(b"BDAT %d\r\n" % len(body) + body + b"BDAT %d\r\n" % len(bad) + bad
               + b"BDAT %d LAST\r\n" % len(body) + body)
        assert c.reply()[0] == 250
        assert c.reply() == refusal
        assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    # Refused at the end: a CR that the last chunk leaves alone, a long line, a NUL.
    for last, code in ((b"abc\r", 550), (b"z" * 1200 + b"\r\n", 500), (b"a\x00b\r\n", 554)):
        envelope(c, helo=False)
        c.send(b"BDAT %d\r\n" % len(body) + body + b"BDAT %d LAST\r\n" % len(last) + last)
        assert c.reply()[0] == 250
        assert c.reply()[0] == code
    assert c.cmd("NOOP")[0] == 250
    c.close()


def test_a_last_line_without_crlf_must_fit_with_the_crlf_it_gets(mx):
    """The last line of a message without its CRLF gets one (the queue keeps CRLF line ends);
    with it, it must still fit RFC 5321's 1000 octets, as the same line in DATA must."""
    c = RawSMTP(mx.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    for n, code in ((998, 250), (999, 500)):
        envelope(c, helo=False)
        text = b"Subject: long\r\n\r\n" + b"z" * n
        c.send(b"BDAT %d LAST\r\n" % len(text) + text)
        assert c.reply()[0] == code, n
    # The same line in DATA.
    envelope(c, helo=False)
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: long\r\n\r\n" + b"z" * 999 + b"\r\n.\r\n")
    assert c.reply()[0] == 500
    c.close()


def milter_saw_eom(mx, subject_word):
    return f'"word": "{subject_word}"' in mx.milter_log.read_text()


def test_reset_while_in_the_end_of_message_stages(mx):
    """The slow milter holds the message in SMTPD_ST_CHECKS; the client resets meanwhile."""
    before = disconnects(mx)
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    msg = b"Subject: slow\r\n\r\n" + lines_of(300000)
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg + b"RSET\r\nBDAT 3 LAST\r\nabc")
    wait_for(lambda: milter_saw_eom(mx, "slow"), 5, what="the milter's end-of-message")
    rst(c)
    wait_for(lambda: disconnects(mx) > before, 5, what="the session to end")
    # FIN instead of RST: the replies still come, in order, after the milter's timeout.
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT %d LAST\r\n" % len(msg) + msg + b"RSET\r\nBDAT 3 LAST\r\nabc")
    c.sock.shutdown(socket.SHUT_WR)
    code, lines = c.reply()
    assert code == 250 and "queued" in lines[0], lines  # default action accept
    assert c.reply()[0] == 250
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    assert c.closed_by_server()


def test_every_end_of_message_verdict_on_a_bdat_message(mx):
    """The milter's verdicts at eom (the message then leaves by refuse, discard or a
    replaced body): each gives its octets back (the autouse probe), pipelined commands wait."""
    c = RawSMTP(mx.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    for word, code in (("reject-eom", 554), ("tempfail", 451), ("discard", 250), ("replbody", 250)):
        envelope(c, helo=False)
        msg = b"Subject: %s\r\n\r\n" % word.encode() + lines_of(200000)
        c.send(b"BDAT 100000\r\n" + msg[:100000] + b"BDAT %d LAST\r\n" % (len(msg) - 100000) + msg[100000:]
               + b"NOOP\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == code, word
        assert c.reply() == (250, ["2.0.0 Ok"])
    c.close()


def eom_continues(mx):
    return sum(1 for line in mx.log("smtpd").splitlines()
               if "event=milter " in line and "stage=eom" in line and "action=continue" in line)


def test_reset_while_waiting_for_the_queue(mx):
    """The queue is stopped (SIGSTOP): the Submit is out (it leaves in the callback that logs
    the milter's continue at eom), its answer comes to a session that is gone."""
    queue = mx.procs["queue"]
    before, sent = disconnects(mx), eom_continues(mx)
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    msg = b"Subject: q\r\n\r\n" + lines_of(300000)
    queue.send_signal(signal.SIGSTOP)
    try:
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg + b"RSET\r\n")
        wait_for(lambda: eom_continues(mx) > sent, 5, what="the Submit to go out")
        rst(c)
        wait_for(lambda: disconnects(mx) > before, 5, what="the session to end")
    finally:
        queue.send_signal(signal.SIGCONT)
    wait_for(lambda: "event=submit_late" in mx.log("smtpd"), 10, what="the queue's late answer")


def test_sizes_near_2_64_and_odd_spellings(mx):
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    # Leading zeros beyond 20 digits are still a small number; two spaces before LAST pass.
    c.send(b"BDAT 0000000000000000000000000000005\r\nSubj:" + b"BDAT 4  last\r\n x\r\n")
    assert c.reply() == (250, ["2.0.0 5 octets received"])
    assert c.reply()[0] == 250
    # The largest size that fits: read as a chunk until the client goes away.
    envelope(c, helo=False)
    c.send(b"BDAT 18446744073709551615 LAST\r\n" + lines_of(5000) + b"QUIT\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.closed_by_server()
    assert b"221" not in c.buf  # QUIT was part of the chunk
    # One more: 501 and the session ends (framing is lost). So do "-1", "5 LAST x", "0x10".
    for arg in (b"18446744073709551616", b"-1", b"5 LAST x", b"0x10", b"5\tLAST"):
        c = RawSMTP(mx.port("smtp"))
        envelope(c)
        c.send(b"BDAT " + arg + b"\r\nRSET\r\n")
        assert c.reply() == (501, ["5.5.4 Syntax: BDAT size [LAST]"]), arg
        assert c.closed_by_server()


def test_tiny_chunk_flood_from_a_client_that_does_not_read(mx):
    """20000 three-octet chunks in one write, replies unread: smtpd stops reading once its
    output backs up (other clients are served meanwhile), then answers every chunk in order."""
    n = 20000
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)  # 600 kB of replies back up
    wire = b"BDAT 3\r\nx\r\n" * n + b"BDAT 2 LAST\r\n\r\n"
    sender = threading.Thread(target=c.sock.sendall, args=(wire,), daemon=True)
    sender.start()
    # Another client is served at once while the flood waits for its reader.
    other = RawSMTP(mx.port("smtp"))
    assert other.cmd("NOOP")[0] == 250
    other.close()
    got = 0
    c.sock.settimeout(10)
    while got < n:
        assert c.reply() == (250, ["2.0.0 3 octets received"])
        got += 1
    code, lines = c.reply()
    assert code == 250 and "queued" in lines[0], lines
    sender.join(5)
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_bdat_0_without_last_is_a_noop_and_chunk_content_never_runs(mx):
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT 0\r\n" * 50)
    for _ in range(50):
        assert c.reply() == (250, ["2.0.0 0 octets received"])
    # A chunk that holds STARTTLS, EHLO and BDAT lines: none of them is a command.
    inner = b"STARTTLS\r\nEHLO x\r\nBDAT 3 LAST\r\nabc\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(inner) + inner)
    code, lines = c.reply()
    assert code == 250 and "queued" in lines[0], lines
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    c.close()


def test_starttls_inside_a_data_transaction(mx):
    """Refused with 503 as Postfix does; the transaction goes on with DATA in the clear."""
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    assert c.cmd("STARTTLS") == (503, ["5.5.1 Error: MAIL transaction in progress"])
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: d\r\n\r\nclear\r\n.\r\n")
    code, lines = c.reply()
    assert code == 250 and "queued" in lines[0]
    # Between transactions it works, and what was pipelined behind it in the clear is dropped.
    c.send(b"STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\n")
    assert c.reply()[0] == 220
    c.sock = client_context().wrap_socket(c.sock)
    c.buf = b""
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 503  # no MAIL survived
    c.close()


def tls_transaction(mx):
    c = RawSMTP(mx.port("smtp"))
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    assert c.cmd("EHLO client.test")[0] == 250
    c.starttls()
    envelope(c)
    return c


def test_tiny_chunk_flood_over_starttls_answered_in_order(mx):
    """The same flood inside STARTTLS: every reply comes, in order, once the client reads."""
    n = 5000
    c = tls_transaction(mx)
    sender = threading.Thread(target=c.sock.sendall, args=(b"BDAT 0\r\n" * n + b"BDAT 2 LAST\r\n\r\n",), daemon=True)
    sender.start()
    other = RawSMTP(mx.port("smtp"))
    assert other.cmd("NOOP")[0] == 250
    other.close()
    data, deadline = b"", time.monotonic() + 10
    while data.count(b"\r\n") < n + 1 and time.monotonic() < deadline:
        data += c.sock.recv(1 << 20)
    lines = data.split(b"\r\n")
    assert lines[:n] == [b"250 2.0.0 0 octets received"] * n
    assert lines[n].startswith(b"250 2.0.0 Ok: queued"), lines[n]
    sender.join(5)
    c.close()


def server_unread(server_port, client_port):
    """Octets smtpd's socket for this client holds unread (rx_queue in /proc/net/tcp)."""
    want = (f":{server_port:04X}", f":{client_port:04X}")
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1].endswith(want[0]) and parts[2].endswith(want[1]):
                return int(parts[4].split(":")[1], 16)
    return None


def acked(sock):
    """tcpi_bytes_acked: octets of ours the peer's kernel has (Linux >= 4.1)."""
    return struct.unpack_from("Q", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 120)[0]


def test_replies_a_starttls_client_does_not_read_stay_bounded(mx):
    """"BDAT 0" pipelined without end over STARTTLS, nothing read. smtpd must stop reading
    once its replies back up (OUTPUT_HIGH), as it does in the clear: what it has taken from
    its socket (our octets its kernel acknowledged, less what it has not read) stops
    growing. Buffering every reply instead, it takes everything, 29 octets of reply held
    for every 8 taken, without end."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", mx.port("smtp")))
    c = RawSMTP.__new__(RawSMTP)
    c.sock, c.buf, c.timeout = raw, b"", 10
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    c.starttls()
    envelope(c)
    stop = threading.Event()

    def flood():
        try:
            while not stop.is_set():
                c.sock.sendall(b"BDAT 0\r\n" * 8192)
        except OSError:
            pass
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    history = []

    def taken():
        unread = server_unread(mx.port("smtp"), c.sock.getsockname()[1])
        history.append((time.monotonic(), acked(c.sock) - (unread or 0)))
        return history[-1][1]

    def stalled():
        now = taken()
        assert now < 3 << 20, f"smtpd took {now} octets with no reply read"
        old = [t for t in history if t[0] <= history[-1][0] - 0.5]
        return old and old[-1][1] == now
    try:
        wait_for(stalled, 6, what="smtpd to stop reading")
    finally:
        stop.set()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        socket.socket.shutdown(c.sock, socket.SHUT_RDWR)  # the sender's sendall fails; no fd reuse
        sender.join(5)
        c.sock.close()


def test_commands_between_chunks_do_not_hold_the_message_for_ever(mx):
    """A chunked message holds its octets of the body budget until its last chunk. Every
    command used to start a fresh command deadline, so a NOOP now and then kept a partial
    message (and its share of the budget) for ever; eight such sessions filled the budget.
    The message has its own deadline now: timeout_data (1 s here) from its first chunk plus
    its octets at the minimum data rate."""
    c = RawSMTP(mx.port("smtp"))
    envelope(c)
    c.send(b"BDAT 100\r\n" + lines_of(100))
    assert c.reply()[0] == 250
    start = time.monotonic()
    code, lines = 250, []
    while code == 250 and time.monotonic() - start < 6:
        time.sleep(0.2)  # a client that pauses between commands, not a wait for a result
        code, lines = c.cmd("NOOP")
    assert code == 421 and "timeout" in lines[0], (code, lines)
    assert time.monotonic() - start < 3.5
    assert c.closed_by_server()
