"""Peers for the outbound-TLS tests (DANE, MTA-STS, per-domain levels, REQUIRETLS, TLSRPT),
all on loopback and made by the test itself:

- TestCA: a certificate authority made with the openssl CLI; issues certificates for DNS
  names (valid, expired, not yet valid), and self_signed() makes ones nobody vouches for.
- tlsa(): TLSA rdata ("3 1 1 <hex>") of a certificate for any usage/selector/matching type.
- TlsPeer: an aiosmtpd SMTP server (remote_peers.Recorder underneath) whose STARTTLS can be
  offered, stripped, refused, broken, or answered in plaintext, that can advertise
  REQUIRETLS after TLS, and that records per message whether it came over TLS (version,
  cipher, SNI) and its MAIL FROM parameters, and every MAIL command seen in the clear.
- StsServer: an HTTPS (or plain HTTP) server for MTA-STS policies, one policy per Host
  header, counting fetches, with hostile modes (content type, redirect, huge body, status).

Several peers on 127.0.0.x share one port (remote_peers.common_port), which the mta reaches
as mta.remote_port; the policy server's port is mta.mta_sts_port.
"""
import asyncio
import base64
import hashlib
import http.server
import smtplib
import socket
import ssl
import subprocess
import threading
import warnings
from collections import Counter
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from remote_peers import Recorder, common_port  # noqa: F401  (common_port: re-exported for tests)

# ------------------------------------------------------------------ certificates


def _openssl(*args, input=None):
    r = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{r.stderr.decode(errors='replace')}")
    return r.stdout


def _newkey(path: Path, kind):
    if kind == "rsa":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    else:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))


def _safe(name):
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name)[:60] or "cert"


class Issued:
    """A certificate and its key. cert: the leaf alone; chain: leaf + issuing CA (what a
    server sends, and what DANE-TA(2) needs to see); key: its private key."""

    def __init__(self, cert: Path, key: Path, chain: Path, names):
        self.cert, self.key, self.chain, self.names = cert, key, chain, list(names)

    def pem(self):
        return self.cert.read_text()

    def der(self):
        return ssl.PEM_cert_to_DER_cert(self.pem())

    def tlsa(self, usage=3, selector=1, mtype=1):
        return tlsa(self.cert, usage, selector, mtype)

    def server_context(self, versions=None):
        """An ssl server context presenting this certificate (and its chain)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.chain), str(self.key))
        if versions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version, ctx.maximum_version = versions
        return ctx

    def __repr__(self):
        return f"Issued({self.names}, {self.cert})"


class TestCA:
    """A CA in root/<name>/ made by `openssl req -x509`; issue() signs with `openssl ca`
    (which, unlike `openssl x509 -req` of OpenSSL 3.0, takes explicit validity dates).
    ca.cert is the file for mta.ca_file. key="ec" (P-256, fast) or "rsa"."""

    __test__ = False    # not a pytest test class

    def __init__(self, root: Path, name="Postmesh Test CA", key="ec"):
        self.dir = Path(root) / _safe(name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cert, self.key = self.dir / "ca.crt", self.dir / "ca.key"
        self.count = 0
        (self.dir / "new").mkdir(exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")
        (self.dir / "serial").write_text("1000\n")
        self.conf = self.dir / "ca.cnf"
        self.conf.write_text(f"""[ca]
default_ca = test_ca
[test_ca]
dir = {self.dir}
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
""")
        _newkey(self.key, key)
        _openssl("req", "-x509", "-new", "-key", str(self.key), "-subj", f"/CN={name}", "-days", "30",
                 "-config", str(self.conf), "-extensions", "v3_ca", "-out", str(self.cert))

    def issue(self, *names, expired=False, not_yet_valid=False, days=30, key="ec", cn=None, ca=False):
        """A server certificate for DNS names (subjectAltName; CN = cn or the first name).
        names may be empty (cn only: a certificate a verifier must refuse for any name).
        expired: valid only between 10 and 5 days ago; not_yet_valid: from 5 days on."""
        assert names or cn, "a certificate needs a name"
        self.count += 1
        base = self.dir / f"{self.count:03d}-{_safe(names[0] if names else cn)}"
        keyf, csr, cert, chain, ext = (Path(f"{base}{s}") for s in (".key", ".csr", ".crt", ".chain.pem", ".ext"))
        _newkey(keyf, key)
        _openssl("req", "-new", "-key", str(keyf), "-subj", f"/CN={cn or names[0]}", "-out", str(csr))
        lines = ["[v3]", "basicConstraints = critical, CA:" + ("true" if ca else "false"),
                 "keyUsage = critical, digitalSignature, keyEncipherment" + (", keyCertSign" if ca else ""),
                 "extendedKeyUsage = serverAuth, clientAuth",
                 "authorityKeyIdentifier = keyid"]
        if names:
            lines.append("subjectAltName = " + ", ".join(f"DNS:{n}" for n in names))
        ext.write_text("\n".join(lines) + "\n")
        if expired:
            dates = ["-startdate", _utc(-10), "-enddate", _utc(-5)]
        elif not_yet_valid:
            dates = ["-startdate", _utc(5), "-enddate", _utc(10)]
        else:
            dates = ["-startdate", _utc(-1), "-enddate", _utc(days)]
        _openssl("ca", "-batch", "-notext", "-config", str(self.conf), "-in", str(csr), "-out", str(cert),
                 "-extfile", str(ext), "-extensions", "v3", *dates)
        chain.write_text(cert.read_text() + self.cert.read_text())
        return Issued(cert, keyf, chain, names or [cn])

    def tlsa(self, usage=2, selector=0, mtype=1):
        """TLSA of the CA itself: "2 0 1 <sha256 of the CA certificate>" by default."""
        return tlsa(self.cert, usage, selector, mtype)


def _utc(days):
    import datetime
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return t.strftime("%Y%m%d%H%M%SZ")


def self_signed(root: Path, *names, key="ec"):
    """A certificate for names that signs itself (no CA vouches for it)."""
    assert names
    d = Path(root) / "self-signed"
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    while (d / f"{_safe(names[0])}-{n}.crt").exists():
        n += 1
    keyf, cert = d / f"{_safe(names[0])}-{n}.key", d / f"{_safe(names[0])}-{n}.crt"
    _newkey(keyf, key)
    _openssl("req", "-x509", "-new", "-key", str(keyf), "-subj", f"/CN={names[0]}", "-days", "30",
             "-addext", "subjectAltName = " + ", ".join(f"DNS:{x}" for x in names),
             "-addext", "basicConstraints = critical, CA:false", "-out", str(cert))
    return Issued(cert, keyf, cert, names)


# ------------------------------------------------------------------ TLSA


def spki_der(cert: Path):
    """The SubjectPublicKeyInfo (DER) of the first certificate in a PEM file."""
    pem = _openssl("x509", "-in", str(cert), "-pubkey", "-noout").decode()
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return base64.b64decode(body)


def cert_der(cert: Path):
    return ssl.PEM_cert_to_DER_cert(Path(cert).read_text())


def tlsa(cert, usage=3, selector=1, mtype=1):
    """TLSA rdata in presentation form, "usage selector mtype HEX", of certificate cert (a
    path, or an Issued): selector 0 = the whole certificate, 1 = its public key (SPKI);
    matching type 0 = full data, 1 = SHA-256, 2 = SHA-512."""
    path = cert.cert if isinstance(cert, Issued) else Path(cert)
    data = cert_der(path) if selector == 0 else spki_der(path)
    digest = {0: lambda d: d, 1: lambda d: hashlib.sha256(d).digest(), 2: lambda d: hashlib.sha512(d).digest()}
    return f"{usage} {selector} {mtype} {digest[mtype](data).hex().upper()}"


def tlsa_owner(host, port=25):
    """The TLSA owner name for an MX host: _25._tcp.<host>."""
    return f"_{port}._tcp.{host.rstrip('.')}"


# ------------------------------------------------------------------ SMTP peer

STARTTLS_MODES = ("offer", "none", "refuse", "close", "tls1", "plaintext", "inject")


class TlsRecorder(Recorder):
    """Recorder that also notes, per message, the TLS it came over, and every SMTP command
    with whether it was in the clear (events: dicts with peer, command, arg, tls)."""

    def __init__(self, starttls="offer", requiretls=False, refuse_reply="454 4.7.0 TLS not available due to temporary reason"):
        super().__init__()
        assert starttls in STARTTLS_MODES, starttls
        self.starttls = starttls
        self.requiretls = requiretls
        self.refuse_reply = refuse_reply
        self.injected = "250 2.0.0 injected in the clear"
        self.events = []
        self.sni = []

    def event(self, server, command, arg=""):
        with self.lock:
            self.events.append({"peer": (server.session.peer or ("?",))[0], "command": command,
                                "arg": arg, "tls": server.session.ssl is not None})

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.starttls == "none":
            responses = [r for r in responses if r[4:].upper() != "STARTTLS"]
        if self.requiretls and session.ssl is not None:
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            sslobj = session.ssl.get("ssl_object") if session.ssl else None
            self.messages.append({
                "mail_from": envelope.mail_from,
                "mail_options": list(envelope.mail_options),
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": envelope.original_content or envelope.content,
                "tls": sslobj is not None,
                "tls_version": sslobj.version() if sslobj else None,
                "cipher": sslobj.cipher()[0] if sslobj else None,
                "helo": getattr(session, "host_name", None),
                "peer": session.peer[0] if session.peer else None,
            })
        return "250 2.0.0 Ok: queued as TLSPEER"


class _TlsSmtp(SMTP):
    """aiosmtpd's SMTP with the STARTTLS variants and REQUIRETLS of TlsRecorder."""

    async def smtp_EHLO(self, hostname):
        self.event_handler.event(self, "EHLO", hostname)
        await super().smtp_EHLO(hostname)

    async def smtp_STARTTLS(self, arg):
        h = self.event_handler
        h.event(self, "STARTTLS", arg)
        if h.starttls == "none":
            return await self.push('500 Error: command "STARTTLS" not recognized')
        if h.starttls == "refuse":
            return await self.push(h.refuse_reply)
        if self._tls_protocol:
            return await self.push("503 5.5.1 TLS already active")
        if h.starttls == "close":       # 220, then the connection drops before any handshake
            await self.push("220 2.0.0 Ready to start TLS")
            self.transport.close()
            return
        if h.starttls == "plaintext":   # 220, swallow the ClientHello, answer in clear, go on in clear
            await self.push("220 2.0.0 Ready to start TLS")
            try:
                await asyncio.wait_for(self._reader.read(16384), 5)
            except (asyncio.TimeoutError, OSError):
                pass
            return await self.push("250 2.0.0 Ok")
        if h.starttls == "inject":      # the 220 and, in the same segment, a reply in clear
            plain_push = self.push

            async def push_injected(status):
                await plain_push(status + "\r\n" + h.injected)
            self.push = push_injected
            try:
                return await super().smtp_STARTTLS(arg)
            finally:
                del self.push
        await super().smtp_STARTTLS(arg)

    async def smtp_MAIL(self, arg):
        h = self.event_handler
        h.event(self, "MAIL", arg or "")
        rest = arg or ""
        rest = rest[rest.find(">") + 1:] if ">" in rest else " ".join(rest.split()[1:])
        params = rest.split()
        if h.requiretls and self._tls_protocol and any(p.upper() == "REQUIRETLS" for p in params):
            arg = " ".join(t for t in (arg or "").split() if t.upper() != "REQUIRETLS")
        await super().smtp_MAIL(arg)
        if self.envelope.mail_from is not None:
            self.envelope.mail_options = [p.upper() for p in params]

    async def smtp_RCPT(self, arg):
        self.event_handler.event(self, "RCPT", arg or "")
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg):
        self.event_handler.event(self, "DATA", arg or "")
        await super().smtp_DATA(arg)


class _TlsController(Controller):
    def factory(self):
        return _TlsSmtp(self.handler, **self.SMTP_kwargs)


class TlsPeer:
    """An SMTP server on host:port with certificate cert (an Issued; None: no TLS at all,
    which means starttls="none").

    starttls: "offer" (normal STARTTLS) | "none" (not in EHLO, the command unknown: stripped
    by an attacker) | "refuse" (advertised, answered with refuse_reply, 454 by default) |
    "close" (220, then the connection drops) | "tls1" (220, then a handshake that fails:
    the peer speaks only TLS 1.0) | "plaintext" (220, the ClientHello swallowed, "250 2.0.0
    Ok" in clear, and the session goes on in clear) | "inject" (the STARTTLS response
    injection of the "NO STARTTLS" paper: "220 ..." and handler.injected, a plaintext reply,
    in one write; then TLS as "offer": a client that buffered the extra line must not take it
    for the server's first reply inside TLS).
    requiretls: advertise REQUIRETLS in EHLO after STARTTLS and take MAIL FROM ... REQUIRETLS.
    versions: (min, max) ssl.TLSVersion for the "offer" mode. helo_name: the name in its EHLO
    reply (None: aiosmtpd's default, this machine's FQDN).

    messages: as Recorder plus mail_options, tls, tls_version, cipher, peer.
    events: every EHLO/STARTTLS/MAIL/RCPT/DATA with tls True/False; clear_mail: the MAIL
    commands that came in the clear; sni: server names the clients asked for."""

    def __init__(self, host, port, cert=None, starttls="offer", requiretls=False, versions=None,
                 refuse_reply="454 4.7.0 TLS not available due to temporary reason", helo_name=None):
        if cert is None:
            starttls = "none"
        self.host, self.port, self.cert = host, port, cert
        self.handler = TlsRecorder(starttls, requiretls, refuse_reply)
        ctx = None
        if cert is not None and starttls != "none":
            if starttls == "tls1":
                versions = (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)
            ctx = cert.server_context(versions)

            def note_sni(sslobj, name, _ctx, sni=self.handler.sni):
                sni.append(name)
            ctx.sni_callback = note_sni
        self.controller = _TlsController(self.handler, hostname=host, port=port, tls_context=ctx,
                                         server_hostname=helo_name,
                                         require_starttls=False, enable_SMTPUTF8=True, decode_data=False,
                                         ready_timeout=10)
        self.controller.start()

    @property
    def messages(self):
        return self.handler.messages

    @property
    def events(self):
        return list(self.handler.events)

    @property
    def sni(self):
        return list(self.handler.sni)

    @property
    def clear_mail(self):
        """MAIL commands received in the clear (what a mandatory-TLS sender must never send)."""
        return [e for e in self.events if e["command"] == "MAIL" and not e["tls"]]

    def commands(self, name):
        return [e for e in self.events if e["command"] == name]

    def assert_nothing_in_clear(self):
        assert not self.clear_mail, f"MAIL in the clear: {self.clear_mail}"
        assert not [m for m in self.messages if not m["tls"]], "a message arrived in the clear"

    def stop(self):
        self.controller.stop()


# ------------------------------------------------------------------ MTA-STS policy server


def sts_policy(mode="enforce", mx=("*.example.test",), max_age=86400, version="STSv1"):
    """An RFC 8461 policy body (CRLF lines)."""
    lines = [f"version: {version}", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def sts_txt(policy_id):
    """The _mta-sts.<domain> TXT record's text."""
    return f"v=STSv1; id={policy_id};"


class _Served:
    def __init__(self, text, content_type="text/plain", status=200, redirect=None, body_size=None,
                 send_length=True):
        self.text, self.content_type, self.status = text, content_type, status
        self.redirect, self.body_size, self.send_length = redirect, body_size, send_length


class _StsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestSTS/1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server.owner
        path, _, query = self.path.partition("?")
        host = (self.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        with srv.lock:
            srv.requests.append({"host": host, "path": self.path, "tls": srv.tls,
                                 "user_agent": self.headers.get("User-Agent")})
            served = srv.find(name)
            if path == "/.well-known/mta-sts.txt" and served is not None:
                srv.fetches[name] += 1
        if path != "/.well-known/mta-sts.txt" or served is None:
            return self._send(404, "text/plain", b"not found\n")
        if served.redirect and not query:   # the target (same URL + "?...") serves the text
            self.send_response(served.status if 300 <= served.status < 400 else 302)
            self.send_header("Location", served.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if served.body_size:
            return self._send_huge(served)
        self._send(served.status, served.content_type, served.text.encode())

    def _send(self, status, ctype, body):
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_huge(self, served):
        """served.text, then padding lines up to body_size bytes: a policy that is valid if
        read whole, so a reader that does not stop at the limit would act on it."""
        self.send_response(served.status)
        if served.content_type is not None:
            self.send_header("Content-Type", served.content_type)
        if served.send_length:
            self.send_header("Content-Length", str(served.body_size))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        head = served.text.encode()
        line = b"x-pad: " + b"p" * 1015 + b"\r\n"     # 1 KiB, an unknown key (ignored by a parser)
        sent = 0
        try:
            self.wfile.write(head)
            sent = len(head)
            while sent < served.body_size:
                chunk = (line * 64)[:served.body_size - sent]
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass
        with self.server.owner.lock:
            self.server.owner.huge_sent.append(sent)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        """TLS per connection in the connection's own thread: a client that never finishes
        its handshake holds only that thread."""
        request.settimeout(5)
        with self.owner.lock:
            self.owner.connections += 1
        if self.owner.stall:    # accept, then say nothing (no handshake, no reply) for that long
            self.owner.stopping.wait(self.owner.stall)
            return
        if self.owner.tls:
            try:
                request = self.owner.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.owner.lock:
                    self.owner.handshake_errors.append(str(e))
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass


class StsServer:
    """An MTA-STS policy server on host:port (port None: a free one), HTTPS with cert (an
    Issued) unless tls=False (plain HTTP: what an attacker without a certificate serves).
    certs: {server name: Issued} presented instead for those SNI names (a bad certificate
    for one domain only).

    serve(domain, text, ...) sets what GET /.well-known/mta-sts.txt with Host: mta-sts.<domain>
    (or the exact Host name given) returns: content_type (None: no header), status, redirect
    (a URL: answered with status 302 and Location; the same URL with a "?query" added
    serves text, so a redirect to it shows whether a client followed), body_size (text padded to that many bytes,
    e.g. 10 << 20), send_length (False: no Content-Length, the body ends with the connection).
    fetches: Counter of policy fetches per host name; requests: every request; connections:
    TCP connections accepted (a TLS client at a plain-HTTP server makes one and no request);
    sni: names asked; handshake_errors: TLS handshakes that failed (a client refusing our
    certificate). stall = seconds: every connection from then on is accepted and held silent
    that long (a fetch that must time out)."""

    def __init__(self, cert=None, host="127.0.0.1", port=None, tls=True, certs=None):
        from conftest import free_port
        assert cert is not None or not tls, "HTTPS needs a certificate"
        self.host, self.port, self.tls = host, port or free_port(host), tls
        self.lock = threading.Lock()
        self.policies = {}
        self.fetches = Counter()
        self.requests, self.sni, self.handshake_errors, self.huge_sent = [], [], [], []
        self.connections = 0
        self.stall = 0              # seconds each connection is held silent (set at any time)
        self.stopping = threading.Event()
        if tls:
            self.context = cert.server_context()
            others = {name.lower(): c.server_context() for name, c in (certs or {}).items()}

            def pick(sslobj, name, _ctx):
                with self.lock:
                    self.sni.append(name)
                if name and name.lower() in others:
                    sslobj.context = others[name.lower()]
            self.context.sni_callback = pick
        self.httpd = _Server((host, self.port), _StsHandler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def serve(self, domain, text=None, **how):
        """text None: sts_policy() defaults. domain: the policy domain (served for Host
        mta-sts.<domain>) or a full host name."""
        with self.lock:
            self.policies[domain.lower()] = _Served(text if text is not None else sts_policy(), **how)

    def forget(self, domain):
        with self.lock:
            self.policies.pop(domain.lower(), None)

    def find(self, host):
        if host in self.policies:
            return self.policies[host]
        if host.startswith("mta-sts."):
            return self.policies.get(host[len("mta-sts."):])
        return None

    @property
    def url_base(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class SmtpClient(smtplib.SMTP):
    """smtplib.SMTP to an address (127.0.0.x) whose STARTTLS checks the certificate for
    name: smtplib takes the name to check from the host it connected to."""

    def __init__(self, host, port, name, timeout=5):
        super().__init__(host, port, timeout=timeout)
        self._host = name


def https_get(host, port, name, ca_file, path="/.well-known/mta-sts.txt", timeout=5):
    """(status, headers dict, body) of a GET with SNI and Host = name, verified with
    ca_file: a client for the self-test and for tests that check what the server serves."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = bytearray()
            while len(data) < 20 << 20:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body
