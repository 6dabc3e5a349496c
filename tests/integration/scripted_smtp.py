"""A raw SMTP server on loopback for what aiosmtpd and smtp-sink cannot be told to do: greet
or answer EHLO with a chosen name, accept the body and then never answer the final dot, or
send every reply one byte at a time (the replies are short, so each one stays within a
per-command timeout while the whole session takes long). It records each connection (when it opened and closed,
the commands, whether the body's dot arrived), so a test can see overlapping deliveries."""
import socket
import threading
import time


class ScriptedSmtp:
    def __init__(self, host, port, greeting="220 peer.test ESMTP", ehlo="250-peer.test\r\n250 8BITMIME",
                 stall_after_dot=False, trickle=0.0):
        self.greeting, self.ehlo = greeting, ehlo
        self.stall_after_dot, self.trickle = stall_after_dot, trickle
        self.conns = []          # one dict per connection: opened, closed, commands, dot
        self.lock = threading.Lock()
        self.running = True
        self.socks, self.threads = [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    # ------------------------------------------------------------------ views
    def open_connections(self):
        with self.lock:
            return sum(1 for c in self.conns if c["closed"] is None)

    def connections(self):
        with self.lock:
            return [dict(c, commands=list(c["commands"])) for c in self.conns]

    def dots(self):
        with self.lock:
            return sum(1 for c in self.conns if c["dot"])

    # ------------------------------------------------------------------ serving
    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            rec = {"opened": time.monotonic(), "closed": None, "commands": [], "dot": False}
            with self.lock:
                self.conns.append(rec)
                self.socks.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, rec), daemon=True)
            self.threads.append(t)
            t.start()

    def _send(self, conn, text):
        data = text.encode() + b"\r\n"
        if not self.trickle:
            conn.sendall(data)
            return
        for i in range(len(data)):
            if not self.running:
                return
            conn.sendall(data[i:i + 1])
            time.sleep(self.trickle)

    def _answer(self, line):
        verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
        return {b"EHLO": self.ehlo, b"HELO": self.ehlo.split("\r\n")[0].replace("250-", "250 "),
                b"MAIL": "250 2.1.0 Ok", b"RCPT": "250 2.1.5 Ok", b"DATA": "354 go ahead",
                b"RSET": "250 2.0.0 Ok", b"NOOP": "250 2.0.0 Ok", b"QUIT": "221 2.0.0 Bye"}.get(
                    verb, "502 5.5.2 Error: command not recognized")

    def _serve(self, conn, rec):
        conn.settimeout(0.2)
        buf, in_data, stalled = b"", False, False
        try:
            self._send(conn, self.greeting)
            while self.running:
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                buf += chunk
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if stalled:
                        continue              # whatever comes now is never answered
                    if in_data:
                        if line == b".":
                            in_data = False
                            with self.lock:
                                rec["dot"] = True
                            if self.stall_after_dot:
                                stalled = True
                            else:
                                self._send(conn, "250 2.0.0 Ok")
                        continue
                    with self.lock:
                        rec["commands"].append(line.decode(errors="replace"))
                    reply = self._answer(line)
                    self._send(conn, reply)
                    if reply.startswith("354"):
                        in_data = True
                    elif reply.startswith("221"):
                        return
        except OSError:
            pass
        finally:
            with self.lock:
                rec["closed"] = time.monotonic()
            conn.close()

    def stop(self):
        self.running = False
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()
