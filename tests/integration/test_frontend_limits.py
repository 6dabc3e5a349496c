"""Bounded resources at the front ends (issue 10), seen from outside with real clients:

- an AUTH flood does not delay an unrelated session's recipient check (the lookups have their
  own helper; AUTHs in flight are capped per client address and per parent, beyond that
  `454 4.7.0`), and the same for POP3 logins;
- the lookup helpers run as postmesh-auth without capabilities (from /proc), and still see
  every change `postmesh user add` makes to the root-only users file;
- smtpd keeps a memory budget for the message bodies it buffers: over it `452 4.3.1`, the
  sandbox's RSS stays under the budget, and the memory comes back when the sessions end;
- pop3d limits connections per client address and ends a session whose command never
  completes or that outlives its absolute deadline.

Passwords are yescrypt (`postmesh user add`), as in production: a check costs ~25 ms."""
import base64
import fcntl
import os
import poplib
import pwd
import re
import socket
import struct
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import wait_for
from pop3_helpers import make_tls_pair
from smtpd_helpers import RawSMTP, enable_tls

ALICE = "alice@example.test"
FLOOD = 60
POP3_MAX_PER_IP = 20  # services/pop3d/session.h


def plain(user, password):
    """An AUTH PLAIN initial response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def logged_pid(pm, svc, event, name):
    found = re.findall(rf"event={event} \w+={re.escape(name)} pid=(\d+)", pm.log(svc))
    return int(found[-1]) if found else None


def user_add(pm, address, password):
    """The operator's way: yescrypt, users file rewritten root-only (0640)."""
    pm.write_config()
    pm.cli("user", "add", address, input=password + "\n")


class Client(RawSMTP):
    """RawSMTP from a chosen loopback source address (the per-client limits key on it)."""

    def __init__(self, port, source="127.0.0.1", timeout=15.0):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.buf = b""
        self.greeting = self.reply()


def ready_for_auth(port, source):
    """A submission session after STARTTLS and EHLO, about to send AUTH."""
    c = Client(port, source)
    c.cmd("EHLO flood.test")
    c.starttls()
    c.cmd("EHLO flood.test")
    return c


# ---------------------------------------------------------------------------- 1: AUTH flood
@pytest.fixture
def mx(pm):
    user_add(pm, ALICE, "secret")
    # failures are not locked out here: the flood must reach the password check
    enable_tls(pm, auth_fail_delay_ms=50, auth_failures=100000, max_connections_per_ip=1000)
    pm.start("queue", "smtpd")
    return pm


def test_auth_flood_does_not_stall_recipient_checks(mx):
    probe = Client(mx.port("smtp"), source="127.0.0.2")
    probe.cmd("EHLO probe.test")
    assert probe.cmd("MAIL FROM:<someone@remote.test>")[0] == 250
    with ThreadPoolExecutor(16) as pool:
        flood = list(pool.map(lambda i: ready_for_auth(mx.port("submission"), "127.0.0.1"), range(FLOOD)))
    legit = ready_for_auth(mx.port("submission"), "127.0.0.3")
    for i, c in enumerate(flood):  # all at once: each is a yescrypt check for an unknown user
        c.send(f"AUTH PLAIN {plain(f'nobody{i}@example.test', 'wrong')}\r\n")
    worst = 0.0
    for _ in range(5):  # an unrelated session's recipient check, while the flood is being checked
        t0 = time.monotonic()
        code, lines = probe.cmd(f"RCPT TO:<{ALICE}>")
        worst = max(worst, time.monotonic() - t0)
        assert code == 250, lines
    t0 = time.monotonic()
    legit_reply = legit.cmd(f"AUTH PLAIN {plain(ALICE, 'secret')}")
    legit_time = time.monotonic() - t0
    replies = [c.reply() for c in flood]
    codes = sorted({(code, lines[-1][:5]) for code, lines in replies})
    busy = sum(1 for code, lines in replies if code == 454)
    assert worst < 0.3, f"RCPT took {worst:.3f}s behind {FLOOD} password checks"
    assert legit_reply[0] == 235, legit_reply
    assert legit_time < 0.6, f"another client's AUTH took {legit_time:.3f}s behind the flood"
    assert set(codes) <= {(535, "5.7.8"), (454, "4.7.0")}, codes
    assert busy >= FLOOD // 2, f"only {busy} of {FLOOD} AUTHs were refused: no cap on AUTHs in flight"
    assert "event=auth_busy" in mx.log("smtpd")
    for c in flood + [legit, probe]:
        c.close()


def test_pop3_login_flood_does_not_stall_other_logins(pm):
    user_add(pm, ALICE, "secret")
    cert, key = make_tls_pair(pm.root)
    pm.configure(tls={"certificate": str(cert), "key": str(key)},
                 pop3d={"auth_delay": 0, "auth_failures": 100000, "timeout": 30})
    pm.start("pop3d")

    def connect(source):
        s = socket.create_connection(("127.0.0.1", pm.port("pop3")), timeout=15, source_address=(source, 0))
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(b"USER nobody@example.test\r\n")
        assert f.readline().startswith(b"+OK")
        return s, f

    # two flooding addresses, as many connections as pop3d allows each
    flood = [connect(f"127.0.0.{10 + i % 2}") for i in range(2 * POP3_MAX_PER_IP)]
    legit, legit_f = connect("127.0.0.2")
    for s, _ in flood:
        s.sendall(b"PASS wrong\r\n")
    t0 = time.monotonic()
    legit.sendall(f"USER {ALICE}\r\nPASS secret\r\n".encode())
    assert legit_f.readline().startswith(b"+OK")  # USER
    answer = legit_f.readline()
    took = time.monotonic() - t0
    answers = [f.readline() for _, f in flood]
    assert answer.startswith(b"+OK"), answer
    assert took < 0.6, f"a login took {took:.3f}s behind {len(flood)} others"
    busy = sum(1 for a in answers if a.startswith(b"-ERR [SYS/TEMP]"))
    assert all(a.startswith((b"-ERR [AUTH]", b"-ERR [SYS/TEMP]")) for a in answers), set(answers)
    assert busy >= len(flood) // 2, f"only {busy} of {len(flood)} logins were refused: no cap on logins in flight"
    for s, _ in flood + [(legit, legit_f)]:
        s.close()


# ---------------------------------------------------------------------------- 2: helpers unprivileged
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_lookup_helpers_run_unprivileged_and_follow_the_users_file(pm):
    user_add(pm, ALICE, "secret")
    enable_tls(pm)
    pm.start("queue", "smtpd", "pop3d", "delivery", timeout=20)
    helpers = [("smtpd", "smtpd-lookup"), ("smtpd", "smtpd-auth"), ("pop3d", "pop3d-passdb"),
               ("delivery", "delivery-users")]
    auth_uid = str(pwd.getpwnam("postmesh-auth").pw_uid)
    for svc, name in helpers:
        pid = logged_pid(pm, svc, "helper_started", name)
        assert pid, f"no {name} helper in the {svc} log"

        def dropped():  # right after it started, once it opened the users file
            st = proc_status(pid)
            return st if st["Uid"].split()[0] != "0" else None
        st = wait_for(dropped, timeout=10, what=f"{name} to drop root")
        assert set(st["Uid"].split()) == {auth_uid}, (name, st["Uid"])
        assert "0" not in st["Gid"].split() and st["Groups"] == "", (name, st["Gid"], st["Groups"])
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(st[cap], 16) == 0, (name, cap, st[cap])
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", name
    users = pm.root / "users"
    assert users.stat().st_uid == 0 and users.stat().st_mode & 0o007 == 0  # not readable by postmesh-auth
    # a user added while running (the file is replaced): the parent hands the new file over
    user_add(pm, "bob@example.test", "hunter2")
    c = ready_for_auth(pm.port("submission"), "127.0.0.1")
    assert c.cmd(f"AUTH PLAIN {plain('bob@example.test', 'hunter2')}")[0] == 235
    assert c.cmd("MAIL FROM:<bob@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    c.close()
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    p.user("bob@example.test")
    assert p.pass_("hunter2").startswith(b"+OK")
    p.quit()
    assert "event=users_error" not in pm.log("smtpd") + pm.log("pop3d")


# ---------------------------------------------------------------------------- 3: body memory budget
MIB = 1 << 20


def rss(pid):
    return int(proc_status(pid)["VmRSS"].split()[0]) * 1024


def server_rx_queue(port, client_sock):
    """Bytes waiting in smtpd's receive queue for this client (from /proc/net/tcp)."""
    host, cport = client_sock.getsockname()
    local = f"0100007F:{port:04X}"
    remote = f"{socket.inet_aton(host)[::-1].hex().upper()}:{cport:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1] == local and f[2] == remote:
            return int(f[4].split(":")[1], 16)
    return 0


def consumed(port, sock):
    """The server read everything this socket sent."""
    unsent = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    return unsent == 0 and server_rx_queue(port, sock) == 0


def test_body_memory_budget(pm):
    max_size = 4 * MIB  # the sandbox keeps bodies up to 8 x max_message_size in memory
    budget = 8 * max_size
    line = b"x" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * ((max_size - 1000) // len(line))  # just under max_size
    sessions = 12  # 8 fit
    pm.configure(smtpd={"max_message_size": max_size, "timeout_data": 60})
    pm.start("queue", "smtpd")
    sandbox = logged_pid(pm, "smtpd", "sandbox_started", "smtpd")
    assert sandbox

    def transaction(c):
        c.cmd("EHLO big.test")
        assert c.cmd("MAIL FROM:<big@remote.test>")[0] == 250
        assert c.cmd("RCPT TO:<postmaster@example.test>")[0] == 250

    clients = []
    for i in range(sessions):
        c = Client(pm.port("smtp"))
        transaction(c)
        assert c.cmd("DATA")[0] == 354
        clients.append(c)
    late = Client(pm.port("smtp"))
    transaction(late)
    base = rss(sandbox)
    for c in clients:  # one after the other, each fully read by smtpd before the next
        c.send(body)
        wait_for(lambda: consumed(pm.port("smtp"), c.sock), timeout=30, what="smtpd to read the body")
    peak = rss(sandbox)
    # the budget is used up: a new message is refused at DATA already
    code, lines = late.cmd("DATA")
    assert (code, lines[-1][:5]) == (452, "4.3.1"), (code, lines)
    replies = []
    for c in clients:
        c.send(b".\r\n")
        replies.append(c.reply())
    assert [r[0] for r in replies] == [250] * 8 + [452] * (sessions - 8), replies
    assert all(r[1][-1].startswith("4.3.1 Insufficient system storage") for r in replies[8:]), replies
    assert peak - base < budget + 8 * MIB, f"sandbox grew {(peak - base) / MIB:.0f} MiB for a {budget // MIB} MiB budget"
    # the budget is free again once the messages went to the queue
    transaction(late)
    assert late.cmd("DATA")[0] == 354
    late.send(body + b".\r\n")
    assert late.reply()[0] == 250
    for c in clients + [late]:
        c.cmd("QUIT")
        c.close()
    wait_for(lambda: rss(sandbox) < base + 8 * MIB, timeout=10, what="the bodies' memory to come back")


# ---------------------------------------------------------------------------- 5: pop3d limits
def pop3_connect(pm, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", pm.port("pop3")), timeout=10, source_address=(source, 0))
    return s, s.makefile("rb")


def closed(sock, timeout):
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False



def test_pop3_connections_per_address(pm):
    pm.configure(pop3d={"timeout": 30})
    pm.start("pop3d")
    held = [pop3_connect(pm) for _ in range(POP3_MAX_PER_IP)]
    for _, f in held:
        assert f.readline().startswith(b"+OK")
    s, f = pop3_connect(pm)
    assert f.readline() == b"-ERR [SYS/TEMP] too many connections from your address\r\n"
    assert closed(s, 5)
    other, of = pop3_connect(pm, "127.0.0.2")  # another address is not affected
    assert of.readline().startswith(b"+OK")
    held[0][0].sendall(b"QUIT\r\n")
    assert held[0][1].readline().startswith(b"+OK")

    def accepted_again():
        s, f = pop3_connect(pm)
        line = f.readline()
        s.close()
        return line.startswith(b"+OK")
    wait_for(accepted_again, timeout=10, what="a slot for the address again")
    for s, _ in held[1:] + [(other, of)]:
        s.close()


def test_pop3_command_that_never_completes_is_ended(pm):
    pm.configure(pop3d={"timeout": 1})
    pm.start("pop3d")
    s, f = pop3_connect(pm)
    assert f.readline().startswith(b"+OK")
    t0 = time.monotonic()
    ended = False
    for byte in b"NOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOO":  # one byte every 0.3 s: never idle for 1 s
        try:
            s.sendall(bytes([byte]))
        except OSError:
            ended = True
            break
        if closed(s, 0.3):
            ended = True
            break
    took = time.monotonic() - t0
    assert ended, "a command trickled byte by byte kept the session open"
    assert took < 4, took
    assert "event=timeout" in pm.log("pop3d")


def test_pop3_session_deadline(pm):
    pm.configure(pop3d={"timeout": 1})  # a session lasts at most 6 x timeout
    pm.start("pop3d")
    s, f = pop3_connect(pm)
    assert f.readline().startswith(b"+OK")
    t0 = time.monotonic()
    end = None
    while time.monotonic() - t0 < 15:  # busy, never idle: a NOOP every 0.3 s
        try:
            s.sendall(b"NOOP\r\n")
            line = f.readline()
        except OSError:
            line = b""
        if not line.startswith(b"+OK"):
            end = line
            break
        time.sleep(0.3)
    took = time.monotonic() - t0
    assert end is not None, "a busy session was never ended"
    assert 5 < took < 9, took
    assert end in (b"", b"-ERR [SYS/TEMP] session time limit reached\r\n"), end
