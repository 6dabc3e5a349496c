"""postmesh-imapd attacked as a hostile IMAP client and a hostile local user of the mail
store would: folder names that try to leave the user's Maildir, symlinks placed in a
Maildir, sequence sets and commands that try to make the server loop or allocate without
bound, literals cut short, commands in the wrong state, and sessions that end while a
command is still running. Each test names the attack; the server must answer as the RFC
wants, keep other users' mail untouched and keep serving (the imapd log has no sanitizer
report when POSTMESH_BIN points at an ASan build)."""
import os
import socket
import time

import pytest

from conftest import wait_for
from imap_helpers import ALICE, BOB, PASSWORDS, imap, make_message  # noqa: F401


def login_line(user=ALICE):
    return f"LOGIN {user} {PASSWORDS[user]}"


def assert_serving(imap):
    """A fresh session still logs in and selects: the service survived."""
    r = imap.raw(login=ALICE)
    lines = r.cmd("SELECT INBOX")
    assert lines[-1].split(b" ")[1] == b"OK", lines
    r.cmd("LOGOUT")
    r.close()
    log = imap.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]


def tagged_status(lines):
    return lines[-1].split(b" ")[1]


def tmp_files(imap, user=ALICE):
    d = imap.maildir(user) / "tmp"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# ------------------------------------------------------------------ folder names

@pytest.mark.parametrize("name", ["../x", "a/../../x", ".", "..", "a/./b", "/abs", "a//b", "%2e%2e", "~root",
                                  "a/", "x\\y/..", "&AC4-&AC4-/x"])
def test_names_never_leave_the_maildir(imap, name):
    imap.postmesh_only()
    md = imap.maildir(ALICE)
    r = imap.raw(login=ALICE)
    for cmd in (f'CREATE "{name}"', f'SELECT "{name}"', f'STATUS "{name}" (MESSAGES)',
                f'RENAME "Sent" "{name}"', f'DELETE "{name}"'):
        r.cmd(cmd)
    r.cmd("LOGOUT")
    user_dir = md.parent
    # nothing appeared beside the Maildir or above it
    assert sorted(p.name for p in user_dir.iterdir()) == ["Maildir"]
    assert sorted(p.name for p in user_dir.parent.iterdir()) == ["alice"]
    for p in md.iterdir():
        assert p.name in ("cur", "new", "tmp") or not p.name.startswith("..") or p.name.startswith("..deleted"), p


def test_inbox_aliases_are_one_folder(imap):
    """inbox/x and INBOX/x name one folder; RENAME to any spelling of INBOX is refused."""
    c = imap.login()
    assert c.create("inbox/x")[0] == "OK"
    assert c.create("INBOX/x")[0] == "NO"
    assert c.rename("Sent", "iNbOx")[0] == "NO"
    assert c.select("InBoX/x")[0] == "OK"
    c.logout()
    md = imap.maildir(ALICE)
    assert (md / ".INBOX.x" / "cur").is_dir() and not (md / ".inbox.x").exists()


# ------------------------------------------------------------------ symlinks in the store

def test_delete_of_a_symlinked_folder_leaves_the_target_alone(imap):
    """A local user (or a restore) leaves Maildir/.Evil as a symlink to another user's
    Maildir. DELETE Evil removes the symlink's folder, never the files it points at."""
    imap.postmesh_only()
    victim = imap.put(make_message("bob's"), address=BOB)
    imap.make_folder(ALICE)
    bob_md = imap.maildir(BOB)
    (bob_md / "subscriptions").write_text("INBOX\n")
    evil = imap.maildir(ALICE) / ".Evil"
    os.symlink(os.path.relpath(bob_md, evil.parent), evil)
    c = imap.login()
    c.delete("Evil")
    c.logout()
    assert victim.exists(), "DELETE followed the symlink into bob's Maildir"
    assert (bob_md / "subscriptions").exists()


def test_message_symlink_is_not_served(imap):
    """cur/ holding a symlink to a file outside: not a message (never opened)."""
    imap.postmesh_only()
    secret = imap.put(make_message("bob secret"), address=BOB)
    md = imap.make_folder(ALICE)
    os.symlink(os.path.relpath(secret, md / "cur"), md / "cur" / "1700000000.M1P1.evil:2,")
    c = imap.login(select="INBOX")
    typ, data = c.fetch("1:*", "(BODY.PEEK[])") if int(c.select("INBOX")[1][0]) else ("OK", [])
    assert b"bob secret" not in b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data if x)
    c.logout()


# ------------------------------------------------------------------ bounds

def test_uid_fetch_of_the_whole_uid_space_is_quick(imap):
    for i in range(5):
        imap.put(make_message(f"m{i}"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    t = time.monotonic()
    lines = r.cmd("UID FETCH 1:4294967295 (UID FLAGS)")
    assert lines[-1].split(b" ")[1] == b"OK"
    assert len([l for l in lines if b" FETCH " in l]) == 5
    lines = r.cmd("UID FETCH 4294967295:* (UID)")
    assert lines[-1].split(b" ")[1] == b"OK"
    lines = r.cmd("UID SEARCH UID 1:4294967295,4294967295")
    assert lines[-1].split(b" ")[1] == b"OK"
    lines = r.cmd("UID STORE 1:4294967295 +FLAGS.SILENT (\\Seen)")
    assert lines[-1].split(b" ")[1] == b"OK"
    lines = r.cmd("UID COPY 1:4294967295 Trash")
    assert lines[-1].split(b" ")[1] == b"OK"
    assert time.monotonic() - t < 5
    r.close()
    assert_serving(imap)


def test_search_with_many_or_and_fetch_with_many_sections(imap):
    imap.put(make_message("one"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    # 2,000 ORs in a row: over the key bound or depth bound -> BAD, never a crash
    lines = r.cmd("SEARCH " + "OR " * 2000 + "ALL ALL" * 1)
    assert lines[-1].split(b" ")[1] in (b"BAD", b"NO", b"OK")
    items = " ".join(f"BODY[{i}]" for i in range(1, 600))  # one line: under max_line
    lines = r.cmd(f"FETCH 1 ({items})")
    assert lines[-1].split(b" ")[1] in (b"BAD", b"OK")
    lines = r.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (" + " ".join(f"X-{i}" for i in range(1200)) + ")])")
    assert lines[-1].split(b" ")[1] in (b"BAD", b"OK")
    r.close()
    assert_serving(imap)


# ------------------------------------------------------------------ literals

def test_append_cut_short_leaves_no_tmp_file(imap):
    imap.make_folder(ALICE)
    for sync in ("", "+"):
        r = imap.raw(login=ALICE)
        r.send(f"a1 APPEND INBOX {{5000{sync}}}\r\n".encode())
        if not sync:
            assert r.line().startswith(b"+")
        r.send(b"Subject: cut\r\n\r\n" + b"y" * 1000)
        wait_for(lambda: tmp_files(imap), 5, what="the APPEND file in tmp/")
        r.close()
        wait_for(lambda: not tmp_files(imap), 5, what="tmp/ emptied after the cut APPEND")
    assert imap.files(ALICE) == []
    assert_serving(imap)


def test_append_to_a_folder_deleted_meanwhile(imap):
    """APPEND's precheck passes, the folder is deleted before the literal ends: NO
    [TRYCREATE], nothing left in tmp/."""
    r = imap.raw(login=ALICE)
    r.cmd("CREATE gone")
    r.send(b"a1 APPEND gone {20}\r\n")
    assert r.line().startswith(b"+")
    other = imap.login()
    assert other.delete("gone")[0] == "OK"
    other.logout()
    r.send(b"Subject: x\r\n\r\nbody..\r\n")
    lines = r.until("a1")
    assert b"a1 NO" in lines[-1], lines
    assert not tmp_files(imap)
    r.close()


# ------------------------------------------------------------------ state machine

def test_idle_pipelined_and_done_without_idle(imap):
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    r.send(b"i1 IDLE\r\nDONE\r\nn1 NOOP\r\n")
    assert r.line().startswith(b"+ ")
    lines = r.until("i1")
    assert b"i1 OK" in lines[-1]
    assert b"n1 OK" in r.until("n1")[-1]
    assert r.cmd("DONE", tag="d1")[-1].startswith(b"d1 BAD")
    r.send(b"i2 IDLE\r\nGARBAGE\r\n")
    assert r.line().startswith(b"+ ")
    assert r.until("i2")[-1].startswith(b"i2 BAD")
    assert r.cmd("NOOP")[-1].split(b" ")[1] == b"OK"
    r.close()


def test_authenticate_cancel_and_pipelining(imap):
    r = imap.raw()
    r.send(b"a1 AUTHENTICATE PLAIN\r\n*\r\na2 NOOP\r\n")
    assert r.line().startswith(b"+")
    assert r.until("a1")[-1].startswith(b"a1 BAD")
    assert r.until("a2")[-1].startswith(b"a2 OK")
    # the line after "+" is the SASL response, never a command
    r.send(b"a3 AUTHENTICATE PLAIN\r\na4 LOGOUT\r\n")
    assert r.line().startswith(b"+")
    assert r.until("a3")[-1].startswith(b"a3 BAD")
    assert not r.closed(0.3)
    # SASL-IR far over any bound
    r.send(b"a5 AUTHENTICATE PLAIN " + b"A" * 8000 + b"\r\n")
    assert r.until("a5")[-1].split(b" ")[1] in (b"BAD", b"NO")
    r.close()


def test_session_ends_during_password_check_and_yielded_fetch(imap):
    """Sessions that go while their LOGIN is checked, or while a yielded FETCH waits for
    the client to read: nothing runs on a freed session (ASan)."""
    for i in range(40):
        imap.put(make_message(f"big{i}", body="x" * 60000 + "\r\n"))
    for _ in range(5):
        s = socket.create_connection((imap.host, imap.port()))
        s.recv(1000)
        s.sendall(f"a1 {login_line()}\r\n".encode())
        s.close()
    for _ in range(3):
        r = imap.raw(login=ALICE)
        r.cmd("SELECT INBOX")
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        r.send(b"f1 FETCH 1:* (BODY.PEEK[])\r\n")
        r.sock.recv(100)
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        r.close()
    assert_serving(imap)


def test_zero_length_literals(imap):
    """{0} and {0+} are valid literals (an empty string): the reader must not spin on them."""
    imap.make_folder(ALICE)
    r = imap.raw()
    r.send(b"z1 LOGIN {0}\r\n")
    assert r.line().startswith(b"+")
    r.send(b" x\r\n")
    assert r.until("z1", timeout=5)[-1].split(b" ")[1] in (b"BAD", b"NO")
    r.send(b"z2 ID ({0+}\r\n NIL)\r\n")
    assert r.until("z2", timeout=5)[-1].split(b" ")[1] in (b"OK", b"BAD")
    r.close()
    r = imap.raw(login=ALICE)
    r.send(b"z3 SELECT {0+}\r\n\r\n")
    assert r.until("z3", timeout=5)[-1].split(b" ")[1] in (b"NO", b"BAD")
    r.send(b"z4 APPEND INBOX {0+}\r\n\r\n")
    assert r.until("z4", timeout=5)[-1].split(b" ")[1] in (b"NO", b"BAD")
    r.close()
    assert_serving(imap)


def test_search_of_many_body_keys_does_not_stall_other_sessions(imap):
    """SEARCH BODY x BODY x ... (600 body keys, each matching only at the end) over large
    messages: each key reads every body again, and the loop is shared by every session of
    the sandbox. Was: bob's NOOP waited over a minute. Now: more than 8 BODY/TEXT keys is a
    BAD, and a SEARCH yields after about 16 MiB read (size x body keys), so others are served meanwhile."""
    imap.postmesh_only()
    for i in range(24):
        imap.put(make_message(f"big{i}", body=("lorem ipsum dolor sit amet " * 40 + "\r\n") * 1000 + "endmark\r\n"))
    imap.make_folder(BOB)
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    res = r.cmd("SEARCH " + "BODY endmark " * 600 + "ALL", timeout=600)
    assert tagged_status(res) == b"BAD", res[-1]
    other = imap.raw(login=BOB)
    r.send(("s1 SEARCH " + "BODY endmark " * 8 + "ALL\r\n").encode())
    time.sleep(0.2)
    t0 = time.monotonic()
    assert other.cmd("NOOP", timeout=60)[-1].split(b" ")[1] == b"OK"
    waited = time.monotonic() - t0
    res = r.until("s1", timeout=600)
    assert res[-1].startswith(b"s1 OK") and len(res[0].split()) == 26, res[0]
    assert waited < 1.5, f"bob's NOOP waited {waited:.1f}s behind alice's SEARCH"


WEIRD = [
    "FETCH 1 (BODY.PEEK[]<4294967295.4294967295>)", "FETCH 1 (BODY.PEEK[]<0.4294967295>)",
    "FETCH 1 (BODY.PEEK[]<4294967296.1>)", "FETCH 1 (BODY.PEEK[]<0.0>)", "FETCH 1 (BODY.PEEK[0])",
    "FETCH 1 (BODY.PEEK[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33])",
    "FETCH 1 (BODY.PEEK[1.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[MIME])",
    "FETCH 1 (BODY.PEEK[HEADER.FIELDS ()])", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (\"\")])",
    "FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (FROM TO SUBJECT)]<1.2>)", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM]",
    "FETCH 1 (BODY.PEEK[]<1.>)", "FETCH 1 (BODY.PEEK[]<.1>)", "FETCH 1 (BODY[]<-1.5>)", "FETCH 1 BODY[",
    "FETCH 1 (BINARY[1] BINARY.SIZE[1])", "FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE BODY)",
    "FETCH 1:* ALL", "FETCH * FULL", "FETCH 2:1 FAST", "FETCH 1 (FLAGS ALL)", "FETCH 1 ()", "FETCH 1 (((FLAGS)))",
    "STORE 1 +FLAGS (\\Recent \\Seen $Junk \\Nonexistent)", "STORE 1 FLAGS.SILENT ()", "STORE 1 -FLAGS \\Seen \\Draft",
    "STORE 1 +FLAGS (\\Seen", "STORE 1 XFLAGS (\\Seen)", "UID STORE * +FLAGS (\\Flagged)",
    "SEARCH CHARSET UTF-8 TEXT \"\"", "SEARCH CHARSET KOI8-R BODY x", "SEARCH HEADER \"\" x", "SEARCH HEADER X: y",
    "SEARCH SINCE 31-Feb-2026", "SEARCH BEFORE 1-Jan-0000", "SEARCH ON 1-Foo-2020", "SEARCH LARGER 99999999999999999999",
    "SEARCH UID 0", "SEARCH 1:*,*:1,$", "SEARCH NOT NOT NOT NOT ALL", "SEARCH ()", "SEARCH (OR)", "SEARCH OR ALL",
    "SEARCH RETURN (MIN MAX COUNT ALL) ALL", "SEARCH RETURN () ALL", "SEARCH KEYWORD", "SEARCH SENTSINCE 1-Jan-1970",
    "STATUS INBOX (MESSAGES MESSAGES UNSEEN SIZE RECENT UIDNEXT UIDVALIDITY)", "STATUS INBOX ()", "STATUS INBOX",
    "STATUS \"\" (MESSAGES)", "LIST \"../\" \"*\"", "LIST \"\" \"%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%/%\"",
    "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" \"%\" \"INBOX*\" \"\") RETURN (CHILDREN STATUS (MESSAGES SIZE))",
    "LIST (RECURSIVEMATCH) \"\" *", "LIST \"\" \"\"", "LIST \"INBOX/\" \"\"", "LSUB \"\" \"%\"", "LSUB \"x\" \"\"",
    "LIST () \"\" () RETURN ()", "LIST \"\" * RETURN (STATUS ())", "LIST \"\" * RETURN (STATUS (MESSAGES) STATUS (UNSEEN))",
    "COPY 1:* INBOX", "MOVE 1 INBOX", "UID MOVE 1:* Trash", "COPY * \"\"", "COPY 1 inbox/../x",
    "APPEND INBOX (\\Seen) \"31-Feb-2026 25:61:61 +9999\" {3+}\r\nabc", "APPEND INBOX () \" 1-Jan-1900 00:00:00 -1200\" {3+}\r\nabc",
    "APPEND INBOX (\\Recent) {3+}\r\nabc", "APPEND INBOX \"1-Jan-2000 00:00:00 +0000\" (\\Seen) {3+}\r\nabc",
    "CREATE INBOX", "CREATE \"\"", "CREATE /", "CREATE \"a/\"", "DELETE a", "RENAME INBOX INBOX/sub", "RENAME INBOX INBOX",
    "SELECT INBOX", "EXAMINE Trash", "STORE 1 +FLAGS (\\Deleted)", "EXPUNGE", "UID EXPUNGE 1:*", "CLOSE", "SELECT Trash",
    "UID EXPUNGE 4294967295", "ENABLE CONDSTORE QRESYNC UTF8=ACCEPT", "ID (\"a\" NIL)", "NAMESPACE x", "CHECK", "UNSELECT",
    "FETCH 1 FLAGS", "IDLE x", "LOGIN a b", "AUTHENTICATE PLAIN", "STARTTLS",
]


def test_odd_commands_in_every_state_are_answered(imap):
    """A table of odd but short commands, each answered with a tagged line (any status), the
    session going on, and no sanitizer report (run it with POSTMESH_BIN at an ASan build)."""
    imap.put(make_message("one", extra="Content-Type: multipart/mixed; boundary=b\r\n",
                          body="--b\r\nContent-Type: text/plain\r\n\r\npart1\r\n--b\r\n"
                               "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n"))
    imap.put(make_message("two"))
    r, bad = None, 0
    for i, cmd in enumerate(WEIRD):
        if r is None or bad >= 15:  # 20 BADs end a session: start another before that
            if r:
                r.close()
            r, bad = imap.raw(login=ALICE), 0
            r.cmd("SELECT INBOX")
        tag = f"w{i}"
        r.send(f"{tag} {cmd}\r\n".encode())
        lines = r.until(tag, timeout=10)
        assert tagged_status(lines) in (b"OK", b"NO", b"BAD"), (cmd, lines[-1])
        bad += tagged_status(lines) == b"BAD"
        if any(l.startswith(b"* BYE") for l in lines):
            r.close()
            r = None
    r.close()
    assert_serving(imap)


HOSTILE_UIDLISTS = [
    b"", b"\x00\xff garbage\n", b"postmesh-uidlist 1 0 0\n",
    # UIDs exhausted (uidnext 2^32-1): renumbered from 1 under a new UIDVALIDITY (RFC 9051
    # 2.3.1.1), not kept (no message would get a UID any more and all would be left out)
    b"postmesh-uidlist 1 1 4294967295\n",
    b"postmesh-uidlist 1 4294967295 4294967295\n4294967294 k1\n",
    b"postmesh-uidlist 1 5 10\n1 dup\n2 dup\n", b"postmesh-uidlist 1 5 10\n3 a\n2 b\n",
    b"postmesh-uidlist 1 5 10\n1 " + b"k" * 5000 + b"\n", b"postmesh-uidlist 1 5 10\n1 a b c\n",
    b"postmesh-uidlist 99 5 10\n", b"postmesh-uidlist 1 5 99999999999999999999\n",
    b"postmesh-uidlist 1 5 10\n" + b"1 a\n" * 1000, b"postmesh-uidlist 1 5 10\n1 ../../../etc\n",
]


@pytest.mark.parametrize("content", HOSTILE_UIDLISTS, ids=range(len(HOSTILE_UIDLISTS)))
def test_hostile_uidlist(imap, content):
    """A uidlist a local user (or a torn copy) left: SELECT, FETCH, APPEND and STATUS
    still work or fail cleanly, and the messages stay visible."""
    imap.postmesh_only()
    for i in range(3):
        imap.put(make_message(f"m{i}"))
    ul = imap.maildir(ALICE) / "postmesh-uidlist"
    ul.write_bytes(content)
    r = imap.raw(login=ALICE)
    lines = r.cmd("SELECT INBOX")
    assert tagged_status(lines) == b"OK", lines
    exists = [l for l in lines if l.endswith(b" EXISTS")]
    lines = r.cmd("FETCH 1:* (UID FLAGS)")
    assert tagged_status(lines) == b"OK"
    lines = r.cmd("APPEND INBOX {5+}\r\nab\r\n\r")
    assert tagged_status(lines) in (b"OK", b"NO"), lines
    lines = r.cmd("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)")
    assert tagged_status(lines) == b"OK"
    r.cmd("LOGOUT")
    assert exists == [b"* 3 EXISTS"], exists
    assert_serving(imap)


def sanitized():
    """ASan keeps freed memory in quarantine: RSS says nothing under it."""
    from conftest import BIN
    return b"__asan_init" in (BIN / "postmesh-imapd").read_bytes()


def sandbox_rss_kb(imap):
    import re
    pids = re.findall(r"event=sandbox_started sandbox=imapd pid=(\d+)", imap.log())
    with open(f"/proc/{pids[-1]}/status") as f:
        return int(re.search(r"RssAnon:\s+(\d+)", f.read()).group(1))  # mapped message files aside


def test_idle_client_that_never_reads_has_bounded_output(imap):
    """A client IDLEs and never reads; another session of the same user flips a flag on
    every message again and again. Each change is announced to the idler: the output it
    never reads must stay bounded (as a FETCH's does), not grow with every wake-up. Was:
    about 85 KiB more per STORE, for as long as the idle timeout (30 minutes)."""
    imap.postmesh_only()
    if sanitized():
        pytest.skip("memory is measured on a build without ASan")
    n = 3000
    md = imap.make_folder(ALICE)
    for i in range(n):
        p = md / "cur" / f"17000{i:05d}.M{i}P1.host:2,"
        p.write_bytes(b"Subject: x\r\n\r\nx\r\n")
        imap._own(p)
    idler = socket.socket()
    idler.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    idler.connect((imap.host, imap.port()))
    idler.sendall(f"a1 {login_line()}\r\na2 SELECT INBOX\r\n".encode())
    got = b""
    while b"a2 OK" not in got:
        got += idler.recv(65536)
    idler.sendall(b"a3 IDLE\r\n")
    time.sleep(0.3)
    before = sandbox_rss_kb(imap)
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    for k in range(100):
        r.cmd("STORE 1:* %sFLAGS.SILENT (\\Flagged)" % ("+-"[k % 2]), timeout=60)
        time.sleep(0.05)
    grown = sandbox_rss_kb(imap) - before
    r.close()
    idler.close()
    assert grown < 3000, f"the sandbox grew {grown} KiB for one idler that reads nothing"


def test_fetch_of_large_messages_over_tls_by_a_slow_reader(imap):
    """BODY[] of large messages over implicit TLS (file ranges go through the TLS layer, not
    sendfile) by a client that reads slowly: every byte arrives, the sandbox does not
    buffer whole messages, and another session is served meanwhile."""
    imap.postmesh_only()
    if sanitized():
        pytest.skip("memory is measured on a build without ASan")
    body = ("0123456789" * 100 + "\r\n") * 6000  # 6 MB
    for i in range(3):
        imap.put(make_message(f"large{i}", body=body))
    c = imap.login(mode="imaps", select="INBOX")
    before = sandbox_rss_kb(imap)
    tag = c._new_tag().decode()
    c.send(f"{tag} FETCH 1:* (BODY.PEEK[])\r\n".encode())
    time.sleep(1.0)  # the server fills what it may while we read nothing
    grown = sandbox_rss_kb(imap) - before
    other = imap.raw(login=BOB)
    assert tagged_status(other.cmd("NOOP", timeout=5)) == b"OK"
    total = 0
    while True:
        line = c.readline()
        m = __import__("re").search(rb"\{(\d+)\}\r\n$", line)
        if m:
            total += len(c.read(int(m.group(1))))
        elif line.startswith(tag.encode()):
            assert b" OK " in line, line
            break
    assert total >= 3 * len(body)
    assert grown < 4000, f"the sandbox grew {grown} KiB while the client read nothing"


def test_concurrent_sessions_delivery_and_expunge_keep_uids_unique(imap):
    """Two sessions on one INBOX (STORE, EXPUNGE, MOVE, FETCH) while files arrive and
    vanish underneath (delivery's rename into new/, pop3d's unlink): UIDs stay unique and
    ascending, no message is lost except those expunged, and the server survives."""
    import threading
    imap.postmesh_only()
    for i in range(200):
        imap.put(make_message(f"pre{i}"))
    a = imap.raw(login=ALICE)
    b = imap.raw(login=ALICE)
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    stop = threading.Event()

    def deliver():
        k = 0
        while not stop.is_set():
            imap.put(make_message(f"live{k}"))
            k += 1
            if k % 7 == 0:  # what pop3d's DELE does
                files = imap.files(ALICE)
                if files:
                    try:
                        files[0].unlink()
                    except FileNotFoundError:
                        pass
            time.sleep(0.005)
    t = threading.Thread(target=deliver)
    t.start()
    try:
        for k in range(30):
            assert tagged_status(a.cmd("STORE 1:2 +FLAGS (\\Deleted)")) in (b"OK", b"NO")
            assert tagged_status(b.cmd("UID FETCH 1:* (UID FLAGS)")) in (b"OK", b"NO")
            assert tagged_status(a.cmd("EXPUNGE")) in (b"OK", b"NO")
            assert tagged_status(b.cmd("MOVE 1 Trash")) in (b"OK", b"NO")
            assert tagged_status(b.cmd("NOOP")) == b"OK"
    finally:
        stop.set()
        t.join()
    import re
    uids = [int(m) for l in a.cmd("UID FETCH 1:* (UID)") for m in re.findall(rb"UID (\d+)", l)]
    assert uids == sorted(set(uids)), "UIDs repeated or out of order"
    exists = [l for l in a.cmd("NOOP") if l.endswith(b"EXISTS")]
    a.close()
    b.close()
    fresh = imap.raw(login=ALICE)
    lines = fresh.cmd("SELECT INBOX")
    n = int([l for l in lines if l.endswith(b" EXISTS")][0].split()[1])
    assert n == len(imap.files(ALICE)), (n, len(imap.files(ALICE)), exists)
    fresh.close()
    assert_serving(imap)


def test_sigkill_during_move_loses_nothing(imap):
    """The sandbox is killed while a MOVE of many messages runs: after the restart every
    message is in INBOX or Trash (the copy is durable before the original goes; a crash in
    between may leave one in both, never in neither)."""
    import re
    import signal
    imap.postmesh_only()
    md = imap.make_folder(ALICE)
    keys = set()
    for i in range(3000):
        name = f"17000{i:05d}.M{i}P1.host"
        p = md / "cur" / (name + ":2,")
        p.write_bytes(b"Subject: m\r\n\r\nx\r\n")
        imap._own(p)
        keys.add(name)
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    r.send(b"m1 MOVE 1:* Trash\r\n")
    trash = imap.maildir(ALICE, "Trash")
    wait_for(lambda: (trash / "cur").is_dir() and any((trash / "cur").iterdir()), 10, interval=0.001,
             what="MOVE under way")
    pid = int(re.findall(r"event=sandbox_started sandbox=imapd pid=(\d+)", imap.log())[-1])
    os.kill(pid, signal.SIGKILL)
    r.close()

    def key_of(p):
        return p.name.split(":")[0]
    seen = {key_of(p) for p in imap.files(ALICE)}
    moved = [p for p in (trash / "cur").iterdir()]
    # a moved copy has a new key: count messages, not keys
    assert len(seen) + len(moved) >= len(keys), (len(seen), len(moved))
    imap.restart()
    c = imap.raw(login=ALICE)
    n_inbox = int([l for l in c.cmd("SELECT INBOX") if l.endswith(b" EXISTS")][0].split()[1])
    n_trash = int([l for l in c.cmd("SELECT Trash") if l.endswith(b" EXISTS")][0].split()[1])
    c.close()
    assert n_inbox + n_trash >= len(keys), (n_inbox, n_trash)


def test_pipelined_commands_never_read_stay_bounded(imap):
    """A client pipelines megabytes of NOOPs and reads none of the answers: the server stops
    reading once its output is full, so its memory does not grow with the input."""
    imap.postmesh_only()
    if sanitized():
        pytest.skip("memory is measured on a build without ASan")
    imap.make_folder(ALICE)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((imap.host, imap.port()))
    s.sendall(f"a1 {login_line()}\r\n".encode())
    time.sleep(0.2)
    before = sandbox_rss_kb(imap)
    s.setblocking(False)
    chunk = b"".join(b"n%d NOOP\r\n" % i for i in range(10000))
    sent = 0
    deadline = time.monotonic() + 5
    while sent < 20 * len(chunk) and time.monotonic() < deadline:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    grown = sandbox_rss_kb(imap) - before
    s.close()
    assert grown < 3000, f"grew {grown} KiB for {sent} bytes of unread pipelining"
    assert_serving(imap)


def test_list_status_of_many_folders_does_not_stall_others(imap):
    """LIST "" * RETURN (STATUS ...) over a thousand folders, each never selected (so each
    gets its UID list made): another user's NOOP is still answered promptly."""
    imap.postmesh_only()
    md = imap.make_folder(ALICE)
    for i in range(990):
        d = md / f".f{i:04d}"
        for sub in ("", "cur", "new", "tmp"):
            (d / sub).mkdir()
            imap._own(d / sub)
        p = d / "new" / f"17000{i:05d}.M1P1.host"
        p.write_bytes(b"Subject: m\r\n\r\nx\r\n")
        imap._own(p)
    imap.make_folder(BOB)
    r = imap.raw(login=ALICE)
    other = imap.raw(login=BOB)
    r.send(b"l1 LIST \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))\r\n")
    time.sleep(0.1)
    t0 = time.monotonic()
    assert tagged_status(other.cmd("NOOP", timeout=60)) == b"OK"
    waited = time.monotonic() - t0
    lines = r.until("l1", timeout=120)
    assert tagged_status(lines) == b"OK"
    assert len([l for l in lines if l.startswith(b"* STATUS")]) >= 990
    assert waited < 1.0, f"bob's NOOP waited {waited:.1f}s behind alice's LIST-STATUS"


def bob_files(imap):
    bob = imap.maildir(BOB)
    return sorted(str(p.relative_to(bob)) for p in bob.rglob("*"))


def test_symlinked_folder_refused(imap):
    """A folder directory of alice's, or its cur/, that is a symlink to bob's Maildir is no
    folder: SELECT, EXAMINE, STATUS, APPEND, COPY and LIST do not reach bob's mail (was:
    followed, read and write access to bob's INBOX)."""
    imap.postmesh_only()
    imap.put(make_message("bob's secret"), address=BOB)
    imap.put(make_message("mine"))
    bob, md = imap.maildir(BOB), imap.maildir(ALICE)
    os.symlink(os.path.relpath(bob, md), md / ".Evil")  # relative: it resolves in the chroot
    half = imap.make_folder(ALICE, "Half")
    os.rmdir(half / "cur")
    os.symlink(os.path.relpath(bob / "cur", half), half / "cur")
    before = bob_files(imap)
    r = imap.raw(login=ALICE)
    for box in ("Evil", "Half"):
        for cmd in (f"SELECT {box}", f"EXAMINE {box}", f"STATUS {box} (MESSAGES UIDNEXT)",
                    f"APPEND {box} {{5+}}\r\nab\r\n\r"):
            lines = r.cmd(cmd)
            assert tagged_status(lines) == b"NO", (cmd, lines)
    lines = r.cmd('LIST "" "*"')
    assert not [l for l in lines[:-1] if b"Evil" in l or b"Half" in l], lines
    assert tagged_status(r.cmd("SELECT INBOX")) == b"OK"
    for box in ("Evil", "Half"):
        for cmd in (f"COPY 1 {box}", f"MOVE 1 {box}"):
            assert tagged_status(r.cmd(cmd)) == b"NO", cmd
    r.cmd("LOGOUT")
    r.close()
    assert bob_files(imap) == before
    wait_for(lambda: "event=folder_symlink_refused" in imap.log(), 5, what="the refusal logged")


def test_symlinked_inbox_tmp_refused(imap):
    """alice's Maildir/tmp a symlink to bob's: APPEND writes nothing there (the literal is
    streamed into tmp/ first) and INBOX counts as missing, not as bob's."""
    imap.postmesh_only()
    imap.put(make_message("bob's secret"), address=BOB)
    imap.put(make_message("mine"))
    bob, md = imap.maildir(BOB), imap.maildir(ALICE)
    os.rmdir(md / "tmp")
    os.symlink(os.path.relpath(bob / "tmp", md), md / "tmp")
    before = bob_files(imap)
    r = imap.raw(login=ALICE)
    lines = r.cmd("APPEND INBOX {5+}\r\nab\r\n\r")
    assert tagged_status(lines) == b"NO", lines
    assert tagged_status(r.cmd("SELECT INBOX")) == b"NO"
    r.cmd("LOGOUT")
    r.close()
    assert bob_files(imap) == before


def test_silent_store_on_many_messages_yields(imap):
    """STORE +FLAGS.SILENT on 20,000 messages writes nothing, so the output bound never made
    it yield: every other session waited for the whole run. Now another session's NOOP is
    answered while the STORE is still renaming files."""
    imap.postmesh_only()
    n = 20000
    md = imap.make_folder(ALICE)
    for i in range(n):
        p = md / "cur" / f"17100{i:05d}.M{i}P1.host:2,"
        p.write_bytes(b"Subject: x\r\n\r\nx\r\n")
        imap._own(p)
    a = imap.raw(login=ALICE)
    assert tagged_status(a.cmd("SELECT INBOX", timeout=60)) == b"OK"
    b = imap.raw(login=ALICE)

    def flagged():
        return sum(1 for e in os.scandir(md / "cur") if e.name.endswith("F"))
    a.send(b"s1 STORE 1:* +FLAGS.SILENT (\\Flagged)\r\n")
    wait_for(lambda: flagged() > 0, 30, interval=0.001, what="the STORE started")
    assert tagged_status(b.cmd("NOOP", timeout=30)) == b"OK"
    done = flagged()
    assert tagged_status(a.until("s1", timeout=60)) == b"OK"
    assert flagged() == n
    assert done < n, "the NOOP waited for the whole STORE"
    a.close()
    b.close()
