"""IMAP on the wire for the imapd tests: a raw line client for exact responses (literals read
with their line) and a parser for IMAP data (lists, strings, literals, NIL, FETCH items)."""
import itertools
import re
import socket
import ssl
import time

from pop3_helpers import client_tls_context


# ---------------------------------------------------------------------- raw client
class RawIMAP:
    """Exact lines on the wire; literals in responses are read as part of their line."""

    def __init__(self, host, port, tls=False, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.starttls()
        self.buf = b""
        self.tags = (f"r{i}" for i in itertools.count(1))

    def starttls(self):
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname="mx.example.test")

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(self.buf)
        self.buf += chunk

    def line(self, timeout=10) -> bytes:
        """One response line without CRLF; a literal {n} at its end is read with it, and the
        line goes on after the literal's bytes (so one FETCH response is one "line")."""
        deadline = time.monotonic() + timeout
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            part, self.buf = self.buf.split(b"\r\n", 1)
            out += part
            m = re.search(rb"\{(\d+)\}$", part)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill(deadline)
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def cmd(self, text, tag=None, timeout=10):
        """Sends 'tag text' and returns every line up to and including the tagged one."""
        tag = tag or next(self.tags)
        self.send(f"{tag} {text}\r\n".encode() if isinstance(text, str) else tag.encode() + b" " + text + b"\r\n")
        return self.until(tag, timeout)

    def until(self, tag, timeout=10):
        lines = []
        while True:
            line = self.line(timeout)
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def readable(self, timeout=0.0):
        import select
        return bool(self.buf) or bool(select.select([self.sock], [], [], timeout)[0])

    def closed(self, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(deadline)
            except socket.timeout:
                return False
            except (EOFError, ConnectionResetError, ssl.SSLError):
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tagged(lines):
    """The tagged line's status and text: (b"OK", b"[READ-WRITE] ...")."""
    parts = lines[-1].split(b" ", 2)
    return parts[1], parts[2] if len(parts) > 2 else b""


def untagged(lines):
    return [l for l in lines if l.startswith(b"* ")]


# ---------------------------------------------------------------------- IMAP data parser
class Atom(str):
    """An atom (NIL is None, numbers int, strings bytes)."""


def parse(data: bytes):
    """A list of the values in data: lists as list, quoted strings and literals as bytes,
    NIL as None, numbers as int, other atoms as Atom (a FETCH item name like
    BODY[HEADER.FIELDS (SUBJECT)]<0> is one atom)."""
    pos = 0
    n = len(data)

    def value():
        nonlocal pos
        c = data[pos:pos + 1]
        if c == b"(":
            pos += 1
            out = []
            while True:
                skip()
                if data[pos:pos + 1] == b")":
                    pos += 1
                    return out
                out.append(value())
        if c == b'"':
            pos += 1
            out = bytearray()
            while data[pos:pos + 1] != b'"':
                if data[pos:pos + 1] == b"\\":
                    pos += 1
                out += data[pos:pos + 1]
                pos += 1
            pos += 1
            return bytes(out)
        if c in (b"{", b"~"):
            m = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(data, pos)
            size = int(m.group(1))
            pos = m.end()
            out = data[pos:pos + size]
            pos += size
            return out
        start = pos
        depth = 0
        while pos < n:
            ch = data[pos:pos + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in b" ()\r\n":
                break
            pos += 1
        word = data[start:pos].decode()
        if word.upper() == "NIL":
            return None
        if word.isdigit():
            return int(word)
        return Atom(word)

    def skip():
        nonlocal pos
        while pos < n and data[pos:pos + 1] in (b" ", b"\r", b"\n"):
            pos += 1

    out = []
    skip()
    while pos < n:
        out.append(value())
        skip()
    return out


def imaplib_join(data):
    """imaplib's response list (tuples around literals) back into wire form, one bytes per
    response."""
    out, cur = [], b""
    for item in data:
        if isinstance(item, tuple):
            cur += item[0] + b"\r\n" + item[1]
        elif item is not None:
            cur += item
            out.append(cur)
            cur = b""
    if cur:
        out.append(cur)
    return out


def fetch_items(resp_lines):
    """'N FETCH (...)' responses (wire form, with or without '* ', or imaplib's 'N (...)') ->
    {N: {ITEM: value}},
    several responses for one message merged."""
    out = {}
    for line in resp_lines:
        if line.startswith(b"* "):
            line = line[2:]
        vals = parse(line)
        if len(vals) == 2 and isinstance(vals[1], list):       # imaplib drops the word FETCH
            vals = [vals[0], "FETCH", vals[1]]
        if len(vals) < 3 or str(vals[1]).upper() != "FETCH":
            continue
        items = out.setdefault(vals[0], {})
        lst = vals[2]
        for k, v in zip(lst[::2], lst[1::2]):
            items[str(k).upper()] = v
    return out
