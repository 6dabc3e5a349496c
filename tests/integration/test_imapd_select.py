"""SELECT / EXAMINE responses, \\Recent and the move from new/ to cur/, CHECK, CLOSE and
UNSELECT, EXPUNGE and UID EXPUNGE (RFC 3501 6.3.1-2, 6.4.1-3, 6.4.8; RFC 4315; RFC 3691)."""
import re

from imap_helpers import ALICE, SYSTEM_FLAGS, imap, make_message, parse, tagged, untagged  # noqa: F401


def put_three(imap):
    return [imap.put(make_message(f"m{i}"), mtime=1_700_000_000 + i) for i in (1, 2, 3)]


def code(lines, name):
    for line in untagged(lines):
        m = re.match(rb"\* OK \[" + name.encode() + rb"(?: ([^\]]*))?\]", line)
        if m:
            return m.group(1)
    return None


def after_expunges(uids, lines):
    """uids (by sequence number) after the untagged EXPUNGEs in lines."""
    uids = list(uids)
    for line in untagged(lines):
        m = re.fullmatch(rb"\* (\d+) EXPUNGE", line)
        if m:
            del uids[int(m.group(1)) - 1]
    return uids


def test_select_responses(imap):
    put_three(imap)
    r = imap.raw(login=ALICE)
    lines = r.cmd("SELECT INBOX", tag="s1")
    status, text = tagged(lines)
    assert status == b"OK" and text.startswith(b"[READ-WRITE]")
    u = untagged(lines)
    assert b"* 3 EXISTS" in u
    assert b"* 3 RECENT" in u
    flags = [l for l in u if l.startswith(b"* FLAGS ")]
    assert len(flags) == 1 and SYSTEM_FLAGS <= set(str(f) for f in parse(flags[0][8:])[0])
    permanent = code(lines, "PERMANENTFLAGS")
    assert SYSTEM_FLAGS <= set(str(f) for f in parse(permanent)[0])
    validity, uidnext = int(code(lines, "UIDVALIDITY")), int(code(lines, "UIDNEXT"))
    assert validity > 0 and uidnext >= 4
    if imap.kind == "postmesh":    # only the system flags are permanent (the plan)
        assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in u
        assert permanent == b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
    # the same again gives the same UIDVALIDITY; \Recent went to the first session
    lines = r.cmd("SELECT INBOX", tag="s2")
    assert int(code(lines, "UIDVALIDITY")) == validity
    assert b"* 0 RECENT" in untagged(lines)


def test_first_read_write_select_moves_new_to_cur(imap):
    paths = put_three(imap)
    c = imap.login(select="INBOX", readonly=True)     # EXAMINE moves nothing
    if imap.kind == "postmesh":
        assert all(p.exists() for p in paths)
    c.logout()
    c = imap.login(select="INBOX")
    names = sorted(p.name for p in imap.files())
    assert names == sorted(p.name + ":2," for p in paths)
    assert all(p.parent.name == "cur" for p in imap.files())
    typ, data = c.fetch("1:*", "(FLAGS)")
    assert all(b"\\Recent" in d for d in data)
    c.logout()


def test_examine_is_read_only(imap):
    put_three(imap)
    r = imap.raw(login=ALICE)
    lines = r.cmd("EXAMINE INBOX", tag="e1")
    assert tagged(lines)[0] == b"OK" and tagged(lines)[1].startswith(b"[READ-ONLY]")
    # a read-only mailbox keeps its flags (RFC 9051 6.3.3); NO, or OK without effect
    assert r.cmd("STORE 1 +FLAGS (\\Deleted)", tag="e2")[-1].split()[1] in (b"NO", b"OK")
    assert not any(p.name.endswith("T") for p in imap.files())
    assert r.cmd("EXPUNGE", tag="e3")[-1].split()[1] in (b"NO", b"OK")
    assert len(imap.files()) == 3
    # FETCH of a body in EXAMINE does not set \Seen (RFC 3501 6.4.5)
    r.cmd("FETCH 1 (BODY[])", tag="e4")
    lines = r.cmd("FETCH 1 (FLAGS)", tag="e5")
    assert b"\\Seen" not in b"".join(lines[:-1])


def test_select_nonexistent_and_reselect_failure_deselects(imap):
    put_three(imap)
    r = imap.raw(login=ALICE)
    assert r.cmd("SELECT INBOX", tag="a1")[-1].startswith(b"a1 OK")
    assert r.cmd("SELECT NoSuchFolder", tag="a2")[-1].startswith(b"a2 NO")
    # RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected
    assert r.cmd("FETCH 1 (FLAGS)", tag="a3")[-1].split()[1] in (b"BAD", b"NO")


def test_select_inbox_any_case(imap):
    put_three(imap)
    c = imap.login()
    typ, data = c.select("inbox")
    assert typ == "OK" and data == [b"3"]
    c.logout()


def test_check_close_unselect(imap):
    put_three(imap)
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    assert r.cmd("CHECK", tag="c1")[-1].startswith(b"c1 OK")
    r.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    lines = r.cmd("UNSELECT", tag="c2")            # RFC 3691: nothing expunged
    assert lines[-1].startswith(b"c2 OK") and not untagged(lines)
    assert len(imap.files()) == 3
    assert r.cmd("FETCH 1 (FLAGS)", tag="c3")[-1].split()[1] in (b"BAD", b"NO")
    lines = r.cmd("SELECT INBOX", tag="c4")
    assert b"* 3 EXISTS" in lines
    lines = r.cmd("CLOSE", tag="c5")                # expunges silently (RFC 3501 6.4.2)
    assert lines[-1].startswith(b"c5 OK")
    assert not [l for l in untagged(lines) if b"EXPUNGE" in l]
    assert len(imap.files()) == 2
    # CLOSE after EXAMINE expunges nothing
    r.cmd("SELECT INBOX")
    r.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    r.cmd("EXAMINE INBOX")
    assert r.cmd("CLOSE", tag="c6")[-1].startswith(b"c6 OK")
    assert len(imap.files()) == 2
    assert r.cmd("CLOSE", tag="c7")[-1].split()[1] in (b"BAD", b"NO")  # nothing selected


def test_expunge_responses_in_order(imap):
    for i in range(1, 7):
        imap.put(make_message(f"x{i}"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    r.cmd("STORE 2,4:5 +FLAGS.SILENT (\\Deleted)")
    lines = r.cmd("EXPUNGE", tag="x1")
    assert lines[-1].startswith(b"x1 OK")
    # each EXPUNGE renumbers the ones after it (2 3 3 ascending, 5 4 2 descending)
    assert after_expunges([1, 2, 3, 4, 5, 6], lines) == [1, 3, 6]
    assert len(imap.files()) == 3
    lines = r.cmd("FETCH 1:* (UID)", tag="x2")
    assert [parse(l[2:])[2][1] for l in untagged(lines)] == [1, 3, 6]
    lines = r.cmd("EXPUNGE", tag="x3")             # nothing flagged: nothing expunged
    assert lines[-1].startswith(b"x3 OK") and not untagged(lines)


def test_uid_expunge_only_the_given_uids(imap):
    for i in range(1, 5):
        imap.put(make_message(f"u{i}"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    r.cmd("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    lines = r.cmd("UID EXPUNGE 2:3", tag="u1")
    assert lines[-1].startswith(b"u1 OK")
    assert after_expunges([1, 2, 3, 4], lines) == [1, 4]
    lines = r.cmd("UID FETCH 1:* (UID FLAGS)", tag="u2")
    got = [parse(l[2:])[2] for l in untagged(lines)]
    assert [dict(zip(g[::2], g[1::2]))["UID"] for g in got] == [1, 4]
    assert len(imap.files()) == 2


def test_expunge_seen_by_another_session_on_noop(imap):
    put_three(imap)
    a = imap.raw(login=ALICE)
    b = imap.raw(login=ALICE)
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    a.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.cmd("EXPUNGE")
    lines = b.cmd("NOOP", tag="b1")
    assert b"* 2 EXPUNGE" in untagged(lines)
    lines = b.cmd("FETCH 1:* (UID)", tag="b2")
    assert len(untagged(lines)) == 2


def test_status(imap):
    put_three(imap)
    c = imap.login()
    typ, data = c.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK"
    vals = parse(data[0])
    assert str(vals[0]).upper() == "INBOX"
    st = dict(zip(map(str, vals[1][::2]), vals[1][1::2]))
    assert st["MESSAGES"] == 3 and st["UNSEEN"] == 3 and st["RECENT"] == 3
    assert st["UIDNEXT"] >= 4 and st["UIDVALIDITY"] > 0
    c.select("INBOX")
    c.store("1", "+FLAGS", "(\\Seen)")
    typ, data = c.status("INBOX", "(MESSAGES UNSEEN)")
    st = parse(data[0])[1]
    assert dict(zip(map(str, st[::2]), st[1::2])) == {"MESSAGES": 3, "UNSEEN": 2}
    typ, data = c.status("NoSuchFolder", "(MESSAGES)")
    assert typ == "NO"
    c.logout()


def test_no_expunge_during_fetch_store_search(imap):
    # RFC 9051 7.5.1 (RFC 3501 7.4.1): no EXPUNGE while answering FETCH, STORE or SEARCH; the
    # next NOOP brings it
    put_three(imap)
    a = imap.raw(login=ALICE)
    b = imap.raw(login=ALICE)
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.cmd("EXPUNGE")
    for cmd in ("FETCH 1:* (FLAGS)", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "FETCH 3 (UID)"):
        lines = a.cmd(cmd)
        assert tagged(lines)[0] == b"OK", (cmd, lines)
        assert not [l for l in untagged(lines) if l.endswith(b" EXPUNGE")], (cmd, lines)
    lines = a.cmd("NOOP")
    assert b"* 2 EXPUNGE" in untagged(lines)
    lines = a.cmd("FETCH 1:* (UID)")
    assert [parse(l[2:])[2][1] for l in untagged(lines)] == [1, 3]
