"""The outbound-TLS tests' own peers (tls_peers.py) do what they claim, checked with Python's
ssl/smtplib and the openssl CLI: no Postmesh service involved."""
import hashlib
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import wait_for
from tls_peers import (SmtpClient, StsServer, TestCA, TlsPeer, common_port, https_get, self_signed, sts_policy,
                       tlsa, tlsa_owner)

MSG = b"Subject: t\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def peers():
    started = []
    yield started
    for p in started:
        p.stop()


def verify(ca_file, issued, name):
    """Handshake of a verifying client (ca_file, server name) against a server presenting
    issued: None when it verifies, else the error text."""
    server_ctx = issued.server_context()
    client_ctx = ssl.create_default_context(cafile=str(ca_file))
    # memory BIOs: pump bytes between the two ends until both are done or the client fails
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    srv = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    cli = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    done = {"c": False, "s": False}
    for _ in range(20):
        for side, obj in (("c", cli), ("s", srv)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                if side == "c":
                    return str(e)
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done["c"] and done["s"]:
            return None
    return "handshake did not finish"


def test_ca_issues_what_verifies_and_what_does_not(ca, tmp_path):
    good = ca.issue("mx.a.test", "mx2.a.test")
    assert verify(ca.cert, good, "mx.a.test") is None
    assert verify(ca.cert, good, "mx2.a.test") is None
    assert "hostname mismatch" in verify(ca.cert, good, "mx.b.test") or "match" in verify(ca.cert, good, "mx.b.test")
    assert "expired" in verify(ca.cert, ca.issue("mx.a.test", expired=True), "mx.a.test")
    assert "not yet valid" in verify(ca.cert, ca.issue("mx.a.test", not_yet_valid=True), "mx.a.test")
    assert "self" in verify(ca.cert, self_signed(tmp_path, "mx.a.test"), "mx.a.test")
    other_ca = TestCA(tmp_path, name="Other CA")
    assert "self-signed certificate in certificate chain" in verify(ca.cert, other_ca.issue("mx.a.test"), "mx.a.test")
    rsa = ca.issue("mx.rsa.test", key="rsa")
    assert verify(ca.cert, rsa, "mx.rsa.test") is None
    text = subprocess.run(["openssl", "x509", "-in", str(rsa.cert), "-noout", "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert "rsaEncryption" in text and "DNS:mx.rsa.test" in text and "CA:FALSE" in text


def test_tlsa_matches_openssl(ca):
    leaf = ca.issue("mx.t.test")

    def ossl(*cmds):
        out = None
        for cmd in cmds:
            out = subprocess.run(cmd, input=out, capture_output=True, check=True).stdout
        return out
    spki = ossl(["openssl", "x509", "-in", str(leaf.cert), "-pubkey", "-noout"],
                ["openssl", "pkey", "-pubin", "-outform", "DER"])
    der = ossl(["openssl", "x509", "-in", str(leaf.cert), "-outform", "DER"])
    ca_der = ossl(["openssl", "x509", "-in", str(ca.cert), "-outform", "DER"])
    assert leaf.tlsa() == "3 1 1 " + hashlib.sha256(spki).hexdigest().upper()
    assert tlsa(leaf.cert, 3, 0, 1) == "3 0 1 " + hashlib.sha256(der).hexdigest().upper()
    assert tlsa(leaf, 3, 1, 2) == "3 1 2 " + hashlib.sha512(spki).hexdigest().upper()
    assert tlsa(leaf, 3, 1, 0) == "3 1 0 " + spki.hex().upper()
    assert ca.tlsa() == "2 0 1 " + hashlib.sha256(ca_der).hexdigest().upper()
    assert ca.tlsa(2, 1, 1) != ca.tlsa()
    assert ca.issue("mx.t.test").tlsa() != leaf.tlsa()     # a new key, another record
    assert tlsa_owner("mx.t.test.") == "_25._tcp.mx.t.test"
    # the chain a peer serves carries the CA (DANE-TA needs to see it)
    assert leaf.chain.read_text().count("BEGIN CERTIFICATE") == 2


def test_peer_offers_starttls_and_records_tls(ca, peers):
    hosts = ("127.0.0.2", "127.0.0.3")
    port = common_port(*hosts)
    a = TlsPeer(hosts[0], port, ca.issue("mx.a.test"), requiretls=True)
    peers.append(a)
    b = TlsPeer(hosts[1], port, ca.issue("mx.b.test"))
    peers.append(b)
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    with SmtpClient(hosts[0], port, "mx.a.test") as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls") and not c.has_extn("requiretls")
        c.starttls(context=ctx)
        c.ehlo("client.test")
        assert c.has_extn("requiretls")
        c.sendmail("s@client.test", ["r@a.test"], MSG, mail_options=["REQUIRETLS", "BODY=8BITMIME"])
    m, = a.messages
    assert m["tls"] and m["tls_version"].startswith("TLSv1.") and m["cipher"]
    assert "REQUIRETLS" in m["mail_options"] and "BODY=8BITMIME" in m["mail_options"]
    assert m["rcpt_tos"] == ["r@a.test"] and m["peer"] == "127.0.0.1"
    assert a.sni == ["mx.a.test"] and not a.clear_mail
    a.assert_nothing_in_clear()
    # the other peer on the same port: its own certificate, no REQUIRETLS
    with SmtpClient(hosts[1], port, "mx.b.test") as c:
        c.starttls(context=ctx)
        c.ehlo("client.test")
        assert not c.has_extn("requiretls")
        with pytest.raises(smtplib.SMTPSenderRefused):
            c.sendmail("s@client.test", ["r@b.test"], MSG, mail_options=["REQUIRETLS"])
        c.rset()
        c.sendmail("s@client.test", ["r@b.test"], MSG)
    assert b.messages[0]["tls"] and "REQUIRETLS" not in b.messages[0]["mail_options"]


def test_peer_stripped_starttls(ca, peers):
    port = common_port("127.0.0.2")
    p = TlsPeer("127.0.0.2", port, ca.issue("mx.a.test"), starttls="none", requiretls=True)
    peers.append(p)
    with smtplib.SMTP("127.0.0.2", port, timeout=5) as c:
        c.ehlo("client.test")
        assert not c.has_extn("starttls") and not c.has_extn("requiretls")
        assert c.docmd("STARTTLS")[0] == 500
        c.sendmail("s@client.test", ["r@a.test"], MSG)
    assert [m["tls"] for m in p.messages] == [False]
    assert len(p.clear_mail) == 1
    with pytest.raises(AssertionError):
        p.assert_nothing_in_clear()


def test_peer_refuses_starttls(ca, peers):
    port = common_port("127.0.0.2")
    p = TlsPeer("127.0.0.2", port, ca.issue("mx.a.test"), starttls="refuse")
    peers.append(p)
    with smtplib.SMTP("127.0.0.2", port, timeout=5) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        with pytest.raises(smtplib.SMTPResponseException) as e:
            c.starttls()
        assert e.value.smtp_code == 454
    assert [e["command"] for e in p.events] == ["EHLO", "STARTTLS"]


@pytest.mark.parametrize("mode", ["close", "tls1", "plaintext"])
def test_peer_broken_handshakes(ca, peers, mode):
    port = common_port("127.0.0.2")
    p = TlsPeer("127.0.0.2", port, ca.issue("mx.a.test"), starttls=mode)
    peers.append(p)
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    with SmtpClient("127.0.0.2", port, "mx.a.test") as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
            c.starttls(context=ctx)
    assert p.commands("STARTTLS") and not p.messages


def test_peer_plaintext_after_starttls_goes_on_in_clear(ca, peers):
    """What the "plaintext" attacker does when a client ignores the failed handshake."""
    port = common_port("127.0.0.2")
    p = TlsPeer("127.0.0.2", port, ca.issue("mx.a.test"), starttls="plaintext")
    peers.append(p)
    with socket.create_connection(("127.0.0.2", port), timeout=5) as s:
        f = s.makefile("rwb")

        def cmd(line):
            f.write(line + b"\r\n")
            f.flush()
            replies = [f.readline()]
            while replies[-1][3:4] == b"-":
                replies.append(f.readline())
            return replies
        assert f.readline().startswith(b"220")
        assert any(b"STARTTLS" in r for r in cmd(b"EHLO client.test"))
        assert cmd(b"STARTTLS")[0].startswith(b"220")
        f.write(b"\x16\x03\x01\x00\x05hello")   # stands for a ClientHello
        f.flush()
        assert f.readline().startswith(b"250 ")
        assert cmd(b"MAIL FROM:<s@client.test>")[0].startswith(b"250")
    assert len(p.clear_mail) == 1


def test_peer_injects_a_reply_after_the_220(ca, peers):
    port = common_port("127.0.0.2")
    p = TlsPeer("127.0.0.2", port, ca.issue("mx.a.test"), starttls="inject")
    peers.append(p)
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    with socket.create_connection(("127.0.0.2", port), timeout=5) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
        assert f.readline() == b"250 2.0.0 injected in the clear\r\n"   # in the clear, before TLS
        with ctx.wrap_socket(s, server_hostname="mx.a.test") as t:
            t.sendall(b"EHLO client.test\r\n")
            assert t.recv(4096).startswith(b"250-")
    assert [e["tls"] for e in p.commands("EHLO")] == [True]


def test_peer_tls_versions(ca, peers):
    port = common_port("127.0.0.2")
    p = TlsPeer("127.0.0.2", port, ca.issue("mx.a.test"),
                versions=(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2))
    peers.append(p)
    with SmtpClient("127.0.0.2", port, "mx.a.test") as c:
        c.starttls(context=ssl.create_default_context(cafile=str(ca.cert)))
        c.sendmail("s@client.test", ["r@a.test"], MSG)
    assert p.messages[0]["tls_version"] == "TLSv1.2"


@pytest.fixture
def sts(ca):
    srv = StsServer(ca.issue("mta-sts.a.test", "mta-sts.b.test"), certs={"mta-sts.bad.test": ca.issue("other.test")})
    yield srv
    srv.stop()


def test_sts_server_serves_policies_per_host(ca, sts):
    sts.serve("a.test", sts_policy("enforce", ["mx.a.test"], 3600))
    sts.serve("mta-sts.b.test", sts_policy("testing"), content_type="text/plain; charset=utf-8")
    status, headers, body = https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert)
    assert status == 200 and headers["content-type"] == "text/plain"
    assert body == b"version: STSv1\r\nmode: enforce\r\nmx: mx.a.test\r\nmax_age: 3600\r\n"
    status, headers, body = https_get(sts.host, sts.port, "mta-sts.b.test", ca.cert)
    assert status == 200 and b"mode: testing" in body and "charset" in headers["content-type"]
    assert https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert, path="/other")[0] == 404
    assert https_get(sts.host, sts.port, "mta-sts.b.test", ca.cert)[0] == 200
    assert sts.fetches == {"mta-sts.a.test": 1, "mta-sts.b.test": 2} and sts.connections == 4
    assert "mta-sts.a.test" in sts.sni
    sts.forget("a.test")
    assert https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert)[0] == 404


def test_sts_server_hostile_modes(ca, sts):
    sts.serve("a.test", content_type="text/html")
    assert https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert)[1]["content-type"] == "text/html"
    sts.serve("a.test", redirect="https://mta-sts.b.test/.well-known/mta-sts.txt")
    status, headers, body = https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert)
    assert status == 302 and headers["location"].startswith("https://mta-sts.b.test/") and body == b""
    status, _, body = https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert, path="/.well-known/mta-sts.txt?moved")
    assert status == 200 and body.startswith(b"version: STSv1")
    sts.serve("a.test", body_size=10 << 20)
    status, headers, body = https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert)
    assert status == 200 and len(body) == 10 << 20 and body.startswith(b"version: STSv1\r\n")
    assert headers["content-length"] == str(10 << 20)
    sts.serve("a.test", body_size=1 << 20, send_length=False)
    status, headers, body = https_get(sts.host, sts.port, "mta-sts.a.test", ca.cert)
    assert "content-length" not in headers and len(body) == 1 << 20
    sts.serve("bad.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(sts.host, sts.port, "mta-sts.bad.test", ca.cert)
    wait_for(lambda: sts.handshake_errors, 5, what="the server to see the failed handshake")


def test_sts_server_stalls(ca, sts):
    sts.serve("a.test")
    sts.stall = 30
    with socket.create_connection((sts.host, sts.port), timeout=5) as s:
        s.settimeout(0.5)
        s.sendall(b"\x16\x03\x01\x00\x05hello")
        with pytest.raises(socket.timeout):
            s.recv(1)
    assert sts.connections == 1 and not sts.requests


def test_sts_server_plain_http():
    srv = StsServer(tls=False)
    try:
        srv.serve("a.test", sts_policy("none"))
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.a.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.") and b"mode: none" in data
        assert srv.fetches["mta-sts.a.test"] == 1 and srv.url_base.startswith("http://")
    finally:
        srv.stop()
