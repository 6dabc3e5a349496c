"""DNSSEC-signed test zones served by a real authoritative server: keys made by ldns-keygen,
the zone signed by ldns-signzone, served by Debian's nsd on 127.0.0.1:<free port> (UDP and
TCP), in the foreground with its own config in the test's directory (never the system nsd).

    z = SignedZone(tmp_path / "dns", origin="sec.test")
    z.add(["mx.sec.test. 300 IN A 127.0.0.2", "sec.test. 300 IN MX 10 mx.sec.test."])
    z.add_unsigned_child("insec.sec.test", ["insec.sec.test. 300 IN MX 10 mx.insec.sec.test."])
    z.tamper("bad.sec.test", "A")        # that RRset's RRSIG no longer verifies: bogus
    z.start()                            # z.nameserver = "127.0.0.1:port", z.anchor_file
    z.update(["new.sec.test. 300 IN A 127.0.0.9"])   # re-signed, nsd reloaded, waited for
    z.stop()

Names in the lines are absolute (a trailing dot is added when missing). The zone gets its
SOA, NS ns.<origin> and ns.<origin> A 127.0.0.1 itself. The fixture `signed_zone` is a
factory: signed_zone(origin="sec.test", **options) -> an unstarted SignedZone (add records,
then start()); every zone it made is stopped at teardown.
"""
import base64
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from conftest import wait_for
from procs import stop_process
from remote_peers import free_dual_port

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
KEYGEN = shutil.which("ldns-keygen") or "/usr/bin/ldns-keygen"
SIGNZONE = shutil.which("ldns-signzone") or "/usr/bin/ldns-signzone"


def _abs(name):
    name = name.strip()
    return name if name.endswith(".") else name + "."


def _fix_owner(line):
    """The owner of a zone-file line made absolute (the tests write names with or without
    the trailing dot; a relative owner would silently get the zone's origin appended)."""
    parts = line.split(None, 1)
    if len(parts) < 2 or line.lstrip().startswith((";", "$")):
        return line.strip()
    return f"{_abs(parts[0])} {parts[1].strip()}"


class _Zone:
    """One zone file: its own records, optionally signed with its own KSK+ZSK."""

    def __init__(self, directory: Path, origin, lines, signed, ttl, nsec3):
        self.origin = _abs(origin)
        self.name = self.origin.rstrip(".")
        self.dir = directory
        self.records = [_fix_owner(x) for x in lines if _fix_owner(x)]
        self.signed = signed
        self.ttl = ttl
        self.nsec3 = nsec3
        self.serial = 1
        self.tampered = set()          # (owner, TYPE) whose RRSIGs get corrupted after signing
        self.children = []             # delegations: (child _Zone)
        self.ksk = self.zsk = None
        if signed:
            self.ksk = self._keygen("-k")
            # A ZSK whose tag is the KSK's minus one is the KSK's twin for ldns-signzone (the
            # tag of the KSK without its SEP bit): it leaves the KSK's DNSKEY out. Draw again.
            for _ in range(10):
                self.zsk = self._keygen()
                if abs(self._tag(self.ksk) - self._tag(self.zsk)) > 1:
                    break

    @staticmethod
    def _tag(base):
        return int(base.rsplit("+", 1)[1])

    def _keygen(self, *flags):
        out = subprocess.run([KEYGEN, "-a", "ECDSAP256SHA256", *flags, self.name], cwd=self.dir,
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout.strip()      # the key's base name, Kname.+013+tag

    @property
    def file(self):
        return self.dir / f"{self.name}.zone"

    @property
    def served_file(self):
        return self.dir / (f"{self.name}.zone.signed" if self.signed else f"{self.name}.zone")

    def ds(self):
        return (self.dir / f"{self.ksk}.ds").read_text().strip()

    def dnskey(self):
        return (self.dir / f"{self.ksk}.key").read_text().strip()

    def write(self):
        """Writes the zone file (and signs it, and corrupts the tampered RRSIGs)."""
        o, t = self.origin, self.ttl
        head = [f"{o} {t} IN SOA ns.{o} hostmaster.{o} {self.serial} 3600 600 86400 {t}",
                f"{o} {t} IN NS ns.{o}", f"ns.{o} {t} IN A 127.0.0.1"]
        for child in self.children:
            head += [f"{child.origin} {t} IN NS ns.{child.origin}",
                     f"ns.{child.origin} {t} IN A 127.0.0.1"]
            if child.signed:
                head.append(child.ds())
        self.file.write_text("\n".join(head + self.records) + "\n")
        if not self.signed:
            return
        args = [SIGNZONE, "-o", self.origin, "-f", str(self.served_file)]
        if self.nsec3:
            args += ["-n", "-t", "0"]
        # inception an hour back: the resolver's clock and ours are the same, but skew-proof
        args += ["-i", str(int(time.time()) - 3600), str(self.file),
                 str(self.dir / self.zsk), str(self.dir / self.ksk)]
        subprocess.run(args, cwd=self.dir, capture_output=True, text=True, check=True, timeout=30)
        signed = self.served_file.read_text()
        assert any(f.split()[3:5] == ["DNSKEY", "257"] for f in signed.splitlines() if len(f.split()) > 4), \
            f"ldns-signzone left the KSK out of {self.served_file}"
        if self.tampered:
            self._corrupt()

    def _corrupt(self):
        """Flips bits in the signature of every RRSIG covering a tampered (owner, type): the
        records stay as they were, the signature no longer verifies (bogus, not missing)."""
        out, hit = [], set()
        for line in self.served_file.read_text().splitlines():
            f = line.split()
            if len(f) > 5 and f[3] == "RRSIG" and (f[0].lower(), f[4].upper()) in self.tampered:
                sig = bytearray(base64.b64decode("".join(f[12:])))
                sig[len(sig) // 2] ^= 0x55
                line = " ".join(f[:12] + [base64.b64encode(bytes(sig)).decode()])
                hit.add((f[0].lower(), f[4].upper()))
            out.append(line)
        missing = self.tampered - hit
        assert not missing, f"tamper: no RRSIG for {sorted(missing)} in {self.name}"
        self.served_file.write_text("\n".join(out) + "\n")


class SignedZone:
    """A signed zone (origin) and the zones delegated from it, all served by one nsd."""

    def __init__(self, root: Path, origin="sec.test", ttl=300, nsec3=False):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = None
        self.proc = None
        self.zone = _Zone(self.root, origin, [], True, ttl, nsec3)
        self.extra_zones = []          # top-level zones (no anchor over them unless signed)
        self.anchor_file = self.root / "trust-anchor.ds"

    # records ---------------------------------------------------------------------------
    def add(self, lines):
        self.zone.records += [_fix_owner(x) for x in lines if _fix_owner(x)]

    def add_unsigned_child(self, child, lines=()):
        """A delegation without DS (provably insecure) from the zone, served by the same nsd."""
        return self._child(child, lines, signed=False)

    def add_signed_child(self, child, lines=()):
        """A delegation with DS: the chain of trust goes on into the child."""
        return self._child(child, lines, signed=True)

    def _child(self, child, lines, signed):
        z = _Zone(self.root, child, lines, signed, self.zone.ttl, self.zone.nsec3)
        assert z.origin.endswith("." + self.zone.origin), f"{child} is not under {self.zone.origin}"
        self.zone.children.append(z)
        return z

    def add_zone(self, origin, lines=(), signed=False):
        """Another top-level zone in the same nsd; unsigned = no trust anchor covers it (the
        resolver calls it insecure), signed = its DS goes into anchor_file too."""
        z = _Zone(self.root, origin, lines, signed, self.zone.ttl, self.zone.nsec3)
        self.extra_zones.append(z)
        return z

    def tamper(self, name, rrtype):
        """Corrupts the RRSIG(s) over name/rrtype (in whichever served zone holds it) at every
        signing from now on. Call before start() or follow with update()."""
        owner = _abs(name).lower()
        zone = self._zone_of(owner)
        assert zone.signed, f"{name} is in an unsigned zone"
        zone.tampered.add((owner, rrtype.upper()))

    def untamper(self):
        for z in self._zones():
            z.tampered.clear()

    def _zones(self):
        zs = [self.zone, *self.extra_zones]
        return [*zs, *(c for z in zs for c in z.children)]

    def _zone_of(self, owner):
        best = None
        for z in self._zones():
            if (owner == z.origin or owner.endswith("." + z.origin)) and \
                    (best is None or len(z.origin) > len(best.origin)):
                best = z
        assert best is not None, f"{owner} is in no zone of this server"
        return best

    # serving ---------------------------------------------------------------------------
    @property
    def nameserver(self):
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self):
        return self.zone.name

    def ds(self):
        return self.zone.ds()

    def dnskey(self):
        return self.zone.dnskey()

    def _write_all(self):
        for z in self._zones():
            z.write()
        anchors = [z.ds() for z in (self.zone, *self.extra_zones) if z.signed]
        self.anchor_file.write_text("\n".join(anchors) + "\n")

    def _write_conf(self):
        r = self.root
        zones = "".join(f"zone:\n  name: \"{z.origin}\"\n  zonefile: \"{z.served_file}\"\n"
                        for z in self._zones())
        self.conf = r / "nsd.conf"
        self.conf.write_text(f"""server:
  ip-address: 127.0.0.1@{self.port}
  port: {self.port}
  do-ip6: no
  server-count: 1
  reuseport: no
  username: ""
  chroot: ""
  zonesdir: "{r}"
  database: ""
  zonelistfile: "{r}/zone.list"
  xfrdfile: "{r}/xfrd.state"
  xfrdir: "{r}"
  pidfile: "{r}/nsd.pid"
  logfile: "{r}/nsd.log"
  verbosity: 1
  hide-version: yes
  refuse-any: yes
remote-control:
  control-enable: yes
  control-interface: "{r}/nsd.ctl"
{zones}""")

    def start(self):
        assert self.proc is None, "already started"
        self._write_all()
        self.port = free_dual_port()
        self._write_conf()
        self.out = open(self.root / "nsd.out", "wb")
        # Its own process group: nsd forks xfrd and its servers, which outlive the first
        # process for a moment; stop() waits for the whole group.
        self.proc = subprocess.Popen([NSD, "-d", "-c", str(self.conf)], stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def _soa_serials(self):
        """{zone: serial} as nsd answers now (missing zones absent)."""
        found = {}
        for z in self._zones():
            q = dns.message.make_query(z.origin, "SOA")
            q.flags &= ~dns.flags.RD
            try:
                r = dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.3)
            except (OSError, dns.exception.Timeout):
                continue
            for rrset in r.answer:
                if rrset.rdtype == dns.rdatatype.SOA:
                    found[z.origin] = rrset[0].serial
        return found

    def _wait_serving(self, timeout=10):
        want = {z.origin: z.serial for z in self._zones()}

        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"nsd exited: {self.log_text()}")
            return self._soa_serials() == want
        wait_for(serving, timeout, what=f"nsd serving {want}")

    def update(self, lines=(), replace=False):
        """Adds lines (or, with replace, makes them the zone's whole record set), re-signs
        every zone with a new serial, reloads nsd and waits until it serves the new serial."""
        if replace:
            self.zone.records = []
        self.add(lines)
        for z in self._zones():
            z.serial += 1
        self._write_all()
        self.reload()

    def reload(self):
        subprocess.run(["nsd-control", "-c", str(self.conf), "reload"], capture_output=True,
                       check=True, timeout=10)
        self._wait_serving()

    def log_text(self):
        parts = []
        for name in ("nsd.out", "nsd.log"):
            p = self.root / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def _group_alive(self, pgid):
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def stop(self):
        """Stops nsd and every process it forked (its process group), within seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        stop_process(self.proc)
        if self._group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self._group_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        self.proc = None
        self.out.close()


@pytest.fixture
def signed_zone(tmp_path):
    """Factory: signed_zone(origin="sec.test", ttl=300, nsec3=False) -> an unstarted
    SignedZone in its own directory under tmp_path; all of them stopped at teardown."""
    made = []

    def make(origin="sec.test", **options):
        z = SignedZone(tmp_path / f"dns-{len(made)}-{origin}", origin=origin, **options)
        made.append(z)
        return z
    yield make
    for z in made:
        z.stop()
