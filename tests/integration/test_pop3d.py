"""postmesh-pop3d against Maildirs the test writes itself: RFC 1939 commands, UIDL stability,
deletion only at QUIT, the mailbox lock, byte-stuffing, login failures, limits and timeouts.
TLS (STLS, pop3s) is in test_pop3d_tls.py."""
import poplib
import select
import socket
import time

import pytest

from conftest import wait_for
from pop3_helpers import RawPOP3, add_user, make_tls_pair, maildir, messages, put_message

ALICE, BOB = "alice@example.test", "bob@example.test"
MSG1 = (b"Return-Path: <x@remote.test>\r\nDelivered-To: alice@example.test\r\nSubject: one\r\n\r\n"
        b"first line\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n")
MSG2 = b"Subject: two\r\n\r\n" + "8-bit: caf\u00e9 \u00fcber\r\n".encode() + b"y" * 990 + b"\r\nlast\r\n"


def start_pop3d(pm, **pop3d):
    cert, key = make_tls_pair(pm.root)
    settings = {"auth_delay": 1, "timeout": 30}
    settings.update(pop3d)
    pm.configure(tls={"certificate": str(cert), "key": str(key)}, pop3d=settings)
    pm.start("pop3d")
    return pm


@pytest.fixture
def pop(pm):
    add_user(pm, ALICE, "secret")
    add_user(pm, BOB, "hunter2")
    put_message(pm, ALICE, "0000000000000001.0.mx.example.test", MSG1, mtime=1_700_000_000)
    put_message(pm, ALICE, "0000000000000002.0.mx.example.test", MSG2, mtime=1_700_000_100)
    return start_pop3d(pm)


def login(pm, user=ALICE, password="secret"):
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    p.user(user)
    p.pass_(password)
    return p


def test_retrieve_exact_bytes(pop):
    p = login(pop)
    assert p.stat() == (2, len(MSG1) + len(MSG2))
    resp, listing, _ = p.list()
    assert listing == [f"1 {len(MSG1)}".encode(), f"2 {len(MSG2)}".encode()]
    for n, msg in ((1, MSG1), (2, MSG2)):
        resp, lines, octets = p.retr(n)
        assert resp.startswith(b"+OK")
        assert b"\r\n".join(lines) + b"\r\n" == msg
    assert p.quit().startswith(b"+OK")


def test_byte_stuffing_on_the_wire(pop):
    c = RawPOP3(pop.port("pop3"))
    assert c.line().startswith(b"+OK")
    assert c.cmd(f"USER {ALICE}").startswith(b"+OK")
    assert c.cmd("PASS secret").startswith(b"+OK")
    assert c.cmd("RETR 1") == f"+OK {len(MSG1)} octets".encode()
    wire = c.multiline()
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\nend\r\n" in wire
    assert c.cmd("TOP 1 2") == b"+OK top of message follows"
    assert c.multiline().endswith(b"\r\n\r\nfirst line\r\n..starts with a dot\r\n")
    assert c.cmd("QUIT").startswith(b"+OK")
    assert c.closed()


def test_uidl_stable_across_logins(pop):
    p = login(pop)
    first = p.uidl()[1]
    single = p.uidl(2)
    p.quit()
    assert first == [b"1 0000000000000001.0.mx.example.test", b"2 0000000000000002.0.mx.example.test"]
    assert single.endswith(b"2 0000000000000002.0.mx.example.test")
    # a new message arrives; a reader moves message 1 to cur/ with flags
    put_message(pop, ALICE, "0000000000000003.0.mx.example.test", b"Subject: 3\r\n\r\nx\r\n", mtime=1_700_000_200)
    md = maildir(pop, ALICE)
    (md / "new" / "0000000000000001.0.mx.example.test").rename(md / "cur" / "0000000000000001.0.mx.example.test:2,S")
    p = login(pop)
    again = p.uidl()[1]
    p.quit()
    assert again[:2] == first
    assert again[2] == b"3 0000000000000003.0.mx.example.test"


def test_dele_quit_removes(pop):
    p = login(pop)
    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (1, len(MSG2))
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    # still there until QUIT
    assert len(messages(pop, ALICE)) == 2
    assert p.quit().startswith(b"+OK")
    left = messages(pop, ALICE)
    assert [f.name for f in left] == ["0000000000000002.0.mx.example.test"]
    p = login(pop)
    assert p.stat() == (1, len(MSG2))
    p.quit()


def test_dele_rset_quit_keeps(pop):
    p = login(pop)
    p.dele(1)
    p.dele(2)
    assert p.stat() == (0, 0)
    assert p.rset().startswith(b"+OK")
    assert p.stat() == (2, len(MSG1) + len(MSG2))
    p.quit()
    assert len(messages(pop, ALICE)) == 2


def test_dropped_connection_deletes_nothing(pop):
    c = RawPOP3(pop.port("pop3"))
    c.line()
    c.cmd(f"USER {ALICE}")
    assert c.cmd("PASS secret").startswith(b"+OK")
    assert c.cmd("DELE 1").startswith(b"+OK")
    c.close()  # no QUIT: no UPDATE state
    # the lock is released when the server notices; then the message is still there
    p = wait_for(lambda: _try_login(pop), timeout=10, what="mailbox unlocked")
    assert p.stat()[0] == 2
    p.quit()


def _try_login(pm):
    try:
        return login(pm)
    except poplib.error_proto:
        return None


def test_mailbox_lock(pop):
    first = login(pop)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        login(pop)
    # another user is not affected
    other = login(pop, BOB, "hunter2")
    assert other.stat() == (0, 0)
    other.quit()
    first.quit()
    p = login(pop)
    p.quit()


def test_wrong_password_and_unknown_user_look_the_same(pop):
    replies, times = [], []
    for user, password in ((ALICE, "wrong"), ("nobody@example.test", "secret")):
        c = RawPOP3(pop.port("pop3"))
        c.line()
        assert c.cmd(f"USER {user}") == b"+OK send PASS"
        t0 = time.monotonic()
        replies.append(c.cmd(f"PASS {password}"))
        times.append(time.monotonic() - t0)
        c.close()
    assert replies[0] == replies[1]
    assert replies[0].startswith(b"-ERR [AUTH]")
    assert all(t >= 0.9 for t in times), times  # auth_delay = 1
    assert "event=auth_failed" in pop.log("pop3d")


def test_failure_delay_does_not_block_others(pop):
    c = RawPOP3(pop.port("pop3"))
    c.line()
    c.cmd(f"USER {ALICE}")
    c.send(b"PASS wrong\r\n")
    # Judged by order: the failure's 1 s delay has begun (logged as it starts) ...
    wait_for(lambda: "event=auth_failed" in pop.log("pop3d"), 10, interval=0.01, what="the failed login")
    p = login(pop, BOB, "hunter2")  # ... and another login is served while it runs:
    p.quit()
    assert not select.select([c.sock], [], [], 0)[0], "the other login waited for the failure delay"
    assert c.line().startswith(b"-ERR [AUTH]")


def test_lockout_after_repeated_failures(pm):
    add_user(pm, ALICE, "secret")
    start_pop3d(pm, auth_failures=3, auth_lockout=60, auth_delay=0)
    for _ in range(3):
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            login(pm, ALICE, "wrong")
    # locked out: even the right password is refused now
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        login(pm, ALICE, "secret")
    assert "event=auth_locked_out" in pm.log("pop3d")


def test_session_closed_after_three_failures(pm):
    add_user(pm, ALICE, "secret")
    start_pop3d(pm, auth_delay=0)
    c = RawPOP3(pm.port("pop3"))
    c.line()
    for _ in range(3):
        c.cmd(f"USER {ALICE}")
        assert c.cmd("PASS wrong").startswith(b"-ERR [AUTH]")
    assert c.closed()


def test_auth_plain_initial_response_and_continuation(pop):
    import base64
    good = base64.b64encode(f"\0{ALICE}\0secret".encode()).decode()
    c = RawPOP3(pop.port("pop3"))
    c.line()
    assert c.cmd(f"AUTH PLAIN {good}").startswith(b"+OK")
    assert c.cmd("STAT") == f"+OK 2 {len(MSG1) + len(MSG2)}".encode()
    c.cmd("QUIT")
    c = RawPOP3(pop.port("pop3"))
    c.line()
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("*").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd("!!notbase64!!").startswith(b"-ERR")
    assert c.cmd("AUTH PLAIN") == b"+ "
    assert c.cmd(good).startswith(b"+OK")
    c.cmd("QUIT")
    c = RawPOP3(pop.port("pop3"))
    c.line()
    assert c.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    bad = base64.b64encode(f"\0{ALICE}\0nope".encode()).decode()
    assert c.cmd(f"AUTH PLAIN {bad}").startswith(b"-ERR [AUTH]")


def test_capa_and_states(pop):
    p = poplib.POP3("127.0.0.1", pop.port("pop3"), timeout=15)
    caps = p.capa()
    for cap in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "USER", "STLS"):
        assert cap in caps
    assert caps["SASL"] == ["PLAIN"]
    with pytest.raises(poplib.error_proto):
        p.stat()  # not before login
    p.user(ALICE)
    p.pass_("secret")
    caps = p.capa()
    assert "STLS" not in caps and "USER" not in caps
    with pytest.raises(poplib.error_proto):
        p.retr(3)
    with pytest.raises(poplib.error_proto):
        p._shortcmd("RETR 0")
    with pytest.raises(poplib.error_proto):
        p._shortcmd("RETR -1")
    assert p.noop().startswith(b"+OK")
    p.quit()


def test_pipelined_commands(pop):
    c = RawPOP3(pop.port("pop3"))
    c.line()
    c.send(f"USER {ALICE}\r\nPASS secret\r\nSTAT\r\nUIDL 1\r\nNOOP\r\nQUIT\r\n".encode())
    got = [c.line() for _ in range(6)]
    assert got[0].startswith(b"+OK") and got[1].startswith(b"+OK")
    assert got[2] == f"+OK 2 {len(MSG1) + len(MSG2)}".encode()
    assert got[3] == b"+OK 1 0000000000000001.0.mx.example.test"
    assert got[4] == b"+OK" and got[5].startswith(b"+OK")
    assert c.closed()


def test_hostile_lines(pop):
    # an overlong line is refused, never truncated and executed
    c = RawPOP3(pop.port("pop3"))
    c.line()
    c.send(b"USER " + b"a" * 5000 + b"\r\n")
    assert c.line() == b"-ERR line too long"
    assert c.closed()
    # a line without end that keeps growing
    c = RawPOP3(pop.port("pop3"))
    c.line()
    c.send(b"X" * 4000)
    assert c.line() == b"-ERR line too long"
    assert c.closed()
    # NUL and control bytes
    c = RawPOP3(pop.port("pop3"))
    c.line()
    assert c.cmd("US\0ER alice").startswith(b"-ERR")
    # too many errors close the session
    for _ in range(8):
        c.cmd("BOGUS")
    assert c.cmd("BOGUS").startswith(b"-ERR")
    assert c.line() == b"-ERR too many errors, closing"
    assert c.closed()
    # the server still serves normal clients
    p = login(pop)
    assert p.stat()[0] == 2
    p.quit()



def test_refusal_reaches_a_client_still_sending(pop):
    """An overlong line is refused and the session closed while the client is still sending
    it. Read only after pop3d has ended the session: closing a socket with unread input
    sends a RST, which destroys the -ERR before the client reads it; pop3d half-closes and
    reads what is left (linger.h), so the client gets the reason and then its EOF."""
    for _ in range(3):  # each time a fresh session
        c = RawPOP3(pop.port("pop3"))
        c.line()
        ended = pop.log("pop3d").count("event=disconnect ")
        c.send(b"USER " + b"a" * 300000)
        wait_for(lambda: pop.log("pop3d").count("event=disconnect ") > ended, 10, what="pop3d ends the session")
        assert c.line() == b"-ERR line too long"
        c.sock.settimeout(10)
        assert c.buf == b"" and c.sock.recv(65536) == b""  # our FIN; a RST raises ConnectionResetError
        c.sock.close()

def test_big_message_streams_intact(pm):
    add_user(pm, ALICE, "secret")
    line = b"0123456789" * 7 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + b"".join(b"." + line if i % 7 == 0 else line for i in range(120_000))
    put_message(pm, ALICE, "BIG.0.mx.example.test", body)
    start_pop3d(pm)
    p = login(pm)
    resp, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == body
    p.quit()


def test_lf_only_file_is_sent_with_crlf(pm):
    add_user(pm, ALICE, "secret")
    put_message(pm, ALICE, "lf-only", b"Subject: lf\n\n.dot\nplain\n")
    start_pop3d(pm)
    c = RawPOP3(pm.port("pop3"))
    c.line()
    c.cmd(f"USER {ALICE}")
    c.cmd("PASS secret")
    assert c.cmd("RETR 1").startswith(b"+OK")
    assert c.multiline() == b"Subject: lf\r\n\r\n..dot\r\nplain\r\n"
    c.cmd("QUIT")


def test_idle_timeout(pm):
    add_user(pm, ALICE, "secret")
    start_pop3d(pm, timeout=2)
    c = RawPOP3(pm.port("pop3"))
    c.line()
    t0 = time.monotonic()
    assert c.line(timeout=10) == b"-ERR autologout: idle for too long"
    assert c.closed()
    assert 1.5 < time.monotonic() - t0 < 8


def test_max_connections(pm):
    start_pop3d(pm, max_connections=2)
    a, b = RawPOP3(pm.port("pop3")), RawPOP3(pm.port("pop3"))
    assert a.line().startswith(b"+OK") and b.line().startswith(b"+OK")
    c = RawPOP3(pm.port("pop3"))
    assert c.line().startswith(b"-ERR [SYS/TEMP]")
    assert c.closed()
    a.cmd("QUIT")
    assert a.closed()

    def third_ok():
        d = RawPOP3(pm.port("pop3"))
        ok = d.line().startswith(b"+OK")
        d.close()
        return ok
    wait_for(third_ok, timeout=10, what="a free connection slot")


def test_sigterm_stops_cleanly(pop):
    p = login(pop)
    assert pop.stop("pop3d") == 0
    with pytest.raises((poplib.error_proto, EOFError, OSError)):
        p.stat()
    assert len(messages(pop, ALICE)) == 2
