"""APPEND (RFC 3501 6.3.11) with flags, a date, synchronizing literals and LITERAL+, APPENDUID
(RFC 4315), TRYCREATE, and the size bound."""
import imaplib
import os
import time

import pytest

from imap_helpers import ALICE, fetch, imap, make_message, tagged  # noqa: F401


def test_append_with_flags_and_date(imap):
    c = imap.login()
    msg = make_message("appended", body="the body\r\n")
    typ, data = c.append("INBOX", r"(\Seen \Flagged)", imaplib.Time2Internaldate(1_600_000_000), msg)
    assert typ == "OK"
    assert b"[APPENDUID " in data[0]
    validity, uid = (int(x) for x in data[0].split(b"[APPENDUID ")[1].split(b"]")[0].split())
    c.select("INBOX")
    got = fetch(c, "1", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")[1]
    assert got["UID"] == uid and got["BODY[]"] == msg and got["RFC822.SIZE"] == len(msg)
    assert set(got["FLAGS"]) - {r"\Recent"} == {r"\Seen", r"\Flagged"}
    assert got["INTERNALDATE"] == b"13-Sep-2020 12:26:40 +0000"
    typ, data = c.status("INBOX", "(UIDVALIDITY)")
    assert f"UIDVALIDITY {validity}".encode() in data[0]
    (path,) = imap.files()
    assert path.read_bytes() == msg and int(os.stat(path).st_mtime) == 1_600_000_000
    assert path.name.endswith(":2,FS")
    c.logout()


def test_append_without_flags_or_date(imap):
    c = imap.login()
    before = time.time()
    typ, data = c.append("Drafts", None, None, b"Subject: d\r\n\r\nx\r\n")
    assert typ == "OK"
    c.select("Drafts")
    got = fetch(c, "1", "(FLAGS INTERNALDATE)")[1]
    assert set(got["FLAGS"]) - {r"\Recent"} == set()
    stamp = imaplib.Internaldate2tuple(b'INTERNALDATE "' + got["INTERNALDATE"] + b'"')
    assert time.mktime(stamp) >= before - 120
    c.logout()


def test_append_literal_forms_on_the_wire(imap):
    r = imap.raw(login=ALICE)
    msg = b"Subject: raw\r\n\r\nsync literal\r\n"
    r.send(b"a1 APPEND INBOX (\\Draft) {%d}\r\n" % len(msg))
    assert r.line().startswith(b"+")                 # continuation before the bytes
    r.send(msg + b"\r\n")
    assert tagged(r.until("a1"))[0] == b"OK"
    msg2 = b"Subject: plus\r\n\r\nnon-sync literal\r\n"
    r.send(b"a2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg2), msg2))
    lines = r.until("a2")
    assert tagged(lines)[0] == b"OK" and not any(l.startswith(b"+") for l in lines)
    lines = r.cmd("SELECT INBOX", tag="a3")
    assert b"* 2 EXISTS" in lines
    bodies = sorted(p.read_bytes() for p in imap.files())
    assert bodies == sorted([msg, msg2])


def test_append_to_selected_mailbox_announces_exists(imap):
    imap.put(make_message("first"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    msg = b"Subject: second\r\n\r\nx\r\n"
    r.send(b"b1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
    lines = r.until("b1")
    lines += r.cmd("NOOP", tag="b2")
    assert b"* 2 EXISTS" in lines


def test_append_to_missing_folder_says_trycreate(imap):
    c = imap.login()
    typ, data = c.append("NoSuchFolder", None, None, b"Subject: x\r\n\r\ny\r\n")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    c.logout()


def test_append_bad_arguments(imap):
    r = imap.raw(login=ALICE)
    r.send(b'a1 APPEND INBOX "not a date" {3}\r\n')
    reply = r.line()
    if reply.startswith(b"+"):               # refused before the literal, or after it
        r.send(b"abc\r\n")
        reply = r.until("a1")[-1]
    assert reply.startswith(b"a1 BAD"), reply
    r.send(b"a2 APPEND INBOX (\\Frobnicated-Flag) {3}\r\n")
    reply = r.line()
    if reply.startswith(b"+"):
        r.send(b"abc\r\n")
        reply = r.until("a2")[-1]
    assert reply.split()[:2] in ([b"a2", b"BAD"], [b"a2", b"NO"]), reply
    assert r.cmd("NOOP", tag="a3")[-1].startswith(b"a3 OK")
    assert imap.files() == []


def test_append_bigger_than_max_message_size_refused(pm):
    from imap_helpers import SERVERS, Target
    if "postmesh" not in SERVERS:
        pytest.skip("Postmesh's own bound")
    imap = Target(pm, "postmesh").start(max_message_size=4096)
    r = imap.raw(login=ALICE)
    r.send(b"c1 APPEND INBOX {100000}\r\n")
    reply = r.line()
    assert not reply.startswith(b"+")                 # refused before the bytes are sent
    assert reply.split()[:2] in ([b"c1", b"NO"], [b"c1", b"BAD"]), reply
    # RFC 7888: a non-synchronizing literal that is too big is read and thrown away, or the
    # connection closed; either way nothing is stored and the server still serves others
    r.send(b"c2 APPEND INBOX {5000+}\r\n" + b"x" * 5000 + b"\r\n")
    try:
        lines = r.until("c2")
        assert tagged(lines)[0] in (b"NO", b"BAD")
    except (EOFError, ConnectionResetError):
        pass
    assert imap.files() == []
    c = imap.login()
    assert c.noop()[0] == "OK"
    c.logout()
    imap.stop()


def test_appended_and_copied_messages_are_recent(imap):
    # RFC 3501 6.3.11: "In either case, the Recent flag is also set"; 6.4.7: a COPY's too (SHOULD)
    imap.put(make_message("orig"))
    c = imap.login()
    c.append("Drafts", None, None, b"Subject: plain append\r\n\r\nx\r\n")
    c.append("Drafts", r"(\Seen)", None, b"Subject: flagged append\r\n\r\nx\r\n")
    typ, data = c.status("Drafts", "(MESSAGES RECENT)")
    assert b"MESSAGES 2 RECENT 2" in data[0], data
    c.select("INBOX")
    c.copy("1", "Trash")
    typ, data = c.status("Trash", "(RECENT)")
    assert b"RECENT 1" in data[0], data
    c.select("Drafts")
    assert c.response("RECENT")[1] == [b"2"]
    flags = {seq: set(v["FLAGS"]) for seq, v in fetch(c, "1:*", "(FLAGS)").items()}
    assert flags == {1: {r"\Recent"}, 2: {r"\Recent", r"\Seen"}}
    c.logout()


def test_append_date_with_zone(imap):
    c = imap.login()
    c.append("INBOX", None, '"01-Jan-2020 10:00:00 -0800"', b"Subject: z\r\n\r\nx\r\n")
    c.select("INBOX")
    got = fetch(c, "1", "(INTERNALDATE)")[1]
    # the same moment; the server may give it in its own zone (UTC here)
    assert got["INTERNALDATE"] in (b"01-Jan-2020 18:00:00 +0000", b"01-Jan-2020 10:00:00 -0800")
    (path,) = imap.files()
    assert int(os.stat(path).st_mtime) == 1_577_901_600
    c.logout()


def test_append_big_message(imap):
    msg = b"Subject: big\r\n\r\n" + (b"0123456789abcdef" * 4 + b"\r\n") * 80_000     # 5.3 MB
    c = imap.login()
    typ, data = c.append("INBOX", None, None, msg)
    assert typ == "OK", data
    c.select("INBOX")
    got = fetch(c, "1", "(RFC822.SIZE BODY.PEEK[])")[1]
    assert got["RFC822.SIZE"] == len(msg) and got["BODY[]"] == msg
    c.logout()
