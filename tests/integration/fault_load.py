"""Fault-injection harness: the whole Postmesh set under `postmesh run`, a bounded mixed SMTP
load from several clients that retry like a real MTA, a killer that SIGKILLs services at
random moments, and a ledger that says afterwards what every client saw and therefore what
must be where. Used by test_faults.py and scripts/soak.py.

What the ledger counts, per Message-ID (each message has a unique one):
- an attempt that got 250 (with its queue id);
- a "maybe": the final "." was sent but no 250 came back (451, a dropped connection, a
  timeout): the queue may or may not have committed it;
- an attempt that failed before the "." was sent cannot have left a copy anywhere.
So for a local recipient: one 250 and k maybes -> between 1 and 1+k copies, and one of
them is the file named after the 250's queue id (delivery names files
<queue id>.<rcpt index>.<host>); no 250 -> at most k copies. For a remote recipient: a 250
-> at least one copy at the sink. A recipient the sink refuses with 550 -> at least one DSN
for the message in the sender's mailbox. Copies from a queue id no client got a 250 for
("orphans") must each be explained by a kill of the queue or smtpd during that attempt.
"""
import email
import email.policy
import os
import poplib
import random
import re
import signal
import smtplib
import socket
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from conftest import wait_for
from pop3_helpers import add_user, make_tls_pair
from remote_peers import AioSink, Dnsmasq, common_port
from services_list import privsep_parents, supervised
import supervisor_harness

SERVICES = tuple(supervised())  # every service `postmesh run` starts (`postmesh services`)
# services whose supervised process is a privsep parent with a sandbox it restarts itself
# (mta's and delivery's hold their job worker), logged as sandbox=<service>
SANDBOXED = frozenset(privsep_parents())
LOCAL_DOMAIN = "example.test"
REMOTE_DOMAINS = ("remote.test", "far.test")
REJECTED = "refused@remote.test"      # the sink answers 550 at RCPT: the sender gets a DSN
PASSWORD = "fault pass"
MSGID_RE = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.I | re.M)



def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []



def send_envelope(conn, m):
    """MAIL and RCPT of message m on an open smtplib connection; refusals raise as smtplib's
    sendmail would."""
    code, resp = conn.mail(m.sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, resp, m.sender)
    for r in m.rcpts:
        code, resp = conn.rcpt(r)
        if code != 250:
            raise smtplib.SMTPRecipientsRefused({r: (code, resp)})

# ---------------------------------------------------------------------------- supervisor

class Supervisor(supervisor_harness.Supervisor):
    """`postmesh run` with every service; start() also waits for each service, and the
    processes of each (privsep children included) can be listed to pick a victim."""

    def __init__(self, pm, services=SERVICES):
        super().__init__(pm, services)

    def start(self, timeout=30):
        super().start(timeout)
        for svc in self.services:
            wait_for(lambda: self.started_since_spawn(svc), timeout, what=f"{svc} to start")

    def pid(self, svc):
        pids = self.spawned(svc)
        return pids[-1] if pids else None

    def started_since_spawn(self, svc, log=None):
        log = self.log() if log is None else log
        pid = self.pid(svc)
        if pid is None:
            return False
        at = log.rfind(f"event=spawn svc={svc} pid={pid}")
        return at >= 0 and re.search(rf"svc={svc} pid=\d+ .*event=started", log[at:]) is not None

    def sandboxes(self, svc):
        """pids from the service's `event=sandbox_started sandbox=<name> pid=N` lines."""
        if svc not in SANDBOXED:
            return []
        return [int(p) for p in re.findall(rf"svc={svc} pid=\d+ .*event=sandbox_started sandbox={svc} pid=(\d+)",
                                           self.log())]

    def processes(self):
        """{svc: [(role, pid)]}: the supervised process and its children (privsep)."""
        log = self.log()
        out = {}
        for svc in self.services:
            pid = self.pid(svc)
            if pid is None or not alive(pid):
                out[svc] = []
                continue
            procs = [("main", pid)]
            names = {}
            for m in re.finditer(rf"svc={svc} pid={pid} .*event=(?:sandbox|helper)_started \w+=(\S+) pid=(\d+)", log):
                names[int(m.group(2))] = m.group(1)
            for child in children(pid):
                procs.append((names.get(child, "child"), child))
            out[svc] = procs
        return out

    def stop(self, sig=signal.SIGTERM, timeout=30):
        rc = super().stop(sig, timeout)
        # the children die with the supervisor (PR_SET_PDEATHSIG); make sure of it
        for svc in self.services:
            for pid in self.spawned(svc):
                if alive(pid):
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        return rc


# ---------------------------------------------------------------------------- rig

class Rig:
    """dnsmasq (MX for the remote domains -> 127.0.0.2), an aiosmtpd sink there, local users,
    and the config for a supervised set with short retries and leases."""

    def __init__(self, pm, users=4, lease=8):
        self.pm = pm
        self.port = common_port("127.0.0.2")
        zone = []
        for dom in REMOTE_DOMAINS:
            zone += [f"--mx-host={dom},mx.{dom},10", f"--host-record=mx.{dom},127.0.0.2"]
        self.dns = Dnsmasq(pm.root, zone)
        try:
            self.sink = AioSink("127.0.0.2", self.port, pm.root)
        except BaseException:
            self.dns.stop()
            raise
        self.sink.handler.rcpt_reply[REJECTED] = "550 5.1.1 <refused@remote.test>: no such user here"
        self.users = [f"u{i}@{LOCAL_DOMAIN}" for i in range(users)]
        for u in self.users:
            add_user(pm, u, PASSWORD)
        cert, key = make_tls_pair(pm.root)
        pm.configure(trusted_networks=["127.0.0.0/8"], tls={"certificate": str(cert), "key": str(key)},
                     debug=False,
                     queue={"retry_min": 1, "retry_max": 2, "job_lease": lease, "max_lifetime": 3600,
                            "delay_warning": 0},
                     resolver={"nameservers": [self.dns.nameserver], "timeout": 2},
                     smtpd={"submit_timeout": 5},
                     bouncer={"submit_timeout": 5},
                     mta={"remote_port": self.port, "connect_timeout": 2, "command_timeout": 5})
        self.supervisor = Supervisor(pm)
        self.stops = []

    def close(self):
        for stop in self.stops:       # client and reader threads of a test that failed early
            stop.set()
        try:
            self.supervisor.stop(signal.SIGKILL)
        finally:
            self.sink.stop()
            self.dns.stop()


# ---------------------------------------------------------------------------- ledger

class Attempt:
    __slots__ = ("start", "dot_at", "end", "outcome", "detail", "queue_id", "wall0")

    def __init__(self):
        self.start = time.monotonic()
        self.wall0 = time.time() - self.start   # monotonic + wall0 = wall clock
        self.dot_at = None
        self.end = None
        self.outcome = None      # "250", "maybe", "no"
        self.detail = ""
        self.queue_id = None

    def taken(self, resp):
        """The server said 250 at the dot: its reply and the queue id it names."""
        self.outcome, self.detail = "250", resp.decode(errors="replace")
        mm = re.search(r"queued as ([0-9A-F]{16})", self.detail)
        self.queue_id = mm.group(1) if mm else None
        self.end = time.monotonic()

    def failed(self, e):
        """What an exception during the attempt says; returns whether the connection is gone."""
        if isinstance(e, smtplib.SMTPResponseException):
            self.detail = f"{e.smtp_code} {e.smtp_error!r}"
            return False
        self.detail = repr(e)
        return True

    def unanswered(self):
        """No 250: the message may have been taken if the dot was sent."""
        self.outcome = "maybe" if self.dot_at is not None else "no"
        self.end = time.monotonic()


class Message:
    def __init__(self, n, run, sender, rcpts, size):
        self.msgid = f"fault-{run}-{n}@client.test"
        self.sender = sender
        self.rcpts = rcpts
        self.size = size
        self.attempts = []
        self.gave_up = False

    def body(self):
        filler = "".join(random.choice("abcdefghij klmnop") for _ in range(70))
        lines = max(1, self.size // 72)
        return (f"From: <{self.sender}>\r\nTo: {', '.join('<%s>' % r for r in self.rcpts)}\r\n"
                f"Subject: fault load {self.msgid}\r\nMessage-ID: <{self.msgid}>\r\n\r\n"
                + "".join(f"{filler} {i}\r\n" for i in range(lines))).encode()

    @property
    def acked(self):
        return [a for a in self.attempts if a.outcome == "250"]

    @property
    def maybes(self):
        return [a for a in self.attempts if a.outcome == "maybe"]

    def local_rcpts(self):
        return [r for r in self.rcpts if r.endswith("@" + LOCAL_DOMAIN)]

    def remote_rcpts(self):
        return [r for r in self.rcpts if not r.endswith("@" + LOCAL_DOMAIN) and r != REJECTED]


def plan(count, users, run, rng):
    """count messages: local only, remote only, mixed, and some with a refused recipient."""
    msgs = []
    for n in range(count):
        sender = rng.choice(users)
        kind = rng.random()
        local = rng.sample(users, rng.choice((1, 1, 2)))
        remote = [f"r{rng.randrange(8)}@{rng.choice(REMOTE_DOMAINS)}"]
        if kind < 0.35:
            rcpts = local
        elif kind < 0.65:
            rcpts = remote
        elif kind < 0.92:
            rcpts = local + remote
        else:
            rcpts = [REJECTED] + remote
        msgs.append(Message(n, run, sender, list(dict.fromkeys(rcpts)), rng.choice((300, 1200, 4000, 20000))))
    return msgs


# ---------------------------------------------------------------------------- clients

class LoadSMTP(smtplib.SMTP):
    """smtplib whose DATA phase records when the final dot went out (from then on a failure
    is a "maybe") and can pipeline QUIT after the dot and half-close, as some clients do."""

    def data_recorded(self, msg: bytes, attempt: Attempt, quit_after=False):
        self.putcmd("data")
        code, repl = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, repl)
        payload = msg if msg.endswith(b"\r\n") else msg + b"\r\n"
        payload += b".\r\n"
        attempt.dot_at = time.monotonic()
        if quit_after:
            self.send(payload + b"QUIT\r\n")
            self.sock.shutdown(socket.SHUT_WR)
        else:
            self.send(payload)
        code, repl = self.getreply()
        if quit_after and code == 250:
            self.getreply()   # 221; its absence is not the message's problem
        return code, repl


class Clients:
    """threads sending msgs spread evenly over `window` seconds; each message is retried on
    any temporary failure until it gets 250 or `deadline` (monotonic) passes."""

    def __init__(self, port, msgs, nclients, window, deadline, rng, halfclose_every=4, per_session=5, reserve=()):
        self.port = port
        self.msgs = msgs
        self.reserve = list(reserve)     # messages for bursts (see burst())
        self.rng = rng
        self.window = window
        self.deadline = deadline
        self.threads = []
        self.errors = []
        self.stop = threading.Event()
        shares = [msgs[i::nclients] for i in range(nclients)]
        for c, share in enumerate(shares):
            seed = rng.randrange(1 << 30)
            t = threading.Thread(target=self._run, args=(c, share, random.Random(seed), halfclose_every,
                                                         per_session), daemon=True)
            self.threads.append(t)

    def start(self):
        self.t0 = time.monotonic()
        for t in self.threads:
            t.start()

    def join(self, timeout):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def _run(self, c, share, rng, halfclose_every, per_session):
        try:
            interval = self.window / max(1, len(share))
            conn, used = None, 0
            for k, m in enumerate(share):
                due = self.t0 + k * interval + rng.uniform(0, interval)
                while time.monotonic() < due and not self.stop.is_set():
                    time.sleep(min(0.05, max(0.0, due - time.monotonic())))
                # some sessions end with ". QUIT" in one write and a half-close
                last = used + 1 >= per_session or k == len(share) - 1
                halfclose = last and halfclose_every and (c % halfclose_every == 0)
                conn, used = self._deliver(conn, used, m, rng, halfclose, last)
            if conn is not None:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    pass
        except Exception as e:  # a bug in the harness must not look like a pass
            self.errors.append(repr(e))
            raise

    def burst(self, n):
        """n more messages (from the reserve) on n connections, each staged up to its final
        dot; fire() sends every dot at once, so a kill right after lands among submissions
        in flight. Afterwards each message is retried like any other until it gets 250."""
        take, self.reserve = self.reserve[:n], self.reserve[n:]
        b = Burst(len(take))
        for m in take:
            t = threading.Thread(target=self._burst_one, args=(m, b, random.Random(self.rng.randrange(1 << 30))),
                                 daemon=True)
            self.threads.append(t)
            t.start()
        return b

    def _burst_one(self, m, b, rng):
        try:
            a = Attempt()
            m.attempts.append(a)
            conn, closed = None, False
            try:
                try:
                    conn = self._connect()
                    send_envelope(conn, m)
                    conn.putcmd("data")
                    code, resp = conn.getreply()
                    if code != 354:
                        raise smtplib.SMTPDataError(code, resp)
                    conn.send(m.body())
                finally:
                    b.staged()
                b.go.wait(30)
                a.dot_at = time.monotonic()
                conn.send(b".\r\n")
                code, resp = conn.getreply()
                if code == 250:
                    a.taken(resp)
                    self._close(conn, polite=True)
                    return
                a.detail = f"{code} {resp.decode(errors='replace')}"
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, smtplib.SMTPServerDisconnected,
                    OSError) as e:
                closed = a.failed(e) or closed
            a.unanswered()
            self._close(conn, polite=not closed)
            time.sleep(0.2 * rng.uniform(0.5, 1.5))
            conn, _ = self._deliver(None, 0, m, rng, False, True)
            self._close(conn, polite=True)
        except Exception as e:
            self.errors.append(repr(e))
            raise

    def _connect(self):
        s = LoadSMTP("127.0.0.1", self.port, timeout=20)
        code, _ = s.ehlo("client.load.test")
        if code != 250:
            raise smtplib.SMTPHeloError(code, b"ehlo")
        return s

    def _deliver(self, conn, used, m, rng, halfclose, last):
        body = m.body()
        delay = 0.2
        first = True
        while True:
            if time.monotonic() > self.deadline or self.stop.is_set():
                m.gave_up = True
                return conn, used
            a = Attempt()
            m.attempts.append(a)
            closed = False
            # a retry goes the plain way: a reply lost to the half-close shows as an orphan
            halfclose, first = halfclose and first, False
            try:
                if conn is None:
                    conn, used = self._connect(), 0
                send_envelope(conn, m)
                code, resp = conn.data_recorded(body, a, quit_after=halfclose)
                used += 1
                if halfclose:
                    closed = True
                if code == 250:
                    a.taken(resp)
                    if closed or last:
                        self._close(conn, polite=not closed)
                        conn = None
                    return conn, used
                a.detail = f"{code} {resp.decode(errors='replace')}"
                if 500 <= code < 600:
                    a.outcome, a.end = "maybe", time.monotonic()
                    m.gave_up = True           # a real MTA bounces it; none is expected here
                    return self._close(conn, polite=not closed), 0
            except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, smtplib.SMTPServerDisconnected,
                    OSError) as e:
                closed = a.failed(e) or closed
            a.unanswered()
            conn = self._close(conn, polite=not closed)
            used = 0
            time.sleep(delay * rng.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)

    @staticmethod
    def _close(conn, polite):
        if conn is None:
            return None
        try:
            if polite:
                conn.quit()
            else:
                conn.close()
        except (OSError, smtplib.SMTPException):
            try:
                conn.close()
            except OSError:
                pass
        return None


class Burst:
    def __init__(self, n):
        self.n = n
        self.done = 0
        self.lock = threading.Condition()
        self.go = threading.Event()

    def staged(self):
        with self.lock:
            self.done += 1
            self.lock.notify_all()

    def wait_staged(self, timeout):
        with self.lock:
            return self.lock.wait_for(lambda: self.done >= self.n, timeout)

    def fire(self):
        self.go.set()


class PopReader(threading.Thread):
    """Logs in to the users' mailboxes over and over (STAT, UIDL, RETR 1, never DELE), so a
    pop3d kill can hit a live session; counts successes and failures."""

    def __init__(self, port, users, stop, max_seconds=3600):
        super().__init__(daemon=True)
        self.port, self.users, self.stop = port, users, stop
        self.until = time.monotonic() + max_seconds
        self.ok = 0
        self.failed = 0

    def run(self):
        i = 0
        while not self.stop.is_set() and time.monotonic() < self.until:
            user = self.users[i % len(self.users)]
            i += 1
            try:
                p = poplib.POP3("127.0.0.1", self.port, timeout=10)
                try:
                    p.user(user)
                    p.pass_(PASSWORD)
                    count = p.stat()[0]
                    p.uidl()
                    if count:
                        p.retr(1)
                finally:
                    try:
                        p.quit()
                    except (OSError, poplib.error_proto):
                        pass
                self.ok += 1
            except (OSError, poplib.error_proto, EOFError):
                self.failed += 1
            self.stop.wait(0.3)


def pop_stat(port, user):
    """The message count POP3 shows for user, None when the login fails."""
    try:
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        try:
            p.user(user)
            p.pass_(PASSWORD)
            return p.stat()[0]
        finally:
            p.quit()
    except (OSError, poplib.error_proto, EOFError):
        return None


# ---------------------------------------------------------------------------- killer

class Killer(threading.Thread):
    """SIGKILLs services at random moments: one after another in `schedule`, each kill
    followed by a wait until the supervisor (or, for a sandbox, its privsep parent) has a new
    one serving. Modes: "main" the supervised process (its privsep children die with it),
    "group" every process of the service at once, "sandbox" only the privsep sandbox."""

    def __init__(self, sv, schedule, t0, log, clients=None, burst_size=0, rng=None):
        super().__init__(daemon=True)
        self.sv, self.schedule, self.t0, self.say = sv, schedule, t0, log
        self.clients, self.burst_size, self.rng = clients, burst_size, rng or random.Random()
        self.kills = []          # (monotonic time, svc, mode, pid, recovered seconds)
        self.errors = []

    def run(self):
        try:
            for at, svc, mode in self.schedule:
                while time.monotonic() < self.t0 + at:
                    time.sleep(0.02)
                self._kill(svc, mode)
        except Exception as e:
            self.errors.append(repr(e))

    def _kill(self, svc, mode):
        sv = self.sv
        main = sv.pid(svc)
        spawns = len(sv.spawned(svc))
        nsandboxes = len(sv.sandboxes(svc))
        if mode == "sandbox":
            sandboxes = sv.sandboxes(svc)
            victim = sandboxes[-1] if sandboxes else None
            if victim is None or not alive(victim):
                mode, victim = "group", main
        else:
            victim = main
        # The services on the intake path are killed among submissions in flight: a burst of
        # messages staged up to their final dot, all sent at once just before the kill.
        burst = ""
        if self.clients is not None and self.burst_size and svc in ("queue", "smtpd"):
            b = self.clients.burst(self.burst_size)
            b.wait_staged(10)
            b.fire()
            pause = self.rng.uniform(0.0, 0.006)
            time.sleep(pause)
            burst = f" burst={b.n} after={pause * 1000:.1f}ms"
        t = time.monotonic()
        try:
            if mode == "group":
                os.killpg(victim, signal.SIGKILL)
            else:
                os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.say(f"kill t={t - self.t0:.1f}s svc={svc} mode={mode} pid={victim}{burst}")
        if mode == "sandbox":
            wait_for(lambda: len(sv.sandboxes(svc)) > nsandboxes and alive(sv.sandboxes(svc)[-1]), 30,
                     interval=0.05, what=f"a new {svc} sandbox after killing {victim}")
        else:
            wait_for(lambda: len(sv.spawned(svc)) > spawns, 40, interval=0.05,
                     what=f"the supervisor to restart {svc}")
            wait_for(lambda: sv.started_since_spawn(svc), 30, interval=0.05, what=f"restarted {svc} to start")
        self.kills.append((t, svc, mode, victim, time.monotonic() - t))


def kill_schedule(rng, rounds, window, services=SERVICES, lead_in=2.0, spacing=2.0):
    """rounds x every service, in a random order per round, at random moments spread over
    window seconds (at least spacing apart); privsep services get "group", "sandbox" or "main"."""
    order = []
    for _ in range(rounds):
        svcs = list(services)
        rng.shuffle(svcs)
        order += svcs
    slot = (window - lead_in) / len(order)
    out = []
    for i, svc in enumerate(order):
        at = lead_in + i * slot + rng.uniform(0, max(0.0, slot - spacing))
        if svc in SANDBOXED:
            mode = rng.choice(("group", "sandbox", "main"))
        else:
            mode = "main"
        out.append((at, svc, mode))
    return out


# ---------------------------------------------------------------------------- what arrived

def _header_msgid(raw: bytes):
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    m = MSGID_RE.search(head)
    return m.group(1).decode(errors="replace") if m else None


def dsn_original_msgid(raw: bytes):
    """The Message-ID of the message a multipart/report DSN is about, else None."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        return None
    for part in msg.walk():
        if part.get_content_type() in ("text/rfc822-headers", "message/rfc822"):
            payload = part.get_payload(decode=False)
            text = payload if isinstance(payload, str) else str(payload[0]) if payload else ""
            m = MSGID_RE.search(text.encode(errors="replace"))
            if m:
                return m.group(1).decode(errors="replace")
    return None


def mailbox_contents(pm, users):
    """{(msgid, user): [queue ids of the files]}, {(original msgid, user): DSN count}."""
    local = {}
    seen = defaultdict(set)
    dsns = Counter()
    for user in users:
        lp, dom = user.rsplit("@", 1)
        md = pm.state / "mail" / dom / lp / "Maildir"
        for sub in ("new", "cur"):
            d = md / sub
            if not d.is_dir():
                continue
            for f in d.iterdir():
                if f.name.startswith("."):
                    continue
                try:
                    raw = f.read_bytes()
                except FileNotFoundError:      # moved new/ -> cur/ by pop3d meanwhile
                    continue
                if b"multipart/report" in raw[:8192]:
                    orig = dsn_original_msgid(raw)
                    if orig:
                        dsns[(orig, user)] += 1
                        continue
                mid = _header_msgid(raw)
                if mid:
                    seen[(mid, user)].add(f.name.split(":", 1)[0])   # one file, wherever it is
    for key, names in seen.items():
        local[key] = [n.split(".", 1)[0] for n in sorted(names)]
    return local, dsns


def sink_contents(sink):
    got = Counter()
    with sink.handler.lock:
        msgs = list(sink.messages)
    for m in msgs:
        mid = _header_msgid(m["content"])
        for r in m["rcpt_tos"]:
            got[(mid, r)] += 1
    return got


# ---------------------------------------------------------------------------- verdict

def qid_time(qid):
    """Queue ids start with 13 hex digits of microseconds since the epoch."""
    return int(qid[:13], 16) / 1e6


def orphan_unexplained(qid, maybes, kills, slack=0.5):
    """None if an uncertain attempt was in flight when the queue took qid and a kill of the
    queue or smtpd fell into that attempt; else why not."""
    t = qid_time(qid)
    during = [a for a in maybes if a.dot_at is not None and
              a.dot_at + a.wall0 - slack <= t <= a.end + a.wall0 + slack]
    if not during:
        return "and no uncertain attempt was in flight when the queue took it"
    for a in during:
        if any(a.dot_at - 1.0 <= k <= a.end + 1.0 for k in kills):
            return None
    return ("while neither the queue nor smtpd was killed during that attempt (the client saw: " +
            "; ".join(a.detail[:80] for a in during) + ")")


def verify(msgs, pm, users, sink, kills, final=True):
    """Problems found (a list of strings; empty means every promise held) and counters."""
    local, dsns = mailbox_contents(pm, users)
    remote = sink_contents(sink)
    problems = []
    stats = Counter()
    queue_or_smtpd_kills = [t for (t, svc, _m, _p, _r) in kills if svc in ("queue", "smtpd")]
    for m in msgs:
        acked = m.acked
        maybes = m.maybes
        stats["messages"] += 1
        stats["acked"] += bool(acked)
        stats["attempts"] += len(m.attempts)
        stats["maybe_attempts"] += len(maybes)
        stats["gave_up"] += m.gave_up
        if len(acked) > 1:
            problems.append(f"{m.msgid}: the client retried after a 250 (harness bug)")
        ack_ids = {a.queue_id for a in acked}
        for r in m.local_rcpts():
            files = local.get((m.msgid, r), [])
            n = len(files)
            stats["local_copies"] += n
            if acked:
                stats["local_expected"] += 1
                if n == 0:
                    problems.append(f"{m.msgid}: LOST for {r} (250 {acked[0].queue_id})")
                elif n > 1 + len(maybes):
                    problems.append(f"{m.msgid}: {n} copies for {r} after one 250 and {len(maybes)} "
                                    f"uncertain attempts: {files}")
                elif acked[0].queue_id and acked[0].queue_id not in files:
                    problems.append(f"{m.msgid}: the 250's queue id {acked[0].queue_id} is not the file "
                                    f"delivered to {r}: {files}")
                if n > 1:
                    stats["local_duplicates"] += n - 1
            elif n > len(maybes):
                problems.append(f"{m.msgid}: {n} copies for {r} without any 250 and only {len(maybes)} "
                                f"uncertain attempts: {files}")
            # A copy no 250 was given for: its queue id says when the queue took it; the
            # attempt in flight then must have lost its reply to a kill of the queue or smtpd.
            for qid in set(files) - ack_ids:
                stats["orphans"] += 1
                problem = orphan_unexplained(qid, maybes, queue_or_smtpd_kills)
                if problem:
                    problems.append(f"{m.msgid}: {r} has a copy from queue id {qid} whose 250 the client never got, "
                                    f"{problem}")
        for r in m.remote_rcpts():
            n = remote.get((m.msgid, r), 0)
            stats["remote_copies"] += n
            if acked:
                stats["remote_expected"] += 1
                if n == 0:
                    problems.append(f"{m.msgid}: LOST for {r} at the remote MX (250 {acked[0].queue_id})")
                stats["remote_duplicates"] += max(0, n - 1)
            elif not maybes and n:
                problems.append(f"{m.msgid}: at the remote MX for {r} although no attempt ever sent its '.'")
        if REJECTED in m.rcpts:
            if remote.get((m.msgid, REJECTED)):
                problems.append(f"{m.msgid}: the sink has it for the refused recipient")
            n = dsns.get((m.msgid, m.sender), 0)
            stats["dsns"] += n
            if acked:
                stats["dsn_expected"] += 1
                if n == 0:
                    problems.append(f"{m.msgid}: no DSN in {m.sender}'s mailbox for {REJECTED} "
                                    f"(250 {acked[0].queue_id})")
        if not m.attempts or all(a.outcome == "no" for a in m.attempts):
            if any(local.get((m.msgid, r)) for r in m.local_rcpts()):
                problems.append(f"{m.msgid}: delivered although no attempt ever sent its '.'")
    if final:
        for m in msgs:
            if m.gave_up:
                last = m.attempts[-1].detail if m.attempts else "no attempt"
                problems.append(f"{m.msgid}: the client never got a 250 before its deadline (last: {last[:120]})")
    order = ("LOST", "whose 250", "copies", "the 250's queue id")
    return sorted(problems, key=lambda p: next((i for i, w in enumerate(order) if w in p), len(order))), stats


def queue_log_problems(run_log, msgs):
    """The queue's own accounting for every acknowledged queue id: each recipient ends in
    rcpt_delivered (or bounced, for the refused one) and the message is removed."""
    problems = []
    delivered = set(re.findall(r"svc=queue .*event=rcpt_delivered id=(\w+) to=(\S+)", run_log))
    bounced = set(re.findall(r"svc=queue .*event=bounced id=(\w+) to=(\S+)", run_log))
    removed = set(re.findall(r"svc=queue .*event=removed id=(\w+)", run_log))
    for m in msgs:
        for a in m.acked:
            q = a.queue_id
            if not q:
                problems.append(f"{m.msgid}: 250 without a queue id: {a.detail}")
                continue
            for r in m.rcpts:
                if r == REJECTED:
                    if (q, r) not in bounced:
                        problems.append(f"{m.msgid}: queue never logged bounced id={q} to={r}")
                elif (q, r) not in delivered:
                    problems.append(f"{m.msgid}: queue never logged rcpt_delivered id={q} to={r}")
            if q not in removed:
                problems.append(f"{m.msgid}: queue never logged removed id={q}")
    return problems


def unexpected_exits(run_log, kills):
    """Exits the supervisor saw and sandbox deaths a parent logged that no kill caused."""
    ours_main = Counter(svc for (_t, svc, mode, _p, _r) in kills if mode != "sandbox")
    ours_sandbox = {pid for (_t, _svc, mode, pid, _r) in kills if mode == "sandbox"}
    exits = Counter(re.findall(r"svc=postmesh .*event=exit svc=(\w+) pid=\d+", run_log))
    out = []
    for svc, n in exits.items():
        if n > ours_main.get(svc, 0):
            lines = [ln for ln in run_log.splitlines() if f"event=exit svc={svc} " in ln]
            out.append(f"{svc} exited {n} times, {ours_main.get(svc, 0)} of them killed by the test: {lines}")
    for m in re.finditer(r"svc=(\w+) .*event=sandbox_exited sandbox=(\S+) pid=(\d+)(.*)", run_log):
        if int(m.group(3)) not in ours_sandbox:
            out.append(f"{m.group(1)} sandbox {m.group(2)} pid={m.group(3)} died on its own:{m.group(4)}")
    return out


def wait_queue_empty(pm, sv, timeout):
    """Polls `postmesh queue list` until it is empty; returns the last listing."""
    last = {"out": None}

    def empty():
        r = pm.cli("queue", "list", check=False, timeout=15)
        last["out"] = r.stdout + r.stderr
        return r.returncode == 0 and not r.stdout.strip()
    try:
        wait_for(empty, timeout, interval=0.5, what="the queue to empty")
        return None
    except AssertionError:
        return last["out"]


def rss_table(sv):
    """[(svc, role, pid, rss KiB)] of every process of every service."""
    rows = []
    for svc, procs in sv.processes().items():
        for role, pid in procs:
            rows.append((svc, role, pid, rss_kib(pid)))
    return rows
