"""postmaster@ every local domain (issue 9, RFC 5321 4.5.1): accepted at RCPT whether or not
the users file lists it (also the bare <Postmaster>, in any case, on port 25 without AUTH),
never a way to relay; delivered to its alias (expanded by the queue at commit) or, without
one, into its own mailbox, which `postmesh user add` can then open for POP3. `postmesh check`
says where it goes. Clients: smtplib, poplib."""
import poplib
import re
import smtplib

import pytest

from conftest import wait_for
from pop3_helpers import add_user, maildir, messages

DOMAINS = ["example.test", "other.test"]


def msg(mid):
    return (f"From: someone@remote.test\r\nTo: postmaster\r\nMessage-ID: <{mid}@remote.test>\r\n"
            f"Subject: for the postmaster\r\n\r\nhello {mid}\r\n").encode()


def send(pm, rcpt, mid):
    """One message to rcpt over port 25, no AUTH, from an untrusted client. The RCPT reply."""
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.mail("someone@remote.test")[0] == 250
        reply = s.rcpt(rcpt)
        if reply[0] == 250:
            code, text = s.data(msg(mid))
            assert code == 250, text
        return reply


def wait_delivered(pm, address, mid, timeout=30):
    """The one file in address's mailbox that holds Message-ID <mid@...>."""
    needle = f"<{mid}@remote.test>".encode()

    def found():
        hits = [p for p in messages(pm, address) if needle in p.read_bytes()]
        return hits or None
    hits = wait_for(found, timeout=timeout, what=f"{mid} in {address}'s mailbox")
    assert len(hits) == 1, hits
    return hits[0]


def queue_empty(pm):
    wait_for(lambda: not pm.queue_list(), timeout=30, what="an empty queue")


@pytest.fixture
def mx(pm):
    pm.configure(domains=DOMAINS)
    add_user(pm, "alice@example.test", "secret")
    return pm


def test_postmaster_without_user_or_alias_goes_to_its_own_mailbox(mx):
    mx.start("queue", "delivery", "smtpd", timeout=20)
    # No users entry, no alias: still accepted, in any case, bare or with any local domain.
    for i, rcpt in enumerate(["postmaster@example.test", "Postmaster", "POSTMASTER@Other.Test"]):
        assert send(mx, rcpt, f"pm{i}")[0] == 250, rcpt
    # Not a relay: postmaster@ somewhere else is refused like any remote address.
    code, text = send(mx, "postmaster@remote.test", "relay")
    assert (code, text[:5]) == (554, b"5.7.1")
    # Nor does it make other unknown local users acceptable.
    code, text = send(mx, "postmaster2@example.test", "unknown")
    assert (code, text[:5]) == (550, b"5.1.1")
    wait_delivered(mx, "postmaster@example.test", "pm0")
    wait_delivered(mx, "postmaster@example.test", "pm1")   # <Postmaster> = postmaster@ first domain
    wait_delivered(mx, "postmaster@other.test", "pm2")
    queue_empty(mx)
    assert len(messages(mx, "postmaster@example.test")) == 2
    assert "event=bounced" not in mx.log("queue")
    # `postmesh user add` gives the mailbox a password: POP3 reads what was delivered before.
    mx.cli("user", "add", "postmaster@example.test", input="pm-secret\n")
    mx.start("pop3d")
    p = poplib.POP3("127.0.0.1", mx.port("pop3"), timeout=15)
    p.user("postmaster@example.test")
    p.pass_("pm-secret")
    got = b"\n".join(b"\n".join(p.retr(i)[1]) for i in range(1, p.stat()[0] + 1))
    p.quit()
    assert b"<pm0@remote.test>" in got and b"<pm1@remote.test>" in got


def test_postmaster_alias_is_expanded_by_the_queue(mx):
    add_user(mx, "bob@other.test", "pw")
    # An exact alias for one domain, a bare one for every other local domain.
    (mx.root / "aliases").write_text("postmaster@example.test: alice@example.test\npostmaster: bob\n")
    mx.start("queue", "delivery", "smtpd", timeout=20)
    assert send(mx, "PostMaster@example.test", "alias1")[0] == 250
    assert send(mx, "postmaster@other.test", "alias2")[0] == 250
    wait_delivered(mx, "alice@example.test", "alias1")
    wait_delivered(mx, "bob@other.test", "alias2")
    queue_empty(mx)
    assert not maildir(mx, "postmaster@example.test").exists()
    assert not maildir(mx, "postmaster@other.test").exists()


def check_lines(pm):
    out = pm.cli("check", check=False).stdout
    return {m.group(2): (m.group(1), m.group(3)) for m in
            re.finditer(r"^(ok|warn|FAIL)\s+postmaster\s+(postmaster@[^\s:]+):? (.*)$", out, re.M)}


def test_check_says_where_postmaster_mail_goes(mx):
    mail = mx.state / "mail"
    lines = check_lines(mx)
    assert set(lines) == {"postmaster@example.test", "postmaster@other.test"}
    assert lines["postmaster@example.test"] == (
        "ok", f"-> mailbox {mail}/example.test/postmaster/Maildir (no alias; "
              "`postmesh user add postmaster@example.test` gives it a password for POP3)")
    add_user(mx, "postmaster@other.test", "pw")
    assert check_lines(mx)["postmaster@other.test"] == (
        "ok", f"-> mailbox {mail}/other.test/postmaster/Maildir (no alias; readable over POP3 as "
              "postmaster@other.test)")
    # Aliases: expanded as the queue would; a local target that is nobody bounces, so warn.
    (mx.root / "aliases").write_text("postmaster@example.test: ops@example.test\n"
                                     "ops@example.test: alice, noc@remote.test\npostmaster: ghost\n")
    lines = check_lines(mx)
    assert lines["postmaster@example.test"] == ("ok", "-> alice@example.test, noc@remote.test (alias)")
    assert lines["postmaster@other.test"] == (
        "warn", "-> ghost@other.test (alias); not a user, so its mail bounces: ghost@other.test")
    # A loop is an error.
    (mx.root / "aliases").write_text("postmaster: ops\nops: postmaster\n")
    r = mx.cli("check", check=False)
    assert r.returncode == 1
    assert check_lines(mx)["postmaster@example.test"][0] == "FAIL"
    assert "alias loop" in check_lines(mx)["postmaster@example.test"][1]
