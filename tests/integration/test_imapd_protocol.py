"""imapd's protocol layer with imaplib and a raw client: greeting and CAPABILITY, LOGIN and
AUTHENTICATE PLAIN (loopback plaintext, STARTTLS, imaps), LOGOUT, NOOP, ID, ENABLE, NAMESPACE,
synchronizing literals and LITERAL+. LOGINDISABLED off loopback is the core's own test."""
import base64
import imaplib
import ssl

import pytest

from imap_helpers import ALICE, RawIMAP, imap, tagged, untagged  # noqa: F401 (fixture)
from pop3_helpers import client_tls_context

POST_LOGIN = {"IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "NAMESPACE", "ID", "ENABLE", "SPECIAL-USE",
              "UNSELECT"}


def caps(lines):
    for line in lines:
        if line.upper().startswith(b"* CAPABILITY "):
            return set(line[len(b"* CAPABILITY "):].decode().upper().split())
    raise AssertionError(lines)


def test_greeting_and_capability_before_login(imap):
    r = RawIMAP(imap.host, imap.port())
    greeting = r.line()
    assert greeting.startswith(b"* OK ")
    lines = r.cmd("CAPABILITY", tag="a1")
    assert tagged(lines)[0] == b"OK"
    before = caps(lines)
    assert {"IMAP4REV1", "STARTTLS", "AUTH=PLAIN"} <= before
    assert "LOGINDISABLED" not in before          # loopback: plaintext login allowed
    lines = r.cmd(f"LOGIN {ALICE} secret", tag="a2")
    assert tagged(lines)[0] == b"OK"
    after = caps(r.cmd("CAPABILITY", tag="a3"))
    assert POST_LOGIN <= after, POST_LOGIN - after
    assert "STARTTLS" not in after and "LOGINDISABLED" not in after
    lines = r.cmd("LOGOUT", tag="a4")
    assert lines[0].startswith(b"* BYE")
    assert lines[-1].startswith(b"a4 OK")
    assert r.closed()


def test_login_wrong_password_and_unknown_user(imap):
    for user, password in ((ALICE, "wrong"), ("nobody@example.test", "secret")):
        c = imap.client()
        with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
            c.login(user, password)
        c.logout()
    c = imap.login()         # the right one still works afterwards
    assert c.noop()[0] == "OK"
    c.logout()


def test_login_quoted_and_literal_arguments(imap):
    r = imap.raw()
    # a synchronizing literal: the server says "+" before the client sends the bytes
    r.send(b"a1 LOGIN {%d}\r\n" % len(ALICE))
    assert r.line().startswith(b"+")
    r.send(ALICE.encode() + b' "secret"\r\n')
    assert r.until("a1")[-1].startswith(b"a1 OK")
    r.cmd("LOGOUT")
    # LITERAL+ (RFC 7888): no continuation, bytes follow at once
    r = imap.raw()
    r.send(b"a1 LOGIN {%d+}\r\n%s {6+}\r\nsecret\r\n" % (len(ALICE), ALICE.encode()))
    lines = r.until("a1")
    assert lines[-1].startswith(b"a1 OK"), lines
    assert not any(l.startswith(b"+") for l in lines)
    r.cmd("LOGOUT")


def test_authenticate_plain_on_loopback(imap):
    c = imap.client()
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{ALICE}\0secret".encode())
    assert typ == "OK"
    assert c.select()[0] == "OK"
    c.logout()
    # SASL-IR style initial response on the command line, raw
    r = imap.raw()
    ir = base64.b64encode(f"\0{ALICE}\0wrong".encode()).decode()
    r.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert r.line().startswith(b"+")
    r.send(ir.encode() + b"\r\n")
    assert r.until("a1")[-1].startswith(b"a1 NO")
    # cancelled with "*" (RFC 3501 6.2.2: BAD)
    r.send(b"a2 AUTHENTICATE PLAIN\r\n")
    assert r.line().startswith(b"+")
    r.send(b"*\r\n")
    assert r.until("a2")[-1].startswith(b"a2 BAD")


def test_starttls_then_authenticate(imap):
    c = imap.client()
    assert "STARTTLS" in c.capabilities
    typ, _ = c.starttls(ssl_context=client_tls_context())
    assert typ == "OK"
    assert isinstance(c.sock, ssl.SSLSocket)
    typ, data = c.capability()
    assert b"STARTTLS" not in data[0].upper()
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{ALICE}\0secret".encode())
    assert typ == "OK"
    c.logout()


def test_starttls_refused_twice_and_after_login(imap):
    r = imap.raw()
    assert r.cmd("STARTTLS", tag="s1")[-1].startswith(b"s1 OK")
    r.starttls()
    assert r.cmd("STARTTLS", tag="s2")[-1].split()[1] in (b"BAD", b"NO")
    r.close()
    r = imap.raw(login=ALICE)
    assert r.cmd("STARTTLS", tag="s3")[-1].split()[1] in (b"BAD", b"NO")


def test_imaps_login_and_authenticate(imap):
    c = imap.client("imaps")
    assert "STARTTLS" not in c.capabilities and "AUTH=PLAIN" in c.capabilities
    c.login(ALICE, "secret")
    typ, data = c.select()
    assert typ == "OK"
    c.logout()
    c = imap.client("imaps")
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{ALICE}\0secret".encode())
    assert typ == "OK"
    c.logout()


def test_noop_in_every_state_and_unknown_command(imap):
    r = imap.raw()
    assert r.cmd("NOOP", tag="n1")[-1].startswith(b"n1 OK")
    assert r.cmd("FROBNICATE", tag="n2")[-1].startswith(b"n2 BAD")
    assert r.cmd("SELECT INBOX", tag="n3")[-1].split()[1] in (b"BAD", b"NO")  # not authenticated
    assert r.cmd(f"LOGIN {ALICE} secret", tag="n4")[-1].startswith(b"n4 OK")
    assert r.cmd("NOOP", tag="n5")[-1].startswith(b"n5 OK")
    assert r.cmd("SELECT INBOX", tag="n6")[-1].startswith(b"n6 OK")
    assert r.cmd("NOOP", tag="n7")[-1].startswith(b"n7 OK")


def test_id_enable_namespace(imap):
    r = imap.raw(login=ALICE)
    lines = r.cmd('ID ("name" "pytest" "version" "1")', tag="i1")
    assert lines[-1].startswith(b"i1 OK")
    assert untagged(lines) and untagged(lines)[0].startswith(b"* ID ")
    lines = r.cmd("ID NIL", tag="i2")
    assert lines[-1].startswith(b"i2 OK")
    lines = r.cmd("NAMESPACE", tag="i3")
    assert lines[-1].startswith(b"i3 OK")
    assert untagged(lines) == [b'* NAMESPACE (("" "/")) NIL NIL']
    lines = r.cmd("ENABLE X-NO-SUCH-EXTENSION", tag="i4")
    assert lines[-1].startswith(b"i4 OK")
    assert [l.rstrip() for l in untagged(lines)] in ([], [b"* ENABLED"])  # nothing was enabled


def test_logout_before_login(imap):
    r = imap.raw()
    lines = r.cmd("LOGOUT", tag="z1")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"z1 OK")
    assert r.closed()


def test_pipelined_commands_answered_in_order(imap):
    imap.put(b"Subject: p\r\n\r\nx\r\n")
    r = imap.raw(login=ALICE)
    r.send(b"p1 SELECT INBOX\r\np2 NOOP\r\np3 FETCH 1 (FLAGS)\r\np4 NOOP\r\n")
    lines = r.until("p4")
    tags = [l.split()[0] for l in lines if not l.startswith(b"*")]
    assert sorted(tags) == [b"p1", b"p2", b"p3", b"p4"]
    if imap.kind == "postmesh":     # one command at a time per session (RFC 3501 5.5 allows more)
        assert tags == [b"p1", b"p2", b"p3", b"p4"]
    assert all(l.split()[1] == b"OK" for l in lines if not l.startswith(b"*"))


def test_many_sessions_at_once(imap):
    import threading
    imap.put(b"Subject: shared\r\n\r\nx\r\n")
    errors, clients = [], [imap.login() for _ in range(15)]

    def work(c):
        try:
            assert c.select("INBOX", readonly=True)[0] == "OK"
            typ, data = c.fetch("1", "(BODY.PEEK[])")
            assert data[0][1] == b"Subject: shared\r\n\r\nx\r\n"
            c.logout()
        except Exception as e:          # collected: an assert in a thread would be lost
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_literals_as_mailbox_names_and_search_strings(imap):
    imap.put(b"Subject: needle in a haystack\r\n\r\nx\r\n")
    r = imap.raw(login=ALICE)
    r.send(b"l1 CREATE {8}\r\n")
    assert r.line().startswith(b"+")
    r.send(b"My Stuff\r\n")
    assert r.until("l1")[-1].startswith(b"l1 OK")
    lines = r.cmd('LIST "" "My*"', tag="l2")
    assert untagged(lines) == [b'* LIST (\\HasNoChildren) "/" "My Stuff"']
    r.send(b"l3 SELECT {5+}\r\nINBOX\r\nl4 SEARCH SUBJECT {6+}\r\nneedle\r\n")
    lines = r.until("l4")
    assert b"* SEARCH 1" in lines and lines[-1].startswith(b"l4 OK")
    r.send(b"l5 SEARCH SUBJECT {8}\r\n")
    assert r.line().startswith(b"+")
    r.send(b"haystack\r\n")
    lines = r.until("l5")
    assert b"* SEARCH 1" in lines


def test_connections_dropped_in_every_state_leave_the_server_serving(imap):
    imap.put(b"Subject: s\r\n\r\n" + b"x" * 200_000 + b"\r\n")
    drops = [b"", b"a1 LOGIN {20}\r\n", b"a1 AUTHENTICATE PLAIN\r\n",
             f"a1 LOGIN {ALICE} secret\r\na2 APPEND INBOX {{1000}}\r\npartial".encode(),
             f"a1 LOGIN {ALICE} secret\r\na2 SELECT INBOX\r\na3 IDLE\r\n".encode(),
             f"a1 LOGIN {ALICE} secret\r\na2 SELECT INBOX\r\na3 FETCH 1 BODY[]\r\n".encode(),  # unread output
             b"a1 STARTTLS\r\n"]
    for data in drops:
        r = RawIMAP(imap.host, imap.port())
        r.line()
        r.send(data)
        r.close()
    c = imap.login(select="INBOX")
    assert c.fetch("1", "(RFC822.SIZE)")[0] == "OK"
    c.logout()
    assert imap.files()[0].stat().st_size > 200_000
