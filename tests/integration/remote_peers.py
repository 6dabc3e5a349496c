"""Real peers for the remote-delivery tests, all on loopback: a DNS server (dnsmasq, or a
scripted one for answers dnsmasq cannot give), SMTP servers (aiosmtpd in-process, Postfix's
smtp-sink), and bus clients speaking the Postmesh wire contract (remote_proto.py) with the
services' own CurveZMQ keys from state_dir/keys.
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import warnings
from pathlib import Path

import zmq
from aiosmtpd.controller import Controller

import remote_proto as rp
from conftest import free_port, wait_for
from procs import stop_process


def free_dual_port(host="127.0.0.1"):
    """A port number free for both UDP and TCP (a DNS server needs both)."""
    return free_port(host, (socket.SOCK_DGRAM, socket.SOCK_STREAM))


def common_port(*hosts):
    """One port number free on every one of hosts: mta.remote_port is a single port for all
    the MX hosts a test serves on 127.0.0.x."""
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise AssertionError("no common free port")

# ------------------------------------------------------------------ DNS


def _dns_query(name, qtype=1):
    header = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return header + qname + struct.pack(">HH", qtype, 1)


def dns_answers(port, name="ready.probe", timeout=0.3):
    """True once something answers DNS on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(_dns_query(name), ("127.0.0.1", port))
            return len(s.recv(4096)) >= 12
        except OSError:
            return False


class Dnsmasq:
    """dnsmasq as the only nameserver: authoritative-ish for *.test (--local), so unknown
    names under .test are NXDOMAIN. extra: more dnsmasq options (--mx-host, --host-record,
    --dns-rr, --server=/zone/ip#port ...)."""

    def __init__(self, root: Path, extra, ttl=300):
        self.port = free_dual_port()
        self.root = root
        self.log = open(root / f"dnsmasq-{self.port}.log", "wb")
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        args = [exe, "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--pid-file={root / f'dnsmasq-{self.port}.pid'}", "--log-facility=-",
                "--local=/test/", f"--local-ttl={ttl}", "--cache-size=0", *extra]
        if os.geteuid() == 0:
            args.append("--user=root")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is not None or dns_answers(self.port), 10, what="dnsmasq")
            assert self.proc.poll() is None, (root / f"dnsmasq-{self.port}.log").read_text()
        except BaseException:
            self.stop()
            raise

    @property
    def nameserver(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def _encode_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\0"


def mx_rdata(pref, host):
    return struct.pack(">H", pref) + _encode_name(host)


def a_rdata(ip):
    return socket.inet_aton(ip)


class ScriptedDns:
    """A tiny authoritative DNS server on 127.0.0.1 (UDP and TCP) for answers dnsmasq will
    not give: SERVFAIL, truncation, records for the wrong name. script(qname, qtype, tcp)
    returns (rcode, [(owner, type, ttl, rdata)], truncated) or None to stay silent."""

    def __init__(self, script):
        self.script = script
        self.port = free_dual_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        for sock in (self.udp, self.tcp):
            sock.settimeout(0.2)
        self.running = True
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    @property
    def nameserver(self):
        return f"127.0.0.1:{self.port}"

    def _answer(self, query, tcp):
        if len(query) < 17:
            return None
        qid, = struct.unpack(">H", query[:2])
        i, labels = 12, []
        while i < len(query) and query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode(errors="replace"))
            i += 1 + query[i]
        qtype, = struct.unpack(">H", query[i + 1:i + 3])
        question = query[12:i + 5]
        out = self.script(".".join(labels).lower(), qtype, tcp)
        if out is None:
            return None
        rcode, records, truncated = out
        flags = 0x8180 | rcode | (0x0200 if truncated else 0)
        body = b"".join(_encode_name(owner) + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata
                        for owner, rtype, ttl, rdata in records)
        return struct.pack(">HHHHHH", qid, flags, 1, len(records), 0, 0) + question + body

    def _serve_udp(self):
        while self.running:
            try:
                query, peer = self.udp.recvfrom(4096)
            except OSError:
                continue
            reply = self._answer(query, False)
            if reply:
                self.udp.sendto(reply, peer)

    def _serve_tcp(self):
        while self.running:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    data = b""
                    while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    reply = self._answer(data[2:], True)
                    if reply:
                        conn.sendall(struct.pack(">H", len(reply)) + reply)
                except OSError:
                    pass

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(5)
        self.udp.close()
        self.tcp.close()


# ------------------------------------------------------------------ SMTP peers


class Recorder:
    """aiosmtpd handler: keeps every accepted message; replies can be scripted per
    recipient (rcpt_reply[address] = "550 5.1.1 ...") or for DATA (data_replies: a list
    consumed one per message, then 250)."""

    def __init__(self):
        self.messages = []
        self.rcpt_reply = {}
        self.data_replies = []
        self.sessions = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_reply.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            self.messages.append({
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": envelope.original_content or envelope.content,
                "tls": session.ssl is not None,
                "helo": getattr(session, "host_name", None),
            })
        return "250 2.0.0 Ok: queued as SINK1"


def self_signed(root: Path, name="mx.remote.test"):
    cert, key = root / f"{name}.crt", root / f"{name}.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    return cert, key


class AioSink:
    """aiosmtpd on host:port (EHLO with 8BITMIME, SIZE, SMTPUTF8; STARTTLS when tls=True;
    no PIPELINING)."""

    def __init__(self, host, port, root: Path, tls=False, broken_tls=False):
        self.handler = Recorder()
        ctx = None
        if tls or broken_tls:
            cert, key = self_signed(root)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert), str(key))
            if broken_tls:  # offers STARTTLS, then cannot agree on anything: TLS 1.0 only
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
        self.controller = Controller(self.handler, hostname=host, port=port, tls_context=ctx,
                                     require_starttls=False, enable_SMTPUTF8=True, decode_data=False,
                                     ready_timeout=10)
        self.controller.start()

    @property
    def messages(self):
        return self.handler.messages

    def stop(self):
        self.controller.stop()


class SmtpSink:
    """Postfix's smtp-sink: PIPELINING, ENHANCEDSTATUSCODES; every transaction dumped to a
    file in dump_dir. args add fault injection (-f RCPT, -r RCPT, -Q CONNECT, ...)."""

    def __init__(self, host, port, root: Path, *args):
        self.dir = root / f"sink-{host}-{port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = open(root / f"sink-{host}-{port}.log", "wb")
        user = ["-u", "root"] if os.geteuid() == 0 else []  # required as root; keeps access to tmp
        self.proc = subprocess.Popen(["/usr/sbin/smtp-sink", *user, "-d", f"{self.dir}/%H%M%S.", *args,
                                      f"{host}:{port}", "256"], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is not None or _connects(host, port), 10, what="smtp-sink")
            assert self.proc.poll() is None, (root / f"sink-{host}-{port}.log").read_text()
        except BaseException:
            self.stop()
            raise

    def dumps(self):
        return sorted(p.read_bytes() for p in self.dir.iterdir() if p.is_file())

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def _connects(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.settimeout(2)
            return len(s.recv(3)) == 3  # a greeting (220, or 421 when told to refuse)
    except OSError:
        return False


# ------------------------------------------------------------------ bus clients


def service_keys(pm, name):
    keys = Path(pm.settings["state_dir"]) / "keys"
    pub, sec = (keys / f"{name}.key").read_text().split()[:2]
    return pub.encode(), sec.encode(), keys


def bus_socket(pm, sock_type, as_service, server=None):
    """A zmq socket with the CurveZMQ identity of service as_service (bus.curve default on).
    server: the service whose public key the client expects, None to bind as a server."""
    s = zmq.Context.instance().socket(sock_type)
    s.setsockopt(zmq.LINGER, 0)
    if pm.settings.get("bus", {}).get("curve", True):
        pub, sec, keys = service_keys(pm, as_service)
        s.curve_publickey, s.curve_secretkey = pub, sec
        if server is None:
            s.curve_server = True
        else:
            s.curve_serverkey = (keys / f"{server}.pub").read_text().strip().encode()
    return s


class ResolverClient:
    """What the mta does: a DEALER to resolver.endpoint, asking with request ids."""

    def __init__(self, pm):
        self.sock = bus_socket(pm, zmq.DEALER, "mta", server="resolver")
        self.sock.connect(pm.settings["resolver"]["endpoint"])
        self.next_id = 0

    def ask(self, name, kind=rp.MX):
        self.next_id += 1
        self.sock.send(rp.bus(self.next_id, resolve={"kind": kind, "name": name}))
        return self.next_id

    def replies(self, count, timeout=15.0):
        """{request_id: (reply dict, seconds since the call)} for count replies."""
        out, start = {}, time.monotonic()
        while len(out) < count:
            left = timeout - (time.monotonic() - start)
            assert left > 0 and self.sock.poll(int(left * 1000)), f"only {len(out)} of {count} replies"
            m = rp.unbus(self.sock.recv())
            out[m["request_id"]] = (m["resolve_reply"], time.monotonic() - start)
        return out

    def resolve(self, name, kind=rp.MX, timeout=15.0):
        rid = self.ask(name, kind)
        return self.replies(1, timeout)[rid][0]

    def close(self):
        self.sock.close()


class Dispatcher:
    """Stands in for the queue's job dispatch (docs/internals.md "Work dispatch"): a ROUTER
    on queue.endpoint with the queue's key; records Credits, sends Jobs, collects
    JobResults. Used to drive the mta alone; the full path uses the real queue."""

    def __init__(self, pm):
        self.sock = bus_socket(pm, zmq.ROUTER, "queue")
        self.sock.bind(pm.settings["queue"]["endpoint"])
        self.worker = None
        self.credits = []
        self.results = {}
        self.next_job = 0

    def pump(self, timeout=0.1):
        while self.sock.poll(int(timeout * 1000)):
            peer, frame = self.sock.recv_multipart()
            m = rp.unbus(frame)
            if "credit" in m:
                self.worker = peer
                self.credits.append(m["credit"])
            elif "job_result" in m:
                self.results[m["job_result"]["job_id"]] = m["job_result"]
            timeout = 0.01

    def wait_worker(self, timeout=10.0):
        wait_for(lambda: self.pump() or self.worker is not None, timeout, what="mta credit")

    def send_job(self, recipients, domain, body=b"Subject: t\r\n\r\nhello\r\n", sender="alice@example.test",
                 queue_id=None, lease=60, **fields):
        """fields: more Job fields (requiretls=True)."""
        self.next_job += 1
        job_id = self.next_job
        job = {"job_id": job_id, "queue_id": queue_id or f"{0xA000000000000 + job_id:016X}", "kind": rp.WORKER_MTA,
               "sender": sender, "domain": domain, "body": body, "lease_seconds": lease,
               "arrival_time": int(time.time()),
               "recipients": [{"index": i, "address": a, "original": a} for i, a in enumerate(recipients)], **fields}
        self.sock.send_multipart([self.worker, rp.bus(0, job=job)])
        return job_id

    def result(self, job_id, timeout=30.0):
        wait_for(lambda: self.pump() or job_id in self.results, timeout, what=f"result of job {job_id}")
        return self.results[job_id]

    def close(self):
        self.sock.close()
