"""The postmesh CLI: users file management, config errors, check, the queue commands against a
real queue, and `postmesh run` supervising the real service binaries."""
import ctypes
import ctypes.util
import os
import re
import signal
import smtplib
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, wait_for
from services_list import row, supervised
from supervisor_harness import Supervisor

_libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt"))
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]


def crypt_matches(password, crypt_string):
    """libcrypt itself (not our code) says whether the stored hash is the password's."""
    return _libcrypt.crypt(password.encode(), crypt_string.encode()) == crypt_string.encode()


def users(pm):
    """users file -> {address: "{SCHEME}hash"}"""
    out = {}
    for line in Path(pm.settings["users_file"]).read_text().splitlines():
        if line and not line.startswith("#"):
            address, value = line.split(":", 1)
            out[address] = value
    return out


LINE_RE = re.compile(r"^[a-z0-9.]+@example\.test:\{YESCRYPT\}\$y\$[./A-Za-z0-9$]+$")


# ---------------------------------------------------------------- user

def test_user_add_list_passwd_del_round_trip(pm):
    pm.write_config()
    r = pm.cli("user", "add", "Alice@Example.TEST", input="s3cret pass\n")
    assert "alice@example.test" in r.stdout
    pm.cli("user", "add", "bob@example.test", input="hunter2\r\n")   # CRLF line end tolerated

    path = Path(pm.settings["users_file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    for line in path.read_text().splitlines():
        assert LINE_RE.match(line), line
    u = users(pm)
    assert set(u) == {"alice@example.test", "bob@example.test"}
    assert crypt_matches("s3cret pass", u["alice@example.test"][len("{YESCRYPT}"):])
    assert crypt_matches("hunter2", u["bob@example.test"][len("{YESCRYPT}"):])
    assert not crypt_matches("hunter3", u["bob@example.test"][len("{YESCRYPT}"):])

    assert pm.cli("user", "list").stdout.split() == ["alice@example.test", "bob@example.test"]

    # Refusals: an existing user (any case), a foreign domain, no password, a bad address.
    r = pm.cli("user", "add", "ALICE@example.test", input="x\n", check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = pm.cli("user", "add", "carol@elsewhere.test", input="x\n", check=False)
    assert r.returncode == 1 and "not one of our domains" in r.stderr
    r = pm.cli("user", "add", "carol@example.test", input="", check=False)
    assert r.returncode == 1 and "password" in r.stderr
    r = pm.cli("user", "add", "carol@example.test", input="\n", check=False)
    assert r.returncode == 1 and "empty password" in r.stderr
    r = pm.cli("user", "add", "carol smith@example.test", input="x\n", check=False)
    assert r.returncode == 1
    assert set(users(pm)) == {"alice@example.test", "bob@example.test"}

    old = users(pm)["alice@example.test"]
    pm.cli("user", "passwd", "alice@EXAMPLE.test", input="new one\n")
    new = users(pm)["alice@example.test"]
    assert new != old
    assert crypt_matches("new one", new[len("{YESCRYPT}"):])
    assert not crypt_matches("s3cret pass", new[len("{YESCRYPT}"):])
    assert users(pm)["bob@example.test"] == u["bob@example.test"]    # others untouched

    pm.cli("user", "del", "bob@example.test")
    assert set(users(pm)) == {"alice@example.test"}
    r = pm.cli("user", "del", "bob@example.test", check=False)
    assert r.returncode == 1 and "no user" in r.stderr
    r = pm.cli("user", "passwd", "nobody@example.test", input="x\n", check=False)
    assert r.returncode == 1
    assert pm.cli("user", "list").stdout.split() == ["alice@example.test"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_user_edits_keep_comments_and_refuse_a_broken_file(pm):
    pm.write_config()
    path = Path(pm.settings["users_file"])
    path.write_text("# managed by postmesh\n\n")
    pm.cli("user", "add", "a@example.test", input="pw\n")
    text = path.read_text()
    assert text.startswith("# managed by postmesh\n\n")
    path.write_text(text + "garbage line\n")
    r = pm.cli("user", "add", "b@example.test", input="pw\n", check=False)
    assert r.returncode == 1 and f"{path}:4:" in r.stderr
    assert "b@example.test" not in path.read_text()


def test_concurrent_user_adds_lose_nothing(pm):
    """Each add is a locked read-modify-write: none may overwrite another's line."""
    pm.write_config()
    procs = [subprocess.Popen([str(BIN / "postmesh"), "-c", str(pm.conf_path), "user", "add", f"u{i}@example.test"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i in range(8)]
    for p in procs:
        p.stdin.write(b"pw\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()
        p.stderr.close()
    assert set(users(pm)) == {f"u{i}@example.test" for i in range(8)}


# ---------------------------------------------------------------- config errors, check, usage

def test_config_errors_name_file_and_line_and_exit_2(pm):
    pm.write_config()
    text = pm.conf_path.read_text().splitlines()
    text.insert(2, "no_such_key = 1;")
    pm.conf_path.write_text("\n".join(text) + "\n")
    for args in (["user", "list"], ["queue", "list"], ["check"], ["run"], ["status"]):
        r = subprocess.run([str(BIN / "postmesh"), "-c", str(pm.conf_path), *args], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert f"{pm.conf_path}:3:" in r.stderr and "no_such_key" in r.stderr, r.stderr
    pm.conf_path.write_text('hostname = "x";\nqueue = { retry_min = ; };\n')
    r = subprocess.run([str(BIN / "postmesh"), "-c", str(pm.conf_path), "check"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and f"{pm.conf_path}:2:" in r.stderr
    # $POSTMESH_CONFIG is the default for -c.
    r = subprocess.run([str(BIN / "postmesh"), "user", "list"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "POSTMESH_CONFIG": str(pm.root / "missing.conf")})
    assert r.returncode == 2 and "missing.conf" in r.stderr


def test_usage_and_exit_codes(pm):
    pm.write_config()
    r = subprocess.run([str(BIN / "postmesh"), "-h"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "user add ADDRESS" in r.stdout and "queue list" in r.stdout
    r = subprocess.run([str(BIN / "postmesh"), "help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "usage:" in r.stdout
    for args in ([], ["frobnicate"], ["queue"], ["queue", "show"], ["queue", "hold", "not-an-id"],
                 ["user", "add"], ["user", "list", "extra"]):
        r = pm.cli(*args, check=False)
        assert r.returncode == 2, (args, r.stdout, r.stderr)


def test_check_reports_bad_users_aliases_and_tls_files(pm):
    pm.write_config()
    r = pm.cli("check")
    assert "FAIL" not in r.stdout
    assert re.search(r"^ok\s+queue\s", r.stdout, re.M) or "not installed" in r.stdout

    users_path = Path(pm.settings["users_file"])
    users_path.write_text("a@example.test:{YESCRYPT}$y$j9T$abc$def\nbroken\n")
    r = pm.cli("check", check=False)
    assert r.returncode == 1 and f"{users_path}:2:" in r.stdout
    users_path.write_text("")

    aliases_path = Path(pm.settings["aliases_file"])
    aliases_path.write_text("team@example.test: a@example.test,\n  b@example.test\nloose line\n")
    r = pm.cli("check", check=False)
    assert r.returncode == 1 and f"{aliases_path}:3:" in r.stdout
    aliases_path.write_text("team@example.test: a@example.test\n")
    assert pm.cli("check").returncode == 0

    # A key without its certificate is an error; neither is fine (`run` makes a pair).
    tls = pm.root / "tls"
    tls.mkdir()
    pm.configure(tls={"certificate": str(tls / "cert.pem"), "key": str(tls / "key.pem")})
    r = pm.cli("check")
    assert "will be created" in r.stdout
    (tls / "key.pem").write_text("not a key\n")
    (tls / "cert.pem").write_text("not a certificate\n")
    r = pm.cli("check", check=False)
    assert r.returncode == 1 and "cert.pem" in r.stdout


# ---------------------------------------------------------------- queue commands

def test_queue_commands_fail_cleanly_without_a_queue(pm):
    pm.write_config()
    t0 = time.monotonic()
    r = pm.cli("queue", "list", check=False)
    assert r.returncode == 1 and "did not answer" in r.stderr
    assert time.monotonic() - t0 < 15
    r = pm.cli("status", check=False)
    assert r.returncode == 1


def _send(pm, sender, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=20) as s:
        s.ehlo()
        code, resp = s.mail(sender)
        assert code == 250, resp
        code, resp = s.rcpt(rcpt)
        assert code == 250, resp
        code, resp = s.data(f"Subject: {subject}\r\nFrom: <{sender}>\r\n\r\nbody\r\n".encode())
        assert code == 250, resp
        return resp.decode().rsplit(" ", 1)[-1]


def _line_of(pm, qid):
    for row in pm.queue_list():
        if row["id"] == qid:
            return row["line"].split(" ")
    return None


@pytest.mark.skipif(not (BIN / "postmesh-smtpd").exists() or not (BIN / "postmesh-queue").exists(),
                    reason="needs postmesh-queue and postmesh-smtpd")
def test_queue_list_show_hold_release_delete(pm):
    pm.write_config()
    pm.cli("user", "add", "rcpt@example.test", input="pw\n")
    pm.start("queue", "smtpd")       # no delivery service: the messages stay queued
    q1 = _send(pm, "sender@client.test", "rcpt@example.test", "cli test one")
    q2 = _send(pm, "", "rcpt@example.test", "cli test two")
    assert re.fullmatch(r"[0-9A-F]{16}", q1) and re.fullmatch(r"[0-9A-F]{16}", q2)

    lines = pm.cli("queue", "list").stdout.splitlines()
    assert len(lines) == 2
    fields = _line_of(pm, q1)
    assert len(fields) == 6, fields
    assert re.fullmatch(r"\d+[smhd]", fields[1])
    assert int(fields[2]) > 20
    assert fields[3] == "sender@client.test"
    assert fields[5] == "rcpt@example.test"
    assert _line_of(pm, q2)[3] == "<>"

    r = pm.cli("queue", "show", q1.lower())          # ids are accepted in either case
    assert f"id: {q1}" in r.stdout
    assert "sender: <sender@client.test>" in r.stdout
    assert "recipient: <rcpt@example.test>" in r.stdout
    assert "Subject: cli test one" in r.stdout
    assert "body" not in r.stdout.split("Subject: cli test one", 1)[1]   # headers only

    assert "hold" in pm.cli("queue", "hold", q1).stdout
    assert _line_of(pm, q1)[4] == "hold"
    assert _line_of(pm, q2)[4] != "hold"
    pm.cli("queue", "release", q1)
    assert _line_of(pm, q1)[4] != "hold"

    pm.cli("queue", "delete", q1)
    assert _line_of(pm, q1) is None
    assert _line_of(pm, q2) is not None
    for args in (("queue", "delete", q1), ("queue", "show", q1), ("queue", "hold", q1)):
        r = pm.cli(*args, check=False)
        assert r.returncode == 1 and q1 in r.stderr, (args, r.stderr)
    assert pm.cli("queue", "flush").returncode == 0
    assert "messages=1" in pm.cli("status").stdout


# ---------------------------------------------------------------- postmesh run

SUPERVISED = ["queue", "resolver", "delivery", "bouncer"]


def started_after_spawn(log, svc, pid):
    """The service spawned as pid (or its privsep worker) logged event=started since."""
    spawn = log.find(f"event=spawn svc={svc} pid={pid}")
    return spawn >= 0 and re.search(rf"svc={svc} pid=\d+ .*event=started", log[spawn:])


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def supervisor(pm):
    present = [s for s in SUPERVISED if (BIN / f"postmesh-{s}").exists()]
    if "queue" not in present:
        pytest.skip("needs postmesh-queue")
    sv = Supervisor(pm, present)
    sv.present = present
    yield sv
    sv.stop(signal.SIGKILL)
    # The children die with the supervisor (PR_SET_PDEATHSIG); make sure of it.
    for svc in SUPERVISED:
        for pid in sv.spawned(svc):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_run_starts_restarts_and_stops_the_services(pm, supervisor):
    sv = supervisor
    sv.start()
    log = sv.log()
    pids = {}
    for svc in sv.present:
        assert len(sv.spawned(svc)) == 1, log
        pids[svc] = sv.spawned(svc)[0]
        assert alive(pids[svc]), log
        # its own lines come through (from the service or, under privsep, its worker)
        assert re.search(rf"svc={svc} pid=\d+ .*event=started", log), log
    # The services of `postmesh services` it starts: those not in its bin dir skipped, the
    # others spawned in the list's start order.
    for svc in set(supervised()) - set(sv.present):
        assert re.search(rf"event=skip svc={svc} reason=not_installed", log), log
    assert re.findall(r"svc=postmesh .*event=spawn svc=(\w+) ", log) == [s for s in supervised() if s in sv.present]
    # The core services were ready before the others were spawned.
    queue_ready = re.search(rf"svc=queue pid={pids['queue']} .*event=started", log).start()
    for svc in sv.present:
        if not row(svc)["core"]:
            assert queue_ready < log.index(f"event=spawn svc={svc} "), log
    assert "messages=0" in pm.cli("status").stdout

    victim = "delivery" if "delivery" in pids else "queue"
    os.kill(pids[victim], signal.SIGKILL)
    wait_for(lambda: len(sv.spawned(victim)) == 2, 15, what=f"{victim} to be restarted")
    assert re.search(rf"event=exit svc={victim} pid={pids[victim]} status=SIGKILL", sv.log())
    new = sv.spawned(victim)[1]
    assert new != pids[victim] and alive(new)
    wait_for(lambda: started_after_spawn(sv.log(), victim, new), 15, what="restarted service")

    # Killed again at once: the backoff doubles.
    os.kill(new, signal.SIGKILL)
    wait_for(lambda: len(sv.spawned(victim)) == 3, 15, what=f"{victim} to be restarted again")
    delays = re.findall(rf"event=restart_scheduled svc={victim} in=([\d.]+)s", sv.log())
    assert [float(d) for d in delays] == [0.5, 1.0], sv.log()
    third = sv.spawned(victim)[2]
    wait_for(lambda: started_after_spawn(sv.log(), victim, third), 15, what="third start")

    all_pids = [p for svc in sv.present for p in sv.spawned(svc)]
    t0 = time.monotonic()
    assert sv.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 12
    for pid in all_pids:
        assert not alive(pid), pid
    log = sv.log()
    assert "event=stopping signal=TERM" in log and re.search(r"svc=postmesh .*event=stopped", log)
    for svc in sv.present:
        assert re.search(rf"event=exit svc={svc} pid={sv.spawned(svc)[-1]} status=0", log), log
    # Workers and front ends stop before the queue.
    if "delivery" in sv.present:
        assert log.index("event=exit svc=delivery pid=" + str(sv.spawned("delivery")[-1])) < \
            log.index("event=exit svc=queue pid=" + str(sv.spawned("queue")[-1]))


def test_run_creates_state_dir_and_self_signed_certificate(pm, supervisor):
    state = pm.root / "newstate"
    tls = pm.root / "tls"
    pm.configure(state_dir=str(state), hostname="mx.cli.test",
                 tls={"certificate": str(tls / "cert.pem"), "key": str(tls / "key.pem")})
    supervisor.start()
    assert state.is_dir()
    assert stat.S_IMODE((tls / "key.pem").stat().st_mode) == 0o600
    out = subprocess.run(["openssl", "x509", "-in", str(tls / "cert.pem"), "-noout", "-subject", "-ext",
                          "subjectAltName"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "CN = mx.cli.test" in out.stdout and "DNS:mx.cli.test" in out.stdout
    check = subprocess.run(["openssl", "pkey", "-in", str(tls / "key.pem"), "-noout", "-text"], capture_output=True,
                           text=True, timeout=30)
    assert "prime256v1" in check.stdout or "P-256" in check.stdout
    assert supervisor.stop() == 0
    # A second start keeps the pair.
    before = (tls / "cert.pem").read_bytes()
    supervisor.start()
    assert (tls / "cert.pem").read_bytes() == before
    assert supervisor.stop() == 0


def test_children_die_with_a_killed_supervisor(pm, supervisor):
    supervisor.start()
    pids = [supervisor.spawned(svc)[0] for svc in supervisor.present]
    assert all(alive(p) for p in pids)
    supervisor.proc.kill()
    supervisor.proc.wait()
    wait_for(lambda: not any(alive(p) for p in pids), 15, what="orphaned services to exit")


def test_run_sigkills_a_service_that_ignores_sigterm(pm, supervisor):
    """A service that hangs on stop is killed after the grace period (10 s)."""
    stubborn = supervisor.bindir / "postmesh-pop3d"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\necho 'svc=pop3d level=info event=started' >&2\n"
                        "while :; do sleep 1; done\n")
    stubborn.chmod(0o755)
    supervisor.start()
    pid = supervisor.spawned("pop3d")[0]
    t0 = time.monotonic()
    assert supervisor.stop(signal.SIGTERM, timeout=30) == 0
    took = time.monotonic() - t0
    assert 9 <= took < 20, took
    assert re.search(rf"event=kill svc=pop3d pid={pid}", supervisor.log())
    assert re.search(rf"event=exit svc=pop3d pid={pid} status=SIGKILL", supervisor.log())
    assert not alive(pid)


FULL_SET = ["queue", "resolver", "delivery", "bouncer", "smtpd", "pop3d"]


@pytest.mark.skipif(not all((BIN / f"postmesh-{s}").exists() for s in ("queue", "smtpd", "delivery", "pop3d")),
                    reason="needs postmesh-queue, -smtpd, -delivery and -pop3d")
def test_run_serves_mail_end_to_end(pm):
    """What the README promises: user add, `postmesh run`, mail in over SMTP, out over POP3."""
    import poplib
    pm.write_config()
    pm.cli("user", "add", "alice@example.test", input="pop pass\n")
    sv = Supervisor(pm, [s for s in FULL_SET if (BIN / f"postmesh-{s}").exists()])
    try:
        sv.start()
        qid = _send(pm, "bob@client.test", "alice@example.test", "through run")

        def fetch():
            p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=10)
            try:
                p.user("alice@example.test")
                p.pass_("pop pass")
                count = p.stat()[0]
                return b"\n".join(p.retr(1)[1]).decode() if count else None
            finally:
                p.quit()
        text = wait_for(fetch, 20, interval=0.5, what="the message in alice's mailbox")
        assert "Subject: through run" in text

        def finished():
            r = pm.cli("queue", "list", check=False)
            return r.returncode == 0 and qid not in r.stdout
        done = True
        try:
            wait_for(finished, 20, interval=0.5, what="the queue to finish the message")
        except AssertionError:
            done = False
        crashed = re.findall(r"svc=postmesh .*event=exit (svc=\S+ pid=\d+ status=\S+)", sv.log())
        assert not crashed, f"services exited while serving: {crashed}\n{sv.log()[-5000:]}"
        assert done, f"{qid} still queued:\n{pm.cli('queue', 'list', check=False).stdout}"
        assert sv.stop() == 0
    finally:
        sv.stop(signal.SIGKILL)
