"""Postmesh under test: every service `postmesh run` would start (`postmesh services`, in its
start order) from POSTMESH_BIN with the integration tests' harness (tests/integration/
conftest.py), in a state dir of its own. Local mail for example.test goes to Maildirs;
relay.test has its MX on 127.0.0.2 through a loopback dnsmasq, where the bench's sink listens
on mta.remote_port. d0..d<N-1>.signed.test (relay_domains) each have an MX host of their own
on 127.0.0.2 in a DNSSEC-signed zone served by nsd (tests/integration/dnssec_zone.py), which
the resolver is switched to for those figures (use_signed_zone): without validation, and with
the zone's key as its trust anchor, so the two differ in validation only."""
import grp
import os
import pwd
import shutil
from pathlib import Path

import conftest
import services_list
from pop3_helpers import add_user, make_tls_pair
from dnssec_zone import SignedZone
from remote_peers import Dnsmasq

from .figures import DOMAINS_ZONE
from .util import descendants, log, pss_kb, rss_kb


class PostmeshRig:
    name = "postmesh"

    def __init__(self, root: Path, bin_dir: Path, sink_port: int, max_sessions: int, map_size_mb: int,
                 relay_domains: int):
        conftest.BIN = bin_dir
        self.services = services_list.supervised()  # asked of bin_dir's postmesh: what it was built with
        root.mkdir(parents=True)
        root.chmod(0o755)
        self.root = root
        self.pm = conftest.Postmesh(root)
        domains = [f"d{k}.{DOMAINS_ZONE}" for k in range(relay_domains)]
        self.dns = Dnsmasq(root, ["--mx-host=relay.test,mx.relay.test,10",
                                  "--host-record=mx.relay.test,127.0.0.2"])
        self.zone = SignedZone(root / "signed-zone", origin=DOMAINS_ZONE)
        self.zone.add([line for d in domains for line in (f"{d}. 300 IN MX 10 mx.{d}.",
                                                          f"mx.{d}. 300 IN A 127.0.0.2")])
        self.zone.start()
        cert, key = make_tls_pair(root)
        self.pm.configure(
            hostname="bench.postmesh.test", debug=False, trusted_networks=["127.0.0.0/8"],
            tls={"certificate": str(cert), "key": str(key)},
            queue={"map_size_mb": map_size_mb, "retry_min": 60, "retry_max": 300, "job_lease": 60},
            resolver=self._resolver(signed_zone=False, validate=False),
            mta={"remote_port": sink_port, "connect_timeout": 5, "command_timeout": 30},
            smtpd={"max_connections": max_sessions + 500, "max_connections_per_ip": max_sessions + 500,
                   "submit_timeout": 30, "drain_timeout": 1},
            pop3d={"auth_delay": 0, "drain_timeout": 1, "max_connections_per_ip": 100})
        self.port = self.pm.port("smtp")
        self.pop3_port = self.pm.port("pop3")
        self.started = False

    def _resolver(self, signed_zone, validate):
        upstream = self.zone.nameserver if signed_zone else self.dns.nameserver
        anchors = [str(self.zone.anchor_file)] if validate else []
        return {"nameservers": [upstream], "timeout": 2, "dnssec": validate, "trust_anchors": anchors}

    def use_signed_zone(self, validate):
        """The resolver restarted on nsd's signed zone, validating it or not: either way
        with an empty cache, so every domain is looked up again."""
        self._restart_resolver(self._resolver(signed_zone=True, validate=validate))

    def use_dnsmasq(self):
        self._restart_resolver(self._resolver(signed_zone=False, validate=False))

    def _restart_resolver(self, settings):
        self.pm.configure(resolver=settings)
        self.pm.stop("resolver")
        self.pm.start("resolver", timeout=30)
        self.write_pids()

    def add_mailbox(self, address, password):
        add_user(self.pm, address, password)

    def maildir(self, address) -> Path:
        local, domain = address.lower().rsplit("@", 1)
        return self.pm.state / "mail" / domain / local / "Maildir"

    def start(self):
        self.pm.start(*self.services, timeout=30)
        self.started = True

    def restart_smtpd(self):
        """A fresh smtpd, so an idle-session figure is not the high-water mark of the last."""
        self.pm.stop("smtpd")
        self.pm.start("smtpd", timeout=30)
        self.write_pids()

    def write_pids(self, extra=()):
        """Our processes, for scripts/bench's trap should the bench be killed outright."""
        self.extra_pids = list(extra) or getattr(self, "extra_pids", [])
        pids = [p.pid for p in self.pm.procs.values()] + [self.dns.proc.pid] + self.extra_pids
        if self.zone.proc is not None:
            pids.append(self.zone.proc.pid)
        (self.root.parent / "pids").write_text("".join(f"{p}\n" for p in pids))

    def smtpd_rss_kb(self):
        """(RSS, PSS, processes) of smtpd and every process under it (privilege-separated
        helpers, workers)."""
        proc = self.pm.procs.get("smtpd")
        pids = descendants(proc.pid) if proc else []
        return sum(rss_kb(p) for p in pids), sum(pss_kb(p) for p in pids), len(pids)

    def check_alive(self):
        dead = [svc for svc, p in self.pm.procs.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"postmesh services died: {dead}\n" + self.pm.log(dead[0])[-2000:])

    def deferred_count(self):
        return sum(self.pm.log(svc).count("event=deferred") for svc in ("queue", "mta", "delivery"))

    def queue_empty(self):
        return not self.pm.queue_list()

    def log_text(self, svc):
        return self.pm.log(svc)

    def install_pop3_mailbox(self, address, source: Path):
        """A copy of the prepared Maildir, owned as delivery would leave it."""
        dest = self.maildir(address)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, dest)
        delivery = services_list.row("delivery")
        try:
            uid, gid = pwd.getpwnam(delivery["user"]).pw_uid, grp.getgrnam(delivery["group"]).gr_gid
        except KeyError:
            uid = gid = -1
        if uid >= 0:
            for base in (dest.parents[2], dest.parents[1], dest.parent):
                os.chown(base, uid, gid)
                base.chmod(0o2770)
            for dirpath, dirs, files in os.walk(dest):
                os.chown(dirpath, uid, gid)
                os.chmod(dirpath, 0o2770)
                for f in files:
                    os.chown(os.path.join(dirpath, f), uid, gid)
                    os.chmod(os.path.join(dirpath, f), 0o640)
        return dest

    def stop(self):
        try:
            self.pm.stop_all()
        finally:
            self.dns.stop()
            self.zone.stop()
        log("postmesh stopped")
