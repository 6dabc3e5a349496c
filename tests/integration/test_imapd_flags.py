"""STORE and UID STORE: FLAGS, +FLAGS, -FLAGS and .SILENT (RFC 3501 6.4.6), flags kept as
Maildir++ letters in the file name, and other sessions told of changes."""
import re

from imap_helpers import command, flags_of, imap, make_message, untagged  # noqa: F401

ALICE = "alice@example.test"


def three(imap):
    for i in (1, 2, 3):
        imap.put(make_message(f"f{i}"))


def letters(path):
    m = re.search(r":2,([A-Za-z]*)$", path.name)
    return m.group(1) if m else None


def test_store_forms_and_responses(imap):
    three(imap)
    c = imap.login(select="INBOX")
    typ, data = c.store("1", "+FLAGS", r"(\Seen \Flagged)")
    assert typ == "OK"
    got = {k: set(v["FLAGS"]) for k, v in imap_fetch_lines(data).items()}
    assert got == {1: {r"\Seen", r"\Flagged", r"\Recent"}}
    typ, data = c.store("1", "-FLAGS", r"(\Flagged)")
    assert {k: set(v["FLAGS"]) for k, v in imap_fetch_lines(data).items()} == {1: {r"\Seen", r"\Recent"}}
    typ, data = c.store("1:2", "FLAGS", r"(\Draft \Answered)")
    got = {k: set(v["FLAGS"]) for k, v in imap_fetch_lines(data).items()}
    assert got == {1: {r"\Draft", r"\Answered", r"\Recent"}, 2: {r"\Draft", r"\Answered", r"\Recent"}}
    typ, data = c.store("3", "FLAGS", "()")
    assert typ == "OK"
    assert flags_of(c) == {1: {r"\Draft", r"\Answered", r"\Recent"}, 2: {r"\Draft", r"\Answered", r"\Recent"},
                           3: {r"\Recent"}}
    c.logout()


def imap_fetch_lines(data):
    from imap_helpers import fetch_items, imaplib_join
    return fetch_items(imaplib_join(data))


def test_silent_gives_no_fetch(imap):
    three(imap)
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    lines = r.cmd("STORE 1:3 +FLAGS.SILENT (\\Seen)", tag="s1")
    assert lines[-1].startswith(b"s1 OK") and not untagged(lines)
    lines = r.cmd("STORE 2 -FLAGS.SILENT (\\Seen)", tag="s2")
    assert lines[-1].startswith(b"s2 OK") and not untagged(lines)
    lines = r.cmd("STORE 2 FLAGS.SILENT (\\Flagged)", tag="s3")
    assert lines[-1].startswith(b"s3 OK") and not untagged(lines)
    lines = r.cmd("FETCH 1:3 (FLAGS)", tag="s4")
    got = {int(l.split()[1]): set(re.search(rb"FLAGS \(([^)]*)\)", l).group(1).decode().split())
           for l in untagged(lines)}
    assert got == {1: {r"\Seen", r"\Recent"}, 2: {r"\Flagged", r"\Recent"}, 3: {r"\Seen", r"\Recent"}}


def test_uid_store(imap):
    three(imap)
    c = imap.login(select="INBOX")
    typ, data = c.uid("STORE", "2:3", "+FLAGS", r"(\Deleted)")
    got = imap_fetch_lines(data)
    assert sorted(got) == [2, 3] and all(v["UID"] == k for k, v in got.items())   # UID in each
    typ, data = c.uid("STORE", "99", "+FLAGS", r"(\Seen)")     # no such UID: OK, nothing
    assert typ == "OK" and imap_fetch_lines(data) == {}
    assert {k for k, v in flags_of(c).items() if r"\Deleted" in v} == {2, 3}
    c.logout()


def test_flags_are_maildir_letters(imap):
    three(imap)
    c = imap.login(select="INBOX")
    c.store("1", "+FLAGS", r"(\Seen \Flagged \Answered \Draft \Deleted)")
    c.store("2", "+FLAGS", r"(\Seen)")
    c.logout()
    by_subject = {}
    for p in imap.files():
        subject = re.search(rb"Subject: (\w+)", p.read_bytes()).group(1)
        by_subject[subject] = letters(p)
    assert by_subject == {b"f1": "DFRST", b"f2": "S", b"f3": ""}
    # and they are read back from the names: a new session sees them (no \Recent now)
    c = imap.login(select="INBOX")
    assert flags_of(c) == {1: {r"\Seen", r"\Flagged", r"\Answered", r"\Draft", r"\Deleted"},
                           2: {r"\Seen"}, 3: set()}
    c.logout()


def test_flags_written_by_another_program_are_seen(imap):
    path = imap.put(make_message("outside"), flags="")
    c = imap.login(select="INBOX")
    assert flags_of(c)[1] - {r"\Recent"} == set()
    path.rename(path.with_name(path.name.split(":")[0] + ":2,FS"))    # e.g. mutt on the Maildir
    c.noop()
    assert flags_of(c)[1] - {r"\Recent"} == {r"\Seen", r"\Flagged"}
    c.logout()


def test_other_session_told_of_changes(imap):
    three(imap)
    a = imap.raw(login=ALICE)
    b = imap.raw(login=ALICE)
    a.cmd("SELECT INBOX")
    b.cmd("SELECT INBOX")
    a.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)")
    lines = b.cmd("NOOP", tag="n1")
    changed = [l for l in untagged(lines) if b"FETCH" in l]
    assert len(changed) == 1 and changed[0].startswith(b"* 2 FETCH") and b"\\Flagged" in changed[0]


def test_keywords_and_bad_flags(imap):
    three(imap)
    c = imap.login(select="INBOX")
    typ, data = command(c, "STORE", "1", "+FLAGS", r"(\Bogus)")
    assert typ == "BAD" or (typ == "OK" and r"\Bogus" not in flags_of(c, "1")[1])
    typ, data = command(c, "STORE", "1", "+FLAGS", r"(\Recent)")   # \Recent is not settable
    assert typ in ("BAD", "NO", "OK")
    typ, data = command(c, "STORE", "1", "FROB", r"(\Seen)")
    assert typ == "BAD"
    assert flags_of(c, "1")[1] <= {r"\Recent", r"\Seen"}
    c.logout()


def test_keywords_clients_store_are_accepted(imap):
    # Thunderbird stores NonJunk / $Forwarded / $label1; a flag outside PERMANENTFLAGS is
    # ignored or kept for the session (RFC 3501 7.1), never an error
    three(imap)
    c = imap.login(select="INBOX")
    typ, data = c.store("1", "+FLAGS", "(NonJunk $Forwarded $label1)")
    assert typ == "OK", data
    typ, data = c.store("1", "-FLAGS", "(NonJunk)")
    assert typ == "OK", data
    assert c.noop()[0] == "OK"
    c.logout()


def test_empty_mailbox_commands(imap):
    r = imap.raw(login=ALICE)
    r.cmd("SELECT Drafts")
    for cmd, want in (("UID FETCH 1:* (FLAGS)", b"OK"), ("UID SEARCH ALL", b"OK"), ("SEARCH ALL", b"OK"),
                      ("UID STORE 1:* +FLAGS (\\Seen)", b"OK"), ("EXPUNGE", b"OK"), ("UID SEARCH UID 1:*", b"OK")):
        lines = r.cmd(cmd)
        assert lines[-1].split()[1] == want, (cmd, lines)
        assert all(l in (b"* SEARCH", b"* SEARCH ") for l in untagged(lines)), (cmd, lines)
