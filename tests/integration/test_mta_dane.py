"""DANE for SMTP (RFC 7672) in the mta, end to end with real DNSSEC: a zone signed by the test
(dnssec_zone.SignedZone: ldns-keygen, ldns-signzone, nsd on loopback) is the resolver's only
nameserver and its key the only trust anchor; the MX hosts are STARTTLS peers
(tls_peers.TlsPeer) with certificates of a test CA, and their TLSA records are made from
those certificates. The mta runs alone, driven through the bus (remote_peers.Dispatcher),
at the default level (dane).

- a matching DANE-EE(3) record: delivered over TLS, tls=verified dane=yes, whatever names
  the certificate carries (RFC 7672 3.1.1: DANE-EE checks no name);
- a record of another key: deferred 4.7.5, nothing ever in the clear, no plaintext retry;
- STARTTLS stripped by the peer: deferred 4.7.4;
- DANE-TA(2) with the test CA: delivered; the same with a certificate for another name:
  deferred (DANE-TA checks the MX name);
- only unusable records (PKIX-EE(1)): mandatory TLS without authentication (encrypt);
- a bogus TLSA answer (tampered signature): that MX is not used (4.7.5), nothing sent;
- an insecure delegation: opportunistic as before (its TLSA records mean nothing).
"""
import re

import pytest

import remote_proto as rp
from conftest import wait_for
from dnssec_zone import signed_zone  # noqa: F401  (fixture)
from remote_peers import Dispatcher, common_port
from tls_peers import TestCA, TlsPeer, self_signed, tlsa, tlsa_owner

HOSTS = {"ee": "127.0.0.2", "wrong": "127.0.0.3", "strip": "127.0.0.4", "ta": "127.0.0.5",
         "tawrong": "127.0.0.6", "unusable": "127.0.0.7", "bogus": "127.0.0.8"}
INSECURE_IP = "127.0.0.9"


def mx_lines(name, ip, zone="sec.test"):
    dom = f"{name}.{zone}"
    return [f"{dom}. 300 IN MX 10 mx.{dom}.", f"mx.{dom}. 300 IN A {ip}"]


@pytest.fixture
def env(pm, tmp_path, signed_zone):  # noqa: F811
    ca = TestCA(tmp_path)
    port = common_port(*HOSTS.values(), INSECURE_IP)
    stuff = {"pm": pm, "root": tmp_path, "peers": [], "queue": None, "ca": ca, "port": port}
    try:
        # the certificates, the peers, and the TLSA records made from them
        def cert_for(name, *names):
            return ca.issue(*(names or (f"mx.{name}.sec.test",)))
        ee = cert_for("ee", "unrelated.test")             # DANE-EE: the name does not matter
        other = cert_for("other", "mx.wrong.sec.test")
        ta = cert_for("ta")
        tawrong = cert_for("tawrong", "somewhere-else.test")
        selfs = self_signed(tmp_path, "mx.unusable.sec.test")
        peers = {
            "ee": TlsPeer(HOSTS["ee"], port, ee),
            "wrong": TlsPeer(HOSTS["wrong"], port, cert_for("wrong")),
            "strip": TlsPeer(HOSTS["strip"], port, cert_for("strip"), starttls="none"),
            "ta": TlsPeer(HOSTS["ta"], port, ta),
            "tawrong": TlsPeer(HOSTS["tawrong"], port, tawrong),
            "unusable": TlsPeer(HOSTS["unusable"], port, selfs),
            "bogus": TlsPeer(HOSTS["bogus"], port, cert_for("bogus")),
            "insecure": TlsPeer(INSECURE_IP, port, self_signed(tmp_path, "mx.insec.sec.test")),
        }
        stuff["peers"] += peers.values()
        stuff["peer"] = peers
        z = signed_zone("sec.test")
        for name, ip in HOSTS.items():
            z.add(mx_lines(name, ip))
        owner = lambda name: tlsa_owner(f"mx.{name}.sec.test", port)  # noqa: E731
        z.add([f"{owner('ee')}. 300 IN TLSA {tlsa(ee, 3, 1, 1)}",
               f"{owner('wrong')}. 300 IN TLSA {tlsa(other, 3, 1, 1)}",       # another key
               f"{owner('strip')}. 300 IN TLSA {tlsa(peers['strip'].cert, 3, 1, 1)}",
               f"{owner('ta')}. 300 IN TLSA {ca.tlsa(2, 0, 1)}",
               f"{owner('tawrong')}. 300 IN TLSA {ca.tlsa(2, 0, 1)}",
               f"{owner('unusable')}. 300 IN TLSA {tlsa(selfs, 1, 1, 1)}",    # PKIX-EE: unusable
               f"{owner('bogus')}. 300 IN TLSA {tlsa(peers['bogus'].cert, 3, 1, 1)}"])
        # TLS reports: the DANE domains publish a TLSRPT record (RFC 8460 3)
        z.add([f'_smtp._tls.{name}.sec.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"'
               for name in ("ee", "wrong", "bogus")])
        z.tamper(owner("bogus"), "TLSA")
        z.add_unsigned_child("insec.sec.test", [
            "insec.sec.test. 300 IN MX 10 mx.insec.sec.test.", f"mx.insec.sec.test. 300 IN A {INSECURE_IP}",
            f"{tlsa_owner('mx.insec.sec.test', port)}. 300 IN TLSA {tlsa(other, 3, 1, 1)}"])
        z.start()
        pm.configure(resolver={"dnssec": True, "trust_anchors": [str(z.anchor_file)],
                               "nameservers": [z.nameserver], "timeout": 3},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 5,
                          "mta_sts": False, "tlsrpt": True})
        pm.start("resolver")
        stuff["queue"] = Dispatcher(pm)
        pm.start("mta")
        stuff["queue"].wait_worker()
        yield stuff
    finally:
        pm.stop_all()
        if stuff["queue"]:
            stuff["queue"].close()
        for p in stuff["peers"]:
            p.stop()


def deliver(env, domain, whole=False):
    q = env["queue"]
    res = q.result(q.send_job([f"bob@{domain}"], domain))
    return res if whole else res["results"][0]


TLSA_POLICY = 2     # TlsSession.PolicyType TLSA


def the_session(res, domain):
    [s] = res.get("tls_sessions", [])
    assert s["policy_domain"] == domain and s.get("policy_type") == TLSA_POLICY, s
    assert s.get("rua") == ["mailto:tlsrpt@reports.test"], s
    return s


def verdict_line(env, domain):
    def find():
        lines = [ln for ln in env["pm"].log("mta").splitlines()
                 if ln.split("event=")[-1].split()[0] in ("delivered", "deferred", "bounced") and f"@{domain}" in ln]
        return lines[-1] if lines else None
    return wait_for(find, 5, what=f"verdict line for {domain}")


def test_matching_dane_ee_record_delivers_over_verified_tls(env):
    res = deliver(env, "ee.sec.test", whole=True)
    r = res["results"][0]
    assert r["status"] == rp.DELIVERED, r
    s = the_session(res, "ee.sec.test")
    assert s.get("success") and s.get("receiving_mx_hostname") == "mx.ee.sec.test", s
    assert s["policy_strings"] == [tlsa(env["peer"]["ee"].cert, 3, 1, 1).lower()], s
    p = env["peer"]["ee"]
    [m] = p.messages
    assert m["tls"]
    assert p.sni == ["mx.ee.sec.test"]           # SNI is the TLSA base domain (RFC 7672 8.1)
    line = verdict_line(env, "ee.sec.test")
    assert "tls=verified dane=yes sts=no policy=dane cipher=" in line, line


def test_record_of_another_key_defers_and_nothing_goes_in_the_clear(env):
    res = deliver(env, "wrong.sec.test", whole=True)
    r = res["results"][0]
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5"), r
    s = the_session(res, "wrong.sec.test")
    assert not s.get("success") and s.get("result_type") == "validation-failure", s
    assert "certificate verify failed" in r["text"], r["text"]
    p = env["peer"]["wrong"]
    p.assert_nothing_in_clear()
    assert p.messages == [] and p.commands("MAIL") == []
    assert "retry=plaintext" not in env["pm"].log("mta")
    assert "tls=none dane=failed sts=no policy=dane" in verdict_line(env, "wrong.sec.test")


def test_starttls_stripped_defers(env):
    r = deliver(env, "strip.sec.test")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.4"), r
    assert r["text"] == "4.7.4 TLS is required, but was not offered by mx.strip.sec.test"
    env["peer"]["strip"].assert_nothing_in_clear()
    assert env["peer"]["strip"].commands("MAIL") == []
    assert "tls=none dane=failed sts=no policy=dane" in verdict_line(env, "strip.sec.test")


def test_dane_ta_with_the_test_ca(env):
    r = deliver(env, "ta.sec.test")
    assert r["status"] == rp.DELIVERED, r
    assert env["peer"]["ta"].messages[0]["tls"]
    assert "tls=verified dane=yes" in verdict_line(env, "ta.sec.test")
    # DANE-TA checks the name: the CA's certificate for another name will not do
    r = deliver(env, "tawrong.sec.test")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5"), r
    env["peer"]["tawrong"].assert_nothing_in_clear()
    assert env["peer"]["tawrong"].messages == []


def test_only_unusable_records_mean_mandatory_unauthenticated_tls(env):
    r = deliver(env, "unusable.sec.test")
    assert r["status"] == rp.DELIVERED, r
    assert env["peer"]["unusable"].messages[0]["tls"]
    assert "tls=encrypted dane=no sts=no policy=dane" in verdict_line(env, "unusable.sec.test")


def test_bogus_tlsa_answer_skips_the_mx(env):
    res = deliver(env, "bogus.sec.test", whole=True)
    r = res["results"][0]
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5"), r
    [s] = res.get("tls_sessions", [])
    assert not s.get("success") and s.get("result_type") == "dnssec-invalid", s
    assert re.match(r"4\.7\.5 TLSA lookup for \S*mx\.bogus\.sec\.test failed: .*DNSSEC", r["text"]), r["text"]
    assert r["text"].count("TLSA lookup") == 1, r["text"]   # said once, not the resolver's words again
    assert "tls=none dane=failed" in verdict_line(env, "bogus.sec.test")
    assert env["peer"]["bogus"].events == []     # never connected
    assert "event=mx_skipped" in env["pm"].log("mta")


def test_insecure_zone_is_opportunistic_as_before(env):
    r = deliver(env, "insec.sec.test")
    assert r["status"] == rp.DELIVERED, r
    # its TLSA (of another key) proves nothing: no DANE, the self-signed certificate is taken
    assert env["peer"]["insecure"].messages[0]["tls"]
    assert "tls=encrypted dane=no sts=no policy=dane" in verdict_line(env, "insec.sec.test")
