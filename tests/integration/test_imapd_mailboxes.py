"""postmesh-imapd's mailbox commands with imaplib and a raw line client: SELECT / EXAMINE
responses, CLOSE / UNSELECT / CHECK, updates announced to a selected session (deliveries,
flag changes and removals made by others), LIST (patterns, references, LIST-EXTENDED
selection and return options, LIST-STATUS, special-use), LSUB, STATUS, CREATE / DELETE /
RENAME, SUBSCRIBE / UNSUBSCRIBE and APPEND (flags, date, APPENDUID, TRYCREATE). The broad
command suite is test_imapd_*.py of the tests helpers; this file is the mailbox commands'
own."""
import imaplib
import os
import re
import socket
import time

import pytest

from conftest import wait_for
from imap_helpers import start_imapd
from pop3_helpers import add_user, maildir, put_message

ALICE = "alice@example.test"
MSG1 = b"From: bob@example.test\r\nSubject: one\r\n\r\nfirst\r\n"
MSG2 = b"From: carol@example.test\r\nSubject: two\r\n\r\nsecond message\r\n"
SPECIAL = {"Sent": b"\\Sent", "Drafts": b"\\Drafts", "Trash": b"\\Trash", "Junk": b"\\Junk",
           "Archive": b"\\Archive"}


@pytest.fixture
def imap(pm):
    add_user(pm, ALICE, "secret")
    put_message(pm, ALICE, "1700000000.M1P1.mx.example.test", MSG1, sub="new", mtime=1_700_000_000)
    put_message(pm, ALICE, "1700000100.M2P1.mx.example.test:2,S", MSG2, sub="cur", mtime=1_700_000_100)
    return start_imapd(pm)


def login(pm):
    m = imaplib.IMAP4("127.0.0.1", pm.port("imap"), timeout=15)
    m.login(ALICE, "secret")
    return m


class Raw:
    """One command at a time on a plain socket: the exact untagged lines and the tagged one.
    Literals in responses are kept inline ("{n}\\r\\n" + bytes)."""

    def __init__(self, pm):
        self.sock = socket.create_connection(("127.0.0.1", pm.port("imap")), timeout=15)
        self.buf = b""
        self.n = 0
        assert self.line().startswith(b"* OK")
        self.ok(f'LOGIN {ALICE} secret')

    def line(self):
        deadline = time.monotonic() + 15
        while b"\r\n" not in self.buf:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", line)
        if m:  # a literal: its bytes and the rest of the line belong to this line
            want = int(m.group(1))
            while len(self.buf) < want:
                self.buf += self.sock.recv(65536)
            lit, self.buf = self.buf[:want], self.buf[want:]
            return line + b"\r\n" + lit + self.line()
        return line

    def cmd(self, text, raw=None):
        """(untagged lines, tagged line) of one command: text and CRLF, or raw bytes as they
        are (literals included), after the tag."""
        self.n += 1
        tag = f"b{self.n}".encode()
        self.sock.sendall(tag + b" " + (raw if raw is not None else text.encode() + b"\r\n"))
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.startswith(b"OK"), (text, untagged, tagged)
        return untagged

    def close(self):
        self.sock.close()


def lists(untagged, kind=b"LIST"):
    """{name: attributes} of the LIST / LSUB lines (names unquoted)."""
    out = {}
    for line in untagged:
        m = re.match(rb'\* ' + kind + rb' \(([^)]*)\) (?:"/"|NIL) ("(?:[^"\\]|\\.)*"|\S+)(.*)', line)
        if m:
            name = m.group(2)
            if name.startswith(b'"'):
                name = re.sub(rb'\\(.)', rb'\1', name[1:-1])
            out[name.decode()] = set(m.group(1).split())
    return out


# ---------------------------------------------------------------- SELECT / EXAMINE

def test_select_responses(imap):
    c = Raw(imap)
    untagged, tagged = c.cmd("SELECT INBOX")
    assert tagged.startswith(b"OK [READ-WRITE]")
    assert b"* 2 EXISTS" in untagged
    assert b"* 1 RECENT" in untagged
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in untagged
    assert any(l.startswith(b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft")
               for l in untagged)
    assert any(re.match(rb"\* OK \[UIDVALIDITY \d+\]", l) for l in untagged)
    assert any(re.match(rb"\* OK \[UIDNEXT 3\]", l) for l in untagged)
    # the new message, first in arrival order, is the first unseen
    assert any(re.match(rb"\* OK \[UNSEEN 1\]", l) for l in untagged)
    # the read-write select took it out of new/ (RECENT to this session only)
    md = maildir(imap, ALICE)
    assert not list((md / "new").iterdir())
    c2 = Raw(imap)
    untagged, tagged = c2.cmd("EXAMINE INBOX")
    assert tagged.startswith(b"OK [READ-ONLY]")
    assert b"* 0 RECENT" in untagged
    assert b"* OK [PERMANENTFLAGS ()] No permanent flags permitted" in untagged or \
        any(l.startswith(b"* OK [PERMANENTFLAGS ()]") for l in untagged)
    c.close()
    c2.close()


def test_select_imaplib_and_uidvalidity_stable(imap):
    m = login(imap)
    typ, data = m.select("INBOX")
    assert (typ, data) == ("OK", [b"2"])
    uv1 = m.response("UIDVALIDITY")[1][0]
    m.logout()
    m = login(imap)
    m.select("inbox")  # any case is the inbox
    assert m.response("UIDVALIDITY")[1][0] == uv1
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK"
    m.logout()


def test_select_missing_and_reselect(imap):
    c = Raw(imap)
    untagged, tagged = c.cmd("SELECT Nowhere")
    assert tagged.startswith(b"NO [NONEXISTENT]")
    c.ok("SELECT INBOX")
    untagged, tagged = c.cmd("SELECT Sent")
    assert tagged.startswith(b"OK [READ-WRITE]")
    # the old folder's end comes first (RFC 9051 §6.3.2, RFC 7162 [CLOSED])
    assert untagged[0].startswith(b"* OK [CLOSED]")
    assert b"* 0 EXISTS" in untagged
    # a failed SELECT leaves nothing selected
    untagged, tagged = c.cmd("SELECT Nowhere")
    assert tagged.startswith(b"NO")
    untagged, tagged = c.cmd("CLOSE")
    assert tagged.startswith(b"BAD") or tagged.startswith(b"NO")
    c.close()


def test_close_expunges_unselect_does_not(imap):
    md = maildir(imap, ALICE)
    put_message(imap, ALICE, "1700000200.M3P1.mx.example.test:2,ST", b"Subject: gone\r\n\r\nx\r\n", sub="cur")
    c = Raw(imap)
    c.ok("EXAMINE INBOX")
    untagged = c.ok("CLOSE")  # read-only: nothing goes
    assert not any(b"EXPUNGE" in l for l in untagged)
    assert (md / "cur" / "1700000200.M3P1.mx.example.test:2,ST").exists()
    c.ok("SELECT INBOX")
    c.ok("UNSELECT")
    assert (md / "cur" / "1700000200.M3P1.mx.example.test:2,ST").exists()
    c.ok("SELECT INBOX")
    untagged = c.ok("CLOSE")
    assert not any(b"EXPUNGE" in l for l in untagged)  # CLOSE expunges silently
    assert not (md / "cur" / "1700000200.M3P1.mx.example.test:2,ST").exists()
    assert len(list((md / "cur").iterdir())) == 2
    untagged, tagged = c.cmd("UNSELECT")  # nothing selected any more
    assert not tagged.startswith(b"OK")
    c.close()


def test_check_and_announce_changes_made_by_others(imap):
    md = maildir(imap, ALICE)
    c = Raw(imap)
    c.ok("SELECT INBOX")
    put_message(imap, ALICE, "1700000300.M4P1.mx.example.test", b"Subject: three\r\n\r\nx\r\n", sub="new")
    untagged = c.ok("CHECK")
    assert b"* 3 EXISTS" in untagged
    assert b"* 2 RECENT" in untagged  # message 1 came from new/ at SELECT, this one now
    # another client sets \Flagged on message 2 (a rename, as any Maildir reader does)
    old = md / "cur" / "1700000100.M2P1.mx.example.test:2,S"
    os.rename(old, md / "cur" / "1700000100.M2P1.mx.example.test:2,FS")
    untagged = c.ok("NOOP")
    assert any(re.match(rb"\* 2 FETCH \(.*FLAGS \((\\Flagged \\Seen|\\Seen \\Flagged)\)", l) for l in untagged), untagged
    # and removes message 1 (pop3d's DELE + QUIT)
    for p in (md / "cur").iterdir():
        if p.name.startswith("1700000000.M1P1"):
            p.unlink()
    untagged = c.ok("NOOP")
    assert b"* 1 EXPUNGE" in untagged
    untagged = c.ok("NOOP")
    assert not any(b"EXPUNGE" in l or b"EXISTS" in l for l in untagged)
    c.close()


# ---------------------------------------------------------------- LIST / LSUB

def test_list_default_folders_and_patterns(imap):
    c = Raw(imap)
    got = lists(c.ok('LIST "" "*"'))
    assert set(got) == {"INBOX", *SPECIAL}
    for name, attr in SPECIAL.items():
        assert attr in got[name]
    c.ok("CREATE Projects/2026/Q1")
    c.ok('CREATE "Work Stuff"')
    got = lists(c.ok('LIST "" "%"'))
    assert set(got) == {"INBOX", "Projects", "Work Stuff", *SPECIAL}
    assert b"\\HasChildren" in got["Projects"]
    assert b"\\HasNoChildren" in got["Work Stuff"]
    assert set(lists(c.ok('LIST "" "Projects/%"'))) == {"Projects/2026"}
    assert set(lists(c.ok('LIST "" "Projects/*"'))) == {"Projects/2026", "Projects/2026/Q1"}
    assert set(lists(c.ok('LIST "Projects/" "%"'))) == {"Projects/2026"}
    assert set(lists(c.ok('LIST "" "*Q1"'))) == {"Projects/2026/Q1"}
    assert set(lists(c.ok('LIST "" "inbox"'))) == {"INBOX"}
    assert set(lists(c.ok('LIST "" "nothing*"'))) == set()
    untagged = c.ok('LIST "" ""')
    assert untagged == [b'* LIST (\\Noselect) "/" ""']
    c.close()


def test_list_names_are_quoted_or_literal(imap):
    c = Raw(imap)
    c.ok('CREATE "with space"')
    c.ok('CREATE "quote\\"d"')
    got = lists(c.ok('LIST "" "*"'))
    assert "with space" in got and 'quote"d' in got
    c.close()


def test_list_extended(imap):
    c = Raw(imap)
    c.ok("CREATE Lists/a")
    c.ok("SUBSCRIBE Lists/a")
    c.ok("SUBSCRIBE Gone")  # a subscription to a folder that does not exist
    got = lists(c.ok('LIST (SUBSCRIBED) "" "*"'))
    assert b"\\Subscribed" in got["Lists/a"]
    assert b"\\NonExistent" in got["Gone"]
    assert "Lists" not in got  # not subscribed itself
    assert {"Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(got)
    untagged = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert any(re.match(rb'\* LIST \([^)]*\) "/" Lists \("CHILDINFO" \("SUBSCRIBED"\)\)$', l) for l in untagged), untagged
    assert not any(b"Lists/a" in l for l in untagged)
    got = lists(c.ok('LIST (SPECIAL-USE) "" "*"'))
    assert set(got) == set(SPECIAL)
    got = lists(c.ok('LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)'))
    assert b"\\Subscribed" in got["Sent"] and b"\\Sent" in got["Sent"]
    assert b"\\Subscribed" not in got["Lists"] and b"\\HasChildren" in got["Lists"]
    got = lists(c.ok('LIST "" ("INBOX" "Sent")'))
    assert set(got) == {"INBOX", "Sent"}
    untagged, tagged = c.cmd('LIST (RECURSIVEMATCH) "" "*"')
    assert tagged.startswith(b"BAD")
    untagged, tagged = c.cmd('LIST (NOSUCHOPTION) "" "*"')
    assert tagged.startswith(b"BAD")
    c.close()


def test_list_status(imap):
    c = Raw(imap)
    untagged = c.ok('LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
    for i, line in enumerate(untagged):
        if line.startswith(b'* LIST') and line.endswith(b"INBOX"):
            assert untagged[i + 1] == b"* STATUS INBOX (MESSAGES 2 UNSEEN 1 UIDNEXT 3)"
            break
    else:
        raise AssertionError(untagged)
    assert b"* STATUS Sent (MESSAGES 0 UNSEEN 0 UIDNEXT 1)" in untagged
    c.close()


def test_lsub_and_subscriptions(imap):
    c = Raw(imap)
    got = lists(c.ok('LSUB "" "*"'), b"LSUB")
    assert set(got) == {"INBOX", *SPECIAL}  # subscribed at the first login
    c.ok("CREATE Top/Sub")
    c.ok("SUBSCRIBE Top/Sub")
    got = lists(c.ok('LSUB "" "%"'), b"LSUB")
    assert b"\\Noselect" in got["Top"]  # a level with a subscribed child only
    c.ok("UNSUBSCRIBE Top/Sub")
    c.ok("UNSUBSCRIBE Junk")
    got = lists(c.ok('LSUB "" "*"'), b"LSUB")
    assert "Top/Sub" not in got and "Junk" not in got
    c.close()
    subs = (maildir(imap, ALICE) / "subscriptions").read_text().split("\n")
    assert "Junk" not in subs and "Sent" in subs


# ---------------------------------------------------------------- STATUS

def test_status(imap):
    m = login(imap)
    typ, data = m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)")
    assert typ == "OK"
    text = data[0].decode()
    assert "MESSAGES 2" in text and "RECENT 1" in text and "UIDNEXT 3" in text and "UNSEEN 1" in text
    assert f"SIZE {len(MSG1) + len(MSG2)}" in text
    assert re.search(r"UIDVALIDITY \d+", text)
    typ, data = m.status("Nowhere", "(MESSAGES)")
    assert typ == "NO"
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        m.status("INBOX", "(BOGUS)")
    m.logout()


# ---------------------------------------------------------------- CREATE / DELETE / RENAME

def test_create_delete_rename(imap):
    md = maildir(imap, ALICE)
    c = Raw(imap)
    c.ok("CREATE Box/")  # a trailing separator is allowed and dropped
    assert (md / ".Box" / "cur").is_dir() and (md / ".Box" / "maildirfolder").exists()
    untagged, tagged = c.cmd("CREATE Box")
    assert tagged.startswith(b"NO [ALREADYEXISTS]")
    untagged, tagged = c.cmd("CREATE inbox")
    assert tagged.startswith(b"NO [ALREADYEXISTS]")
    for bad in ('"a.b"', '"../x"', '"~x"', '"a//b"', '""'):
        untagged, tagged = c.cmd(f"CREATE {bad}")
        assert tagged.startswith(b"NO") or tagged.startswith(b"BAD"), (bad, tagged)
    c.ok("CREATE Deep/er/est")  # the parents come too
    assert set(lists(c.ok('LIST "" "Deep*"'))) == {"Deep", "Deep/er", "Deep/er/est"}
    c.ok("RENAME Deep Shallow")
    assert set(lists(c.ok('LIST "" "Shallow*"'))) == {"Shallow", "Shallow/er", "Shallow/er/est"}
    assert set(lists(c.ok('LIST "" "Deep*"'))) == set()
    untagged, tagged = c.cmd("RENAME Nowhere Elsewhere")
    assert tagged.startswith(b"NO [NONEXISTENT]")
    untagged, tagged = c.cmd("RENAME Box Sent")
    assert tagged.startswith(b"NO [ALREADYEXISTS]")
    untagged, tagged = c.cmd("DELETE INBOX")
    assert tagged.startswith(b"NO")
    untagged, tagged = c.cmd("DELETE Nowhere")
    assert tagged.startswith(b"NO [NONEXISTENT]")
    c.ok("DELETE Box")
    assert not (md / ".Box").exists()
    # the selected folder may go: the session is then not in the selected state
    c.ok("SELECT Shallow/er/est")
    c.ok("DELETE Shallow/er/est")
    untagged, tagged = c.cmd("CHECK")
    assert not tagged.startswith(b"OK")
    c.close()


def test_rename_inbox_moves_its_messages(imap):
    md = maildir(imap, ALICE)
    c = Raw(imap)
    c.ok("RENAME INBOX Old")
    untagged = c.ok("STATUS Old (MESSAGES)")
    assert b"* STATUS Old (MESSAGES 2)" in untagged
    untagged = c.ok("STATUS INBOX (MESSAGES)")
    assert b"* STATUS INBOX (MESSAGES 0)" in untagged
    assert (md / "cur").is_dir() and (md / "new").is_dir()
    c.close()


# ---------------------------------------------------------------- APPEND

def test_append(imap):
    md = maildir(imap, ALICE)
    m = login(imap)
    msg = b"From: me@example.test\r\nSubject: appended\r\n\r\nhello\r\n"
    date = imaplib.Time2Internaldate(1_650_000_000)
    typ, data = m.append("Sent", "(\\Seen \\Flagged)", date, msg)
    assert typ == "OK"
    code = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert code, data
    uidvalidity, uid = int(code.group(1)), int(code.group(2))
    assert uid == 1
    files = list((md / ".Sent" / "cur").iterdir())
    assert len(files) == 1
    assert files[0].name.endswith(":2,FS")
    assert files[0].read_bytes() == msg
    assert int(files[0].stat().st_mtime) == 1_650_000_000
    typ, data = m.status("Sent", "(UIDVALIDITY UIDNEXT MESSAGES)")
    assert f"UIDVALIDITY {uidvalidity}".encode() in data[0] and b"UIDNEXT 2" in data[0]
    typ, data = m.append("Nowhere", None, None, msg)
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    m.logout()


def test_append_to_selected_folder_is_announced(imap):
    c = Raw(imap)
    c.ok("SELECT INBOX")
    msg = b"Subject: live\r\n\r\nbody\r\n"
    untagged, tagged = c.cmd(None, raw=b"APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert tagged.startswith(b"OK [APPENDUID ") and b" 3]" in tagged, tagged
    untagged += c.ok("NOOP")
    assert b"* 3 EXISTS" in untagged
    c.close()


def test_append_bad_arguments(imap):
    c = Raw(imap)
    for args in ('Sent (\\Bogus) {3+}', 'Sent "not a date" {3+}', 'Sent (\\Recent) {3+}'):
        untagged, tagged = c.cmd(None, raw=b"APPEND " + args.encode() + b"\r\nabc\r\n")
        assert tagged.startswith(b"BAD") or tagged.startswith(b"NO"), (args, tagged)
    c.ok("NOOP")  # the session goes on
    c.close()


def test_hostile_mailbox_arguments(imap):
    """Oversized and malformed arguments get BAD or NO, and the session goes on."""
    c = Raw(imap)
    cases = [
        ('LIST "" "' + "*%" * 600 + '"', b"BAD"),                        # past IMAP_LIST_PATTERN_MAX
        ('LIST "" (' + " ".join(f"p{i}" for i in range(40)) + ")", b"BAD"),  # too many patterns
        ('LIST "" ()', b"BAD"),
        ('LIST (SUBSCRIBED) ""', b"BAD"),
        ('LIST "" "*" RETURN', b"BAD"),
        ('LIST "" "*" RETURN (STATUS)', b"BAD"),
        ('LIST "" "*" RETURN (STATUS ())', b"BAD"),
        ('LIST "" "*" EXTRA (x)', b"BAD"),
        ('LSUB "" ("a" "b")', b"BAD"),
        ("STATUS INBOX", b"BAD"),
        ("STATUS INBOX MESSAGES", b"BAD"),
        ("STATUS INBOX ()", b"BAD"),
        ('STATUS "a/../b" (MESSAGES)', b"NO"),
        ("SELECT", b"BAD"),
        ("SELECT a b", b"BAD"),
        ("SELECT (INBOX)", b"BAD"),
        ('SELECT "../.."', b"NO"),
        ("CREATE", b"BAD"),
        ('CREATE "' + "x" * 300 + '"', b"NO"),
        ('CREATE "' + "/".join("d" * 20) + '"', b"NO"),                 # deeper than allowed
        ("CREATE &Jjo", b"NO"),                                          # broken modified UTF-7
        ("RENAME INBOX", b"BAD"),
        ("RENAME Sent Sent/Sub", b"NO"),
        ("SUBSCRIBE", b"BAD"),
    ]
    for i, (text, want) in enumerate(cases):
        if i % 10 == 9:  # a session closes after 20 bad commands: stay below
            c.close()
            c = Raw(imap)
        untagged, tagged = c.cmd(text)
        assert tagged.startswith(want), (text[:80], tagged)
    # a name with a NUL (a literal may hold one): never a folder
    untagged, tagged = c.cmd(None, raw=b"SELECT {3+}\r\na\x00b\r\n")
    assert tagged.startswith(b"NO") or tagged.startswith(b"BAD"), tagged
    # a modified UTF-7 name is kept as sent
    c.ok("CREATE &AOQ-rger")
    assert "&AOQ-rger" in lists(c.ok('LIST "" "&AOQ-*"'))
    c.ok("NOOP")
    c.close()


def test_selected_folder_deleted_by_another_session(imap):
    a, b = Raw(imap), Raw(imap)
    a.ok("CREATE Doomed")
    a.ok("SELECT Doomed")
    b.ok("DELETE Doomed")
    a.n += 1
    a.sock.sendall(b"b%d NOOP\r\n" % a.n)
    assert a.line().startswith(b"* BYE")
    with pytest.raises(EOFError):  # the tagged reply may still come (as after LOGOUT), then EOF
        for _ in range(2):
            assert not a.line().startswith(b"*")
    b.ok("NOOP")
    b.close()


def test_list_hole_and_imaplib(imap):
    """A folder whose parent has no directory (another server's Maildir++ may have that):
    the parent is listed \\Noselect with children, and SELECT of it fails."""
    md = maildir(imap, ALICE)
    for sub in ("cur", "new", "tmp"):
        (md / ".Hole.Child" / sub).mkdir(parents=True)
    (md / ".Hole.Child" / "maildirfolder").touch()
    # made by root after the start: let the sandbox's user write there (its uidlist), as
    # the parent's start-up repair does for what exists then
    for p in (md / ".Hole.Child", *((md / ".Hole.Child").iterdir())):
        p.chmod(0o777)
    m = login(imap)
    typ, data = m.list('""', "%")
    assert typ == "OK"
    hole = [d for d in data if d.endswith(b" Hole")]
    assert hole and b"\\Noselect" in hole[0] and b"\\HasChildren" in hole[0], data
    typ, data = m.list('""', "Hole/*")
    assert data == [b'(\\HasNoChildren) "/" Hole/Child']
    typ, data = m.select("Hole")
    assert typ == "NO"
    typ, data = m.select("Hole/Child")
    assert (typ, data) == ("OK", [b"0"])
    m.logout()


def test_append_refused_before_the_literal_is_sent(imap):
    """A synchronizing literal that APPEND would not store gets its answer instead of "+":
    the client never uploads the message (RFC 9051 §6.3.12, as Dovecot does)."""
    c = Raw(imap)
    for args, want in (('Nowhere {10}', b"NO [TRYCREATE]"), ('INBOX "31-Feb-2026 00:00:00 +0000" {10}', b"BAD"),
                       ('INBOX (\\Recent) {10}', b"BAD"), ('"a/../b" {10}', b"NO")):
        untagged, tagged = c.cmd(None, raw=b"APPEND " + args.encode() + b"\r\n")
        assert tagged.startswith(want), (args, untagged, tagged)
        assert not any(l.startswith(b"+") for l in untagged)
    c.ok("NOOP")
    assert not list((maildir(imap, ALICE) / "tmp").iterdir())
    c.close()
