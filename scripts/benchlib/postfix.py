"""The Postfix instance Postmesh is compared with, set up for the same jobs: its own
config_directory, queue_directory and data_directory under the bench's temp dir,
inet_interfaces=127.0.0.1 on a free port, nothing chrooted, fsync as shipped. example.test
is a virtual(8) mailbox domain (the same mailbox, a Maildir), relay.test and the subdomains
of signed.test go through a transport map to the same sink as Postmesh's mta, STARTTLS with the same kind of certificate.
Always stopped by stop() (and again by scripts/bench's trap if this process is killed)."""
import pwd
import shutil
import socket
from pathlib import Path

from .util import children_named, free_port, log, pss_kb, rss_kb, run, wait_for

POSTFIX = "/usr/sbin/postfix"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
# Nothing leaves loopback, DNS included: no client-name look-ups (a PTR for 127.0.0.10 went
# to the system's resolver and stalled every loadgen -S connection), no MX look-ups.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
# Local mail: the same mailbox as Postmesh's, a Maildir written by virtual(8).
virtual_mailbox_domains = example.test
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = texthash:{d}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
# Relay: the same next hop as Postmesh's mta (the bench's sink).
transport_maps = texthash:{d}/etc/transport
default_transport = discard:bench
smtp_tls_security_level = none
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
# One smtpd process per session: room for the idle-session figure.
default_process_limit = {procs}
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
syslog_name = postfix-bench
"""


class PostfixRig:
    name = "postfix"

    def __init__(self, root: Path, sink_port: int, procs: int, cert: Path, key: Path):
        self.dir = root
        self.etc = root / "etc"
        for sub in ("etc", "queue", "data", "mail"):
            (root / sub).mkdir(parents=True)
        root.chmod(0o755)
        shutil.chown(root / "data", "postfix", "postfix")
        nobody = pwd.getpwnam("nobody")
        shutil.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
        self.port = free_port()
        (self.etc / "main.cf").write_text(MAIN_CF.format(d=root, uid=nobody.pw_uid, gid=nobody.pw_gid,
                                                         procs=procs, cert=cert, key=key))
        (self.etc / "transport").write_text(f"relay.test smtp:[127.0.0.2]:{sink_port}\n"
                                            f".signed.test smtp:[127.0.0.2]:{sink_port}\n")
        self.mailboxes = []
        lines = []
        for line in Path("/usr/share/postfix/master.cf.dist").read_text().splitlines():
            fields = line.split()
            if line[:1].isalpha() and len(fields) >= 8:
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"127.0.0.1:{self.port}"
                fields[4] = "n"
                line = "  ".join(fields)
            lines.append(line)
        (self.etc / "master.cf").write_text("\n".join(lines) + "\n")
        self.maillog = root / "maillog"
        self.running = False

    def add_mailbox(self, address, password=None):
        self.mailboxes.append(address)
        (self.etc / "vmailbox").write_text("".join(f"{a} {a.split('@')[1]}/{a.split('@')[0]}/Maildir/\n"
                                                   for a in self.mailboxes))

    def maildir(self, address) -> Path:
        local, domain = address.lower().rsplit("@", 1)
        return self.dir / "mail" / domain / local / "Maildir"

    def postfix(self, *args):
        return run([POSTFIX, "-c", self.etc, *args], timeout=120)

    def start(self):
        r = self.postfix("start")
        self.running = True
        if r.returncode != 0:
            tail = self.maillog.read_text(errors="replace")[-1500:] if self.maillog.exists() else ""
            raise RuntimeError(f"postfix start failed ({r.returncode}): {r.stderr}{tail}")
        wait_for(self.listening, 30, "postfix smtpd to listen")

    def listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(5)
                return s.recv(3) == b"220"
        except OSError:
            return False

    def master_pid(self):
        return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])

    def smtpd_pids(self):
        return children_named(self.master_pid(), "smtpd")

    def smtpd_rss_kb(self, exclude=()):
        pids = [p for p in self.smtpd_pids() if p not in exclude]
        return sum(rss_kb(p) for p in pids), sum(pss_kb(p) for p in pids), len(pids)

    def deferred_count(self):
        return self.maillog.read_text(errors="replace").count("status=deferred") if self.maillog.exists() else 0

    def queue_empty(self):
        r = run(["/usr/sbin/postqueue", "-c", self.etc, "-p"], timeout=30)
        return r.returncode == 0 and "Mail queue is empty" in r.stdout

    def check_alive(self):
        self.master_pid()

    def version(self):
        r = run(["/usr/sbin/postconf", "-c", self.etc, "-h", "mail_version"], timeout=30)
        return r.stdout.strip() or "?"

    def stop(self):
        if not self.running:
            return
        r = self.postfix("stop")
        if r.returncode != 0:
            self.postfix("abort")
        # master exits after its children: wait so nothing outlives the bench
        pidfile = self.dir / "queue" / "pid" / "master.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 20, "postfix master to exit")
        except (OSError, ValueError, RuntimeError):
            pass
        self.running = False
        log("postfix stopped")
