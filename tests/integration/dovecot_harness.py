"""A throwaway real Dovecot (Debian's dovecot-imapd) over a Postmesh mail store, for tests that
check IMAP expectations against a reference server and for the Dovecot comparison/benchmark.

    from dovecot_harness import Dovecot
    dv = Dovecot(workdir, mail_root, users_file, cert=None, key=None, uid=None, gid=None,
                 index_dir=None).start()
    imaplib.IMAP4(dv.host, dv.port("imap"))       # and dv.port("imaps") (TLS only with cert/key)
    dv.chown(path)     # give a file or tree the test wrote the mail user (uid:gid) Dovecot runs as
    dv.log()           # Dovecot's log text
    dv.stop()          # also at interpreter exit; safe to call twice

  - workdir: a directory of the test's (its tmp_path / "dovecot"): config and log; the
    runtime dir (base_dir, short for socket paths) is a fresh /tmp/pmdv-* removed by stop().
  - mail_root: Postmesh's store (state_dir/mail). A user's INBOX is
    <mail_root>/<domain>/<local>/Maildir (lower case), folders Maildir++ (".Sent", ".a.b"),
    hierarchy separator "/", as Postmesh's imapd. Sent Drafts Trash Junk Archive are created
    and subscribed at first login with their SPECIAL-USE flags, as Postmesh's imapd does.
    Dovecot keeps dovecot-uidlist (and subscriptions) in the Maildir; its index files go to
    index_dir if given, else into memory (nothing else is added to the store). APPEND stores
    CRLF lines (mail_save_crlf), as Postmesh does.
  - users_file: Postmesh's users file itself (address:{SCHEME}hash lines; Dovecot reads
    this passwd-file format as is, and sees changes).
  - uid/gid: who the mail processes run as. As root the default is postmesh-delivery:vmail
    (the owner delivery gives the store); without root, the current user (then Dovecot's
    internal and login users are the current user too).
  - Plaintext LOGIN/AUTHENTICATE is allowed on every connection; no failure delay or penalty.
  - Never touches the system instance: its own config (-c), ports, base_dir and state.
"""
import atexit
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from conftest import free_port, wait_for

DOVECOT = "/usr/sbin/dovecot"
SPECIAL_USE = {"Sent": r"\Sent", "Drafts": r"\Drafts", "Trash": r"\Trash", "Junk": r"\Junk",
               "Archive": r"\Archive"}


def available() -> bool:
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/imap")


class Dovecot:
    host = "127.0.0.1"

    def __init__(self, workdir, mail_root, users_file, cert=None, key=None, uid=None, gid=None,
                 index_dir=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mail_root = Path(mail_root)
        self.users_file = Path(users_file)
        self.cert, self.key = cert, key
        self.root = os.geteuid() == 0
        if uid is None:
            uid = pwd.getpwnam("postmesh-delivery").pw_uid if self.root else os.getuid()
        if gid is None:
            gid = grp.getgrnam("vmail").gr_gid if self.root else os.getgid()
        self.uid, self.gid = uid, gid
        self.index_dir = Path(index_dir) if index_dir else None
        self.ports = {"imap": free_port(), "imaps": free_port()}
        self.conf = self.workdir / "dovecot.conf"
        self.log_path = self.workdir / "dovecot.log"
        self.base_dir = None
        self.proc = None

    def port(self, mode="imap"):
        return self.ports[mode]

    # ------------------------------------------------------------------ config
    def _config(self) -> str:
        me = pwd.getpwuid(os.getuid()).pw_name
        internal, login = ("dovecot", "dovenull") if self.root else (me, me)
        index = f":INDEX={self.index_dir}/%Ld/%Ln" if self.index_dir else ":INDEX=MEMORY"
        tls = "ssl = no\n"
        imaps = ""
        if self.cert and self.key:
            tls = f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.key}\n"
            imaps = f"  inet_listener imaps {{\n    address = {self.host}\n    port = {self.ports['imaps']}\n" \
                    f"    ssl = yes\n  }}\n"
        mailboxes = "".join(f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
                            for name, flag in SPECIAL_USE.items())
        auth_user = "root" if self.root else me
        return f"""\
instance_name = pmdv-{self.ports['imap']}
base_dir = {self.base_dir}
state_dir = {self.base_dir}/state
protocols = imap
listen = {self.host}
log_path = {self.log_path}
default_internal_user = {internal}
default_login_user = {login}
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
auth_failure_delay = 0
auth_cache_size = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{self.mail_root}/%Ld/%Ln/Maildir{index}
mail_max_userip_connections = 1000
maildir_very_dirty_syncs = no
mail_save_crlf = yes
passdb {{
  driver = passwd-file
  args = {self.users_file}
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.mail_root}/%Ld/%Ln allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{mailboxes}}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.ports['imap']}
  }}
{imaps}}}
service auth {{
  user = {auth_user}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""

    # ------------------------------------------------------------------ processes
    def start(self, timeout=15.0):
        self.base_dir = tempfile.mkdtemp(prefix="pmdv-", dir="/tmp")
        os.chmod(self.base_dir, 0o755)
        if self.index_dir:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self.chown(self.index_dir)
        self._traversable()
        self.conf.write_text(self._config())
        logf = open(self.workdir / "dovecot.stderr", "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], stdout=logf,
                                     stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        logf.close()
        atexit.register(self.stop)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError(f"dovecot exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            import socket
            try:
                with socket.create_connection((self.host, self.ports["imap"]), timeout=1) as s:
                    return s.recv(200).startswith(b"* OK")
            except OSError:
                return False
        wait_for(listening, timeout, what="dovecot to listen")
        return self

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(0.3)
            except subprocess.TimeoutExpired:
                # its master waits a second for children; a throwaway instance needs no grace
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # children left in its process group
            except ProcessLookupError:
                pass
        if self.base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def _traversable(self):
        """pytest's temporary directories are 0700 (under xdist one level deeper than
        conftest.traversable reaches): let the mail user pass through them to the store."""
        if not self.root:
            return
        for d in self.mail_root.parents:
            if str(d).startswith("/tmp/") and d.owner() == "root":
                d.chmod(d.stat().st_mode | 0o011)

    def chown(self, path):
        """path (a file, or a tree) becomes uid:gid, group-writable, as delivery leaves it."""
        if not self.root:
            return
        path = Path(path)
        todo = [path] + (list(path.rglob("*")) if path.is_dir() else [])
        for p in todo:
            if p.is_symlink():
                continue
            os.chown(p, self.uid, self.gid)
            os.chmod(p, 0o770 if p.is_dir() else 0o660)

    def log(self) -> str:
        out = ""
        for p in (self.log_path, self.workdir / "dovecot.stderr"):
            if p.exists():
                out += p.read_text(errors="replace")
        return out
