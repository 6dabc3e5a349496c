"""PROXY protocol v1/v2 on smtpd and pop3d listeners (issue 11), with Debian's HAProxy in
front (`send-proxy-v2` and `send-proxy`, our own instance on free loopback ports) and with
headers built by hand:

- the client address smtpd uses is the one in the header: the connect line, Received:,
  relay policy (trusted_networks holds only 127.0.0.2/32: relay allowed for that client
  through the proxy, refused for 127.0.0.3 through the same proxy), the per-IP AUTH lockout
  (only the client that failed is locked out);
- on a proxy_protocol listener a connection without a header, with a bad one, or from
  outside proxy_networks is closed without a greeting and logged;
- pop3d logs the client's address behind HAProxy and counts connections per client.

Clients pick their loopback source address (127.0.0.2, 127.0.0.3), so the proxy (which
connects from 127.0.0.1) and each client are told apart."""
import base64
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import free_port, wait_for
from pop3_helpers import RawPOP3, add_user as pop3_add_user
from smtpd_helpers import RawSMTP, add_user, client_context, enable_tls, queue_ids, queue_show, wait_log

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not shutil.which("haproxy") and not __import__("os").path.exists(HAPROXY),
                                reason="haproxy (Debian package haproxy) is not installed")

ALICE = "alice@example.test"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


class Client(RawSMTP):
    """RawSMTP from a chosen loopback source address, optionally sending bytes first."""

    def __init__(self, port, source="127.0.0.1", preamble=b"", greet=True, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        if preamble:
            self.sock.sendall(preamble)
        self.buf = b""
        self.greeting = self.reply() if greet else None


def v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst, sport, dport, local=False, tlv=b""):
    if local:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    addrs = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack("!HH", sport, dport)
    block = addrs + tlv
    return V2_SIG + bytes([0x21, 0x11 if fam == socket.AF_INET else 0x21]) + struct.pack("!H", len(block)) + block


class HAProxy:
    """Our own haproxy in the foreground, config in the test's directory; always stopped."""

    def __init__(self, root, routes):
        """routes: {name: (frontend_port, backend "host:port", "send-proxy" | "send-proxy-v2")}."""
        self.ports = {}
        cfg = ["global", "  maxconn 200", "defaults", "  mode tcp", "  timeout connect 5s",
               "  timeout client 30s", "  timeout server 30s"]
        for name, (fport, backend, how) in routes.items():
            self.ports[name] = fport
            cfg += [f"frontend fe_{name}", f"  bind 127.0.0.1:{fport}", f"  default_backend be_{name}",
                    f"backend be_{name}", f"  server s1 {backend} {how}"]
        self.path = root / "haproxy.cfg"
        self.path.write_text("\n".join(cfg) + "\n")
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.path)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(root / "haproxy.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.path)], stdout=self.log, stderr=subprocess.STDOUT)
        for port in self.ports.values():
            wait_for(lambda: self._listening(port), timeout=10, what=f"haproxy on {port}")

    def _listening(self, port):
        if self.proc.poll() is not None:
            raise AssertionError(f"haproxy exited {self.proc.returncode}")
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        return str(port) in out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def proxied(pm):
    """smtpd with a proxy_protocol listener (proxy_networks = 127.0.0.1/32, where HAProxy
    connects from), trusted_networks = 127.0.0.2/32, TLS for AUTH, and HAProxy in front
    with one v2 and one v1 frontend."""
    add_user(pm, ALICE, "secret")
    enable_tls(pm, auth_failures=2, auth_lockout=60, auth_fail_delay_ms=50)
    pport, sport = free_port(), free_port()
    pm.ports["proxied"], pm.ports["proxied_smtps"] = pport, sport
    listen = pm.settings["smtpd"]["listen"] + [
        {"address": f"127.0.0.1:{pport}", "mode": "smtp", "proxy_protocol": True},
        {"address": f"127.0.0.1:{sport}", "mode": "smtps", "proxy_protocol": True}]
    pm.configure(smtpd={"listen": listen}, proxy_networks=["127.0.0.1/32"], trusted_networks=["127.0.0.2/32"])
    pm.start("queue", "smtpd", timeout=20)
    hap = HAProxy(pm.root, {"v2": (free_port(), f"127.0.0.1:{pport}", "send-proxy-v2"),
                            "v1": (free_port(), f"127.0.0.1:{pport}", "send-proxy")})
    pm.haproxy = hap
    yield pm
    hap.stop()


def connects(pm, svc="smtpd"):
    return re.findall(r"event=connect (?:session=\d+ )?client=(\S+)(?: \S+)*? proxy=(\S+)", pm.log(svc))


def send_one(port, source, rcpt):
    """One message through port from source; returns the RCPT reply code (and sends the
    message if it was accepted)."""
    c = Client(port, source)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<someone@remote.test>")[0] == 250
    code, lines = c.cmd(f"RCPT TO:<{rcpt}>")
    if code == 250:
        assert c.cmd("DATA")[0] == 354
        code2, _ = c.cmd(f"Subject: via proxy from {source}\r\n\r\nhello\r\n.")
        assert code2 == 250
    c.cmd("QUIT")
    c.close()
    return code, lines


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_haproxy_client_address_reaches_policy_logs_and_received(proxied, version):
    pm = proxied
    port = pm.haproxy.ports[version]
    # 127.0.0.2 is trusted: it may relay, through the proxy.
    code, _ = send_one(port, "127.0.0.2", "someone@remote.test")
    assert code == 250
    # 127.0.0.3 is not, through the same proxy (the proxy itself is 127.0.0.1).
    code, lines = send_one(port, "127.0.0.3", "someone@remote.test")
    assert code == 554 and "Relay access denied" in lines[0]
    seen = connects(pm)
    clients = {c.rsplit(":", 1)[0] for c, _ in seen}
    assert {"127.0.0.2", "127.0.0.3"} <= clients, seen
    assert all(p.startswith("127.0.0.1:") for _, p in seen)
    ids = queue_ids(pm)
    assert len(ids) == 1
    shown = queue_show(pm, ids[0])
    assert "([127.0.0.2])" in shown, shown
    assert re.search(r"event=queued id=\S+ client=127\.0\.0\.2:\d+", pm.log("smtpd"))


def auth_plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def tls_session(port, source):
    c = Client(port, source)
    assert c.cmd("EHLO client.test")[0] == 250
    c.starttls()
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def test_lockout_hits_only_the_client_behind_the_proxy(proxied):
    pm = proxied
    port = pm.haproxy.ports["v2"]
    bad = tls_session(port, "127.0.0.3")
    for _ in range(2):
        assert bad.cmd(f"AUTH PLAIN {auth_plain(ALICE, 'wrong')}")[0] == 535
    code, lines = bad.cmd(f"AUTH PLAIN {auth_plain(ALICE, 'secret')}")
    assert code == 454, (code, lines)  # locked out, even with the right password
    bad.close()
    # Another client behind the same proxy is not.
    good = tls_session(port, "127.0.0.2")
    assert good.cmd(f"AUTH PLAIN {auth_plain(ALICE, 'secret')}")[0] == 235
    good.close()
    assert "lockout=start" in pm.log("smtpd")
    assert re.search(r"event=auth client=127\.0\.0\.2:\d+ result=ok", pm.log("smtpd")) or \
        "result=ok" in pm.log("smtpd")


def test_hand_built_headers(proxied):
    pm = proxied
    port = pm.ports["proxied"]
    # v2 with a TLV, split over two writes.
    hdr = v2("192.0.2.77", "198.51.100.1", 40001, 25, tlv=b"\x04\x00\x02ab")
    c = Client(port, preamble=hdr[:7], greet=False)
    time.sleep(0.05)  # a second segment: the parser must not care
    c.send(hdr[7:])
    c.greeting = c.reply()
    assert c.greeting[0] == 220
    assert c.cmd("EHLO x.test")[0] == 250
    c.close()
    # v1, IPv6 client.
    c = Client(port, preamble=v1("2001:db8::9", "2001:db8::1", 40002, 25))
    assert c.greeting[0] == 220
    c.close()
    # v2 LOCAL (the proxy's own health check): the connection's own address stands.
    c = Client(port, preamble=v2(None, None, 0, 0, local=True))
    assert c.greeting[0] == 220
    c.close()
    wait_for(lambda: len(connects(pm)) >= 3, what="three proxied connect lines")
    seen = connects(pm)
    assert seen[0][0] == "192.0.2.77:40001"
    assert seen[1][0] == "2001:db8::9:40002"
    assert seen[2][0].startswith("127.0.0.1:")


def test_implicit_tls_hello_in_the_same_segment_as_the_header(proxied):
    """The header and the ClientHello in one write: the octets after the header must stay
    for the TLS handshake (smtps behind a load balancer that sends PROXY, then TLS)."""
    pm = proxied
    sock = socket.create_connection(("127.0.0.1", pm.ports["proxied_smtps"]), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(inc, out, server_hostname="mx.example.test")
    pending = v2("203.0.113.9", "198.51.100.1", 40003, 465)
    deadline = time.monotonic() + 10
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        sock.sendall(pending + out.read())
        pending = b""
        assert time.monotonic() < deadline, "no handshake"
        data = sock.recv(65536)
        assert data, "closed during the handshake"
        inc.write(data)
    if out.pending:
        sock.sendall(out.read())
    greeting = b""
    while b"\r\n" not in greeting:
        try:
            greeting += tls.read(4096)
        except ssl.SSLWantReadError:
            data = sock.recv(65536)
            assert data, "closed before the greeting"
            inc.write(data)
    assert greeting.startswith(b"220 "), greeting
    sock.close()
    wait_for(lambda: any(c == "203.0.113.9:40003" for c, _ in connects(pm)), what="the smtps connect line")
    assert re.search(r"event=connect client=203\.0\.113\.9:40003 mode=smtps", pm.log("smtpd"))


def test_no_header_bad_header_or_foreign_peer_is_refused(proxied):
    pm = proxied
    port = pm.ports["proxied"]
    # A client that waits for the greeting gets none; the connection ends after the timeout.
    c = Client(port, greet=False)
    t0 = time.monotonic()
    assert c.closed_by_server(timeout=8)
    assert c.buf == b""  # no greeting before the header
    assert time.monotonic() - t0 < 6
    wait_log(pm, "smtpd", "reason=timeout")
    # A client that talks SMTP first is closed at once.
    c = Client(port, preamble=b"EHLO straight.test\r\n", greet=False)
    assert c.closed_by_server(timeout=2)
    assert c.buf == b""
    wait_log(pm, "smtpd", "reason=bad_header error=bad_signature")
    # A header from outside proxy_networks is refused, however good it is.
    c = Client(port, source="127.0.0.5", preamble=v1("192.0.2.1", "192.0.2.2", 1, 25), greet=False)
    assert c.closed_by_server(timeout=2)
    assert c.buf == b""
    wait_log(pm, "smtpd", "reason=not_in_proxy_networks")
    assert not any(cl.startswith("192.0.2.1:") for cl, _ in connects(pm))
    # The ordinary listener is untouched: no header there, and none wanted.
    plain = Client(pm.port("smtp"), source="127.0.0.5")
    assert plain.greeting[0] == 220
    plain.close()


def test_pop3d_behind_haproxy(pm):
    pop3_add_user(pm, ALICE, "secret")
    pport = free_port()
    listen = pm.settings["pop3d"]["listen"][:1] + [
        {"address": f"127.0.0.1:{pport}", "mode": "pop3", "proxy_protocol": True}]
    pm.configure(pop3d={"listen": listen, "max_connections_per_ip": 1, "plaintext_auth_loopback": True},
                 proxy_networks=["127.0.0.1/32"])
    pm.start("pop3d", timeout=20)
    hap = HAProxy(pm.root, {"v2": (free_port(), f"127.0.0.1:{pport}", "send-proxy-v2")})
    try:
        port = hap.ports["v2"]

        def pop_from(source):
            s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
            r = RawPOP3.__new__(RawPOP3)
            r.sock, r.buf = s, b""
            return r

        first = pop_from("127.0.0.2")
        assert first.line().startswith(b"+OK")
        assert first.cmd(f"USER {ALICE}").startswith(b"+OK")
        assert first.cmd("PASS secret").startswith(b"+OK")
        # The per-address cap counts 127.0.0.2, not the proxy: another client still gets in.
        other = pop_from("127.0.0.3")
        assert other.line().startswith(b"+OK")
        again = pop_from("127.0.0.2")
        assert again.line().startswith(b"-ERR [SYS/TEMP] too many connections from your address")
        seen = connects(pm, "pop3d")
        assert [c.rsplit(":", 1)[0] for c, _ in seen][:2] == ["127.0.0.2", "127.0.0.3"], seen
        # the refusal reaches the client before its log line reaches the log
        refusal = wait_for(lambda: re.search(r"event=connection_refused[^\n]*", pm.log("pop3d")), timeout=5,
                           what="pop3d's connection_refused line")
        assert "client=127.0.0.2" in refusal.group(0)
        for r in (first, other, again):
            r.close()
    finally:
        hap.stop()


@pytest.mark.parametrize("listener", ["proxied", "proxied_smtps"])
def test_a_client_gone_right_after_the_header_leaves_no_session(proxied, listener):
    """HAProxy's health check with check-send-proxy: a v2 LOCAL header, then close. Every
    such connection must end its session (a leak would fill the per-IP limit of the
    proxy's own address and hold up a drain)."""
    pm = proxied
    port = pm.ports[listener]
    before = pm.log("smtpd").count("event=disconnect")
    n = 5
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(v2("0.0.0.0", "0.0.0.0", 0, 0, local=True))
        s.close()
    wait_for(lambda: pm.log("smtpd").count("event=disconnect") - before >= n, timeout=10,
             what=f"{n} disconnects after header-then-close on {listener}")
    # and smtpd still serves the proxy's own address (not counted full)
    c = Client(port if listener == "proxied" else pm.ports["proxied"], preamble=v2("127.0.0.9", "127.0.0.1", 4000, 25))
    assert c.greeting[0] == 220
    c.close()
