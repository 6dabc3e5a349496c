"""Real IMAP clients against postmesh-imapd (and, with IMAP_SERVERS=postmesh,dovecot, the same
tests against a real Dovecot over the same store: every expectation here is one a reference
server meets too):

  - mbsync (Debian's isync) syncs a mailbox with folders both ways over imaps: messages,
    folders, flags and removals made on either side appear on the other, and a third run
    changes nothing;
  - fetchmail retrieves over imaps (the test's certificate as its cert file, sslcertck on)
    into an mda of the test's: first only the unseen messages (kept, now \\Seen), then
    nothing, then everything with deletion, leaving the INBOX empty;
  - neomutt, driven in tmux, on the plain port with STARTTLS (forced), lists the INBOX, reads
    a message (then \\Seen on the server) and opens another folder.

Every client runs with HOME in the test's directory (its rc file there), on loopback only;
every wait is a poll with a deadline."""
import imaplib
import os
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_for
from imap_helpers import SERVERS   # IMAP_SERVERS=postmesh,dovecot: the same tests against Dovecot too
from imap_store import put, start_server
from pop3_helpers import add_user

ALICE, PASSWORD = "alice@example.test", "s3cret pass"


def msg(subject, body, sender="bob@example.test", extra=""):
    return (f"From: {sender}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n"
            f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n{extra}\r\n{body}\r\n").encode()


@pytest.fixture(params=SERVERS)
def start(request, pm, tmp_path):
    """start(): the server of this parameter over the store the test has written so far."""
    if request.param == "dovecot":
        from dovecot_harness import available
        if not available():
            pytest.skip("dovecot-imapd is not installed")
    add_user(pm, ALICE, PASSWORD)
    started = []

    def go():
        srv = start_server(request.param, pm, tmp_path)
        started.append(srv)
        return srv
    yield go
    for srv in started:
        srv.stop()


def imap(srv):
    ctx = ssl.create_default_context(cafile=str(srv.cafile))
    m = imaplib.IMAP4_SSL(srv.host, srv.port("imaps"), ssl_context=ctx, timeout=15)
    m.login(ALICE, PASSWORD)
    return m


def folder_view(srv, folder):
    """{Subject: set of flags} of a folder on the server, without \\Recent (it belongs to
    whichever session saw the message first)."""
    m = imap(srv)
    try:
        typ, data = m.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            return None
        if data[0] == b"0":
            return {}   # 1:* of an empty folder is BAD
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                flags = imaplib.ParseFlags(item[0])
                subject = item[1].decode().split(":", 1)[1].strip()
                out[subject] = {f.decode() for f in flags} - {"\\Recent"}
        return out
    finally:
        m.logout()


def env_with_home(home):
    return dict(os.environ, HOME=str(home), USER="root", LANG="C.UTF-8", LC_ALL="C.UTF-8")


# ------------------------------------------------------------------ mbsync

def local_view(root: Path, folder):
    """{Subject: set of Maildir flag letters} of mbsync's local Maildir folder."""
    d = root / folder
    if not d.is_dir():
        return None
    out = {}
    for sub in ("cur", "new"):
        for f in (d / sub).iterdir():
            head = f.read_bytes().split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
            subject = next(line.split(b":", 1)[1].strip().decode() for line in head.splitlines()
                           if line.lower().startswith(b"subject:"))
            out[subject] = set(f.name.split(":2,", 1)[1]) if ":2," in f.name else set()
    return out


def local_put(root: Path, folder, content, flags=""):
    d = root / folder
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}.local{os.getpid()}.laptop"
    (d / ("cur" if flags else "new") / (name + (":2," + flags if flags else ""))).write_bytes(content)


def local_set_flags(root: Path, folder, subject, flags):
    for sub in ("cur", "new"):
        for f in (root / folder / sub).iterdir():
            if f"Subject: {subject}".encode() in f.read_bytes():
                f.rename(root / folder / "cur" / (f.name.split(":2,")[0] + ":2," + "".join(sorted(flags))))
                return
    raise AssertionError(f"no local message {subject!r} in {folder}")


def mbsync(home, srv):
    r = subprocess.run(["mbsync", "-V", "-a"], env=env_with_home(home), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"mbsync failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout + r.stderr


def test_mbsync_both_ways(pm, tmp_path, start):
    mail = pm.state / "mail"
    put(mail, ALICE, msg("inbox seen", "first"), flags=["\\Seen"], mtime=1_700_000_000)
    put(mail, ALICE, msg("inbox flagged", "second"), flags=["\\Flagged"], mtime=1_700_000_100)
    put(mail, ALICE, msg("inbox new", "third"), mtime=1_700_000_200)
    put(mail, ALICE, msg("work one", "w1"), folder="Work", flags=[], mtime=1_700_000_300)
    put(mail, ALICE, msg("dev list", "d1"), folder="Lists/dev", flags=["\\Seen"], mtime=1_700_000_400)
    srv = start()

    home, local = tmp_path / "mbsync-home", tmp_path / "mbsync-mail"
    home.mkdir()
    local.mkdir()
    (home / ".mbsyncrc").write_text(f"""\
IMAPAccount test
Host {srv.host}
Port {srv.port("imaps")}
User {ALICE}
Pass "{PASSWORD}"
SSLType IMAPS
SystemCertificates no
CertificateFile {srv.cafile}
AuthMechs PLAIN LOGIN
Timeout 20

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Remove Both
Expunge Both
SyncState *
""")
    mbsync(home, srv)
    # far -> near: every folder, every message, the flags in the file names
    assert local_view(local, "INBOX") == {"inbox seen": {"S"}, "inbox flagged": {"F"}, "inbox new": set()}
    assert local_view(local, "Work") == {"work one": set()}
    assert local_view(local, "Lists/dev") == {"dev list": {"S"}}
    body = next((local / "Work" / "cur").iterdir(), None) or next((local / "Work" / "new").iterdir())
    got = b"".join(line for line in body.read_bytes().replace(b"\r\n", b"\n").splitlines(keepends=True)
                   if not line.startswith(b"X-TUID: "))   # mbsync's own tracking header
    assert got == msg("work one", "w1").replace(b"\r\n", b"\n")

    # changes on the laptop: a new message in Work, a new folder, flags, a removal
    local_put(local, "Work", msg("from laptop", "written offline"))
    local_put(local, "Projects", msg("project plan", "p1"), flags="S")
    local_set_flags(local, "INBOX", "inbox flagged", "FS")
    local_set_flags(local, "Lists/dev", "dev list", "ST")
    # changes on the phone, at the same time
    m = imap(srv)
    assert m.append("INBOX", "(\\Flagged)", None, msg("from phone", "sent from my phone"))[0] == "OK"
    m.select("INBOX")
    typ, data = m.search(None, "SUBJECT", '"inbox seen"')
    assert m.store(data[0].decode(), "+FLAGS", "(\\Answered)")[0] == "OK"
    assert m.create("Remote")[0] == "OK"
    assert m.append("Remote", None, None, msg("remote only", "r1"))[0] == "OK"
    m.logout()

    out = mbsync(home, srv)
    # near -> far
    assert folder_view(srv, "Work") == {"work one": set(), "from laptop": set()}, out
    assert folder_view(srv, "Projects") == {"project plan": {"\\Seen"}}
    assert folder_view(srv, "Lists/dev") == {}
    inbox = folder_view(srv, "INBOX")
    assert inbox == {"inbox seen": {"\\Seen", "\\Answered"}, "inbox flagged": {"\\Flagged", "\\Seen"},
                     "inbox new": set(), "from phone": {"\\Flagged"}}, inbox
    # far -> near
    assert local_view(local, "INBOX") == {"inbox seen": {"R", "S"}, "inbox flagged": {"F", "S"},
                                          "inbox new": set(), "from phone": {"F"}}
    assert local_view(local, "Remote") == {"remote only": set()}
    assert local_view(local, "Lists/dev") == {}

    # the phone expunges one; then a run changes only that, a further one nothing
    m = imap(srv)
    m.select("Remote")
    m.store("1", "+FLAGS", "(\\Deleted)")
    assert m.expunge()[0] == "OK"
    m.logout()
    out = mbsync(home, srv)
    assert local_view(local, "Remote") == {}, out
    before = {f: local_view(local, f) for f in ("INBOX", "Work", "Projects", "Remote", "Lists/dev")}
    out = mbsync(home, srv)
    assert {f: local_view(local, f) for f in before} == before, out
    assert folder_view(srv, "INBOX") == inbox


# ------------------------------------------------------------------ fetchmail

MDA = """\
#!/usr/bin/python3
# The test's mda: each message fetchmail hands over becomes one file, written whole, then renamed.
import os, sys, time
out = sys.argv[1]
data = sys.stdin.buffer.read()
name = "%d.%d" % (time.time_ns(), os.getpid())
with open(os.path.join(out, "." + name), "wb") as f:
    f.write(data)
os.rename(os.path.join(out, "." + name), os.path.join(out, name))
"""


def fetchmail(home, srv, *, keep, fetchall):
    rc = home / ".fetchmailrc"
    rc.write_text(f"""\
set no syslog
set invisible
poll {srv.host} service {srv.port("imaps")} protocol IMAP timeout 20
  user "{ALICE}" there with password "{PASSWORD}" is "root" here
  ssl sslcertck sslcertfile {srv.cafile}
  {"keep" if keep else "nokeep"} {"fetchall" if fetchall else ""}
  mda "{home / 'mda.py'} {home / 'out'}"
""")
    rc.chmod(0o600)
    r = subprocess.run(["fetchmail", "-v", "-f", str(rc), "--pidfile", str(home / "fetchmail.pid")],
                       env=env_with_home(home), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def delivered(home):
    return sorted((home / "out").iterdir())


def test_fetchmail_imaps(pm, tmp_path, start):
    mail = pm.state / "mail"
    msgs = [msg("old news", "already read"), msg("fresh one", "line 1\r\n.line 2 with a dot"),
            msg("fresh two", "x" * 900 + "\r\nend")]
    put(mail, ALICE, msgs[0], flags=["\\Seen"], mtime=1_700_000_000)
    put(mail, ALICE, msgs[1], mtime=1_700_000_100)
    put(mail, ALICE, msgs[2], flags=[], mtime=1_700_000_200)
    srv = start()
    home = tmp_path / "fetchmail-home"
    (home / "out").mkdir(parents=True)
    (home / "mda.py").write_text(MDA)
    (home / "mda.py").chmod(0o755)

    # only the unseen ones, kept on the server and \Seen there now
    rc, out = fetchmail(home, srv, keep=True, fetchall=False)
    assert rc == 0, out
    got = [p.read_bytes() for p in delivered(home)]
    assert got == [m.replace(b"\r\n", b"\n") for m in msgs[1:]], out
    assert folder_view(srv, "INBOX") == {"old news": {"\\Seen"}, "fresh one": {"\\Seen"},
                                         "fresh two": {"\\Seen"}}
    # nothing new: fetchmail says so with status 1
    rc, out = fetchmail(home, srv, keep=True, fetchall=False)
    assert rc == 1 and len(delivered(home)) == 2, out
    # everything, deleted from the server as it goes
    for p in delivered(home):
        p.unlink()
    rc, out = fetchmail(home, srv, keep=False, fetchall=True)
    assert rc == 0, out
    assert sorted(p.read_bytes() for p in delivered(home)) == sorted(m.replace(b"\r\n", b"\n") for m in msgs)
    assert folder_view(srv, "INBOX") == {}


# ------------------------------------------------------------------ neomutt in tmux

class Tmux:
    """One neomutt in a detached tmux session on a socket of the test's own."""

    def __init__(self, tmp: Path, command, env):
        self.socket = str(tmp / "tmux.sock")
        self.env = env
        subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t",
                        "-x", "160", "-y", "40", command], env=env, check=True, timeout=15)

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.socket, "send-keys", "-t", "t", *keys], check=True, timeout=15)

    def screen(self):
        r = subprocess.run(["tmux", "-S", self.socket, "capture-pane", "-p", "-t", "t"], capture_output=True,
                           text=True, timeout=15)
        return r.stdout if r.returncode == 0 else ""

    def wait(self, *texts, timeout=20, what=None):
        """The screen once every text is on it (or the test fails, showing the screen)."""
        last = [""]

        def shown():
            last[0] = self.screen()
            return all(t in last[0] for t in texts)
        try:
            wait_for(shown, timeout, interval=0.1, what=what or f"{texts} on screen")
        except AssertionError as e:
            raise AssertionError(f"{e}; the screen:\n{last[0]}") from None
        return last[0]

    def alive(self):
        return subprocess.run(["tmux", "-S", self.socket, "has-session", "-t", "t"], capture_output=True,
                              timeout=15).returncode == 0

    def kill(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=15)


def test_neomutt_lists_and_reads(pm, tmp_path, start):
    mail = pm.state / "mail"
    put(mail, ALICE, msg("lunch on friday", "Shall we meet at noon?", sender="carol@example.test"),
        flags=["\\Seen"], mtime=1_700_000_000)
    put(mail, ALICE, msg("quarterly report", "The numbers are in: all green.\r\nRegards, Dave",
                         sender="dave@example.test"), mtime=1_700_000_100)
    put(mail, ALICE, msg("meeting notes", "1. coffee\r\n2. more coffee", sender="erin@example.test"),
        mtime=1_700_000_200)
    put(mail, ALICE, msg("archived thing", "kept for later"), folder="Work", flags=["\\Seen"], mtime=1_700_000_300)
    srv = start()
    home = tmp_path / "neomutt-home"
    home.mkdir()
    rc = home / ".neomuttrc"
    rc.write_text(f"""\
set folder = "imap://{srv.host}:{srv.port('imap')}/"
set ssl_starttls = yes
set ssl_force_tls = yes
set spoolfile = "+INBOX"
set imap_user = "{ALICE}"
set imap_pass = "{PASSWORD}"
set certificate_file = "{srv.cafile}"
set ssl_verify_host = yes
set header_cache = ""
set message_cachedir = ""
set mail_check_stats = no
set sort = date-received
set index_format = "%4C %-22.22f %s"
set pager_index_lines = 0
set pager_stop = yes
set wait_key = no
set help = no
set record = ""
set editor = "/bin/true"
set crypt_use_gpgme = no
set imap_keepalive = 300
set mark_old = no
set timeout = 1
""")
    t = Tmux(tmp_path, f"neomutt -n -F {rc}", dict(env_with_home(home), TERM="xterm-256color"))
    try:
        index = t.wait("lunch on friday", "quarterly report", "meeting notes", "Msgs:3", what="the INBOX listed")
        assert "carol@example.test" in index and "erin@example.test" in index
        t.keys("2", "Enter")           # jump to message 2 ...
        t.keys("Enter")                # ... and read it
        t.wait("The numbers are in: all green.", "Regards, Dave", "Subject: quarterly report",
               what="message 2 shown")
        t.keys("q")                    # back to the index
        t.wait("Msgs:3")
        t.keys("c")                    # another folder
        t.wait("Open mailbox")
        t.keys("C-u", "=Work", "Enter")
        t.wait("archived thing", "Msgs:1", what="Work listed")
        t.keys("q")                    # quit: the INBOX changes were synced when it was left
        wait_for(lambda: not t.alive(), 15, what="neomutt to quit")
    finally:
        t.kill()
    assert folder_view(srv, "INBOX") == {"lunch on friday": {"\\Seen"}, "quarterly report": {"\\Seen"},
                                         "meeting notes": set()}
