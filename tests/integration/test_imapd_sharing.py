"""One Maildir served by pop3d and imapd at once, with delivery writing into it: a message
pop3d deletes is an EXPUNGE on imapd's next NOOP; flags set over IMAP leave pop3d's UIDL alone;
pop3d sees the messages imapd moved from new/ to cur/."""
import poplib

from conftest import wait_for
from imap_helpers import ALICE, PASSWORDS, flags_of, imap, make_message, search, untagged  # noqa: F401


def pop3(imap):
    imap.start_mail(pop3=True)
    p = poplib.POP3("127.0.0.1", imap.pm.port("pop3"), timeout=15)
    p.user(ALICE)
    p.pass_(PASSWORDS[ALICE])
    return p


def uidl(p):
    return [line.split()[1] for line in p.uidl()[1]]


def test_pop3_delete_is_expunge_on_noop(imap):
    for i in range(3):
        imap.deliver(make_message(f"share{i}"))
    r = imap.raw(login=ALICE)
    lines = r.cmd("SELECT INBOX")
    assert b"* 3 EXISTS" in lines
    p = pop3(imap)
    assert p.stat()[0] == 3
    p.dele(2)
    p.quit()
    assert len(imap.files()) == 2
    lines = r.cmd("NOOP", tag="n1")
    assert b"* 2 EXPUNGE" in untagged(lines)
    lines = r.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])", tag="n2")
    text = b"".join(lines)
    assert b"share0" in text and b"share2" in text and b"share1" not in text


def test_imap_flags_leave_pop3_uidl_alone(imap):
    for i in range(2):
        imap.deliver(make_message(f"u{i}"))
    imap.start_mail(pop3=True)
    p = pop3(imap)
    before = uidl(p)
    p.quit()
    c = imap.login(select="INBOX")                  # moves new/ -> cur/ with ":2,"
    c.store("1", "+FLAGS", r"(\Seen \Flagged)")
    c.store("2", "+FLAGS", r"(\Answered)")
    c.logout()
    assert all(f.parent.name == "cur" for f in imap.files())
    p = pop3(imap)
    assert uidl(p) == before                        # the name up to ':' is the UIDL
    # and pop3d serves the moved files, byte for byte what was delivered
    bodies = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in (1, 2)]
    p.quit()
    assert sorted(bodies) == sorted(f.read_bytes() for f in imap.files())


def test_pop3_sees_what_imap_moved_and_imap_sees_new_mail(imap):
    imap.deliver(make_message("first"))
    c = imap.login(select="INBOX")
    assert all(f.parent.name == "cur" for f in imap.files())
    imap.deliver(make_message("second"))            # into new/ while imapd has the folder
    p = pop3(imap)
    assert p.stat()[0] == 2                          # one in cur/, one in new/
    p.quit()
    c.noop()
    assert search(c, "ALL") == [1, 2]
    c.logout()


def test_pop3_delete_of_flagged_message_and_uids_after(imap):
    for i in range(3):
        imap.deliver(make_message(f"d{i}"))
    c = imap.login(select="INBOX")
    c.store("1", "+FLAGS", r"(\Flagged)")
    uids_before = search(c, "ALL", uid=True)
    p = pop3(imap)
    p.dele(1)                                       # the flagged one, now named ...:2,F in cur/
    p.quit()
    wait_for(lambda: len(imap.files()) == 2, 5, what="pop3d's delete")
    c.noop()
    assert search(c, "ALL", uid=True) == uids_before[1:]
    assert all(r"\Flagged" not in f for f in flags_of(c).values())
    c.logout()


def test_commands_on_a_message_pop3d_deleted_before_noop(imap):
    # pop3d removes a file imapd still numbers: FETCH / STORE / COPY of it must not break the
    # session (RFC 2180 4.1: NO, or the data if still at hand), and the next NOOP expunges it
    for i in range(3):
        imap.deliver(make_message(f"gone{i}"))
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    p = pop3(imap)
    p.dele(2)
    p.quit()
    for cmd in ("FETCH 2 (BODY.PEEK[])", "FETCH 1:3 (FLAGS RFC822.SIZE)", "STORE 2 +FLAGS (\\Flagged)",
                "SEARCH BODY gone"):
        lines = r.cmd(cmd)
        assert lines[-1].split()[1] in (b"OK", b"NO"), (cmd, lines)
        assert not [l for l in untagged(lines) if l.endswith(b"EXPUNGE")], (cmd, lines)  # RFC 9051 7.5.1
    lines = r.cmd("COPY 2 Archive")                 # may announce it (NO [EXPUNGEISSUED], or OK)
    assert lines[-1].split()[1] in (b"OK", b"NO"), lines
    lines += r.cmd("NOOP")
    assert [l for l in untagged(lines) if l.endswith(b"EXPUNGE")] == [b"* 2 EXPUNGE"]
    lines = r.cmd("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    text = b"".join(lines)
    assert b"gone0" in text and b"gone2" in text and b"gone1" not in text
