"""postmesh-resolver against a real DNS server on loopback, asked over the bus the way the
mta and smtpd ask (a DEALER with request ids, the mta's CurveZMQ key)."""
import subprocess
import time

import pytest

import remote_proto as rp
from conftest import BIN, REPO, free_udp_port
from remote_peers import Dnsmasq, ResolverClient, ScriptedDns, a_rdata, mx_rdata

DKIM_KEY = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64] for i in range(392))
ZONE = [
    "--mx-host=remote.test,mx1.remote.test,10", "--mx-host=remote.test,mx2.remote.test,20",
    "--host-record=mx1.remote.test,127.0.0.2", "--host-record=mx2.remote.test,127.0.0.3,::1",
    "--host-record=implicit.test,127.0.0.4",
    "--dns-rr=nullmx.test,15,000000",                       # MX 0 "." (RFC 7505)
    "--mx-host=shuffle.test,a.shuffle.test,10", "--mx-host=shuffle.test,b.shuffle.test,10",
    "--mx-host=shuffle.test,c.shuffle.test,10", "--mx-host=shuffle.test,z.shuffle.test,50",
    "--host-record=a.shuffle.test,127.0.1.1", "--host-record=b.shuffle.test,127.0.1.2",
    "--host-record=c.shuffle.test,127.0.1.3", "--host-record=z.shuffle.test,127.0.1.9",
    "--mx-host=noaddr.test,ghost.noaddr.test,10",           # MX host without any address
    "--ptr-record=2.0.0.127.in-addr.arpa,mx1.remote.test", "--local=/127.in-addr.arpa/",
    # TXT: several strings in one record, two records, a DKIM key longer than one string,
    # names with underscores, a DNSBL entry (A and TXT) and a name with an A but no TXT.
    # (on dnsmasq's command line: no quotes; a comma starts the next string)
    "--txt-record=_spf.txt.test,v=spf1 ip4:192.0.2.0/24 in,clude:_spf2.txt,.test -all",
    "--txt-record=two.txt.test,first", "--txt-record=two.txt.test,second",
    f"--txt-record=s._domainkey.txt.test,v=DKIM1; k=rsa; p={DKIM_KEY[:200]},{DKIM_KEY[200:]}",
    "--txt-record=_dmarc.txt.test,v=DMARC1; p=reject",
    "--host-record=2.0.0.127.zen.txt.test,127.0.0.2", "--txt-record=2.0.0.127.zen.txt.test,listed: see x",
    "--host-record=noText.txt.test,127.0.0.5",
]


@pytest.fixture
def dns(tmp_path):
    dead = free_udp_port()  # nothing listens: dnsmasq's forwards there never come back
    server = Dnsmasq(tmp_path, ZONE + [f"--server=/slow.test/127.0.0.1#{dead}"])
    yield server
    server.stop()


@pytest.fixture
def resolver(pm, dns):
    pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 2, "negative_ttl": 60})
    pm.start("resolver")
    client = ResolverClient(pm)
    yield client
    client.close()


def hosts(reply):
    return [(h["name"], h["preference"], h["addresses"]) for h in reply["hosts"]]


def test_codec_agrees_with_protoc():
    """The tests' protobuf codec encodes what protoc-c itself decodes."""
    frame = rp.bus(7, job={"job_id": 9, "queue_id": "Q1", "kind": rp.WORKER_MTA, "body": b"x\r\n",
                           "recipients": [{"index": 3, "address": "b@remote.test"}]})
    out = subprocess.run(["protoc-c", f"--proto_path={REPO / 'proto'}", "--decode=postmesh.BusMessage",
                          str(REPO / "proto" / "postmesh.proto")], input=frame, capture_output=True, timeout=30)
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr
    for expected in ("version: 1", "request_id: 7", "job_id: 9", 'queue_id: "Q1"', "kind: WORKER_MTA",
                     "index: 3", 'address: "b@remote.test"', 'body: "x\\r\\n"'):
        assert expected in text
    assert rp.unbus(frame)["job"]["recipients"][0]["address"] == "b@remote.test"


def test_mx_hosts_in_preference_order_with_addresses(resolver):
    r = resolver.resolve("remote.test")
    assert r["status"] == rp.OK
    assert hosts(r) == [("mx1.remote.test", 10, ["127.0.0.2"]), ("mx2.remote.test", 20, ["127.0.0.3", "::1"])]
    # Case and a trailing dot do not matter.
    assert hosts(resolver.resolve("Remote.TEST.")) == hosts(r)


def test_equal_preferences_are_shuffled(resolver):
    firsts, lasts = set(), set()
    for _ in range(30):
        order = [h[0] for h in hosts(resolver.resolve("shuffle.test"))]
        assert sorted(order[:3]) == ["a.shuffle.test", "b.shuffle.test", "c.shuffle.test"]
        firsts.add(order[0])
        lasts.add(order[3])
    assert lasts == {"z.shuffle.test"}      # the less preferred host always comes last
    assert len(firsts) >= 2                  # 3 equal hosts: a fixed order has odds 3^-29


def test_implicit_mx_is_the_domain_itself(resolver):
    r = resolver.resolve("implicit.test")
    assert r["status"] == rp.OK
    assert hosts(r) == [("implicit.test", 0, ["127.0.0.4"])]


def test_null_mx_is_permanent_5_1_10(resolver):
    r = resolver.resolve("nullmx.test")
    assert (r["status"], r["dsn_status"]) == (rp.PERMFAIL, "5.1.10")
    assert r["hosts"] == []


def test_nxdomain_is_permanent_5_1_2(resolver):
    r = resolver.resolve("no-such-domain.test")
    assert (r["status"], r["dsn_status"]) == (rp.PERMFAIL, "5.1.2")
    assert "NXDOMAIN" in r["text"]


def test_mx_host_without_address_is_not_usable(resolver):
    r = resolver.resolve("noaddr.test")
    assert r["status"] == rp.PERMFAIL and r["dsn_status"].startswith("5.")


def test_timeout_is_temporary_and_does_not_block_other_lookups(resolver):
    slow = resolver.ask("slow.test")        # forwarded to a server that never answers
    fast = [resolver.ask("remote.test"), resolver.ask("implicit.test"), resolver.ask("nullmx.test")]
    got = resolver.replies(4, timeout=20)
    for rid in fast:
        assert got[rid][1] < 1.0, "a lookup waited behind the slow one"
    reply, seconds = got[slow]
    assert (reply["status"], reply["dsn_status"]) == (rp.TEMPFAIL, "4.4.3")
    assert 1.5 <= seconds < 6, seconds      # resolver.timeout = 2


def test_ptr_and_address_lookups(resolver):
    r = resolver.resolve("127.0.0.2", rp.PTR)
    assert r["status"] == rp.OK and r["names"] == ["mx1.remote.test"]
    r = resolver.resolve("mx2.remote.test", rp.A)
    assert r["status"] == rp.OK and r["hosts"][0]["addresses"] == ["127.0.0.3", "::1"]
    assert resolver.resolve("127.0.0.77", rp.PTR)["status"] == rp.PERMFAIL
    assert resolver.resolve("not an ip", rp.PTR)["status"] == rp.PERMFAIL


def test_txt_records(resolver):
    """TXT: one text per record, its character-strings joined; a DKIM key longer than one
    string whole; NXDOMAIN is PERMFAIL 5.1.2, NODATA an OK without texts; every reply says
    how long it may be kept."""
    r = resolver.resolve("_spf.txt.test", rp.TXT)
    assert r["status"] == rp.OK and r["texts"] == ["v=spf1 ip4:192.0.2.0/24 include:_spf2.txt.test -all"], r
    assert 0 < r["ttl"] <= 300
    assert sorted(resolver.resolve("two.txt.test", rp.TXT)["texts"]) == ["first", "second"]
    r = resolver.resolve("s._domainkey.txt.test", rp.TXT)
    assert r["texts"] == [f"v=DKIM1; k=rsa; p={DKIM_KEY}"], r
    assert resolver.resolve("_DMARC.txt.test.", rp.TXT)["texts"] == ["v=DMARC1; p=reject"]
    gone = resolver.resolve("_dmarc.gone.txt.test", rp.TXT)
    assert (gone["status"], gone["dsn_status"], gone["texts"]) == (rp.PERMFAIL, "5.1.2", []), gone
    assert 0 < gone["ttl"] <= 60                             # negative_ttl = 60
    nodata = resolver.resolve("notext.txt.test", rp.TXT)
    assert (nodata["status"], nodata["texts"]) == (rp.OK, []), nodata
    assert 0 < nodata["ttl"] <= 60


def test_dnsbl_names_for_a_and_txt(resolver):
    """A DNSBL question is an A question of a name with the address reversed; listed: its
    address in hosts[0]; not listed: NXDOMAIN (5.1.2); the reason in its TXT."""
    r = resolver.resolve("2.0.0.127.zen.txt.test", rp.A)
    assert r["status"] == rp.OK and r["hosts"][0]["addresses"] == ["127.0.0.2"] and r["ttl"] > 0, r
    r = resolver.resolve("3.0.0.127.zen.txt.test", rp.A)
    assert (r["status"], r["dsn_status"]) == (rp.PERMFAIL, "5.1.2") and r["ttl"] > 0, r
    assert resolver.resolve("2.0.0.127.zen.txt.test", rp.TXT)["texts"] == ["listed: see x"]
    # The name exists (it has an A) without AAAA: still OK with its address; a name with
    # neither is NODATA: OK without hosts.
    r = resolver.resolve("_spf.txt.test", rp.A)
    assert (r["status"], r["hosts"]) == (rp.OK, []), r


def test_cache_honours_ttl_and_negative_ttl(pm, tmp_path):
    dns = Dnsmasq(tmp_path, ZONE, ttl=3)
    try:
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 1, "negative_ttl": 3})
        pm.start("resolver")
        client = ResolverClient(pm)
        assert client.resolve("remote.test")["status"] == rp.OK
        assert client.resolve("gone.test")["status"] == rp.PERMFAIL
        t0 = time.monotonic()
    finally:
        dns.stop()
    # The server is gone: answers within their TTL come from the cache ...
    assert hosts(client.resolve("remote.test"))[0][0] == "mx1.remote.test"
    assert client.resolve("gone.test")["dsn_status"] == "5.1.2"
    assert time.monotonic() - t0 < 2.5, "too slow to prove anything about a 3 s TTL"
    # ... and expire with it.
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    assert client.resolve("remote.test")["status"] == rp.TEMPFAIL
    assert client.resolve("gone.test")["status"] == rp.TEMPFAIL
    client.close()


def scripted(qname, qtype, tcp):
    """servfail.test fails; big.test only answers over TCP; forged.test answers for another
    name; anything else under .test has no data."""
    MX, A = 15, 1
    if qname == "servfail.test":
        return 2, [], False
    if qname == "big.test" and qtype == MX:
        return (0, [("big.test", MX, 300, mx_rdata(10, "mx1.big.test"))], False) if tcp else (0, [], True)
    if qname == "mx1.big.test" and qtype == A:
        return 0, [("mx1.big.test", A, 300, a_rdata("127.0.0.9"))], False
    if qname == "forged.test":
        return 0, [("other.test", MX, 300, mx_rdata(10, "evil.test"))], False
    if qname == "evil.test" and qtype == A:   # believing the forgery would make it usable
        return 0, [("evil.test", A, 300, a_rdata("127.0.0.66"))], False
    return 0, [], False


def test_servfail_truncation_and_forged_answers(pm):
    ns = ScriptedDns(scripted)
    try:
        pm.configure(resolver={"nameservers": [ns.nameserver], "timeout": 2})
        pm.start("resolver")
        client = ResolverClient(pm)
        r = client.resolve("servfail.test")
        assert (r["status"], r["dsn_status"]) == (rp.TEMPFAIL, "4.4.3")
        assert "SERVFAIL" in r["text"]
        # A truncated UDP answer is asked again over TCP.
        assert hosts(client.resolve("big.test")) == [("mx1.big.test", 10, ["127.0.0.9"])]
        # Records for a name that was not asked about are not believed.
        r = client.resolve("forged.test")      # no MX of its own, no address: unusable
        assert (r["status"], r["hosts"]) == (rp.PERMFAIL, [])
        assert "evil" not in r["text"]
        client.close()
    finally:
        ns.stop()


def test_next_nameserver_when_the_first_is_dead(pm, dns):
    dead = free_udp_port()
    pm.configure(resolver={"nameservers": [f"127.0.0.1:{dead}", dns.nameserver], "timeout": 3})
    pm.start("resolver")
    client = ResolverClient(pm)
    t0 = time.monotonic()
    assert client.resolve("remote.test")["status"] == rp.OK
    assert time.monotonic() - t0 < 2.5
    client.close()


def test_hostile_requests_do_not_hurt(resolver, pm):
    bad = ["", ".", "a..b", "x" * 300, "bad name.test", "évil.test", "a" * 64 + ".test", "x@y.test"]
    ids = [resolver.ask(n) for n in bad]
    resolver.sock.send(b"\xff\xfe garbage")                      # undecodable frame
    resolver.sock.send(rp.bus(999, credit={"kind": 2, "credits": 5}))  # wrong message
    for rid, (reply, _) in resolver.replies(len(ids)).items():
        assert reply["status"] == rp.PERMFAIL, (bad[rid - 1], reply)
    assert resolver.resolve("remote.test")["status"] == rp.OK
    assert pm.procs["resolver"].poll() is None


def test_bad_nameserver_config_is_refused(pm):
    pm.configure(resolver={"nameservers": ["dns.example.net"]})
    r = subprocess.run([str(BIN / "postmesh-resolver"), "-c", str(pm.conf_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "resolver.nameservers" in r.stderr
