"""The POP3 reference: Debian's Dovecot (dovecot-pop3d), started by the bench in the
foreground (-F) with its own config on a free port over a copy of the same Maildir, and
always stopped (never left running). Also the poplib client both servers are timed with."""
import poplib
import shutil
import subprocess
import time
from pathlib import Path

from .util import free_port, log, wait_for
from procs import stop_process  # tests/integration, on the path through util

DOVECOT = "/usr/sbin/dovecot"

CONF = """\
protocols = pop3
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = postmesh-bench-{port}
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{d}/home/%n/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home/%n
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    name = "dovecot"

    def __init__(self, root: Path, user: str, password: str, maildir: Path):
        self.dir = root
        root.mkdir(parents=True)
        root.chmod(0o755)
        for sub in ("run", "state", "home"):
            (root / sub).mkdir()
        self.port = free_port()
        self.pop3_port = self.port
        local = user.split("@")[0]
        home = root / "home" / user.split("@")[0]
        shutil.copytree(maildir, home / "Maildir")
        shutil.chown(home, "nobody", "nogroup")
        subprocess.run(["chown", "-R", "nobody:nogroup", str(home)], check=True, timeout=60)
        (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}\n{local}:{{PLAIN}}{password}\n")
        self.conf = root / "dovecot.conf"
        self.conf.write_text(CONF.format(d=root, port=self.port))
        self.proc = None

    @staticmethod
    def version(_=None):
        r = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.split()[0] if r.stdout else "?"

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "dovecot.stderr", "wb"))

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: " + (self.dir / "dovecot.stderr").read_text(errors="replace")
                                   + (self.dir / "dovecot.log").read_text(errors="replace")[-1500:]
                                   if (self.dir / "dovecot.log").exists() else "")
            try:
                p = poplib.POP3("127.0.0.1", self.port, timeout=2)
                p.quit()
                return True
            except OSError:
                return False
        wait_for(up, 30, "dovecot pop3 to listen", interval=0.1)

    def stop(self):
        if self.proc and stop_process(self.proc, 15):
            log("dovecot stopped")
        self.proc = None


def retrieve_all(port, user, password, expect, timeout=120):
    """LIST + RETR of every message; returns (seconds, messages retrieved, bytes)."""
    start = time.monotonic()
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        p.user(user)
        p.pass_(password)
        _, listing, _ = p.list()
        total = 0
        n = 0
        for entry in listing:
            num = int(entry.split()[0])
            _, lines, octets = p.retr(num)
            total += octets
            n += 1
            if time.monotonic() - start > timeout:
                break
        p.quit()
    finally:
        try:
            p.close()
        except OSError:
            pass
    return time.monotonic() - start, n, total
