"""Helpers for the POP3 and local delivery tests: users, Maildir files, a TLS pair, and a
raw line-oriented client for checking exact bytes on the wire."""
import poplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

DOMAIN = "example.test"


def make_tls_pair(directory: Path):
    """A self-signed EC certificate for mx.example.test (fast to make)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=mx.example.test"],
            check=True, capture_output=True, timeout=60)
    return cert, key


def hash_password(password: str) -> str:
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True,
                         text=True, check=True, timeout=30).stdout.strip()
    return "{SHA512-CRYPT}" + out


def add_user(pm, address: str, password: str):
    users = pm.root / "users"
    with users.open("a") as f:
        f.write(f"{address}:{hash_password(password)}\n")


def maildir(pm, address: str) -> Path:
    local, domain = address.lower().rsplit("@", 1)
    return pm.state / "mail" / domain / local / "Maildir"


def put_message(pm, address: str, name: str, content: bytes, sub: str = "new", mtime: float = None) -> Path:
    md = maildir(pm, address)
    for d in ("tmp", "new", "cur"):
        (md / d).mkdir(parents=True, exist_ok=True)
    path = md / sub / name
    path.write_bytes(content)
    if mtime is not None:
        import os
        os.utime(path, (mtime, mtime))
    return path


def messages(pm, address: str):
    """Files in new/ and cur/ of the mailbox."""
    md = maildir(pm, address)
    return sorted(p for d in ("new", "cur") if (md / d).is_dir() for p in (md / d).iterdir()
                  if not p.name.startswith("."))


def retrieve_all(pm, user: str, password: str):
    """Every message of user's mailbox through pop3d (USER/PASS, RETR each), as bytes with
    CRLF line ends; the session ends with QUIT, so nothing is deleted."""
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    p.user(user)
    p.pass_(password)
    out = [b"\r\n".join(p.retr(i)[1]) + b"\r\n" for i in range(1, p.stat()[0] + 1)]
    p.quit()
    return out


def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawPOP3:
    """A line client over a plain socket (optionally upgraded to TLS) for exact wire bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def line(self, timeout=10) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text: str) -> bytes:
        self.send(text.encode() + b"\r\n")
        return self.line()

    def multiline(self) -> bytes:
        """Raw body of a multi-line response up to (not including) the ".\\r\\n" line."""
        out = []
        while True:
            line = self.line()
            if line == b".":
                return b"".join(l + b"\r\n" for l in out)
            out.append(line)

    def closed(self, timeout=5) -> bool:
        """True if the server closed the connection (EOF) within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, ssl.SSLError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def starttls(self):
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="mx.example.test")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
