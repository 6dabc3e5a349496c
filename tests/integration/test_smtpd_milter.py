"""smtpd's milter client against real milters: a python3-milter peer (milter_peer.py, libmilter's
protocol) that answers every reply type, a milter that is down, one that is too slow, and
Debian's rspamd in milter mode (its proxy worker) with the GTUBE test message.

One Postmesh (queue, delivery) for the module, with these smtpd instances:
  main     milters = ( dead port, default_action accept ; the peer, timeout 2 s ), default tempfail
  down     milters = [ dead port ], default tempfail
  stacked  milters = [ the peer on 127.0.0.1, the peer on ::1 ], greet pause 1 s
  none     no milters
  rspamd   milters = [ rspamd's proxy ], default tempfail
The peer's answer at connect is chosen by the client's source address (127.0.0.N: see
milter_peer.py), at HELO by the name.
"""
import json
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Postmesh, free_port, to_libconfig, traversable, wait_for
from pop3_helpers import add_user, maildir, messages
from smtpd_helpers import client_context, make_cert
from procs import stop_process

HERE = Path(__file__).resolve().parent
ALICE, BOB, SENDER = "alice@example.test", "bob@example.test", "sender@remote.test"
PAUSE_MS = 1000  # the stacked instance's greet pause
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def smtpd_conf(pm, name, milters, **smtpd):
    """A config file for one more smtpd: the module's settings, its own port and milters."""
    port = free_port()
    settings = json.loads(json.dumps(pm.settings))
    settings["smtpd"]["listen"] = [{"address": f"127.0.0.1:{port}", "mode": "smtp"}]
    settings["smtpd"]["milters"] = milters
    settings["smtpd"].update(smtpd)
    path = pm.root / f"{name}.conf"
    path.write_text("".join(f"{k} = {to_libconfig(v)};\n" for k, v in settings.items()))
    return path, port


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("milter"))
    pm = Postmesh(root)
    add_user(pm, ALICE, "secret")
    add_user(pm, BOB, "secret")
    for who in ("reject-rcpt", "discard-rcpt"):  # they exist: the milter, not our check, refuses
        add_user(pm, f"{who}@example.test", "secret")
    peer_port, dead_port = free_port(), free_port()
    peer_log = root / "peer.jsonl"
    peer_log.touch()
    peer_proc = subprocess.Popen(["/usr/bin/python3", str(HERE / "milter_peer.py"), str(peer_port), str(peer_log)],
                            stdout=open(root / "peer.out", "wb"), stderr=subprocess.STDOUT)
    try:
        # The same milter on ::1 too: the second of the stacked instance's two (inet6:)
        peer6_port = free_port()
        peer6_proc = subprocess.Popen(["/usr/bin/python3", str(HERE / "milter_peer.py"), str(peer6_port),
                                       str(peer_log), "inet6"], stdout=open(root / "peer6.out", "wb"),
                                      stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(peer_port) and port_open(peer6_port, "::1"), timeout=10,
                 what="the test milters to listen")
        cert, key = make_cert(root)
        pm.configure(tls={"certificate": cert, "key": key})
        pm.configure(smtpd={"milters": [{"address": f"inet:127.0.0.1:{dead_port}", "default_action": "accept"},
                                        {"address": f"inet:127.0.0.1:{peer_port}", "timeout": 2}],
                            "milter_default_action": "tempfail", "milter_timeout": 10,
                            "verify_inbound": True})
        # The resolver (its name server a dead loopback port) answers the authres stage's
        # look-ups at once with temporary errors; the Authentication-Results: it writes are
        # part of what the milters see.
        pm.start("queue", "resolver", "delivery", "smtpd", timeout=20)
        down_conf, down_port = smtpd_conf(pm, "down", [f"inet:127.0.0.1:{dead_port}"])
        pm.start("smtpd", name="smtpd-down", conf=down_conf, timeout=20)
        peer = f"inet:127.0.0.1:{peer_port}"
        stacked_conf, stacked_port = smtpd_conf(pm, "stacked", [{"address": peer}, f"inet6:[::1]:{peer6_port}"],
                                                greet_pause_ms=PAUSE_MS)
        pm.start("smtpd", name="smtpd-stacked", conf=stacked_conf, timeout=20)
        none_conf, none_port = smtpd_conf(pm, "none", [])
        pm.start("smtpd", name="smtpd-none", conf=none_conf, timeout=20)
        pm.peer_log, pm.down_port, pm.stacked_port, pm.none_port = peer_log, down_port, stacked_port, none_port
        yield pm
    finally:
        pm.stop_all()
        # libmilter notices a SIGTERM only after 5 s; the peer keeps nothing: kill it.
        stop_process(peer_proc, 0, sig=signal.SIGKILL)
        if "peer6_proc" in locals():
            stop_process(peer6_proc, 0, sig=signal.SIGKILL)


def peer_notes(pm, cb):
    return [n for n in map(json.loads, pm.peer_log.read_text().splitlines()) if n.get("cb") == cb]


def send(port, subject, rcpts=(ALICE,), body="hello\r\n", extra="", sender=SENDER, mail_options=()):
    """One message; returns (code, text) of the end of DATA, or the refusal of MAIL/RCPT."""
    msg = f"From: <{sender}>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n{extra}\r\n{body}"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.remote.test")
        code, text = s.mail(sender, list(mail_options))
        if code != 250:
            return code, text.decode()
        refused = {}
        for r in rcpts:
            c, t = s.rcpt(r)
            if c != 250:
                refused[r] = (c, t.decode())
        if len(refused) == len(rcpts):
            return refused[rcpts[0]]
        code, text = s.data(msg.encode())
        return code, text.decode()


def delivered(pm, address, subject, timeout=20):
    """The one delivered message with this Subject (bytes), polled for."""
    def find():
        for p in messages(pm, address):
            data = p.read_bytes()
            if f"Subject: {subject}\r\n".encode() in data.split(b"\r\n\r\n", 1)[0] + b"\r\n":
                return data
        return None
    return wait_for(find, timeout=timeout, what=f"the message '{subject}' in {address}'s mailbox")


def headers_of(data):
    return data.split(b"\r\n\r\n", 1)[0].decode()


def body_of(data):
    return data.split(b"\r\n\r\n", 1)[1].decode()


def milter_log(pm, svc, action):
    return [line for line in pm.log(svc).splitlines() if "event=milter " in line and f"action={action}" in line]


# ---------------------------------------------------------------------- the peer: every reply

def test_continue_delivers_and_the_milter_saw_the_session(env):
    assert send(env.port("smtp"), "plain one", mail_options=("BODY=8BITMIME",))[0] == 250
    data = delivered(env, ALICE, "plain one")
    assert body_of(data) == "hello\r\n"
    conn = peer_notes(env, "connect")[-1]
    assert conn["family"] == 4 or conn["family"] == socket.AF_INET  # libmilter's '4' as python's family
    assert conn["addr"][0] == "127.0.0.1" and conn["j"] == "mx.example.test"
    assert peer_notes(env, "helo")[-1]["name"] == "client.remote.test"
    mail = peer_notes(env, "mail")[-1]
    assert mail["sender"] == f"<{SENDER}>" and "BODY=8BITMIME" in mail["args"] and mail["i"]
    eom = peer_notes(env, "eom")[-1]
    names = [h[0] for h in eom["headers"]]
    # The milter sees the message as it is queued: our Authentication-Results: and Received:
    # on top (the authres stage runs first).
    assert set(names[:2]) == {"Authentication-Results", "Received"} and "Subject" in names
    assert eom["body"] == "hello\r\n"
    # The milter that is down got its default action (accept), logged once per session
    assert "event=milter_error" in env.log("smtpd") and "default_action=accept" in env.log("smtpd")


def test_helo_again_after_starttls_with_the_tls_macros(env):
    with smtplib.SMTP("127.0.0.1", env.port("smtp"), timeout=30) as s:
        s.ehlo("tls.remote.test")
        assert s.mail(SENDER)[0] == 250  # the milter connection opens: HELO without TLS
        assert s.rset()[0] == 250
        s.starttls(context=client_context())
        s.ehlo("tls.remote.test")  # the same name: the milter is told again, now with TLS
        assert s.mail(SENDER)[0] == 250
    before, after = peer_notes(env, "helo")[-2:]
    assert before["name"] == after["name"] == "tls.remote.test"
    assert before["tls"] is None and after["tls"] and after["tls"].startswith("TLSv1")


def test_accept_delivers_unchanged(env):
    assert send(env.port("smtp"), "accept this")[0] == 250
    delivered(env, ALICE, "accept this")
    assert milter_log(env, "smtpd", "accept")


def test_reject_at_rcpt_refuses_that_recipient_only(env):
    code, text = send(env.port("smtp"), "plain rcpt", rcpts=(ALICE, "reject-rcpt@example.test"))
    assert code == 250
    delivered(env, ALICE, "plain rcpt")
    line = [ln for ln in env.log("smtpd").splitlines() if "event=milter " in ln and "stage=rcpt" in ln]
    assert line and "action=reject" in line[-1] and "5.1.1" in line[-1]
    with smtplib.SMTP("127.0.0.1", env.port("smtp"), timeout=30) as s:
        s.ehlo("client.remote.test")
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt("reject-rcpt@example.test")
        assert (code, text.decode()) == (550, "5.1.1 milter says no to this one")


def test_discard_at_rcpt_drops_that_recipient(env):
    code, _ = send(env.port("smtp"), "plain discard-rcpt", rcpts=("discard-rcpt@example.test", BOB))
    assert code == 250
    delivered(env, BOB, "plain discard-rcpt")
    assert not maildir(env, "discard-rcpt@example.test").exists()


def test_reject_at_eom_with_the_milters_reply(env):
    assert send(env.port("smtp"), "reject-eom please") == (554, "5.7.1 custom milter rejection")
    assert "check=milters" in env.log("smtpd")


def test_tempfail_at_eom(env):
    code, text = send(env.port("smtp"), "tempfail please")
    assert code == 451 and text.startswith("4.7.1")


def test_discard_at_eom_answers_250_and_delivers_nothing(env):
    before = len(messages(env, ALICE))
    code, text = send(env.port("smtp"), "discard please")
    assert code == 250 and "discarded" in text
    send(env.port("smtp"), "plain after discard")
    delivered(env, ALICE, "plain after discard")  # later mail arrives; the discarded one never
    assert len(messages(env, ALICE)) == before + 1
    assert milter_log(env, "smtpd", "discard")


def test_add_change_insert_headers(env):
    assert send(env.port("smtp"), "addhdr now")[0] == 250
    h = headers_of(delivered(env, ALICE, "addhdr now"))
    assert h.splitlines()[-1] == "X-Peer-Added: yes"  # at the end of the header

    extra = "X-Multi: first\r\nX-Drop: gone\r\nX-Multi: second\r\n"
    assert send(env.port("smtp"), "chghdr now", extra=extra)[0] == 250
    h = headers_of(delivered(env, ALICE, "chghdr now"))
    assert "X-Multi: first" in h and "X-Multi: second-changed" in h
    assert "X-Drop" not in h and "X-Multi: second\r\n" not in h + "\r\n"

    assert send(env.port("smtp"), "inshdr now")[0] == 250
    data = delivered(env, ALICE, "inshdr now")
    # Index 0 is the top: before the delivery agent's own trace headers only
    lines = headers_of(data).splitlines()
    assert "X-Peer-Top: first" in lines
    assert lines.index("X-Peer-Top: first") < next(i for i, ln in enumerate(lines) if ln.startswith("Received: from"))


def test_replace_body(env):
    assert send(env.port("smtp"), "replbody now", body="the original\r\n")[0] == 250
    assert body_of(delivered(env, ALICE, "replbody now")) == "replaced by the milter\r\n"


def test_quarantine_holds_the_message_with_its_reason(env):
    assert send(env.port("smtp"), "quarantine now", rcpts=(BOB,))[0] == 250
    row = wait_for(lambda: next((r for r in env.queue_list() if "hold_reason=" in r["line"]), None), timeout=10,
                   what="the quarantined message in the queue list")
    assert " hold " in row["line"] and "peer\\x20found\\x20it\\x20suspicious" in row["line"]
    show = env.cli("queue", "show", row["id"]).stdout
    assert 'hold_reason: "peer found it suspicious"' in show, show
    assert milter_log(env, "smtpd", "quarantine")
    # Not delivered while held; released, it is.
    assert not any(b"quarantine now" in p.read_bytes() for p in messages(env, BOB))
    env.cli("queue", "release", row["id"])
    delivered(env, BOB, "quarantine now")


def test_slow_milter_gets_the_default_action_after_its_timeout(env):
    start = time.monotonic()
    code, text = send(env.port("smtp"), "slow please")
    elapsed = time.monotonic() - start
    assert code == 451 and text.startswith("4.7.1")
    assert 1.5 < elapsed < 3.9, elapsed  # the peer's timeout is 2 s; it would take 4 s
    assert "reason=timeout" in env.log("smtpd")


def test_progress_extends_the_timeout(env):
    start = time.monotonic()
    assert send(env.port("smtp"), "progress please")[0] == 250
    assert time.monotonic() - start > 2.5  # longer than the timeout, kept alive by PROGRESS
    delivered(env, ALICE, "progress please")


def test_two_milters_each_see_the_whole_message_and_changes_add_up(env):
    # Over three body chunks: each milter is sent all of it, the second after the first's edit
    body = "".join(f"line {i:06d} " + "x" * 60 + "\r\n" for i in range(3000))
    assert len(body) > 3 * 65535
    before = len(peer_notes(env, "eom"))
    assert send(env.stacked_port, "addhdr stacked", body=body)[0] == 250
    data = delivered(env, ALICE, "addhdr stacked")
    assert body_of(data) == body
    assert headers_of(data).count("X-Peer-Added: yes") == 2
    first, second = peer_notes(env, "eom")[before:before + 2]  # on 127.0.0.1, then on ::1
    assert first["body"] == body and second["body"] == body
    assert ["X-Peer-Added", "yes"] in second["headers"] and ["X-Peer-Added", "yes"] not in first["headers"]


def test_milter_down_with_default_tempfail(env):
    with smtplib.SMTP("127.0.0.1", env.down_port, timeout=30) as s:
        s.ehlo("client.remote.test")
        code, text = s.mail(SENDER)
        assert (code, text.decode()) == (451, "4.7.1 Service unavailable - try again later")
        assert s.rset()[0] == 250
        assert s.mail(SENDER)[0] == 451  # for the rest of the session


# ---------------------------------------------------------------------- connect and HELO

def greet_from(port, source="127.0.0.1"):
    """Connects from source (a loopback alias: the peer's choice at connect) and reads the
    greeting: (client, code, text, seconds it took)."""
    start = time.monotonic()
    s = smtplib.SMTP(timeout=10, source_address=(source, 0))
    code, text = s.connect("127.0.0.1", port)
    return s, code, text.decode(), time.monotonic() - start


def test_connect_reject_greets_554_then_only_quit(env):
    s, code, text, _ = greet_from(env.port("smtp"), "127.0.0.2")
    assert (code, text) == (554, "5.7.1 milter refuses this client")  # its text, with a greeting's 554
    assert s.ehlo("client.remote.test")[0] == 503
    assert s.mail(SENDER)[0] == 503
    assert s.quit()[0] == 221
    s, code, text, _ = greet_from(env.port("smtp"), "127.0.0.7")  # a plain reject
    assert (code, text) == (554, "5.7.1 mx.example.test ESMTP not accepting connections")
    s.quit()
    assert "stage=CONNECT check=milter" in env.log("smtpd")


def test_connect_tempfail_greets_220_and_refuses_every_mail(env):
    # Postfix's behaviour: a 4xx at connect greets 220 and answers MAIL (and each later one)
    s, code, _, _ = greet_from(env.port("smtp"), "127.0.0.3")
    assert code == 220
    assert s.ehlo("tempfail-conn.remote.test")[0] == 250  # HELO is not refused after it
    assert s.mail(SENDER) == (451, b"4.7.1 Service unavailable - try again later")
    assert s.rset()[0] == 250
    assert s.mail(SENDER)[0] == 451
    s.quit()
    assert not [n for n in peer_notes(env, "helo") if n["name"] == "tempfail-conn.remote.test"]


def test_connect_421_reply_closes_the_session(env):
    s, code, text, _ = greet_from(env.port("smtp"), "127.0.0.8")
    assert (code, text) == (421, "4.7.0 milter closing this session")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.ehlo("client.remote.test")


def test_connect_accept_asks_that_milter_nothing_more(env):
    before = len(peer_notes(env, "connect"))
    s, code, _, _ = greet_from(env.port("smtp"), "127.0.0.4")
    assert code == 220
    assert s.ehlo("accepted.remote.test")[0] == 250
    assert s.sendmail("accepted@remote.test", [ALICE],
                      f"From: <accepted@remote.test>\r\nSubject: plain accepted\r\n\r\nhi\r\n") == {}
    s.quit()
    delivered(env, ALICE, "plain accepted")
    assert [n["addr"][0] for n in peer_notes(env, "connect")[before:]] == ["127.0.0.4"]
    assert not [n for n in peer_notes(env, "helo") if n["name"] == "accepted.remote.test"]
    assert not [n for n in peer_notes(env, "mail") if n["sender"] == "<accepted@remote.test>"]
    assert not [n for n in peer_notes(env, "eom") if ["Subject", "plain accepted"] in n["headers"]]


def test_helo_reject_and_tempfail_answer_that_helo(env):
    with smtplib.SMTP("127.0.0.1", env.port("smtp"), timeout=10) as s:
        assert s.ehlo("reject-helo.test") == (550, b"5.7.1 milter refuses this HELO")
        assert s.helo("other.remote.test") == (550, b"5.7.1 milter refuses this HELO")  # kept
        assert s.mail(SENDER)[0] == 503  # no HELO was accepted
    with smtplib.SMTP("127.0.0.1", env.port("smtp"), timeout=10) as s:
        assert s.ehlo("tempfail-helo.test") == (451, b"4.7.1 Service unavailable - try again later")
    line = [ln for ln in env.log("smtpd").splitlines() if "event=milter " in ln and "stage=helo" in ln]
    assert any("action=reject" in ln for ln in line) and any("action=tempfail" in ln for ln in line)


def test_the_greeting_waits_for_the_milters_answer_bounded_by_its_timeout(env):
    s, code, _, quick = greet_from(env.port("smtp"))
    s.quit()
    assert code == 220 and quick < 0.5, quick
    s, code, _, took = greet_from(env.port("smtp"), "127.0.0.6")  # the peer answers after 0.6 s
    assert code == 220 and 0.55 < took < 1.5, took
    assert s.ehlo("client.remote.test")[0] == 250 and s.mail(SENDER)[0] == 250
    s.quit()
    s, code, _, took = greet_from(env.port("smtp"), "127.0.0.5")  # after 3 s: past its 2 s timeout
    assert code == 220 and 1.8 < took < 2.9, took
    s.ehlo("client.remote.test")
    assert s.mail(SENDER)[0] == 451  # its default action, tempfail
    s.quit()
    assert "stage=connect reason=timeout" in env.log("smtpd")


def test_the_milters_connect_overlaps_the_greet_pause(env):
    # Two milters, 0.6 s each, during a 1 s pause: the greeting after ~1.2 s, not 2.2 s
    s, code, _, took = greet_from(env.stacked_port, "127.0.0.6")
    s.quit()
    assert code == 220 and PAUSE_MS / 1000 + 0.15 < took < 1.9, took


def test_no_milters_greets_as_before(env):
    s, code, text, took = greet_from(env.none_port)
    assert (code, text) == (220, "mx.example.test ESMTP Postmesh") and took < 0.5, took
    assert s.ehlo("client.remote.test")[0] == 250 and s.mail(SENDER)[0] == 250
    s.quit()
    assert "event=milter" not in env.log("smtpd-none")


# ---------------------------------------------------------------------- a hostile milter

class EvilMilter:
    """Negotiates properly (asking for every action there is), then answers MAIL with what
    `mode` says: a length over the 1 MB bound, an unknown reply, a header change nobody
    asked for yet, a REPLYCODE that is not a reply line, or a string cut short."""
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.mode = None
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    @staticmethod
    def packet(code, data=b""):
        return struct.pack("!I", len(data) + 1) + code + data

    def session(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rb")
        try:
            while True:
                head = f.read(5)
                if len(head) < 5:
                    return
                f.read(struct.unpack("!I", head[:4])[0] - 1)  # the arguments: not needed
                cmd = head[4:5]
                if cmd == b"O":
                    conn.sendall(self.packet(b"O", struct.pack("!III", 6, 0x1FF, 0)))
                elif cmd == b"M":
                    conn.sendall({
                        "oversize": struct.pack("!I", 2 * 1024 * 1024) + b"c",
                        "unknown": self.packet(b"Z"),
                        "unasked_edit": self.packet(b"h", b"X-A\0b\0"),
                        "bad_replycode": self.packet(b"y", b"250 fine\0"),
                        "cut_string": self.packet(b"y", b"550 5.7.1 no NUL"),
                    }[self.mode])
                elif cmd in (b"C", b"H", b"R", b"T", b"L", b"N", b"B", b"E"):
                    conn.sendall(self.packet(b"c"))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("mode", ["oversize", "unknown", "unasked_edit", "bad_replycode", "cut_string"])
def test_hostile_milter_gets_the_default_action(env, mode):
    if not hasattr(env, "evil"):
        env.evil = EvilMilter()
        conf, env.evil_port = smtpd_conf(env, "evil", [f"inet:127.0.0.1:{env.evil.port}"])
        env.start("smtpd", name="smtpd-evil", conf=conf, timeout=20)
    env.evil.mode = mode
    with smtplib.SMTP("127.0.0.1", env.evil_port, timeout=30) as s:
        s.ehlo("client.remote.test")
        code, text = s.mail(SENDER)
        assert (code, text.decode()) == (451, "4.7.1 Service unavailable - try again later")
    assert env.procs["smtpd-evil"].poll() is None
    assert "reason=protocol_error" in env.log("smtpd-evil")


# ---------------------------------------------------------------------- rspamd

RSPAMD_CONF = """\
options {{
  pidfile = "{d}/rspamd.pid";
  dbdir = "{d}/db";
  local_addrs = [];
  dns {{ nameserver = ["127.0.0.1:{dns}"]; timeout = 0.5s; retransmits = 1; }}
  hs_cache_dir = "{d}/hs";
  disable_hyperscan = true;
}}
modules {{ path = "/usr/share/rspamd/plugins/milter_headers.lua"; }}
milter_headers {{
  use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id"];
  skip_local = false; skip_authenticated = false;
}}
logging {{ type = "file"; filename = "{d}/rspamd.log"; level = "info"; }}
worker "rspamd_proxy" {{
  bind_socket = "127.0.0.1:{port}";
  milter = yes;
  timeout = 60s;
  upstream "local" {{ default = yes; self_scan = yes; }}
  count = 1;
}}
actions {{ reject = 15; add_header = 6; greylist = null; }}
"""


@pytest.fixture(scope="module")
def rspamd(env):
    binary = shutil.which("rspamd")
    if not binary:
        pytest.skip("rspamd is not installed")
    d = env.root / "rspamd"
    (d / "db").mkdir(parents=True)
    (d / "hs").mkdir()
    port = free_port()
    # Each module that needs redis or the network is switched off by the defaults of a
    # minimal config; DNS goes to a port nobody listens on (loopback only).
    (d / "rspamd.conf").write_text(RSPAMD_CONF.format(d=d, port=port, dns=free_port()))
    proc = subprocess.Popen([binary, "-c", str(d / "rspamd.conf"), "-f", "-u", "root", "-g", "root", "-i"],
                            stdout=open(d / "stdout.log", "wb"), stderr=subprocess.STDOUT, cwd=d)
    try:
        wait_for(lambda: proc.poll() is None and port_open(port), timeout=30, what="rspamd's proxy to listen")
        conf, smtp_port = smtpd_conf(env, "rspamd", [f"inet:127.0.0.1:{port}"], milter_timeout=20)
        env.start("smtpd", name="smtpd-rspamd", conf=conf, timeout=20)
        yield {"proc": proc, "port": smtp_port, "dir": d}
    finally:
        stop_process(proc, 10)
        env.stop("smtpd-rspamd")


def test_rspamd_rejects_gtube(env, rspamd):
    code, text = send(rspamd["port"], "gtube test", body=f"{GTUBE}\r\n")
    assert 500 <= code < 600, (code, text)
    assert "action=reject" in "\n".join(milter_log(env, "smtpd-rspamd", "reject"))


def test_rspamd_clean_message_gets_its_headers(env, rspamd):
    body = "Hello Alice,\r\n\r\nthe minutes of today's meeting are below.\r\n\r\nRegards\r\n"
    code, text = send(rspamd["port"], "clean minutes", body=body,
                      extra="Message-ID: <clean.1@remote.test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n")
    assert code == 250, (code, text)
    h = headers_of(delivered(env, ALICE, "clean minutes"))
    assert "\r\nX-Spamd-Result: default: False [" in h and "\r\nX-Rspamd-Server: " in h, h
    # rspamd took the session-unique id we sent as macro i for its queue id
    assert "\r\nX-Rspamd-Queue-Id: " in h, h


def test_rspamd_stopped_gives_the_default_action(env, rspamd):
    stop_process(rspamd["proc"], 10)
    assert rspamd["proc"].poll() is not None
    code, text = send(rspamd["port"], "after rspamd")
    assert (code, text) == (451, "4.7.1 Service unavailable - try again later")
