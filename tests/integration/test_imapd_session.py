"""imapd's session layer: the greeting and CAPABILITY in each state, LOGIN over STARTTLS and
in the clear from loopback, AUTHENTICATE PLAIN (with and without SASL-IR) and LOGIN, the
delay and the end of a session after failed logins, literals (synchronizing, LITERAL+, too
big, refused before the client sends them), pipelining, STARTTLS injection, implicit TLS,
timeouts before and after login, IDLE without a folder, and the drain on SIGTERM."""
import base64
import imaplib
import signal
import socket
import time

import pytest

from conftest import wait_for
from imap_helpers import ALICE, PASSWORDS, RawIMAP, Target, client_tls_context

BASE_CAPS = ("IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT SPECIAL-USE "
             "LIST-EXTENDED LIST-STATUS CHILDREN")


def start(pm, **imapd):
    return Target(pm, "postmesh").start(**imapd)


def raw(t, mode="imap"):
    r = RawIMAP(t.host, t.port(mode), tls=mode == "imaps")
    return r, r.line()


def login_line(user=ALICE, password=None):
    return f'LOGIN "{user}" "{password or PASSWORDS[user]}"'


def caps_of(line: bytes):
    text = line.decode()
    return text[text.index("[CAPABILITY ") + 12:text.index("]")].split()


def test_greeting_and_capability(pm):
    t = start(pm, plaintext_auth_loopback=False)
    r, greeting = raw(t)
    assert greeting == f"* OK [CAPABILITY {BASE_CAPS} STARTTLS LOGINDISABLED] mx.example.test Postmesh IMAP ready".encode()
    lines = r.cmd("CAPABILITY", "a1")
    assert lines == [f"* CAPABILITY {BASE_CAPS} STARTTLS LOGINDISABLED".encode(), b"a1 OK Capability completed"]
    # in the clear, a password is refused before it is checked (and before a literal is sent)
    assert r.cmd(login_line(), "a2") == [b"a2 NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
                                         b"non-secure connections"]
    r.send(b"a3 LOGIN {17}\r\n")
    assert r.line().startswith(b"a3 NO [PRIVACYREQUIRED]")
    assert r.cmd("AUTHENTICATE PLAIN", "a4")[-1].startswith(b"a4 NO [PRIVACYREQUIRED]")
    assert r.cmd("STARTTLS", "a5") == [b"a5 OK Begin TLS negotiation now"]
    r.starttls()
    lines = r.cmd("CAPABILITY", "a6")
    assert lines[0] == f"* CAPABILITY {BASE_CAPS} AUTH=PLAIN AUTH=LOGIN".encode()
    assert r.cmd("STARTTLS", "a7") == [b"a7 BAD TLS is already active"]
    ok = r.cmd(login_line(), "a8")[-1]
    assert ok.startswith(f"a8 OK [CAPABILITY {BASE_CAPS}] Logged in".encode()), ok
    assert r.cmd("LOGIN x y", "a9") == [b"a9 BAD Already logged in"]
    assert r.cmd("LOGOUT", "b1") == [b"* BYE Logging out", b"b1 OK Logout completed"]
    assert r.closed()
    assert "event=login " in t.log() and "tls=1" in t.log()


def test_loopback_login_in_the_clear_with_imaplib(pm):
    t = start(pm)
    c = imaplib.IMAP4(t.host, t.port("imap"), timeout=15)
    assert "AUTH=PLAIN" in c.capabilities and "STARTTLS" in c.capabilities
    assert "LOGINDISABLED" not in c.capabilities
    typ, _ = c.login(ALICE, PASSWORDS[ALICE])
    assert typ == "OK"
    typ, data = c.capability()
    assert "AUTH=PLAIN" not in data[0].decode() and "STARTTLS" not in data[0].decode()
    typ, data = c.noop()
    assert typ == "OK"
    typ, data = c.namespace()
    assert data == [b'(("" "/")) NIL NIL']
    typ, data = c.xatom("ID", '("name" "imaplib" "version" NIL)')
    assert typ == "OK" and c.untagged_responses.get("ID") == [b'("name" "Postmesh")']
    typ, data = c._simple_command("ENABLE", "CONDSTORE", "X-UNKNOWN")
    assert typ == "OK"
    assert c.logout()[0] == "BYE"


def test_implicit_tls(pm):
    t = start(pm, plaintext_auth_loopback=False)
    c = imaplib.IMAP4_SSL(t.host, t.port("imaps"), ssl_context=client_tls_context(), timeout=15)
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert "STARTTLS" not in c.capabilities and "AUTH=PLAIN" in c.capabilities
    assert c.login(ALICE, PASSWORDS[ALICE])[0] == "OK"
    c.logout()


def test_authenticate(pm):
    t = start(pm)
    plain = base64.b64encode(f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode()).decode()
    r, _ = raw(t)
    assert r.cmd(f"AUTHENTICATE PLAIN {plain}", "a1")[-1].startswith(b"a1 OK [CAPABILITY ")  # SASL-IR
    r.close()
    r, _ = raw(t)
    r.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ "
    r.send(plain.encode() + b"\r\n")
    assert r.line().startswith(b"a1 OK [CAPABILITY ")
    r.close()
    r, _ = raw(t)
    r.send(b"a1 AUTHENTICATE LOGIN\r\n")
    assert r.line() == b"+ VXNlcm5hbWU6"
    r.send(base64.b64encode(ALICE.encode()) + b"\r\n")
    assert r.line() == b"+ UGFzc3dvcmQ6"
    r.send(base64.b64encode(PASSWORDS[ALICE].encode()) + b"\r\n")
    assert r.line().startswith(b"a1 OK [CAPABILITY ")
    r.close()
    r, _ = raw(t)
    r.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ "
    r.send(b"*\r\n")
    assert r.line() == b"a1 BAD Authentication cancelled"
    assert r.cmd("AUTHENTICATE CRAM-MD5", "a2") == [b"a2 NO Unsupported authentication mechanism"]
    assert r.cmd("AUTHENTICATE PLAIN !!!!", "a3") == [b"a3 BAD Invalid AUTHENTICATE PLAIN response"]
    r.close()


def test_failed_login_is_delayed_and_ends_the_session(pm):
    t = start(pm, auth_delay=1)
    r, _ = raw(t)
    for i in range(3):
        began = time.monotonic()
        line = r.cmd(login_line(password="wrong"), f"f{i}")[-1]
        assert line == f"f{i} NO [AUTHENTICATIONFAILED] Authentication failed.".encode()
        assert time.monotonic() - began >= 0.9
    assert r.line() == b"* BYE Too many authentication failures"
    assert r.closed()
    # an unknown user gets the same answer
    r, _ = raw(t)
    assert r.cmd(login_line(user="nobody@example.test", password="x"), "u1")[-1] == \
        b"u1 NO [AUTHENTICATIONFAILED] Authentication failed."
    assert r.cmd(login_line(), "u2")[-1].startswith(b"u2 OK")
    assert "event=auth_failed" in t.log()


def test_literals(pm):
    t = start(pm, max_command=4096, max_message_size=2048)
    r, _ = raw(t)
    user, password = ALICE.encode(), PASSWORDS[ALICE].encode()
    # synchronizing: "+" first
    r.send(b"a1 LOGIN {%d}\r\n" % len(user))
    assert r.line() == b"+ Ready for literal data"
    r.send(user + b" {%d}\r\n" % len(password))
    assert r.line() == b"+ Ready for literal data"
    r.send(password + b"\r\n")
    assert r.line().startswith(b"a1 OK")
    # LITERAL+: no "+", the bytes follow at once
    r.send(b"a2 SELECT {6+}\r\nno/box\r\n")
    assert not r.line().startswith(b"+")
    # too big for the command: NO [TOOBIG] before the client sends it; the session goes on
    r.send(b"a3 STATUS {5000}\r\n")
    assert r.line() == b"a3 NO [TOOBIG] Command too long"
    assert r.cmd("NOOP", "a4") == [b"a4 OK NOOP completed"]
    # APPEND: the message bound is its own
    r.send(b"a5 APPEND INBOX {3000}\r\n")
    assert r.line() == b"a5 NO [TOOBIG] Message too big"
    # too big and already on its way (LITERAL+): BAD and the connection ends (RFC 7888)
    r.send(b"a7 STATUS {5000+}\r\n" + b"x" * 100)
    assert r.line() == b"a7 BAD [TOOBIG] Command too long"
    assert r.line() == b"* BYE Literal too big"
    assert r.closed()


def test_append_literal_before_login_is_refused_without_continuation(pm):
    t = start(pm)
    r, _ = raw(t)
    r.send(b"a1 APPEND INBOX {10}\r\n")
    assert r.line() == b"a1 BAD Log in first"
    # a refused LITERAL+ literal is read and forgotten, then the command is answered
    r.send(b"a2 APPEND INBOX {10+}\r\n0123456789\r\na3 NOOP\r\n")
    assert r.line() == b"a2 BAD Log in first"
    assert r.line() == b"a3 OK NOOP completed"


def test_bad_input(pm):
    t = start(pm, max_line=1024)
    r, _ = raw(t)
    assert r.cmd("FROB", "a1") == [b"a1 BAD Unknown command"]
    assert r.cmd("SELECT INBOX", "a2") == [b"a2 BAD Log in first"]
    assert r.cmd("UID NOOP", "a3") == [b"a3 BAD Unknown command"]
    r.send(b"+tag NOOP\r\n")
    assert r.line() == b"* BAD Invalid tag"
    assert r.cmd('LOGIN "unterminated', "a4") == [b"a4 BAD unterminated quoted string"]
    r.send(b"\r\n")  # an empty line is no command
    assert r.cmd("NOOP", "a5") == [b"a5 OK NOOP completed"]
    r.send(b"a6 NOOP " + b"x" * 2000 + b"\r\n")
    assert r.line() == b"* BYE Line too long"
    assert r.closed()


def test_pipelined_commands_run_in_order(pm):
    t = start(pm)
    r, _ = raw(t)
    r.send(b"p1 NOOP\r\np2 CAPABILITY\r\np3 " + login_line().encode() + b"\r\np4 NAMESPACE\r\np5 LOGOUT\r\n")
    tags = [line.split(b" ")[0] for line in iter(lambda: r.line(), b"p5 OK Logout completed")]
    assert [x for x in tags if x != b"*"] == [b"p1", b"p2", b"p3", b"p4"]


def test_starttls_drops_pipelined_input(pm):
    t = start(pm, plaintext_auth_loopback=False)
    r, _ = raw(t)
    # STARTTLS and a command in one packet (CVE-2011-0411): the LOGIN must not survive
    r.send(b"s1 STARTTLS\r\ns2 " + login_line().encode() + b"\r\n")
    assert r.line() == b"s1 OK Begin TLS negotiation now"
    r.starttls()
    assert r.cmd("NOOP", "s3") == [b"s3 OK NOOP completed"]
    assert r.cmd("SELECT INBOX", "s4") == [b"s4 BAD Log in first"]
    wait_for(lambda: "event=starttls_pipelined_dropped" in t.log(), what="the drop logged")


def test_timeout_before_login(pm):
    t = start(pm, timeout=2)
    r, _ = raw(t)
    began = time.monotonic()
    assert r.line(timeout=10) == b"* BYE Autologout; idle for too long"
    assert 1.5 < time.monotonic() - began < 8
    assert r.closed()


def test_timeout_after_login_is_idle_timeout(pm):
    t = start(pm, timeout=1, idle_timeout=3)
    r, _ = raw(t)
    assert r.cmd(login_line(), "a1")[-1].startswith(b"a1 OK")
    began = time.monotonic()
    assert r.line(timeout=12) == b"* BYE Autologout; idle for too long"
    assert time.monotonic() - began > 2.5  # the login's timeout, not the shorter one before it


def test_trickled_command_hits_the_deadline(pm):
    t = start(pm, timeout=2)
    r, _ = raw(t)
    began = time.monotonic()
    line = None
    for ch in b"a1 NOOP-and-more-and-more":
        try:
            r.send(bytes([ch]))
        except OSError:
            break
        if r.readable(0.5):
            line = r.line()
            break
    assert line == b"* BYE Autologout; command not completed in time"
    assert time.monotonic() - began < 10


def test_idle_without_a_folder(pm):
    t = start(pm)
    r, _ = raw(t)
    assert r.cmd("IDLE", "i0") == [b"i0 BAD Log in first"]
    assert r.cmd(login_line(), "i1")[-1].startswith(b"i1 OK")
    r.send(b"i2 IDLE\r\n")
    assert r.line() == b"+ idling"
    assert not r.readable(0.3)
    r.send(b"DONE\r\n")
    assert r.line() == b"i2 OK IDLE terminated"
    r.send(b"i3 IDLE\r\n")
    assert r.line() == b"+ idling"
    r.send(b"NOPE\r\n")
    assert r.line() == b"i3 BAD Expected DONE"


def test_drain_says_bye_to_idle_sessions(pm):
    t = start(pm)
    waiting, _ = raw(t)
    idling, _ = raw(t)
    assert idling.cmd(login_line(), "d1")[-1].startswith(b"d1 OK")
    idling.send(b"d2 IDLE\r\n")
    assert idling.line() == b"+ idling"
    pm.procs["imapd"].send_signal(signal.SIGTERM)
    assert waiting.line() == b"* BYE Server shutting down"
    assert idling.line() == b"* BYE Server shutting down"
    assert waiting.closed() and idling.closed()
    wait_for(lambda: pm.procs["imapd"].poll() is not None, what="imapd to exit")
    with pytest.raises(OSError):
        socket.create_connection((t.host, t.port("imap")), timeout=2).recv(1)


def test_per_address_limit_and_session_limit(pm):
    t = start(pm, max_connections_per_ip=2, session_timeout=3)
    first, _ = raw(t)
    second, _ = raw(t)
    third, greeting = raw(t)
    assert greeting == b"* BYE [UNAVAILABLE] Too many connections from your address"
    assert third.closed()
    # the session's absolute limit, however busy it keeps
    began = time.monotonic()
    while time.monotonic() - began < 10:
        first.send(b"n NOOP\r\n")
        line = first.line()
        if line.startswith(b"* BYE"):
            break
        assert line == b"n OK NOOP completed"
        time.sleep(0.2)
    assert line == b"* BYE Session time limit reached"
    assert 2.5 < time.monotonic() - began < 8
    assert first.closed()
    second.close()


def test_lockout_after_failed_logins(pm):
    t = start(pm, auth_failures=2, auth_lockout=60)
    for i in range(2):
        r, _ = raw(t)
        assert r.cmd(login_line(password="wrong"), "f")[-1] == b"f NO [AUTHENTICATIONFAILED] Authentication failed."
        r.close()
    r, _ = raw(t)
    # locked out: even the right password is not checked
    assert r.cmd(login_line(), "g") == [b"g NO [UNAVAILABLE] Too many failed logins from your address, try again later"]
    assert r.line() == b"* BYE Too many authentication failures"
    assert r.closed()
    assert "event=auth_locked_out" in t.log()


def test_many_idle_sessions_share_a_watch_and_all_wake(pm):
    """One inotify watch per folder serves every session idling on it: all of them hear of a
    new message within a second, and a session on another folder hears nothing."""
    from imap_helpers import make_message
    t = start(pm, max_connections_per_ip=50)
    t.make_folder(folder="Sent")
    sessions = []
    for i in range(20):
        r, _ = raw(t)
        assert r.cmd(login_line(), "l")[-1].startswith(b"l OK")
        assert r.cmd("SELECT INBOX", "s")[-1].startswith(b"s OK")
        r.send(b"i IDLE\r\n")
        assert r.line() == b"+ idling"
        sessions.append(r)
    other, _ = raw(t)
    assert other.cmd(login_line(), "l")[-1].startswith(b"l OK")
    assert other.cmd("SELECT Sent", "s")[-1].startswith(b"s OK")
    other.send(b"i IDLE\r\n")
    assert other.line() == b"+ idling"
    began = time.monotonic()
    t.put(make_message("wake up"))
    for r in sessions:
        assert r.line(timeout=5) == b"* 1 EXISTS"
    assert time.monotonic() - began < 1.5
    assert not other.readable(0.3)
    # the watch goes with the last session on it; a new IDLE makes it again
    for r in sessions:
        r.send(b"DONE\r\n")
        lines = r.until("i")
        assert lines[-1] == b"i OK IDLE terminated"
    sessions[0].send(b"j IDLE\r\n")
    assert sessions[0].line() == b"+ idling"
    t.put(make_message("again"))
    assert sessions[0].line(timeout=5) == b"* 2 EXISTS"
    other.send(b"DONE\r\n")
    assert other.until("i")[-1] == b"i OK IDLE terminated"


def test_too_many_bad_commands_end_the_session(pm):
    t = start(pm)
    r, _ = raw(t)
    for i in range(19):
        assert r.cmd("FROB", f"b{i}") == [f"b{i} BAD Unknown command".encode()]
    r.send(b"last FROB\r\n")
    assert r.line() == b"last BAD Unknown command"
    assert r.line() == b"* BYE Too many invalid commands"
    assert r.closed()


def test_append_streams_into_tmp_and_leaves_nothing_there(pm):
    """APPEND's message goes into the user's Maildir/tmp as it arrives; whether the folder
    takes it or the command fails, nothing stays in tmp/."""
    t = start(pm)
    c = imaplib.IMAP4(t.host, t.port("imap"), timeout=15)
    c.login(ALICE, PASSWORDS[ALICE])
    body = b"Subject: big\r\n\r\n" + b"0123456789abcdef\r\n" * 60000  # ~1 MB, many reads
    typ, data = c.append("INBOX", None, None, body)
    assert typ == "OK", data
    typ, data = c.append("No/Such/Folder", None, None, b"Subject: x\r\n\r\nx\r\n")
    assert typ == "NO" and b"TRYCREATE" in data[0], data
    tmp = t.maildir() / "tmp"
    assert list(tmp.iterdir()) == []
    assert [p.stat().st_size for p in t.files()] == [len(body)]
    c.logout()


def test_metrics(pm):
    from conftest import free_port
    from test_metrics import scrape, value
    port = free_port()
    t = start(pm, metrics=f"127.0.0.1:{port}")
    c = imaplib.IMAP4(t.host, t.port("imap"), timeout=15)
    c.login(ALICE, PASSWORDS[ALICE])
    with pytest.raises(imaplib.IMAP4.error):
        imaplib.IMAP4(t.host, t.port("imap"), timeout=15).login(ALICE, "wrong")
    samples = scrape(port)
    assert value(samples, "postmesh_imapd_sessions") >= 1
    assert value(samples, "postmesh_imapd_connections_total") == 2
    assert value(samples, "postmesh_imapd_logins_total", result="ok") == 1
    assert value(samples, "postmesh_imapd_logins_total", result="failed") == 1
    c.logout()
