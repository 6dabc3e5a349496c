"""Helpers for the imapd tests: one fixture, `imap`, that gives a running IMAP server over a
Postmesh store, the users, a way to get mail into a mailbox, and the mailbox paths; FETCH,
SEARCH and IDLE helpers over imaplib (the raw client and the parser are in imap_wire.py).

The server is postmesh-imapd; IMAP_SERVERS=dovecot (or "dovecot,postmesh") runs the same tests
against a real Dovecot on the same store (dovecot_harness.py), which is how their expectations
were checked. A test of something only Postmesh promises asks `target.postmesh_only()`.

Mail gets in two ways: target.deliver() sends it through the real path (smtplib -> smtpd ->
queue -> delivery, started on first use); target.put() writes a Maildir file the way delivery
does (tmp/, then rename into new/), for bulk content, dates and folders."""
import imaplib
import itertools
import os
import pwd
import grp
import re
import smtplib
import socket
import time
from pathlib import Path

import pytest

from conftest import wait_for
# the wire helpers, imported from here by the tests
from imap_wire import Atom, RawIMAP, fetch_items, imaplib_join, parse, tagged, untagged  # noqa: F401
from pop3_helpers import client_tls_context, make_tls_pair

ALICE, BOB, SENDER = "alice@example.test", "bob@example.test", "sender@remote.test"
PASSWORDS = {ALICE: "secret", BOB: "hunter2"}
SERVERS = [s for s in os.environ.get("IMAP_SERVERS", "postmesh").split(",") if s]
SYSTEM_FLAGS = {r"\Answered", r"\Flagged", r"\Deleted", r"\Seen", r"\Draft"}
_names = itertools.count(1)


def make_message(subject="hello", body="body line\r\n", frm="Sender <sender@remote.test>", to=ALICE,
                 extra=""):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}.{next(_names)}@remote.test>\r\n{extra}\r\n{body}").encode()


class Target:
    """One IMAP server under test (kind "postmesh" or "dovecot") over pm's store."""

    def __init__(self, pm, kind):
        self.pm, self.kind = pm, kind
        self.mail_root = pm.state / "mail"
        self.dovecot = None
        self.mail_started = False
        self.uid = pwd.getpwnam("postmesh-delivery").pw_uid if os.geteuid() == 0 else os.getuid()
        self.gid = grp.getgrnam("vmail").gr_gid if os.geteuid() == 0 else os.getgid()

    # ------------------------------------------------------------------ servers
    def start(self, **imapd):
        with open(self.pm.root / "users", "a") as f:
            f.write(_users_lines())
        cert, key = _tls_pair()
        self.cert = cert
        settings = {"auth_delay": 0}
        settings.update(imapd)
        self.pm.configure(tls={"certificate": str(cert), "key": str(key)}, imapd=settings,
                          queue={"job_lease": 5}, pop3d={"auth_delay": 0})
        self.mail_root.mkdir(parents=True, exist_ok=True)
        if self.kind == "postmesh":
            self.pm.start("imapd")
        else:
            from dovecot_harness import Dovecot
            os.chown(self.mail_root, 0, self.gid) if os.geteuid() == 0 else None
            self.mail_root.chmod(0o770)
            self.dovecot = Dovecot(self.pm.root / "dovecot", self.mail_root, self.pm.root / "users",
                                   cert=cert, key=key, uid=self.uid, gid=self.gid).start()
        return self

    def stop(self):
        if self.dovecot:
            self.dovecot.stop()
        else:
            self.pm.stop("imapd")

    def restart(self):
        if self.dovecot:
            self.dovecot.stop()
            self.dovecot.start()
        else:
            self.pm.stop("imapd")
            self.pm.start("imapd")

    def postmesh_only(self):
        if self.kind != "postmesh":
            pytest.skip("a Postmesh decision, not an RFC one")

    @property
    def host(self):
        return "127.0.0.1"

    def port(self, mode="imap"):
        return self.dovecot.port(mode) if self.dovecot else self.pm.port(mode)

    def log(self):
        return self.dovecot.log() if self.dovecot else self.pm.log("imapd")

    # ------------------------------------------------------------------ clients
    def client(self, mode="imap", timeout=15):
        if mode == "imaps":
            return imaplib.IMAP4_SSL(self.host, self.port("imaps"), ssl_context=client_tls_context(),
                                     timeout=timeout)
        return imaplib.IMAP4(self.host, self.port("imap"), timeout=timeout)

    def login(self, user=ALICE, password=None, select=None, readonly=False, mode="imap"):
        c = self.client(mode)
        typ, _ = c.login(user, password or PASSWORDS[user])
        assert typ == "OK"
        if select:
            typ, data = c.select(select, readonly=readonly)
            assert typ == "OK", data
        return c

    def raw(self, mode="imap", login=None):
        r = RawIMAP(self.host, self.port(mode), tls=mode == "imaps")
        assert r.line().startswith(b"* OK")
        if login:
            reply = r.cmd(f"LOGIN {login} {PASSWORDS[login]}")[-1]
            assert b" OK" in reply, reply
        return r

    # ------------------------------------------------------------------ mail
    def start_mail(self, pop3=False):
        services = [s for s in ("queue", "delivery", "smtpd") if s not in self.pm.procs]
        if pop3 and "pop3d" not in self.pm.procs:
            services.append("pop3d")
        if services:
            self.pm.start(*services, timeout=20)

    def deliver(self, msg: bytes, rcpt=ALICE, timeout=15):
        """msg through SMTP into rcpt's INBOX; returns the new file's path once it is there."""
        self.start_mail()
        before = set(self.files(rcpt))
        send(self.pm, [rcpt], msg)

        def arrived():
            new = set(self.files(rcpt)) - before
            return new.pop() if new else None
        return wait_for(arrived, timeout, interval=0.01, what=f"delivery to {rcpt}")

    def maildir(self, address=ALICE, folder=None) -> Path:
        local, domain = address.lower().rsplit("@", 1)
        md = self.mail_root / domain / local / "Maildir"
        if folder and folder.upper() != "INBOX":
            md = md / ("." + folder.replace("/", "."))
        return md

    def make_folder(self, address=ALICE, folder=None) -> Path:
        md = self.maildir(address, folder)
        for d in (self.maildir(address).parent.parent, self.maildir(address).parent, self.maildir(address),
                  md, md / "tmp", md / "new", md / "cur"):
            if not d.exists():
                d.mkdir()
                self._own(d)
        if folder and folder.upper() != "INBOX" and not (md / "maildirfolder").exists():
            (md / "maildirfolder").touch()
            self._own(md / "maildirfolder")
        return md

    def put(self, content: bytes, address=ALICE, folder=None, name=None, mtime=None, flags=None) -> Path:
        """A message file as delivery writes it: tmp/, then renamed into new/ (or into cur/
        with ':2,<flags>' when flags is given, as a reader leaves it)."""
        md = self.make_folder(address, folder)
        name = name or f"{int(time.time())}.M{next(_names)}P{os.getpid()}.mx.example.test"
        tmp = md / "tmp" / name
        tmp.write_bytes(content)
        self._own(tmp)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        dst = md / "new" / name if flags is None else md / "cur" / f"{name}:2,{''.join(sorted(flags))}"
        os.rename(tmp, dst)
        return dst

    def files(self, address=ALICE, folder=None):
        md = self.maildir(address, folder)
        return sorted(p for d in ("new", "cur") if (md / d).is_dir() for p in (md / d).iterdir()
                      if not p.name.startswith("."))

    def _own(self, path):
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)
            path.chmod(0o770 if path.is_dir() else 0o660)


_cache = {}


def _users_lines():
    """The users file lines for PASSWORDS, hashed once per test process (openssl is slow)."""
    if "users" not in _cache:
        from pop3_helpers import hash_password
        _cache["users"] = "".join(f"{u}:{hash_password(p)}\n" for u, p in PASSWORDS.items())
    return _cache["users"]


def _tls_pair():
    """One certificate and key per test process, in a directory of its own."""
    if "tls" not in _cache:
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="pm-imap-tls-"))
        _cache["tls"] = make_tls_pair(d)
        import atexit
        import shutil
        atexit.register(shutil.rmtree, d, True)
    return _cache["tls"]


def start_imapd(pm, **imapd):
    """imapd alone on its plain port (no TLS pair needed), a 1 s login delay, the settings
    given on top; started and waited for."""
    settings = {"listen": [{"address": f"127.0.0.1:{pm.ports['imap']}", "mode": "imap"}],
                "auth_delay": 1, "drain_timeout": 2}
    settings.update(imapd)
    pm.configure(imapd=settings)
    pm.start("imapd")
    return pm


def send(pm, rcpts, msg: bytes, sender=SENDER):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.remote.test")
        opts = ["BODY=8BITMIME"] if "8bitmime" in s.esmtp_features else []
        s.sendmail(sender, rcpts, msg, mail_options=opts)


@pytest.fixture(params=SERVERS)
def imap(pm, request):
    """A started IMAP server (request.param) with ALICE and BOB; tests put mail in first with
    target.put() before they log in, or deliver() at any time."""
    target = Target(pm, request.param).start()
    yield target
    target.stop()


@pytest.fixture(scope="module", params=SERVERS)
def shared_imap(tmp_path_factory, request):
    """As imap, one per module: for tests that only read a mailbox they set up once."""
    from conftest import Postmesh, traversable
    pm = Postmesh(traversable(tmp_path_factory.mktemp("imap")))
    target = Target(pm, request.param).start()
    yield target
    target.stop()
    pm.stop_all()


def fetch(c, msgset, items, uid=False):
    """FETCH (or UID FETCH) through imaplib -> {seq: {ITEM: value}}."""
    typ, data = c.uid("FETCH", msgset, items) if uid else c.fetch(msgset, items)
    assert typ == "OK", data
    return fetch_items(imaplib_join(data))


def command(c, name, *args):
    """(status, data) of any command through imaplib, BAD included (imaplib raises on it)."""
    try:
        return c._simple_command(name, *args)
    except c.error as e:
        return "BAD", [str(e).encode()]


def search(c, *criteria, uid=False):
    typ, data = c.uid("SEARCH", *criteria) if uid else c.search(None, *criteria)
    assert typ == "OK", data
    return [int(x) for x in b" ".join(d for d in data if d).split()]


def flags_of(c, msgset="1:*", uid=False):
    return {k: set(v["FLAGS"]) for k, v in fetch(c, msgset, "(FLAGS)", uid=uid).items()}


def idle_start(c):
    """IDLE on imaplib connection c: returns the tag once the server said '+'."""
    tag = c._new_tag().decode()
    c.send(f"{tag} IDLE\r\n".encode())
    line = c.readline()
    assert line.startswith(b"+"), line
    return tag


def idle_wait(c, pattern: bytes, timeout=5.0):
    """The first untagged line during IDLE matching pattern (a regex), or AssertionError."""
    deadline = time.monotonic() + timeout
    sock = c.sock
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} during IDLE within {timeout}s")
        sock.settimeout(left)
        try:
            line = c.readline()
        except (socket.timeout, TimeoutError):
            # imaplib's file cannot be read after a timeout: this connection is done
            raise AssertionError(f"no {pattern!r} during IDLE within {timeout}s") from None
        line = line.rstrip(b"\r\n")
        if re.search(pattern, line):
            sock.settimeout(15)
            return line


def idle_done(c, tag):
    c.send(b"DONE\r\n")
    c.sock.settimeout(15)
    while True:
        line = c.readline()
        if line.startswith(tag.encode() + b" "):
            return line
