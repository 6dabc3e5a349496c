"""MTA-STS (RFC 8461) in postmesh-mta against real peers on loopback: a scripted DNS server
(answers the test changes while it runs: a new TXT id, a record gone), the real resolver, an
HTTPS policy server with a test CA (tls_peers.StsServer) and the mta itself, sandboxed and
chrooted as in production, keeping its policies in state_dir/mta/sts/.

Two ways in. The lookup alone, through the mta's test hook (POSTMESH_TEST_STS_LOOKUP: the
mta looks the listed domains up at start and every POSTMESH_TEST_STS_REPEAT_MS, and logs
each answer that changed as event=mta_sts_test_lookup): discovery, fetch, the failure
classes (RFC 8460 result types), the store across restarts, the id change, max_age. And
deliveries through the bus contract (a stand-in dispatcher, as test_remote_mta.py), to
aiosmtpd STARTTLS peers: enforce with an MX outside the policy defers, enforce with a
matching MX and a certificate the CA vouches for delivers over verified TLS, testing
delivers and says so."""
import re
import struct
import time

import pytest

from conftest import wait_for
from remote_peers import Dispatcher, ScriptedDns, common_port
from tls_peers import StsServer, TestCA, TlsPeer, sts_policy, sts_txt

A, MX, TXT, AAAA = 1, 15, 16, 28
NXDOMAIN = 3


def _name(n):
    return b"".join(bytes([len(p)]) + p.encode() for p in n.rstrip(".").split(".") if p) + b"\0"


def _txt_rdata(text):
    raw = text.encode()
    return b"".join(bytes([len(raw[i:i + 255])]) + raw[i:i + 255] for i in range(0, max(len(raw), 1), 255))


class Zone:
    """What the scripted DNS server answers, changeable at any time; every TTL is 0, so the
    resolver keeps nothing and the next lookup sees a change at once."""

    def __init__(self):
        self.a, self.mx, self.txt = {}, {}, {}

    def script(self, qname, qtype, tcp):
        records = []
        if qtype == A and qname in self.a:
            records = [(qname, A, 0, struct.pack("4B", *map(int, self.a[qname].split("."))))]
        elif qtype == MX and qname in self.mx:
            records = [(qname, MX, 0, struct.pack(">H", pref) + _name(host)) for pref, host in self.mx[qname]]
        elif qtype == TXT and qname in self.txt:
            records = [(qname, TXT, 0, _txt_rdata(t)) for t in self.txt[qname]]
        known = qname in self.a or qname in self.mx or qname in self.txt
        return (0 if known else NXDOMAIN), records, False


@pytest.fixture
def sts_env(pm, tmp_path, monkeypatch):
    zone = Zone()
    dns = ScriptedDns(zone.script)
    ca = TestCA(tmp_path)
    names = [f"mta-sts.{d}" for d in ("a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test", "h.test")]
    server = StsServer(ca.issue(*names), host="127.0.0.1",
                       certs={"mta-sts.wrongcert.test": ca.issue("mta-sts.other.test")})
    stuff = {"pm": pm, "zone": zone, "ca": ca, "sts": server, "peers": [], "queue": None, "tmp": tmp_path,
             "monkeypatch": monkeypatch}
    try:
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     mta={"mta_sts": True, "mta_sts_port": server.port, "ca_file": str(ca.cert),
                          "connect_timeout": 2, "command_timeout": 5})
        pm.start("resolver")
        yield stuff
    finally:
        pm.stop_all()
        if stuff["queue"]:
            stuff["queue"].close()
        for p in stuff["peers"]:
            p.stop()
        server.stop()
        dns.stop()


def publish(env, domain, policy_id, text=None, **how):
    """domain's TXT record and (text not False) its policy on the server; mta-sts.<domain> on
    the server's address."""
    env["zone"].txt[f"_mta-sts.{domain}"] = [sts_txt(policy_id)]
    env["zone"].a[f"mta-sts.{domain}"] = "127.0.0.1"
    if text is not False:
        env["sts"].serve(domain, text, **how)


def start_hook(env, *domains, repeat_ms=None):
    mp = env["monkeypatch"]
    mp.setenv("POSTMESH_TEST_STS_LOOKUP", " ".join(domains))
    if repeat_ms:
        mp.setenv("POSTMESH_TEST_STS_REPEAT_MS", str(repeat_ms))
    else:
        mp.delenv("POSTMESH_TEST_STS_REPEAT_MS", raising=False)
    pm = env["pm"]
    offset = len(pm.log("mta"))
    pm.start("mta")
    return offset


def lookups(env, domain, offset=0):
    """The hook's answers for domain since offset: dicts of their fields."""
    out = []
    for line in env["pm"].log("mta")[offset:].splitlines():
        if "event=mta_sts_test_lookup" in line and f" domain={domain} " in line:
            out.append(dict(re.findall(r"(\w+)=(\S+)", line)))
    return out


def wait_lookup(env, domain, offset=0, timeout=15, **want):
    def seen():
        for r in lookups(env, domain, offset):
            if all(r.get(k) == v for k, v in want.items()):
                return r
        return None
    wait_for(seen, timeout, what=f"{domain} lookup with {want}; mta log:\n{env['pm'].log('mta')[-3000:]}")
    return seen()


def store(env, domain):
    return env["pm"].state / "mta" / "sts" / domain


# ------------------------------------------------------------------ the lookup

def test_policy_is_discovered_fetched_and_stored(sts_env):
    """TXT id → HTTPS fetch from mta-sts.<domain> (SNI and Host that name, the certificate
    verified with mta.ca_file) → the policy, kept in the mta's chroot as sts/<domain>."""
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test", "*.mx.a.test"], 86400))
    start_hook(env, "a.test")
    r = wait_lookup(env, "a.test", status="policy")
    assert (r["mode"], r["id"], r["max_age"], r["mx"]) == ("enforce", "id1", "86400", "mx.a.test,*.mx.a.test")
    assert env["sts"].fetches["mta-sts.a.test"] == 1
    assert "mta-sts.a.test" in env["sts"].sni
    req = env["sts"].requests[-1]
    assert req["path"] == "/.well-known/mta-sts.txt" and req["tls"]
    text = store(env, "a.test").read_text()
    assert "id id1\n" in text and "mode: enforce" in text
    log = env["pm"].log("mta")
    assert "event=mta_sts_fetched domain=a.test id=id1 mode=enforce max_age=86400 mx=2" in log
    assert re.search(r"event=privsep user=postmesh-mta chroot=\S+/state/mta ", log), log


def test_no_record_and_unusable_records_mean_no_policy(sts_env):
    env = sts_env
    env["zone"].txt["_mta-sts.b.test"] = ["v=STSv1; id=one", "v=STSv1; id=two"]  # two: none usable
    env["zone"].txt["_mta-sts.c.test"] = ["v=spf1 -all"]                          # not ours
    env["zone"].txt["_mta-sts.d.test"] = ["v=STSv1; id=bad-id"]                   # malformed
    env["sts"].serve("b.test")
    start_hook(env, "b.test", "c.test", "d.test", "nowhere.test")
    for d in ("b.test", "c.test", "d.test", "nowhere.test"):
        wait_lookup(env, d, status="none")
    assert sum(env["sts"].fetches.values()) == 0


def test_fetch_failures_are_classified(sts_env):
    """What must never give a policy: a certificate for another name, an HTTP error, a
    redirect (not followed), HTML instead of text/plain, a body beyond 64 KiB, plain HTTP,
    a body that is no policy; each FAILED with its RFC 8460 result type."""
    env = sts_env
    plain = StsServer(None, host="127.0.0.2", port=env["sts"].port, tls=False)
    env["peers"].append(plain)
    publish(env, "wrongcert.test", "w1")
    publish(env, "b.test", "b1", status=404)
    publish(env, "c.test", "c1", redirect="https://mta-sts.a.test/.well-known/mta-sts.txt", status=301)
    publish(env, "d.test", "d1", content_type="text/html")
    publish(env, "e.test", "e1", body_size=10 << 20)
    publish(env, "f.test", "f1", "version: STSv1\r\nmode: enforce\r\nmax_age: 86400\r\n")  # enforce, no mx
    publish(env, "g.test", "g1", text=False)
    env["zone"].a["mta-sts.g.test"] = "127.0.0.2"  # an HTTP server where HTTPS is due
    plain.serve("g.test")
    publish(env, "h.test", "h1", text=False)
    del env["zone"].a["mta-sts.h.test"]           # no address for the policy host
    start_hook(env, "wrongcert.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test", "h.test")
    want = {"wrongcert.test": "sts-webpki-invalid", "b.test": "sts-policy-fetch-error",
            "c.test": "sts-policy-fetch-error", "d.test": "sts-policy-fetch-error",
            "e.test": "sts-policy-fetch-error", "f.test": "sts-policy-invalid",
            "g.test": "sts-policy-fetch-error", "h.test": "sts-policy-fetch-error"}
    for d, rt in want.items():
        wait_lookup(env, d, status="failed", result_type=rt)
    log = env["pm"].log("mta")
    for d, why in (("b.test", "HTTP 404"), ("c.test", "redirects are not followed"),
                   ("d.test", "not text/plain"), ("e.test", "larger than 65536"), ("f.test", "without mx")):
        assert re.search(rf"event=mta_sts_fetch_failed domain={re.escape(d)} .*{why}", log), (d, log[-3000:])
    assert env["sts"].fetches["mta-sts.c.test"] == 1  # the redirect's target was never asked
    assert not list((env["pm"].state / "mta" / "sts").iterdir())
    assert env["pm"].procs["mta"].poll() is None   # and the sandboxed process is alive


def test_a_silent_policy_host_is_given_up_in_bounded_time(sts_env):
    """A policy host that accepts and never answers: FAILED after mta.connect_timeout (2 s
    here; libcurl counts the TLS handshake as part of connecting; the whole fetch has twice
    that), not after the job's deadline."""
    import socket
    env = sts_env
    silent = socket.socket()
    silent.bind(("127.0.0.3", env["sts"].port))
    silent.listen(8)
    try:
        publish(env, "a.test", "id1", text=False)
        env["zone"].a["mta-sts.a.test"] = "127.0.0.3"
        off = start_hook(env, "a.test")
        t0 = time.monotonic()
        r = wait_lookup(env, "a.test", off, timeout=15, status="failed")
        took = time.monotonic() - t0
        assert r["result_type"] == "sts-policy-fetch-error"
        assert 1.5 <= took < 5, took
    finally:
        silent.close()


def test_policy_survives_mta_restart_without_server_or_txt(sts_env):
    """Cached across a restart: with the HTTPS server gone and even the TXT record gone (an
    attacker blocking discovery), the stored policy still applies until its max_age."""
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 86400))
    start_hook(env, "a.test")
    wait_lookup(env, "a.test", status="policy", id="id1")
    env["pm"].stop("mta")
    env["sts"].stop()
    off = start_hook(env, "a.test")
    wait_lookup(env, "a.test", off, status="policy", id="id1", mode="enforce")
    env["pm"].stop("mta")
    del env["zone"].txt["_mta-sts.a.test"]
    off = start_hook(env, "a.test")
    wait_lookup(env, "a.test", off, status="policy", id="id1", mode="enforce")
    assert "event=mta_sts_cache_loaded policies=1" in env["pm"].log("mta")[off:]


def test_new_id_is_fetched_and_a_failed_fetch_keeps_the_old_policy(sts_env):
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 86400))
    off = start_hook(env, "a.test", repeat_ms=150)
    wait_lookup(env, "a.test", off, status="policy", id="id1")
    time.sleep(0.5)  # several lookups with the same id: served from the store
    assert env["sts"].fetches["mta-sts.a.test"] == 1
    publish(env, "a.test", "id2", sts_policy("testing", ["mx2.a.test"], 86400))
    wait_lookup(env, "a.test", off, status="policy", id="id2", mode="testing", mx="mx2.a.test")
    assert env["sts"].fetches["mta-sts.a.test"] == 2
    assert "id id2\n" in store(env, "a.test").read_text()
    # id3 cannot be fetched (500): id2 goes on applying, and id3 is not asked again at once
    publish(env, "a.test", "id3", status=500)
    wait_for(lambda: "event=mta_sts_fetch_failed domain=a.test id=id3" in env["pm"].log("mta"), 10,
             what="the failed fetch")
    assert "cached=id2" in env["pm"].log("mta")
    time.sleep(0.5)
    assert lookups(env, "a.test", off)[-1]["id"] == "id2"
    assert env["sts"].fetches["mta-sts.a.test"] == 3


def test_mode_none_ends_a_stored_policy(sts_env):
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 86400))
    off = start_hook(env, "a.test", repeat_ms=150)
    wait_lookup(env, "a.test", off, status="policy", id="id1")
    publish(env, "a.test", "id2", "version: STSv1\nmode: none\nmax_age: 86400\n")
    wait_lookup(env, "a.test", off, status="none")
    assert "mode: none" in store(env, "a.test").read_text()


def test_max_age_zero_applies_now_and_is_not_kept(sts_env):
    """max_age 0: the policy applies to the lookup that fetched it, and the next lookup
    fetches again (nothing is kept; it also replaced what was stored before)."""
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 0))
    off = start_hook(env, "a.test", repeat_ms=150)
    wait_lookup(env, "a.test", off, status="policy", id="id1", max_age="0")
    wait_for(lambda: env["sts"].fetches["mta-sts.a.test"] >= 3, 10, what="fetches again")
    assert not store(env, "a.test").exists()


def test_a_policy_in_use_is_refreshed_before_it_lapses(sts_env):
    """Past half its max_age, a policy still applies while it is fetched again behind the
    lookups, so a domain mailed all the time never sees its policy expire."""
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 3))
    off = start_hook(env, "a.test", repeat_ms=100)
    wait_lookup(env, "a.test", off, status="policy", id="id1")
    wait_for(lambda: env["sts"].fetches["mta-sts.a.test"] >= 3, 10, what="refreshes")
    assert {r["status"] for r in lookups(env, "a.test", off)} == {"policy"}


def test_max_age_is_honoured(sts_env):
    """A policy of max_age 2 s applies for 2 s; after that, with the server gone, there is no
    policy any more (FAILED, as without MTA-STS), and its file is gone."""
    env = sts_env
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 2))
    off = start_hook(env, "a.test", repeat_ms=150)
    wait_lookup(env, "a.test", off, status="policy", id="id1", max_age="2")
    t0 = time.monotonic()
    env["sts"].stop()
    r = wait_lookup(env, "a.test", off, timeout=10, status="failed")
    assert r["result_type"] == "sts-policy-fetch-error"
    assert time.monotonic() - t0 < 4
    assert not store(env, "a.test").exists()


# ------------------------------------------------------------------ deliveries

def outbound_knows_sts():
    """The policy's enforcement is outbound.c/policy.c's (dane): these tests run once it
    asks sts.h."""
    from pathlib import Path
    src = Path(__file__).resolve().parents[2] / "services" / "mta" / "outbound.c"
    return "mta_sts_lookup" in src.read_text()


needs_outbound = pytest.mark.skipif(not outbound_knows_sts(), reason="outbound.c does not look MTA-STS up yet")


@pytest.fixture
def mail_env(sts_env):
    env = sts_env
    env["port"] = common_port("127.0.0.5", "127.0.0.6")
    env["pm"].configure(mta={"remote_port": env["port"]})
    return env


def peer(env, host, *names, **kw):
    p = TlsPeer(host, env["port"], env["ca"].issue(*names), **kw)
    env["peers"].append(p)
    return p


def start_mta(env):
    env["monkeypatch"].delenv("POSTMESH_TEST_STS_LOOKUP", raising=False)
    env["pm"].start("mta")
    env["queue"] = Dispatcher(env["pm"])
    env["queue"].wait_worker()
    return env["queue"]


def deliver(q, domain):
    job = q.send_job([f"bob@{domain}"], domain, body=b"Subject: sts\r\n\r\nhello\r\n")
    return q.result(job)["results"][0]


@needs_outbound
def test_enforce_defers_an_mx_outside_the_policy(mail_env):
    env = mail_env
    env["zone"].mx["a.test"] = [(10, "mx.evil.test")]
    env["zone"].a["mx.evil.test"] = "127.0.0.5"
    evil = peer(env, "127.0.0.5", "mx.evil.test")
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx.a.test"], 86400))
    r = deliver(start_mta(env), "a.test")
    assert r["status"] == 1 and r["dsn_status"].startswith("4.7."), r  # TEMPFAIL
    assert "mx.evil.test" in r.get("text", "") or "MTA-STS" in r.get("text", ""), r
    assert not evil.messages and not evil.events


@needs_outbound
def test_enforce_delivers_over_verified_tls_to_a_matching_mx(mail_env):
    env = mail_env
    env["zone"].mx["a.test"] = [(10, "mx1.a.test")]
    env["zone"].a["mx1.a.test"] = "127.0.0.6"
    good = peer(env, "127.0.0.6", "mx1.a.test")
    publish(env, "a.test", "id1", sts_policy("enforce", ["*.a.test"], 86400))
    r = deliver(start_mta(env), "a.test")
    assert r["status"] == 0, r
    assert good.messages and good.messages[0]["tls"]
    good.assert_nothing_in_clear()
    assert re.search(r"tls=verified .*sts=enforce", env["pm"].log("mta")), env["pm"].log("mta")[-3000:]


@needs_outbound
def test_enforce_defers_when_the_certificate_does_not_verify(mail_env):
    env = mail_env
    env["zone"].mx["a.test"] = [(10, "mx1.a.test")]
    env["zone"].a["mx1.a.test"] = "127.0.0.6"
    wrong = peer(env, "127.0.0.6", "mx.other.test")  # the CA's, but for another name
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx1.a.test"], 86400))
    r = deliver(start_mta(env), "a.test")
    assert r["status"] == 1 and r["dsn_status"].startswith("4.7."), r
    assert not wrong.messages
    wrong.assert_nothing_in_clear()


@needs_outbound
def test_testing_delivers_and_reports(mail_env):
    """testing: the MX outside the policy still gets the mail, and the job's TLSRPT session
    (the domain publishes a rua) says the STS policy failed for it, with the policy's text
    and mx patterns."""
    env = mail_env
    env["zone"].mx["a.test"] = [(10, "mx.evil.test")]
    env["zone"].a["mx.evil.test"] = "127.0.0.5"
    env["zone"].txt["_smtp._tls.a.test"] = ["v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"]
    evil = peer(env, "127.0.0.5", "mx.evil.test")
    publish(env, "a.test", "id1", sts_policy("testing", ["mx.a.test"], 86400))
    q = start_mta(env)
    job = q.send_job(["bob@a.test"], "a.test", body=b"Subject: sts\r\n\r\nhello\r\n")
    res = q.result(job)
    assert res["results"][0]["status"] == 0, res
    assert evil.messages
    assert re.search(r"event=delivered .*sts=testing", env["pm"].log("mta")), env["pm"].log("mta")[-3000:]
    sessions = res.get("tls_sessions", [])
    assert sessions, res
    s = sessions[0]
    assert s["policy_domain"] == "a.test" and s.get("policy_type") == 1, s  # STS
    assert s.get("mx_host") == ["mx.a.test"], s
    assert "mode: testing" in s.get("policy_strings", []), s
    assert not s.get("success") and s.get("result_type"), s
    assert s.get("rua") == ["mailto:tlsrpt@reports.test"], s


@needs_outbound
def test_requiretls_defers_when_the_policy_cannot_be_fetched(mail_env):
    """(dane) REQUIRETLS, an insecure MX and an MTA-STS TXT whose policy is not served
    (an attacker blocking HTTPS, nothing cached): deferred 4.7.5, not bounced 5.7.10."""
    env = mail_env
    env["zone"].mx["a.test"] = [(10, "mx1.a.test")]
    env["zone"].a["mx1.a.test"] = "127.0.0.6"
    good = peer(env, "127.0.0.6", "mx1.a.test", requiretls=True)
    publish(env, "a.test", "id1", "", status=500)
    q = start_mta(env)
    r = q.result(q.send_job(["bob@a.test"], "a.test", requiretls=True))["results"][0]
    assert (r["status"], r["dsn_status"]) == (1, "4.7.5"), r                     # TEMPFAIL
    assert r["text"].startswith("4.7.5 MTA-STS policy could not be fetched for a.test"), r
    assert not good.events


@needs_outbound
def test_requiretls_at_encrypt_uses_the_enforce_policy(mail_env):
    """(dane) A REQUIRETLS message to a domain at the local level encrypt: its enforce
    MTA-STS policy is still looked up and authenticates the (insecure) MX."""
    env = mail_env
    env["pm"].configure(mta={"tls_level": "encrypt"})
    env["zone"].mx["a.test"] = [(10, "mx1.a.test")]
    env["zone"].a["mx1.a.test"] = "127.0.0.6"
    good = peer(env, "127.0.0.6", "mx1.a.test", requiretls=True)
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx1.a.test"], 86400))
    q = start_mta(env)
    r = q.result(q.send_job(["bob@a.test"], "a.test", requiretls=True))["results"][0]
    assert r["status"] == 0, r
    assert good.messages[0]["tls"] and "REQUIRETLS" in good.messages[0]["mail_options"], good.messages
    assert re.search(r"event=delivered .*tls=verified .*sts=enforce policy=encrypt", env["pm"].log("mta"))


@needs_outbound
def test_concurrent_jobs_share_one_fetch(mail_env):
    """Jobs for one domain at the same moment wait for one fetch; later ones use the store."""
    env = mail_env
    env["zone"].mx["a.test"] = [(10, "mx1.a.test")]
    env["zone"].a["mx1.a.test"] = "127.0.0.6"
    good = peer(env, "127.0.0.6", "mx1.a.test")
    publish(env, "a.test", "id1", sts_policy("enforce", ["mx1.a.test"], 86400))
    q = start_mta(env)
    jobs = [q.send_job([f"u{i}@a.test"], "a.test", body=b"Subject: sts\r\n\r\nhello\r\n") for i in range(4)]
    assert all(q.result(j)["results"][0]["status"] == 0 for j in jobs)
    assert deliver(q, "a.test")["status"] == 0
    assert len(good.messages) == 5 and all(m["tls"] for m in good.messages)
    assert env["sts"].fetches["mta-sts.a.test"] == 1


def test_an_unreadable_ca_bundle_stops_the_mta_with_its_name(sts_env):
    env = sts_env
    env["pm"].configure(mta={"ca_file": str(env["tmp"] / "no-such-ca.pem")})
    with pytest.raises(AssertionError):
        env["pm"].start("mta", timeout=5)
    assert "no-such-ca.pem" in env["pm"].log("mta")
