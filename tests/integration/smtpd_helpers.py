"""Helpers for the smtpd integration tests: users, a self-signed certificate, and a raw
SMTP client that sends exact bytes and reads exact replies (smtplib normalises too much
for hostile-input tests)."""
import re
import socket
import ssl
import subprocess
import time

from conftest import wait_for


def add_user(pm, address, password):
    """Appends address:{SHA512-CRYPT}hash to the users file (openssl makes a crypt(3) hash)."""
    h = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True,
                       check=True, timeout=30).stdout.strip()
    path = pm.root / "users"
    with open(path, "a") as f:
        f.write(f"{address}:{{SHA512-CRYPT}}{h}\n")


def add_alias(pm, alias, *targets):
    with open(pm.root / "aliases", "a") as f:
        f.write(f"{alias}: {', '.join(targets)}\n")


def make_cert(directory, cn="mx.example.test", name="tls"):
    """A self-signed EC certificate and key in directory; returns (cert, key) paths."""
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def enable_tls(pm, **smtpd):
    """Configures a fresh certificate (and extra smtpd settings) before pm.start()."""
    cert, key = make_cert(pm.root)
    pm.configure(tls={"certificate": cert, "key": key})
    if smtpd:
        pm.configure(smtpd=smtpd)
    return cert, key


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def queued_count(pm):
    return len(pm.queue_list())


def queue_ids(pm):
    return [row["id"] for row in pm.queue_list()]


def queue_show(pm, qid):
    return pm.cli("queue", "show", qid).stdout


REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*)$")


class RawSMTP:
    """A line-exact SMTP client over a plain or TLS socket."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, tls=False, greet=True, source=None):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if tls:
            self.sock = client_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply line")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by server (pending {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [text lines])."""
        lines = []
        while True:
            m = REPLY_LINE.match(self._line())
            assert m, f"malformed reply line {lines!r}"
            lines.append(m.group(3).decode(errors="replace"))
            if m.group(2) == b" ":
                return int(m.group(1)), lines

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def starttls(self):
        code, _ = self.cmd("STARTTLS")
        assert code == 220
        self.sock = client_context().wrap_socket(self.sock)
        self.buf = b""

    def closed_by_server(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def status(reply):
    """(code, "x.y.z") of a RawSMTP reply."""
    code, lines = reply
    m = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", lines[-1])
    return code, m.group(1) if m else None


def wait_log(pm, svc, needle, timeout=10.0):
    return wait_for(lambda: needle in pm.log(svc), timeout, what=f"{needle!r} in {svc} log")
