"""The aliases file where an operator keeps it: a clone under /root, or /etc/postmesh made
root-only above it. The queue reads the file through its reader outside the chroot, which
runs as postmesh-queue; smtpd's lookup helper answers as postmesh-auth. Neither could reach
a file below a directory only root may enter, so `make run` in a fresh clone under /root
stopped at once (queue: "cannot read: Permission denied", smtpd: "users or aliases file not
usable"). Now the reader opens the file's directory while still root and the file relative
to it, and smtpd's parent hands its helper the file (as it does the users file)."""
import smtplib

import pytest

from conftest import BIN, wait_for

pytestmark = pytest.mark.skipif(not (BIN / "postmesh-queue").exists(), reason="needs the binaries")


def test_aliases_below_a_root_only_directory(pm):
    locked = pm.root / "locked"
    etc = locked / "etc"
    etc.mkdir(parents=True)
    locked.chmod(0o700)  # as /root: nobody but root gets past it
    etc.chmod(0o755)
    aliases = etc / "aliases"
    aliases.write_text("team@example.test: alice@example.test\n")
    pm.configure(aliases_file=str(aliases))
    pm.add_user("alice@example.test")
    pm.start("queue", "delivery", "smtpd", timeout=20)
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10) as s:
        s.sendmail("bob@remote.test", ["team@example.test"], b"Subject: to the team\r\n\r\nhello\r\n")
    new = pm.state / "mail" / "example.test" / "alice" / "Maildir" / "new"
    wait_for(lambda: new.exists() and any(new.iterdir()), 15, what="the alias's mail in alice's Maildir")
    # and the file is still followed when it changes
    aliases.write_text("team@example.test: alice@example.test\nops@example.test: alice@example.test\n")
    def accepted():
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10) as s:
            s.ehlo("client.test")
            s.mail("bob@remote.test")
            return s.rcpt("ops@example.test")[0] == 250
    wait_for(accepted, 15, what="the new alias accepted")


def test_missing_aliases_file_in_a_root_only_state_dir(pm):
    """The reference config's layout: aliases_file inside state_dir (0750 root), not created
    yet. smtpd must start (the file is optional) and take mail."""
    pm.configure(aliases_file=str(pm.state / "aliases"))
    pm.add_user("alice@example.test")
    pm.start("queue", timeout=20)
    pm.state.chmod(0o750)
    pm.start("smtpd", timeout=20)
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10) as s:
        s.ehlo("client.test")
        s.mail("bob@remote.test")
        assert s.rcpt("alice@example.test")[0] == 250
