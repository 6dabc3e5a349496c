"""postmesh-imapd's message commands with imaplib and a raw line client: FETCH / UID FETCH
(every item, sections with partials, \\Seen on BODY[], literals streamed from big files and
big folders), STORE (+FLAGS -FLAGS FLAGS .SILENT, read-only), SEARCH / UID SEARCH (the
common keys, CHARSET), COPY / MOVE with COPYUID and TRYCREATE, EXPUNGE / UID EXPUNGE, and a
message that vanished under a selected session. One test takes mail through smtpd, the
queue and delivery. The broad command suite is test_imapd_*.py of the tests helpers; this
file is the message commands' own."""
import imaplib
import os
import re
import smtplib
import socket

import pytest

from conftest import free_port, wait_for
from imap_helpers import start_imapd
from pop3_helpers import add_user, maildir, make_tls_pair, put_message

ALICE = "alice@example.test"
DATE1, DATE2, DATE3 = 1_700_000_000, 1_700_100_000, 1_700_200_000  # 14, 16, 17 Nov 2023 (UTC)

PLAIN = (b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nFrom: Bob Example <bob@example.test>\r\n"
         b"To: alice@example.test\r\nSubject: lunch plans\r\nMessage-ID: <one@example.test>\r\n\r\n"
         b"Shall we meet at noon?\r\nBring the zebra report.\r\n")
MIME = (b"Date: Thu, 16 Nov 2023 01:00:00 +0100\r\nFrom: carol@example.test\r\nTo: alice@example.test\r\n"
        b"Cc: dave@example.test\r\nSubject: =?UTF-8?Q?caf=C3=A9_report?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"The numbers are in: caf=C3=A9 quarterly\r\n--XX\r\n"
        b"Content-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAwQFBgcICQ==\r\n--XX--\r\n")
THIRD = (b"Date: Fri, 17 Nov 2023 10:00:00 +0000\r\nFrom: erin@example.test\r\nTo: alice@example.test\r\n"
         b"Subject: big one\r\n\r\n" + b"x" * 5000 + b"\r\n")

NAMES = ["1700000000.M1P1.mx.example.test", "1700100000.M2P1.mx.example.test",
         "1700200000.M3P1.mx.example.test"]


@pytest.fixture
def imap(pm):
    add_user(pm, ALICE, "secret")
    put_message(pm, ALICE, NAMES[0], PLAIN, sub="new", mtime=DATE1)
    put_message(pm, ALICE, NAMES[1] + ":2,S", MIME, sub="cur", mtime=DATE2)
    put_message(pm, ALICE, NAMES[2] + ":2,F", THIRD, sub="cur", mtime=DATE3)
    return start_imapd(pm)


def login(pm, folder="INBOX", readonly=False):
    m = imaplib.IMAP4("127.0.0.1", pm.port("imap"), timeout=15)
    m.login(ALICE, "secret")
    if folder:
        typ, _ = m.select(folder, readonly=readonly)
        assert typ == "OK"
    return m


def files(pm, folder=""):
    """{key: flag letters} of the folder's messages (cur/ and new/)."""
    md = maildir(pm, ALICE) / folder
    out = {}
    for sub in ("cur", "new"):
        for p in (md / sub).iterdir() if (md / sub).is_dir() else ():
            key, _, info = p.name.partition(":")
            out[key] = info[2:] if info.startswith("2,") else ""
    return out


class Raw:
    """One command at a time on a plain socket: the untagged lines and the tagged one, with
    literals kept inline ("{n}\\r\\n" + bytes), for checking order and exact bytes."""

    def __init__(self, pm, folder="INBOX", verb="SELECT", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # a small window: the server meets back-pressure at once
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(15)
        self.sock.connect(("127.0.0.1", pm.port("imap")))
        self.buf = b""
        self.n = 0
        assert self.line().startswith(b"* OK")
        self.ok(f"LOGIN {ALICE} secret")
        if folder:
            self.ok(f"{verb} {folder}")

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError(self.buf[-200:])
        self.buf += chunk

    def line(self):
        """One response line with its literals."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line
            lit = re.search(rb"\{(\d+)\}$", line)
            if not lit:
                return out
            size = int(lit.group(1))
            while len(self.buf) < size:
                self._fill()
            out += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def cmd(self, text):
        """(untagged lines, tagged line)."""
        self.n += 1
        tag = f"m{self.n}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def ok(self, text):
        untagged, tagged = self.cmd(text)
        assert tagged.startswith(b"OK"), (text, tagged)
        return untagged

    def close(self):
        self.sock.close()


def fetch_one(m, seq, items, uid=False):
    """The data of one FETCH response as bytes, literals inline (imaplib's tuples joined)."""
    typ, data = (m.uid("FETCH", seq, items) if uid else m.fetch(seq, items))
    assert typ == "OK", data
    out = b""
    for part in data:
        out += b"".join(part) if isinstance(part, tuple) else part
    return out


# ---------------------------------------------------------------- FETCH

def test_fetch_listing_items(imap):
    m = login(imap)
    typ, data = m.fetch("1:3", "(UID FLAGS INTERNALDATE RFC822.SIZE)")
    assert typ == "OK"
    lines = [d.decode() for d in data]
    assert len(lines) == 3
    sizes = (len(PLAIN), len(MIME), len(THIRD))
    for n, line in enumerate(lines, 1):
        assert line.startswith(f"{n} (")
        assert f"RFC822.SIZE {sizes[n - 1]}" in line
        assert re.search(r"UID \d+", line)
    assert 'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in lines[0]
    assert "\\Recent" in lines[0] and "\\Seen" not in lines[0]
    assert "FLAGS (\\Seen)" in lines[1]
    assert "FLAGS (\\Flagged)" in lines[2]
    uids = [int(re.search(r"UID (\d+)", l).group(1)) for l in lines]
    assert uids == sorted(uids) and len(set(uids)) == 3
    # UID FETCH always says UID, even when not asked
    typ, data = m.uid("FETCH", f"{uids[1]}:*", "FLAGS")
    assert [d.decode() for d in data] == [f"2 (UID {uids[1]} FLAGS (\\Seen))",
                                          f"3 (UID {uids[2]} FLAGS (\\Flagged))"]
    # UIDs that do not exist: nothing, and OK
    typ, data = m.uid("FETCH", f"{uids[2] + 100}:{uids[2] + 200}", "FLAGS")
    assert typ == "OK" and data == [None]
    m.logout()


def test_fetch_macros_and_structure(imap):
    m = login(imap)
    fast = fetch_one(m, "2", "FAST").decode()
    assert "FLAGS (\\Seen)" in fast and "INTERNALDATE" in fast and f"RFC822.SIZE {len(MIME)}" in fast
    env = fetch_one(m, "1", "ENVELOPE").decode()
    assert '"lunch plans"' in env and '"Bob Example" NIL "bob" "example.test"' in env
    assert '"<one@example.test>"' in env
    bs = fetch_one(m, "2", "BODYSTRUCTURE").decode().lower()
    assert '("text" "plain" ("charset" "utf-8")' in bs
    assert '"quoted-printable"' in bs and '"application" "octet-stream"' in bs
    assert '"mixed"' in bs and '"boundary" "xx"' in bs
    body = fetch_one(m, "2", "BODY").decode().lower()
    assert '"mixed"' in body and '"boundary"' not in body  # BODY: non-extensible form
    full = fetch_one(m, "1", "FULL").decode()
    assert "ENVELOPE" in full and "BODY (" in full
    m.logout()


def test_fetch_sections_exact_bytes(imap):
    m = login(imap)
    header, _, text = PLAIN.partition(b"\r\n\r\n")
    assert fetch_one(m, "1", "BODY.PEEK[]").endswith(PLAIN + b")")
    assert fetch_one(m, "1", "RFC822.HEADER").endswith(header + b"\r\n\r\n)")
    assert fetch_one(m, "1", "BODY.PEEK[TEXT]").endswith(text + b")")
    assert fetch_one(m, "1", "BODY.PEEK[]<6.10>") == b"1 (BODY[]<6> {10}" + PLAIN[6:16] + b")"
    assert fetch_one(m, "1", "BODY.PEEK[]<99999.10>") in (b'1 (BODY[]<99999> "")', b"1 (BODY[]<99999> {0})")
    fields = fetch_one(m, "1", "BODY.PEEK[HEADER.FIELDS (SUBJECT to)]")
    assert fields.startswith(b"1 (BODY[HEADER.FIELDS (SUBJECT TO)] {")
    assert fields.endswith(b"To: alice@example.test\r\nSubject: lunch plans\r\n\r\n)")
    part1 = fetch_one(m, "2", "BODY.PEEK[1]")
    assert part1.endswith(b"The numbers are in: caf=C3=A9 quarterly)")
    assert fetch_one(m, "2", "BODY.PEEK[2]").endswith(b"AAECAwQFBgcICQ==)")
    mime1 = fetch_one(m, "2", "BODY.PEEK[1.MIME]")
    assert b"Content-Type: text/plain; charset=utf-8" in mime1
    # several items of one message in one response
    both = fetch_one(m, "2", "(BODY.PEEK[1] BODY.PEEK[2] RFC822.SIZE)")
    assert b"BODY[1] {" in both and b"BODY[2] {" in both and f"RFC822.SIZE {len(MIME)}".encode() in both
    m.logout()


def test_body_sets_seen_peek_does_not(imap):
    m = login(imap)
    assert "\\Seen" not in fetch_one(m, "1", "BODY.PEEK[]").decode()
    assert "S" not in files(imap)[NAMES[0]]
    got = fetch_one(m, "1", "BODY[TEXT]").decode()
    assert "FLAGS (\\Seen \\Recent)" in got  # \Seen set, and said
    assert "S" in files(imap)[NAMES[0]]
    # already seen: no FLAGS unless asked
    assert "FLAGS" not in fetch_one(m, "1", "BODY[TEXT]").decode()
    m.logout()
    # EXAMINE: never sets \Seen
    m = login(imap, readonly=True)
    assert "FLAGS" not in fetch_one(m, "3", "RFC822").decode()
    assert "S" not in files(imap)[NAMES[2]]
    m.logout()


def test_big_message_streamed_exactly(imap):
    big = b"Subject: big\r\n\r\n" + b"".join(b"%07d " % i + b"y" * 70 + b"\r\n" for i in range(100_000))
    put_message(imap, ALICE, "1700300000.M4P1.mx.example.test:2,", big, sub="cur", mtime=DATE3)
    r = Raw(imap)
    untagged, tagged = r.cmd("FETCH 4 (BODY.PEEK[] RFC822.SIZE)")
    assert tagged.startswith(b"OK")
    assert untagged == [b"* 4 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n" % (len(big), len(big)) + big + b")"] or \
        untagged == [b"* 4 FETCH (BODY[] {%d}\r\n" % len(big) + big + b" RFC822.SIZE %d)" % len(big)]
    # a partial in the middle of it
    untagged, _ = r.cmd("FETCH 4 BODY.PEEK[TEXT]<4000000.100>")
    text = big.partition(b"\r\n\r\n")[2]
    assert untagged == [b"* 4 FETCH (BODY[TEXT]<4000000> {100}\r\n" + text[4000000:4000100] + b")"]
    r.close()


def test_big_folder_fetch_all_headers(pm):
    """2,000 messages written as delivery does; FETCH 1:* of every header (~1 MB, well past
    the output's high watermark) is produced one message at a time while the client reads,
    and comes out whole and in order."""
    add_user(pm, ALICE, "secret")
    md = maildir(pm, ALICE)
    for d in ("tmp", "new", "cur"):
        (md / d).mkdir(parents=True, exist_ok=True)
    count = 2000
    for i in range(count):
        name = f"17000{i:05d}.M{i}P1.mx.example.test"
        msg = (f"From: sender{i}@example.test\r\nSubject: message {i}\r\nX-Filler: ".encode() + b"f" * 400 +
               b"\r\n\r\n" + b"z" * 2000 + b"\r\n")
        tmp = md / "tmp" / name
        tmp.write_bytes(msg)
        os.rename(tmp, md / "new" / name)
    start_imapd(pm)
    r = Raw(pm, rcvbuf=4096)
    r.sock.sendall(b"big UID FETCH 1:* (FLAGS BODY.PEEK[HEADER])\r\n")
    seen = 0
    while True:
        line = r.line()
        if line.startswith(b"big "):
            assert line.startswith(b"big OK"), line
            break
        seen += 1
        assert line.startswith(b"* %d FETCH (" % seen), line[:80]
        assert b"Subject: message %d\r\n" % (seen - 1) in line
    assert seen == count
    r.ok("NOOP")
    r.close()


def test_fetch_bad_arguments(imap):
    r = Raw(imap)
    assert r.cmd("FETCH 9 FLAGS")[1].startswith(b"BAD")          # past the last message
    assert r.cmd("FETCH 0 FLAGS")[1].startswith(b"BAD")
    assert r.cmd("FETCH 1 (FLAGS BOGUS)")[1].startswith(b"BAD")
    assert r.cmd("FETCH 1 BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26."
                 "27.28.29.30.31.32.33.34]")[1].startswith(b"BAD")
    assert r.cmd("FETCH 1")[1].startswith(b"BAD")
    untagged, tagged = r.cmd("FETCH 2 BODY.PEEK[7]")             # no such part: empty
    assert tagged.startswith(b"OK") and untagged[0] in (b'* 2 FETCH (BODY[7] "")', b"* 2 FETCH (BODY[7] {0}\r\n)")
    r.ok("NOOP")
    r.close()


def test_fetch_of_message_that_vanished(imap):
    r = Raw(imap)
    uids = r.ok("FETCH 1:3 UID")
    assert len(uids) == 3
    # pop3d (or anyone) removes message 2 while the session has the folder selected
    victim = next(p for p in (maildir(imap, ALICE) / "cur").iterdir() if p.name.startswith(NAMES[1]))
    victim.unlink()
    untagged, tagged = r.cmd("FETCH 1:3 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert tagged.startswith(b"OK") or tagged.startswith(b"NO"), tagged
    got = [u for u in untagged if b" FETCH (" in u]
    assert [u.split(b" ")[1] for u in got] == [b"1", b"3"]
    assert b"EXPUNGE" not in b"".join(untagged)  # never during FETCH (RFC 9051 7.5.1)
    untagged = r.ok("NOOP")
    assert b"* 2 EXPUNGE" in untagged
    r.ok("FETCH 1:2 FLAGS")
    r.close()


# ---------------------------------------------------------------- STORE

def test_store_flags(imap):
    m = login(imap)
    typ, data = m.store("1", "+FLAGS", "(\\Flagged \\Answered)")
    assert typ == "OK" and data == [b"1 (FLAGS (\\Answered \\Flagged \\Recent))"]
    assert files(imap)[NAMES[0]] == "FR"
    typ, data = m.store("1:3", "-FLAGS", "(\\Flagged)")
    assert [d.decode() for d in data] == ["1 (FLAGS (\\Answered \\Recent))", "2 (FLAGS (\\Seen))", "3 (FLAGS ())"]
    assert files(imap) == {NAMES[0]: "R", NAMES[1]: "S", NAMES[2]: ""}
    typ, data = m.store("2", "FLAGS", "(\\Deleted \\Draft $Forwarded)")  # keyword: accepted, not kept
    assert data == [b"2 (FLAGS (\\Deleted \\Draft))"]
    assert files(imap)[NAMES[1]] == "DT"
    typ, data = m.store("3", "+FLAGS.SILENT", "(\\Seen)")
    assert typ == "OK" and data == [None]
    assert files(imap)[NAMES[2]] == "S"
    # UID STORE: the FETCH carries the UID
    uid = fetch_one(m, "3", "UID").decode().split("UID ")[1].rstrip(")")
    typ, data = m.uid("STORE", uid, "-FLAGS", "\\Seen")
    assert data == [f"3 (UID {uid} FLAGS ())".encode()]
    # syntax
    for bad in (("1", "FLAGZ", "(\\Seen)"), ("1", "+FLAGS", "(\\Recent)"), ("1", "+FLAGS", "(\\Bogus)")):
        with pytest.raises(imaplib.IMAP4.error):
            m.store(*bad)
    m.logout()


def test_store_read_only(imap):
    m = login(imap, readonly=True)
    typ, data = m.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "NO" and b"[READ-ONLY]" in data[0]
    assert files(imap)[NAMES[0]] == ""
    m.logout()


def test_store_seen_by_other_session(imap):
    a, b = login(imap), login(imap)
    a.store("2", "+FLAGS.SILENT", "(\\Flagged)")
    typ, _ = b.noop()
    flags = [x for x in b.untagged_responses.get("FETCH", []) if x]
    assert any(b"\\Flagged" in f and b"\\Seen" in f for f in flags), flags
    a.logout()
    b.logout()


# ---------------------------------------------------------------- SEARCH

def search(m, *criteria, uid=False):
    typ, data = m.uid("SEARCH", *criteria) if uid else m.search(None, *criteria)
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


def test_search_keys(imap):
    m = login(imap)
    assert search(m, "ALL") == [1, 2, 3]
    assert search(m, "SEEN") == [2]
    assert search(m, "UNSEEN") == [1, 3]
    assert search(m, "FLAGGED") == [3]
    assert search(m, "RECENT") == [1]
    assert search(m, "FROM", "bob") == [1]
    assert search(m, "FROM", '"BOB EXAMPLE"') == [1]
    assert search(m, "TO", "alice@example.test") == [1, 2, 3]
    assert search(m, "CC", "dave") == [2]
    assert search(m, "SUBJECT", "lunch") == [1]
    assert search(m, "BODY", "zebra") == [1]
    assert search(m, "BODY", "quarterly") == [2]       # inside quoted-printable
    assert search(m, "TEXT", "lunch") == [1]            # header or body
    assert search(m, "TEXT", "nowhere-at-all") == []
    assert search(m, "SINCE", "16-Nov-2023") == [2, 3]
    assert search(m, "BEFORE", "16-Nov-2023") == [1]
    assert search(m, "ON", "14-Nov-2023") == [1]
    assert search(m, "SENTON", "16-Nov-2023") == [2]    # the Date: field's own day
    assert search(m, "LARGER", str(len(PLAIN))) == [2, 3]
    assert search(m, "SMALLER", str(len(MIME))) == [1]
    assert search(m, "NOT", "SEEN") == [1, 3]
    assert search(m, "OR", "SEEN", "FLAGGED") == [2, 3]
    assert search(m, "2:*") == [2, 3]
    assert search(m, "1,3", "UNSEEN") == [1, 3]
    assert search(m, "(OR FROM carol FROM erin)", "NOT", "FLAGGED") == [2]
    typ, data = m.fetch("1:3", "UID")
    uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]
    all_uids = search(m, "ALL", uid=True)
    assert all_uids == uids
    assert search(m, "UID", f"{all_uids[1]}:*", uid=True) == all_uids[1:]
    assert search(m, "UID", str(all_uids[2])) == [3]
    m.logout()


def test_search_charset(imap):
    m = login(imap)
    m.literal = "caf\u00e9".encode()
    typ, data = m.search("UTF-8", "SUBJECT")
    assert typ == "OK" and data == [b"2"]                # RFC 2047 decoded
    m.literal = "caf\u00e9 quarterly".encode()
    typ, data = m.search("UTF-8", "BODY")
    assert typ == "OK" and data == [b"2"]                # QP decoded, charset converted
    typ, data = m.search("US-ASCII", "FROM", "erin")
    assert data == [b"3"]
    typ, data = m.search("KOI8-R", "FROM", "erin")
    assert typ == "NO" and b"[BADCHARSET" in data[0]
    with pytest.raises(imaplib.IMAP4.error):
        m.search(None, "BOGUSKEY")
    m.logout()


def test_search_empty_result_and_expunged(imap):
    r = Raw(imap)
    assert r.ok("SEARCH SUBJECT nothing-like-this") == [b"* SEARCH"]
    next(p for p in (maildir(imap, ALICE) / "cur").iterdir() if p.name.startswith(NAMES[2])).unlink()
    untagged, tagged = r.cmd("SEARCH OR BODY zebra BODY xxxx")  # message 3's file is gone
    assert tagged.startswith(b"OK") and untagged == [b"* SEARCH 1"]  # and no EXPUNGE during SEARCH
    assert b"* 3 EXPUNGE" in r.ok("NOOP")
    r.close()


# ---------------------------------------------------------------- COPY / MOVE

def test_copy_with_copyuid(imap):
    m = login(imap)
    typ, data = m.copy("1:2", "Archive")
    assert typ == "OK"
    code = re.match(rb"\[COPYUID (\d+) (\S+) (\S+)\]", data[0])
    assert code, data
    typ, data = m.fetch("1:2", "UID")
    uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]
    assert code.group(2).decode() == (f"{uids[0]}:{uids[1]}" if uids[1] == uids[0] + 1 else f"{uids[0]},{uids[1]}")
    assert len(code.group(3).split(b":")) == 2 or len(code.group(3).split(b",")) == 2
    arch = files(imap, ".Archive")
    assert set(arch) and len(arch) == 2
    assert sorted(arch.values()) == ["", "S"]  # flags kept, \Recent not
    assert len(files(imap)) == 3               # the source is untouched
    typ, data = m.copy("1", "NoSuchFolder")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    typ, data = m.copy("1", "bad.name")
    assert typ == "NO"
    # into the selected folder itself: the copy shows up as a new message
    typ, data = m.copy("3", "INBOX")
    assert typ == "OK" and b"COPYUID" in data[0]
    m.noop()
    assert m.untagged_responses.get("EXISTS", [None])[-1] == b"4"
    assert len(files(imap)) == 4
    m.select("Archive")
    typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert b"14-Nov-2023 22:13:20 +0000" in b"".join(x[0] if isinstance(x, tuple) else x for x in data)
    m.logout()


def test_move_order_of_responses(imap):
    r = Raw(imap)
    untagged, tagged = r.cmd("MOVE 1:2 Trash")
    assert tagged.startswith(b"OK"), tagged
    assert untagged[0].startswith(b"* OK [COPYUID "), untagged
    assert untagged[1:] == [b"* 1 EXPUNGE", b"* 1 EXPUNGE"] or untagged[1:] == [b"* 2 EXPUNGE", b"* 1 EXPUNGE"]
    assert list(files(imap)) == [NAMES[2]]
    assert len(files(imap, ".Trash")) == 2
    uid3 = r.ok("FETCH 1 UID")[0]
    assert uid3.startswith(b"* 1 FETCH (UID ")
    # UID MOVE of what is left, then of UIDs that do not exist
    uid = int(uid3.split(b"UID ")[1].rstrip(b")"))
    untagged, tagged = r.cmd(f"UID MOVE {uid} Junk")
    assert tagged.startswith(b"OK") and untagged[-1] == b"* 1 EXPUNGE"
    untagged, tagged = r.cmd(f"UID MOVE {uid} Junk")
    assert tagged.startswith(b"OK") and untagged == []
    r.close()
    m = login(imap, "Trash", readonly=True)
    typ, data = m.uid("MOVE", "1:*", "INBOX")
    assert typ == "NO" and b"[READ-ONLY]" in data[0]
    m.logout()


# ---------------------------------------------------------------- EXPUNGE

def test_expunge_order_and_uid_expunge(imap):
    for i in range(4, 9):
        put_message(imap, ALICE, f"17004{i:05d}.M{i}P1.mx.example.test:2,", b"Subject: n\r\n\r\nx\r\n", sub="cur",
                    mtime=DATE3 + i)
    r = Raw(imap)
    assert len(r.ok("FETCH 1:* FLAGS")) == 8
    r.ok("STORE 2,4,5,8 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = r.cmd("EXPUNGE")
    assert tagged.startswith(b"OK")
    # each number as it is when sent: 2, then 4 -> 3, 5 -> 3, 8 -> 5
    assert untagged == [b"* 2 EXPUNGE", b"* 3 EXPUNGE", b"* 3 EXPUNGE", b"* 5 EXPUNGE"]
    rest = r.ok("FETCH 1:* UID")
    assert len(rest) == 4
    uids = [int(l.split(b"UID ")[1].rstrip(b")")) for l in rest]
    r.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
    untagged, tagged = r.cmd(f"UID EXPUNGE {uids[1]}:{uids[2]}")
    assert tagged.startswith(b"OK") and untagged == [b"* 2 EXPUNGE", b"* 2 EXPUNGE"]
    assert len(r.ok("FETCH 1:* UID")) == 2
    r.close()
    m = login(imap, readonly=True)
    typ, data = m.expunge()
    assert typ == "NO"
    assert len(files(imap)) == 2
    m.logout()


# ---------------------------------------------------------------- the whole path

def test_delivered_mail_fetched_and_flagged(pm):
    add_user(pm, ALICE, "secret")
    cert, key = make_tls_pair(pm.root)
    pm.configure(tls={"certificate": str(cert), "key": str(key)}, queue={"job_lease": 5})
    pm.start("queue", "delivery", "smtpd", timeout=20)
    start_imapd(pm)
    body = b"Subject: through the queue\r\nFrom: sender@remote.test\r\n\r\nhello imap\r\n"
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.sendmail("sender@remote.test", [ALICE], body)
    md = maildir(pm, ALICE)
    wait_for(lambda: any((md / "new").glob("*")) or any((md / "cur").glob("*")), timeout=30,
             what="the delivery")
    m = login(pm)
    assert search(m, "SUBJECT", '"through the queue"') == [1]
    got = fetch_one(m, "1", "BODY[]")
    assert got.rstrip(b")").endswith(b"\r\n\r\nhello imap\r\n") and b"\\Seen" in got
    typ, data = m.copy("1", "Sent")
    assert typ == "OK" and b"COPYUID" in data[0]
    m.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    m.expunge()
    assert search(m, "ALL") == []
    m.logout()


def test_uid_commands_after_concurrent_deliveries(imap):
    r = Raw(imap)
    before = [int(l.split(b"UID ")[1].rstrip(b")")) for l in r.ok("FETCH 1:* UID")]
    for i in range(3):  # delivery writes tmp/ then renames into new/
        md = maildir(imap, ALICE)
        name = f"1700900{i:03d}.M9{i}P1.mx.example.test"
        (md / "tmp" / name).write_bytes(b"Subject: late %d\r\n\r\nlate body\r\n" % i)
        os.rename(md / "tmp" / name, md / "new" / name)
    untagged = r.ok("NOOP")
    assert b"* 6 EXISTS" in untagged
    untagged = r.ok(f"UID FETCH {before[-1] + 1}:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    new = [int(re.search(rb"UID (\d+)", l).group(1)) for l in untagged]
    assert len(new) == 3 and min(new) > max(before) and new == sorted(new)
    assert [l.split(b" ")[1] for l in untagged] == [b"4", b"5", b"6"]
    assert r.ok("UID SEARCH SUBJECT late") == [b"* SEARCH " + b" ".join(b"%d" % u for u in new)]
    assert r.ok(f"UID STORE {new[1]} +FLAGS (\\Flagged)") == [b"* 5 FETCH (UID %d FLAGS (\\Flagged \\Recent))" % new[1]]
    untagged, tagged = r.cmd(f"UID COPY {new[0]}:{new[2]} Archive")
    assert tagged.startswith(b"OK [COPYUID ") and b" %d:%d " % (new[0], new[2]) in tagged
    r.close()


def test_pop3d_deletes_under_a_selected_session(imap):
    imap.configure(pop3d={"auth_delay": 1})
    imap.start("pop3d")
    r = Raw(imap)
    import poplib
    p = poplib.POP3("127.0.0.1", imap.port("pop3"), timeout=15)
    p.user(ALICE)
    p.pass_("secret")
    assert p.stat()[0] == 3
    p.dele(1)
    p.quit()  # the file of message 1 goes now
    untagged, tagged = r.cmd("FETCH 1:3 (UID RFC822.SIZE BODY.PEEK[])")
    assert tagged.startswith(b"OK [EXPUNGEISSUED]"), tagged
    assert [l.split(b" ")[1] for l in untagged if b"FETCH" in l] == [b"2", b"3"]
    untagged = r.ok("NOOP")
    assert untagged[0] == b"* 1 EXPUNGE"
    assert len(r.ok("FETCH 1:* UID")) == 2
    r.close()


def test_parsed_message_kept_only_for_the_same_file(imap):
    """The last parsed message is reused for the next FETCH of the same file, never for
    another one with the same folder, UIDVALIDITY and UID (deleted and made again)."""
    m = login(imap)
    assert m.create("Box")[0] == "OK" and m.copy("1", "Box")[0] == "OK"
    m.select("Box")
    assert fetch_one(m, "1", "BODYSTRUCTURE") and fetch_one(m, "1", "BODY.PEEK[]").endswith(PLAIN + b")")
    m.select("INBOX")
    assert m.delete("Box")[0] == "OK" and m.create("Box")[0] == "OK" and m.copy("2", "Box")[0] == "OK"
    m.select("Box")
    assert fetch_one(m, "1", "BODY.PEEK[]").endswith(MIME + b")")
    m.logout()


def test_big_message_over_tls(pm):
    """The big-literal path (file ranges added to the output without copying) through TLS
    (imaps), where the bytes go through OpenSSL instead of the socket."""
    import ssl
    add_user(pm, ALICE, "secret")
    big = b"Subject: big tls\r\n\r\n" + b"".join(b"%07d " % i + b"t" * 70 + b"\r\n" for i in range(50_000))
    put_message(pm, ALICE, "1700300000.M5P1.mx.example.test:2,", big, sub="cur", mtime=DATE3)
    cert, key = make_tls_pair(pm.root)
    pm.configure(tls={"certificate": str(cert), "key": str(key)})
    if "imaps" not in pm.ports:
        pm.ports["imap"], pm.ports["imaps"] = free_port(), free_port()
    start_imapd(pm, listen=[{"address": f"127.0.0.1:{pm.ports['imaps']}", "mode": "imaps"}])
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", pm.ports["imaps"], ssl_context=ctx, timeout=30)
    m.login(ALICE, "secret")
    m.select("INBOX")
    typ, data = m.fetch("1", "(BODY.PEEK[] BODY.PEEK[TEXT]<1000000.64>)")
    assert typ == "OK"
    text = big.partition(b"\r\n\r\n")[2]
    assert data[0][1] == big and data[1][1] == text[1000000:1000064]
    m.logout()


def test_search_decodes_other_charsets(pm):
    """ISO-8859-1 words in headers and a windows-1252 body are found by their UTF-8 text:
    the sandbox can convert them although its chroot has no charset converters of its own."""
    add_user(pm, ALICE, "secret")
    put_message(pm, ALICE, "1700000000.M1P1.mx.example.test:2,", (
        b"From: =?ISO-8859-1?Q?Andr=E9_Pirard?= <andre@example.org>\r\n"
        b"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"Cr\xe8me br\xfbl\xe9e \x80 5\r\n"), sub="cur")
    start_imapd(pm)
    m = login(pm)
    for key, text in (("FROM", "Andr\u00e9"), ("SUBJECT", "Gr\u00fc\u00dfe"), ("BODY", "cr\u00e8me br\u00fbl\u00e9e"),
                      ("BODY", "\u20ac 5")):
        m.literal = text.encode()
        typ, data = m.search("UTF-8", key)
        assert typ == "OK" and data == [b"1"], (key, text, data)
    m.logout()
