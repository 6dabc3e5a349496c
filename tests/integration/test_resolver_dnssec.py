"""postmesh-resolver validating DNSSEC (libunbound) against a zone the test signs and serves
with nsd on loopback (dnssec_zone.py), its key as the only trust anchor: secure, insecure
(unsigned delegation, a zone no anchor covers) and bogus (tampered signature) told apart for
MX, A, TXT, TLSA, NXDOMAIN and NODATA, asked over the bus as the mta asks."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rrset
import pytest

import remote_proto as rp
from conftest import BIN
from dnssec_zone import signed_zone  # noqa: F401  (the fixture)
from remote_peers import ResolverClient, free_dual_port

TLSA_HEX = "8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d"

SEC = [
    "sec.test. 300 IN MX 10 mx.sec.test.",
    "mx.sec.test. 300 IN A 127.0.0.2",
    "mx.sec.test. 300 IN AAAA ::1",
    "sec.test. 300 IN TXT \"v=spf1 -all\"",
    f"_25._tcp.mx.sec.test. 300 IN TLSA 3 1 1 {TLSA_HEX}",
    # bogus: the signatures of these RRsets are tampered with below
    "badmx.sec.test. 300 IN MX 10 mx.sec.test.",
    "badhost.sec.test. 300 IN MX 10 mx.badhost.sec.test.",
    "mx.badhost.sec.test. 300 IN A 127.0.0.3",
    "badtxt.sec.test. 300 IN TXT \"forged\"",
    # CNAMEs: one inside the signed zone, one leaving it for a zone no anchor covers
    "cin.sec.test. 300 IN CNAME mx.sec.test.",
    "cout.sec.test. 300 IN CNAME mx.plain.test.",
    "cnamemx.sec.test. 300 IN MX 10 cout.sec.test.",
    # a host whose A is good and whose AAAA is bogus, next to a good host
    "halfbad.sec.test. 300 IN MX 10 mx.halfbad.sec.test.",
    "halfbad.sec.test. 300 IN MX 20 mx.sec.test.",
    "mx.halfbad.sec.test. 300 IN A 127.0.0.8",
    "mx.halfbad.sec.test. 300 IN AAAA ::8",
    f"_25._tcp.badtlsa.sec.test. 300 IN TLSA 3 1 1 {TLSA_HEX}",
    "badtlsa.sec.test. 300 IN A 127.0.0.4",
    # secure NODATA: a name with an A only
    "aonly.sec.test. 300 IN A 127.0.0.5",
    # longer than one UDP answer (1232 octets): libunbound retries over TCP, sandboxed
    "big.sec.test. 300 IN TXT " + " ".join('"' + chr(97 + i) * 250 + '"' for i in range(12)),
]
INSEC = [
    "insec.sec.test. 300 IN MX 10 mx.insec.sec.test.",
    "mx.insec.sec.test. 300 IN A 127.0.0.6",
    f"_25._tcp.mx.insec.sec.test. 300 IN TLSA 3 1 1 {TLSA_HEX}",
]
PLAIN = ["plain.test. 300 IN MX 10 mx.plain.test.", "mx.plain.test. 300 IN A 127.0.0.7"]


@pytest.fixture
def zone(signed_zone):  # noqa: F811
    z = signed_zone("sec.test")
    z.add(SEC)
    z.add_unsigned_child("insec.sec.test", INSEC)
    z.add_zone("plain.test", PLAIN)
    z.tamper("badmx.sec.test", "MX")
    z.tamper("mx.badhost.sec.test", "A")
    z.tamper("badtxt.sec.test", "TXT")
    z.tamper("mx.halfbad.sec.test", "AAAA")
    z.tamper("_25._tcp.badtlsa.sec.test", "TLSA")
    return z.start()


def start_resolver(pm, nameservers, anchors, timeout=2, negative_ttl=60):
    pm.configure(resolver={"nameservers": nameservers, "timeout": timeout, "negative_ttl": negative_ttl,
                           "dnssec": True, "trust_anchors": [str(a) for a in anchors]})
    pm.start("resolver")
    return ResolverClient(pm)


@pytest.fixture
def resolver(pm, zone):
    client = start_resolver(pm, [zone.nameserver], [zone.anchor_file])
    yield client
    client.close()


def test_secure_mx_and_hosts(resolver):
    r = resolver.resolve("sec.test")
    assert r["status"] == rp.OK, r
    assert r["dnssec"] == rp.SECURE
    assert [(h["name"], h["addresses"], h["secure"]) for h in r["hosts"]] == \
        [("mx.sec.test", ["127.0.0.2", "::1"], 1)]


def test_secure_a_txt_tlsa(resolver):
    a = resolver.resolve("mx.sec.test", rp.A)
    assert (a["status"], a["dnssec"], a["hosts"][0]["secure"]) == (rp.OK, rp.SECURE, 1), a
    t = resolver.resolve("sec.test", rp.TXT)
    assert (t["status"], t["dnssec"], t["texts"]) == (rp.OK, rp.SECURE, ["v=spf1 -all"]), t
    tl = resolver.resolve("_25._tcp.mx.sec.test", rp.TLSA)
    assert (tl["status"], tl["dnssec"]) == (rp.OK, rp.SECURE), tl
    assert [(x["usage"], x["selector"], x["matching_type"], x["data"].hex()) for x in tl["tlsa"]] == \
        [(3, 1, 1, TLSA_HEX)]


def test_secure_denials(resolver):
    nx = resolver.resolve("nothere.sec.test", rp.A)
    assert (nx["status"], nx["dsn_status"], nx["dnssec"]) == (rp.PERMFAIL, "5.1.2", rp.SECURE), nx
    nodata = resolver.resolve("aonly.sec.test", rp.TXT)
    assert (nodata["status"], nodata["texts"], nodata["dnssec"]) == (rp.OK, [], rp.SECURE), nodata
    notlsa = resolver.resolve("_25._tcp.aonly.sec.test", rp.TLSA)
    assert (notlsa["status"], notlsa["tlsa"]) in ((rp.OK, []), (rp.PERMFAIL, [])), notlsa
    assert notlsa["dnssec"] == rp.SECURE
    # implicit MX (NODATA for MX, secure) with a secure address
    imp = resolver.resolve("aonly.sec.test")
    assert (imp["status"], imp["text"], imp["dnssec"]) == (rp.OK, "implicit MX", rp.SECURE), imp
    assert imp["hosts"][0]["secure"] == 1   # its A is secure, its AAAA NODATA securely denied
    assert resolver.resolve("aonly.sec.test", rp.A)["dnssec"] == rp.SECURE


def test_insecure_delegation_and_unanchored_zone(resolver):
    r = resolver.resolve("insec.sec.test")
    assert (r["status"], r["dnssec"]) == (rp.OK, rp.INSECURE), r
    assert [(h["name"], h["secure"]) for h in r["hosts"]] == [("mx.insec.sec.test", 0)]
    tl = resolver.resolve("_25._tcp.mx.insec.sec.test", rp.TLSA)
    assert (tl["status"], tl["dnssec"], len(tl["tlsa"])) == (rp.OK, rp.INSECURE, 1), tl
    p = resolver.resolve("plain.test")
    assert (p["status"], p["dnssec"], p["hosts"][0]["secure"]) == (rp.OK, rp.INSECURE, 0), p


def test_truncated_answer_over_tcp(resolver, pm):
    r = resolver.resolve("big.sec.test", rp.TXT)
    assert (r["status"], r["dnssec"]) == (rp.OK, rp.SECURE), r
    assert r["texts"] == ["".join(chr(97 + i) * 250 for i in range(12))]
    assert pm.procs["resolver"].poll() is None   # the sandbox let TCP through


@pytest.mark.parametrize("nsec3", [False, True], ids=["nsec", "nsec3"])
def test_signed_child_and_denials(pm, signed_zone, nsec3):  # noqa: F811
    """A chain of trust through a DS into a signed child; NXDOMAIN and NODATA proven with
    NSEC and with NSEC3; a tampered child record is bogus."""
    z = signed_zone("sec.test", nsec3=nsec3)
    z.add(SEC[:3])
    z.add_signed_child("child.sec.test", ["child.sec.test. 300 IN MX 10 mx.child.sec.test.",
                                          "mx.child.sec.test. 300 IN A 127.0.0.10",
                                          "forged.child.sec.test. 300 IN TXT \"x\""])
    z.tamper("forged.child.sec.test", "TXT")
    z.start()
    client = start_resolver(pm, [z.nameserver], [z.anchor_file])
    try:
        r = client.resolve("child.sec.test")
        assert (r["status"], r["dnssec"], r["hosts"][0]["secure"]) == (rp.OK, rp.SECURE, 1), r
        nx = client.resolve("nope.child.sec.test", rp.TXT)
        assert (nx["status"], nx["dsn_status"], nx["dnssec"]) == (rp.PERMFAIL, "5.1.2", rp.SECURE), nx
        nodata = client.resolve("mx.child.sec.test", rp.TXT)
        assert (nodata["status"], nodata["texts"], nodata["dnssec"]) == (rp.OK, [], rp.SECURE), nodata
        bad = client.resolve("forged.child.sec.test", rp.TXT)
        assert (bad["status"], bad["dsn_status"], bad["dnssec"]) == (rp.TEMPFAIL, "4.7.5", rp.BOGUS), bad
    finally:
        client.close()


def test_bogus_is_tempfail_475(resolver, pm):
    for name, kind, what in [("badmx.sec.test", rp.MX, "MX"), ("badtxt.sec.test", rp.TXT, "TXT"),
                             ("_25._tcp.badtlsa.sec.test", rp.TLSA, "TLSA")]:
        r = resolver.resolve(name, kind)
        assert (r["status"], r["dsn_status"], r["dnssec"]) == (rp.TEMPFAIL, "4.7.5", rp.BOGUS), (name, r)
        assert "DNSSEC validation failed" in r["text"] and what in r["text"], r
        assert r["ttl"] == 0 and not r["hosts"] and not r["texts"] and not r["tlsa"]
    # a bogus address: the MX answer itself is secure, its only host's A is not
    h = resolver.resolve("badhost.sec.test")
    assert (h["status"], h["dsn_status"], h["dnssec"]) == (rp.TEMPFAIL, "4.7.5", rp.BOGUS), h
    assert "DNSSEC validation failed" in h["text"]
    # the others still answer, bogus is not remembered as an answer
    assert resolver.resolve("sec.test")["dnssec"] == rp.SECURE
    log = pm.log("resolver")
    assert "dnssec=bogus" in log


def test_one_bogus_family_leaves_the_host_out(resolver):
    # Its secure A must not carry the host into the reply as an insecure host (no DANE):
    # an attacker who can spoil one RRset would turn DANE off for that MX.
    r = resolver.resolve("halfbad.sec.test")
    assert (r["status"], r["dnssec"]) == (rp.OK, rp.SECURE), r
    assert [(h["name"], h["secure"]) for h in r["hosts"]] == [("mx.sec.test", 1)], r
    a = resolver.resolve("mx.halfbad.sec.test", rp.A)
    assert (a["status"], a["dsn_status"], a["dnssec"]) == (rp.TEMPFAIL, "4.7.5", rp.BOGUS), a
    assert not a["hosts"]


def test_cname_chain_is_as_secure_as_its_weakest_link(resolver):
    inside = resolver.resolve("cin.sec.test", rp.A)
    assert (inside["status"], inside["dnssec"], inside["hosts"][0]["secure"]) == (rp.OK, rp.SECURE, 1), inside
    out = resolver.resolve("cout.sec.test", rp.A)
    assert (out["status"], out["dnssec"], out["hosts"][0]["secure"]) == (rp.OK, rp.INSECURE, 0), out
    assert out["hosts"][0]["addresses"] == ["127.0.0.7"], out
    # a signed MX whose host leaves the signed zone: the MX answer is secure, the host is not
    mx = resolver.resolve("cnamemx.sec.test")
    assert (mx["status"], mx["dnssec"]) == (rp.OK, rp.SECURE), mx
    assert [(h["name"], h["secure"]) for h in mx["hosts"]] == [("cout.sec.test", 0)], mx


def test_bogus_then_fixed_zone(resolver, zone):
    assert resolver.resolve("badtxt.sec.test", rp.TXT)["dsn_status"] == "4.7.5"
    zone.untamper()
    zone.update()
    r = resolver.resolve("badtxt.sec.test", rp.TXT)
    assert (r["status"], r["dnssec"], r["texts"]) == (rp.OK, rp.SECURE, ["forged"]), r


class LyingUpstream:
    """A recursive server that answers everything with the AD bit set and no signatures."""

    def __init__(self):
        self.port = free_dual_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            try:
                q = dns.message.from_wire(data)
            except Exception:
                continue
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AD | dns.flags.RA
            qn = q.question[0]
            text = {1: "127.0.0.9", 15: "10 mx.sec.test.", 16: '"lie"'}.get(qn.rdtype)
            if text:
                r.answer.append(dns.rrset.from_text(qn.name, 300, "IN", qn.rdtype, text))
            self.sock.sendto(r.to_wire(), peer)

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def test_ad_bit_of_upstream_not_believed(pm, zone):
    liar = LyingUpstream()
    try:
        client = start_resolver(pm, [f"127.0.0.1:{liar.port}"], [zone.anchor_file])
        r = client.resolve("sec.test", rp.TXT)
        # no DNSKEY, no RRSIG: under our anchor that is bogus, whatever the AD bit says
        assert (r["status"], r["dsn_status"], r["dnssec"]) == (rp.TEMPFAIL, "4.7.5", rp.BOGUS), r
        # a name no anchor covers: the lie is only insecure
        p = client.resolve("other.example", rp.TXT)
        assert (p["status"], p["dnssec"]) == (rp.OK, rp.INSECURE), p
        client.close()
    finally:
        liar.stop()


def test_timeout_is_bounded(pm, zone):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))        # takes the packets, never answers
    try:
        client = start_resolver(pm, [f"127.0.0.1:{silent.getsockname()[1]}"], [zone.anchor_file], timeout=1)
        start = time.monotonic()
        r = client.resolve("sec.test", rp.MX, timeout=10)
        took = time.monotonic() - start
        assert r["status"] == rp.TEMPFAIL and r["dsn_status"] == "4.4.3", r
        assert took < 3, took
        client.close()
    finally:
        silent.close()


def test_backlog_never_outlives_the_timeout(pm, zone):
    """More questions than libunbound takes at once (256), upstream silent: the ones that
    waited their whole timeout in line fail then, they are not sent late one batch after
    another (2000 of them would otherwise take ~8 timeouts, delaying every fresh lookup)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        client = start_resolver(pm, [f"127.0.0.1:{silent.getsockname()[1]}"], [zone.anchor_file], timeout=1)
        n = 2000
        for i in range(n):
            client.ask(f"q{i}.sec.test", rp.TXT)
        got = client.replies(n, timeout=30)
        assert all(r["status"] == rp.TEMPFAIL for r, _ in got.values())
        slowest = max(t for _, t in got.values())
        assert slowest < 4.5, slowest
        client.close()
    finally:
        silent.close()


def test_cache_respects_negative_ttl(pm, zone):
    """An NXDOMAIN is kept negative_ttl at most, in libunbound's cache as in ours."""
    client = start_resolver(pm, [zone.nameserver], [zone.anchor_file], negative_ttl=1)
    assert client.resolve("later.sec.test", rp.A)["dsn_status"] == "5.1.2"
    zone.update(["later.sec.test. 300 IN A 127.0.0.8"])
    deadline = time.monotonic() + 6
    while True:
        r = client.resolve("later.sec.test", rp.A)
        if r["status"] == rp.OK:
            break
        assert time.monotonic() < deadline, r
        time.sleep(0.2)
    assert (r["dnssec"], r["hosts"][0]["addresses"]) == (rp.SECURE, ["127.0.0.8"])
    client.close()


def test_bad_trust_anchor_file(pm, zone, tmp_path):
    bad = tmp_path / "bad-anchor.key"
    bad.write_text("sec.test. IN A 127.0.0.1\n")
    missing = tmp_path / "missing.key"
    for path, why in [(bad, "not a trust anchor"), (missing, "No such file")]:
        pm.configure(resolver={"nameservers": [zone.nameserver], "dnssec": True, "trust_anchors": [str(path)]})
        pm.write_config()
        run = subprocess.run([str(BIN / "postmesh-resolver"), "-c", str(pm.conf_path)],
                                           capture_output=True, text=True, timeout=10)
        assert run.returncode == 2, run
        assert str(path) in run.stderr and why in run.stderr and "resolver.trust_anchors" in run.stderr, run.stderr
        # `postmesh check` finds it before a start does
        check = pm.cli("check", check=False)
        line = [l for l in check.stdout.splitlines() if " dnssec " in f" {l} "]
        assert check.returncode == 1 and line and line[0].startswith("FAIL") and str(path) in line[0] \
            and why in line[0], check.stdout
    pm.configure(resolver={"nameservers": [zone.nameserver], "dnssec": True,
                           "trust_anchors": [str(zone.anchor_file)]})
    pm.write_config()
    check = pm.cli("check", check=False)
    assert re.search(r"^ok\s+dnssec\s+[1-9]\d* trust anchor", check.stdout, re.M), check.stdout


def test_root_anchor_by_default(pm, zone):
    """No trust_anchors: the root's KSK (dns-root-data). A nameserver that cannot give the
    root's DNSKEY then makes even a zone it serves bogus: nothing is believed unproven."""
    client = start_resolver(pm, [zone.nameserver], [])
    try:
        started = [line for line in pm.log("resolver").splitlines() if "event=started" in line][-1]
        assert "dnssec=yes" in started and "anchors=0" not in started, started
        r = client.resolve("plain.test")
        assert (r["status"], r["dsn_status"], r["dnssec"]) == (rp.TEMPFAIL, "4.7.5", rp.BOGUS), r
    finally:
        client.close()


def test_no_nameserver_refuses_to_start(pm, zone):
    pm.configure(resolver={"nameservers": [], "dnssec": True, "trust_anchors": [str(zone.anchor_file)]})
    run = subprocess.run([str(BIN / "postmesh-resolver"), "-c", str(pm.conf_path)],
                                       capture_output=True, text=True, timeout=10)
    assert run.returncode == 2 and "resolver.nameservers is empty" in run.stderr, run


@pytest.mark.skipif(not shutil.which("strace") or os.geteuid() != 0,
                    reason="needs strace and root")
def test_talks_only_to_its_nameservers(pm, zone, tmp_path):
    """From exec to exit: no resolv.conf, no hosts file, no root servers, no port 53; every
    datagram and connection goes to resolver.nameservers (or the bus)."""
    trace = tmp_path / "resolver.strace"
    pm.exec_prefix = ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=open,openat,connect,sendto,sendmmsg"]
    client = start_resolver(pm, [zone.nameserver], [zone.anchor_file])
    try:
        assert resolver_ok(client.resolve("sec.test"))
        assert resolver_ok(client.resolve("insec.sec.test", rp.TXT))
    finally:
        client.close()
        # pm's process is strace: stop the resolver it runs (strace then ends with it)
        tracer = pm.procs["resolver"]
        children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()
        for pid in children:
            os.kill(int(pid), signal.SIGTERM)
        pm.stop("resolver")
    text = trace.read_text()
    assert "resolv.conf" not in text and "/etc/hosts" not in text and "root.hints" not in text
    ports = set(re.findall(r"sin_port=htons\((\d+)\)", text))
    bus_port = pm.settings["resolver"]["endpoint"].rsplit(":", 1)[1]
    assert ports and ports <= {str(zone.port), bus_port}, ports


def resolver_ok(reply):
    return reply["status"] == rp.OK
