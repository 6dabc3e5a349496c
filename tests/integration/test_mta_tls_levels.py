"""The mta's TLS security levels (services/mta/policy.c), each against real STARTTLS peers
(tls_peers.TlsPeer: aiosmtpd with certificates of a test CA) on 127.0.0.x, the mta driven
alone through the bus (remote_peers.Dispatcher), DNS from dnsmasq (no DNSSEC: the DANE
levels see every MX as insecure here; test_mta_dane.py signs its zone).

Per level: none never starts TLS; may encrypts when it can and goes on in the clear when it
cannot; encrypt, verify and secure never send anything in the clear (STARTTLS stripped →
4.7.4, refused or broken → 4.7.5, no plaintext retry); verify and secure check the chain
against mta.ca_file (or the row's own ca_file, and then only that) and the names the level
wants; dane-only without DNSSEC tries nothing. Every verdict line logs the policy and the
outcome."""
import re

import pytest

import remote_proto as rp
from conftest import wait_for
from remote_peers import Dispatcher, Dnsmasq, common_port
from tls_peers import TestCA, TlsPeer, self_signed

HOSTS = {"good": "127.0.0.2", "stripped": "127.0.0.3", "refuse": "127.0.0.4", "broken": "127.0.0.5",
         "self": "127.0.0.6", "wrong": "127.0.0.7", "closed": "127.0.0.8"}
ZONE = [opt for name, ip in HOSTS.items()
        for opt in (f"--mx-host={name}.test,mx.{name}.test,10", f"--host-record=mx.{name}.test,{ip}")]


@pytest.fixture
def env(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE)
    stuff = {"pm": pm, "root": tmp_path, "peers": [dns], "queue": None, "ca": TestCA(tmp_path)}
    try:
        stuff["port"] = common_port(*HOSTS.values())
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"remote_port": stuff["port"], "connect_timeout": 3, "command_timeout": 5,
                          "ca_file": str(stuff["ca"].cert), "mta_sts": False, "tlsrpt": False})
        pm.start("resolver")
        stuff["queue"] = Dispatcher(pm)
        yield stuff
    finally:
        pm.stop_all()
        if stuff["queue"]:
            stuff["queue"].close()
        for peer in stuff["peers"]:
            peer.stop()


def peer(env, name, cert="ca", **kw):
    """The peer of mx.<name>.test: a certificate from the test CA for that name (cert="ca"),
    a self-signed one ("self"), one for another name ("other"), or an Issued."""
    host = f"mx.{name}.test"
    if cert == "ca":
        cert = env["ca"].issue(host)
    elif cert == "self":
        cert = self_signed(env["root"], host)
    elif cert == "other":
        cert = env["ca"].issue("other.test")
    p = TlsPeer(HOSTS[name], env["port"], cert, **kw)
    env["peers"].append(p)
    return p


def start_mta(env, **mta):
    if mta:
        env["pm"].configure(mta=mta)
    q = env["queue"]
    before = q.worker                   # a restarted mta is a new bus peer
    env["pm"].start("mta")
    wait_for(lambda: q.pump() or q.worker not in (None, before), 10, what="mta credit")
    return q


def deliver(env, name, **kw):
    q = env["queue"]
    r = q.result(q.send_job([f"bob@{name}.test"], f"{name}.test", **kw))
    return r["results"][0]


def verdict_line(env, event, domain):
    lines = [ln for ln in env["pm"].log("mta").splitlines() if f"event={event} " in ln and f"@{domain}" in ln]
    assert lines, env["pm"].log("mta")
    return lines[-1]


def test_none_never_starts_tls(env):
    p = peer(env, "good")
    start_mta(env, tls_level="none")
    r = deliver(env, "good")
    assert r["status"] == rp.DELIVERED
    [m] = p.messages
    assert not m["tls"] and p.commands("STARTTLS") == []
    assert "tls=none dane=no sts=no policy=none cipher=none" in verdict_line(env, "delivered", "good.test")


def test_may_encrypts_when_it_can_and_goes_on_in_the_clear_when_not(env):
    good, stripped = peer(env, "good"), peer(env, "stripped", starttls="none")
    start_mta(env, tls_level="may")
    assert deliver(env, "good")["status"] == rp.DELIVERED
    assert good.messages[0]["tls"]
    # may does not verify: the certificate is not checked, so it is "encrypted"
    assert "tls=encrypted dane=no sts=no policy=may cipher=" in verdict_line(env, "delivered", "good.test")
    assert deliver(env, "stripped")["status"] == rp.DELIVERED
    assert not stripped.messages[0]["tls"]
    assert "tls=none dane=no sts=no policy=may" in verdict_line(env, "delivered", "stripped.test")


@pytest.mark.parametrize("level", ["encrypt", "verify", "secure"])
def test_mandatory_levels_never_go_on_in_the_clear(env, level):
    stripped = peer(env, "stripped", starttls="none")
    refuse = peer(env, "refuse", starttls="refuse")
    broken = peer(env, "broken", starttls="tls1")
    closed = peer(env, "closed", starttls="close")
    start_mta(env, tls_level=level)
    r = deliver(env, "stripped")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.4")
    assert r["text"] == "4.7.4 TLS is required, but was not offered by mx.stripped.test"
    r = deliver(env, "refuse")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5")
    assert "refused STARTTLS: 454 4.7.0 TLS not available" in r["text"]
    r = deliver(env, "broken")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5")
    # the dsn first, as in the other texts, and OpenSSL's reason rather than a bare "failed"
    assert re.match(r"4\.7\.5 TLS handshake with mx\.broken\.test\S* failed: \S", r["text"]), r["text"]
    assert not r["text"].endswith("failed: handshake failed"), r["text"]
    r = deliver(env, "closed")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5")
    assert re.match(r"4\.7\.5 TLS handshake with mx\.closed\.test\S* failed: (connection closed during the handshake|Connection reset by peer)$",
                    r["text"]), r["text"]
    for p in (stripped, refuse, broken, closed):
        p.assert_nothing_in_clear()
        assert p.commands("MAIL") == [] and p.messages == []
    log = env["pm"].log("mta")
    assert "retry=plaintext" not in log
    assert f"policy={level}" in verdict_line(env, "deferred", "broken.test")


def test_encrypt_takes_any_certificate(env):
    p = peer(env, "self", cert="self")
    start_mta(env, tls_level="encrypt")
    assert deliver(env, "self")["status"] == rp.DELIVERED
    assert p.messages[0]["tls"]
    assert "tls=encrypted dane=no sts=no policy=encrypt" in verdict_line(env, "delivered", "self.test")


def test_verify_checks_chain_and_mx_name(env):
    good, selfs, wrong = peer(env, "good"), peer(env, "self", cert="self"), peer(env, "wrong", cert="other")
    start_mta(env, tls_level="verify")
    assert deliver(env, "good")["status"] == rp.DELIVERED
    assert good.messages[0]["tls"] and good.sni == ["mx.good.test"]
    assert "tls=verified dane=no sts=no policy=verify cipher=" in verdict_line(env, "delivered", "good.test")
    for name, why in (("self", "self-signed certificate"), ("wrong", "hostname mismatch")):
        r = deliver(env, name)
        assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5"), r
        assert "certificate verify failed" in r["text"] and why in r["text"], r["text"]
    for p in (selfs, wrong):
        p.assert_nothing_in_clear()
        assert p.messages == []
    assert "retry=plaintext" not in env["pm"].log("mta")


def test_secure_wants_the_domain_or_the_match_names(env):
    # mx.good.test is under good.test: secure's default names (the domain and its subdomains)
    good = peer(env, "good")
    # mx.wrong.test shows a certificate for other.test: only a match list naming it will do
    wrong = peer(env, "wrong", cert="other")
    start_mta(env, tls_policy=[{"domain": "good.test", "level": "secure"},
                               {"domain": "wrong.test", "level": "secure"}])
    assert deliver(env, "good")["status"] == rp.DELIVERED
    assert "tls=verified dane=no sts=no policy=secure" in verdict_line(env, "delivered", "good.test")
    r = deliver(env, "wrong")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5") and "hostname mismatch" in r["text"]
    assert wrong.messages == []
    env["pm"].stop("mta")
    start_mta(env, tls_policy=[{"domain": "wrong.test", "level": "secure", "match": ["other.test"]}])
    assert deliver(env, "wrong")["status"] == rp.DELIVERED
    assert wrong.messages[0]["tls"]
    assert good.messages and len(good.messages) == 1


def test_a_rows_ca_file_is_the_only_trust_for_its_domain(env):
    other_ca = TestCA(env["root"], name="Another CA")
    good = peer(env, "good")          # issued by the test CA, which mta.ca_file trusts
    start_mta(env, tls_policy=[{"domain": "good.test", "level": "verify", "ca_file": str(other_ca.cert)}])
    r = deliver(env, "good")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5")
    assert "certificate verify failed" in r["text"], r["text"]
    assert good.messages == []
    env["pm"].stop("mta")
    start_mta(env, tls_policy=[{"domain": ".test", "level": "verify", "ca_file": str(env["ca"].cert)}])
    assert deliver(env, "good")["status"] == rp.DELIVERED    # the ".test" row: every subdomain
    assert good.messages[0]["tls"]


def test_dane_only_without_dnssec_tries_nothing(env):
    p = peer(env, "good")
    start_mta(env, tls_level="dane-only")
    r = deliver(env, "good")
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5")
    assert "no DNSSEC-secure TLSA records for mx.good.test (dane-only)" in r["text"]
    assert p.events == []                                    # not even connected
    assert "event=mx_skipped" in env["pm"].log("mta")
    assert "tls=none dane=no sts=no policy=dane-only cipher=none" in verdict_line(env, "deferred", "good.test")


def test_default_dane_without_dnssec_is_opportunistic_as_before(env):
    p = peer(env, "broken", starttls="tls1")
    start_mta(env)                                          # tls_level "" = dane
    r = deliver(env, "broken")
    assert r["status"] == rp.DELIVERED
    assert not p.messages[0]["tls"]
    assert "retry=plaintext" in env["pm"].log("mta")
    assert "policy=dane" in verdict_line(env, "delivered", "broken.test")


def test_bad_policy_configuration_is_refused_with_its_line(env, tmp_path):
    env["pm"].configure(mta={"tls_policy": [{"domain": "good.test", "level": "verify",
                                             "ca_file": str(tmp_path / "missing.pem")}]})
    env["pm"].write_config()
    r = env["pm"].cli("check", check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert f"{env['pm'].conf_path}:" in out and "mta.tls_policy.ca_file" in out and "cannot be read" in out, out
    env["pm"].configure(mta={"tls_policy": [{"domain": "good.test", "level": "paranoid"}]})
    env["pm"].write_config()
    r = env["pm"].cli("check", check=False)
    assert r.returncode != 0 and "'paranoid' is not a level" in r.stdout + r.stderr
    # readable but without a certificate: the loader cannot tell, check reads it
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    env["pm"].configure(mta={"tls_policy": [{"domain": "good.test", "level": "verify", "ca_file": str(empty)}]})
    env["pm"].write_config()
    r = env["pm"].cli("check", check=False)
    ca = [line for line in r.stdout.splitlines() if str(empty) in line]
    assert r.returncode == 1 and ca and ca[0].startswith("FAIL") and "holds no PEM certificate" in ca[0], r.stdout
    env["pm"].configure(mta={"tls_policy": [{"domain": "good.test", "level": "verify",
                                             "ca_file": str(env["ca"].cert)}]})
    env["pm"].write_config()
    r = env["pm"].cli("check", check=False)
    assert re.search(r"^ok\s+ca\s+mta.tls_policy good.test ca_file .*: 1 certificate", r.stdout, re.M), r.stdout


def test_address_literal_is_checked_as_an_address_under_verify(env):
    """A domain literal has no name to check: verify wants the address in the certificate
    (the peer's names only carry DNS names, so it is refused), and no SNI is sent."""
    good = peer(env, "good")
    q = start_mta(env, tls_level="verify")
    r = q.result(q.send_job(["bob@[127.0.0.2]"], "[127.0.0.2]"))["results"][0]
    assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.7.5"), r
    assert "IP address mismatch" in r["text"], r["text"]
    assert good.messages == [] and [n for n in good.sni if n] == []   # None: no SNI
    good.assert_nothing_in_clear()
