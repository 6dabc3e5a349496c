"""What the IMAP client tests, the Dovecot comparison and the IMAP benchmark share: a Maildir++
store written the way delivery leaves it (owner postmesh-delivery, group vmail, group
writable), a TLS pair with the name the clients check (localhost), and the server under test
over that store, postmesh-imapd or a real Dovecot (dovecot_harness.py), behind one face:

    srv = start_server("postmesh" | "dovecot", pm, workdir)
    srv.name, srv.host ("localhost", the certificate's name), srv.port("imap" | "imaps"),
    srv.cafile (the certificate, its own CA), srv.stop()
"""
import grp
import os
import pwd
import subprocess
import time
from pathlib import Path

from conftest import free_port

DOMAIN = "example.test"
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
_seq = [0]


def folder_dir(mail_root: Path, address: str, folder: str = "INBOX") -> Path:
    """INBOX is <mail_root>/<domain>/<local>/Maildir; "a/b" is Maildir/.a.b (Maildir++)."""
    local, domain = address.lower().rsplit("@", 1)
    md = Path(mail_root) / domain / local / "Maildir"
    return md if folder.upper() == "INBOX" else md / ("." + folder.replace("/", "."))


def make_folder(mail_root: Path, address: str, folder: str = "INBOX") -> Path:
    d = folder_dir(mail_root, address, folder)
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    if folder.upper() != "INBOX":
        (d / "maildirfolder").touch()
    return d


def put(mail_root: Path, address: str, content: bytes, folder: str = "INBOX", flags=None, mtime=None,
        name=None) -> Path:
    """One message file. flags None: in new/ (unseen, \\Recent); else a list of system flags
    (possibly empty) and the file goes to cur/ with its Maildir++ info. Names sort in the
    order of the calls (both servers number new files in name order), mtime = INTERNALDATE."""
    d = make_folder(mail_root, address, folder)
    _seq[0] += 1
    base = name or f"{int(mtime or 1_700_000_000)}.M{_seq[0]:06d}P{os.getpid()}.mx.example.test"
    if flags is None:
        path = d / "new" / base
    else:
        path = d / "cur" / (base + ":2," + "".join(sorted(FLAG_LETTERS[f] for f in flags)))
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def own_store(mail_root: Path):
    """The tree (or one file) as delivery leaves it: postmesh-delivery:vmail, directories 2770,
    files 0660 (a root-owned tree the test wrote would be read-only to both servers' mail
    processes)."""
    if os.geteuid() != 0:
        return
    try:
        uid, gid = pwd.getpwnam("postmesh-delivery").pw_uid, grp.getgrnam("vmail").gr_gid
    except KeyError:
        return
    mail_root = Path(mail_root)
    if mail_root.is_file():
        os.chown(mail_root, uid, gid)
        os.chmod(mail_root, 0o660)
        return
    mail_root.mkdir(parents=True, exist_ok=True)
    for dirpath, dirs, files in os.walk(mail_root):
        os.chown(dirpath, uid, gid)
        os.chmod(dirpath, 0o2770)
        for f in files:
            os.chown(os.path.join(dirpath, f), uid, gid)
            os.chmod(os.path.join(dirpath, f), 0o660)


def tls_pair(directory: Path):
    """A self-signed EC certificate for localhost (mbsync, fetchmail and neomutt check the
    name against the host they connect to) and mx.example.test."""
    directory = Path(directory)
    cert, key = directory / "imap-cert.pem", directory / "imap-key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,DNS:mx.example.test,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60)
        cert.chmod(0o644)
        key.chmod(0o644)   # read by the servers' own users too (Dovecot's config reader)
    return cert, key


class Server:
    host = "localhost"

    def __init__(self, name, ports, cafile, stop):
        self.name, self.ports, self.cafile, self._stop = name, ports, cafile, stop

    def port(self, mode="imap"):
        return self.ports[mode]

    def stop(self):
        if self._stop:
            self._stop()
            self._stop = None


def start_postmesh(pm, cert, key, **imapd) -> Server:
    for mode in ("imap", "imaps"):
        if mode not in pm.ports:   # a conftest without the imapd ports yet
            pm.ports[mode] = free_port()
    settings = {"listen": [{"address": f"127.0.0.1:{pm.ports['imap']}", "mode": "imap"},
                           {"address": f"127.0.0.1:{pm.ports['imaps']}", "mode": "imaps"}],
                "auth_delay": 0, "drain_timeout": 2}
    settings.update(imapd)
    pm.configure(tls={"certificate": str(cert), "key": str(key)}, imapd=settings)
    own_store(pm.state / "mail")
    pm.start("imapd")
    return Server("postmesh", {m: pm.ports[m] for m in ("imap", "imaps")}, cert, lambda: pm.stop("imapd"))


def start_dovecot(pm, cert, key, workdir: Path) -> Server:
    from dovecot_harness import Dovecot
    own_store(pm.state / "mail")
    dv = Dovecot(workdir, pm.state / "mail", pm.root / "users", cert=cert, key=key).start()
    return Server("dovecot", dict(dv.ports), cert, dv.stop)


def start_server(kind, pm, workdir: Path, **imapd) -> Server:
    cert, key = tls_pair(pm.root)
    if kind == "dovecot":
        return start_dovecot(pm, cert, key, Path(workdir) / "dovecot")
    return start_postmesh(pm, cert, key, **imapd)


def deadline_loop(timeout):
    """Yields until timeout seconds have passed (for polls that do more than a predicate)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        yield


# ------------------------------------------------------------------ the wire

class Wire:
    """A raw IMAP client on a socket (plain, or TLS with tls=True / after starttls()): exact
    bytes out, response lines in with their literals inline (b"... {n}\\r\\n" + n bytes + the
    rest of the line), for the comparison, the hostile-input table and the benchmark."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=15, greeting=True):
        import socket
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.n = 0
        if tls:
            self.starttls()
        self.greeting = self.line() if greeting else None

    def starttls(self):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = self.sock.recv(262144)
        if not chunk:
            raise EOFError(self.buf)
        self.buf += chunk

    def line(self, timeout=None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line
            lit = _literal_at_end(line)
            if lit is None:
                return out
            while len(self.buf) < lit:
                self._fill(deadline)
            out += b"\r\n" + self.buf[:lit]
            self.buf = self.buf[lit:]

    def command(self, text, tag=None):
        """(untagged lines, tagged line without the tag) of one command sent as text + CRLF."""
        self.n += 1
        tag = tag or f"c{self.n}"
        self.send(f"{tag} {text}\r\n".encode() if isinstance(text, str) else tag.encode() + b" " + text)
        return self.until(tag)

    def until(self, tag):
        untagged = []
        tag = tag.encode() if isinstance(tag, str) else tag
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def closed(self, timeout=5) -> bool:
        """True if the server closes the connection within timeout (what it sent before
        stays in self.buf)."""
        import socket
        import ssl
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(deadline)
            except socket.timeout:
                return False
            except (EOFError, ConnectionResetError, BrokenPipeError, ssl.SSLError):
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _literal_at_end(line: bytes):
    """n if line ends with a literal's announcement {n} (or ~{n}, {n+})."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    digits = line[start + 1:-1].rstrip(b"+")
    return int(digits) if start >= 0 and digits.isdigit() else None


class Str(bytes):
    """An IMAP string, quoted or literal alike (the difference is formatting only)."""

    def __repr__(self):
        return "Str(" + bytes.__repr__(self) + ")"


def parse(data: bytes):
    """One response line (literals inline, as Wire.line gives it) -> Python values: a list
    of atoms (str; NIL is None, numbers int), Str strings and lists; BODY[...]<n> and the like
    stay one atom."""
    pos, out = 0, []
    stack = [out]
    n = len(data)
    while pos < n:
        c = data[pos:pos + 1]
        if c == b" ":
            pos += 1
        elif c == b"(":
            stack[-1].append([])
            stack.append(stack[-1][-1])
            pos += 1
        elif c == b")":
            stack.pop()
            pos += 1
        elif c == b'"':
            pos += 1
            s = bytearray()
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                s += data[pos:pos + 1]
                pos += 1
            pos += 1
            stack[-1].append(Str(bytes(s)))
        elif c in (b"{", b"~") and (c == b"{" or data[pos + 1:pos + 2] == b"{"):
            start = pos + (1 if c == b"{" else 2)
            end = data.index(b"}", start)
            length = int(data[start:end].rstrip(b"+"))
            body = end + 3   # "}\r\n"
            stack[-1].append(Str(data[body:body + length]))
            pos = body + length
        else:
            start = pos
            while pos < n and data[pos:pos + 1] not in (b" ", b"(", b")"):
                if data[pos:pos + 1] == b"[":
                    pos = data.index(b"]", pos)
                pos += 1
            atom = data[start:pos].decode("latin-1")
            stack[-1].append(None if atom.upper() == "NIL" else int(atom) if atom.isdigit() else atom)
    return out
