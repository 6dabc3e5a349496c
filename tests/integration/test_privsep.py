"""Privilege separation of the privsep services of `postmesh services` (smtpd, pop3d,
delivery, mta) and the queue's drop, seen from outside through /proc: every sandbox and job
worker runs without root in its chroot with no_new_privs and a seccomp filter; password
hashes live only in the helper process; a forbidden syscall kills the smtpd sandbox and the
parent starts a new one that serves the next connection at once; the whole smtplib -> smtpd
-> queue -> delivery -> pop3d path works.

Runs as root only (the drops need it). Started without root, a service logs
event=privsep_limited once per sandbox instead (test_without_root_one_line_says_so)."""
import os
import grp
import imaplib
import poplib
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, Postmesh, wait_for
from pop3_helpers import make_tls_pair, maildir, messages, put_message, retrieve_all
from services_list import helper_user, privsep_parents, row, supervised
from smtpd_helpers import add_alias, add_user, client_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege separation needs root")

ALICE, BOB = "alice@example.test", "bob@example.test"
SERVICES = ("queue", "delivery", "smtpd", "pop3d")  # the local mail path: in by SMTP, out by POP3
# The look-up helpers each privsep parent starts (`event=helper_started helper=<name>`): what
# a service looks up is its own business, so one entry per parent of `postmesh services`;
# test_sandboxes_are_confined names a parent missing here.
HELPERS = {"smtpd": ("smtpd-lookup", "smtpd-auth"), "pop3d": ("pop3d-passdb",), "imapd": ("imapd-passdb",),
           "delivery": ("delivery-users",), "mta": ()}
SIGSYS = 31


# ---------------------------------------------------------------------------- /proc helpers
def proc_status(pid):
    """The fields of /proc/<pid>/status as a dict of strings."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def children(pid):
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def last_pid(pm, svc, event, name):
    """The pid in the newest `event=<event> <kind>=<name> pid=N` line of svc's log."""
    found = re.findall(rf"event={event} \w+={re.escape(name)} pid=(\d+)", pm.log(svc))
    return int(found[-1]) if found else None


def sandbox_pid(pm, svc):
    return last_pid(pm, svc, "sandbox_started", svc)


def assert_sandboxed(pid, chroot):
    """Not root in any of real/effective/saved/fs ids, no_new_privs, seccomp filter mode,
    and its root directory is the chroot."""
    st = proc_status(pid)
    uids, gids = st["Uid"].split(), st["Gid"].split()
    assert "0" not in uids and "0" not in gids, (pid, st["Uid"], st["Gid"])
    assert st["Groups"] == "", st["Groups"]
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    assert os.readlink(f"/proc/{pid}/root") == os.path.realpath(chroot)
    return int(uids[0])


def memory_holds(pid, needle: bytes) -> bool:
    """Does any readable private mapping of pid contain needle? (root reads /proc/pid/mem)"""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or end - start > (1 << 30) or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except OSError:
                continue
    return False


def user_hash(pm, address):
    for line in (pm.root / "users").read_text().splitlines():
        if line.startswith(address + ":"):
            return line.split("}", 1)[1].encode()
    raise KeyError(address)


# ---------------------------------------------------------------------------- setup
@pytest.fixture
def mx(pm):
    add_user(pm, ALICE, "secret")
    add_user(pm, BOB, "hunter2")
    add_alias(pm, "ghost@example.test", "nobody@example.test")  # expands to no user
    cert, key = make_tls_pair(pm.root)
    pm.configure(tls={"certificate": str(cert), "key": str(key)}, queue={"job_lease": 5},
                 pop3d={"auth_delay": 1})
    return pm


def submit_with_auth(pm, rcpts, body, user=ALICE, password="secret"):
    with smtplib.SMTP("127.0.0.1", pm.port("submission"), timeout=30) as s:
        s.ehlo("client.example.test")
        s.starttls(context=client_context())
        s.ehlo("client.example.test")
        s.login(user, password)
        s.sendmail(user, rcpts, body)


def smtp_greeting(port, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.settimeout(timeout)
        return c.recv(512)


# ---------------------------------------------------------------------------- tests
def test_sandboxes_are_confined(mx):
    """Every privsep parent of `postmesh services` (sandboxes or job workers): a root parent
    whose children are its sandboxes, confined as its row says, and its helpers; the queue
    drops in place."""
    parents = privsep_parents()
    unknown = set(parents) - set(HELPERS)
    assert not unknown, f"test_privsep.py's HELPERS: which look-up helpers do {sorted(unknown)} start?"
    mx.start(*supervised(), timeout=20)
    state = mx.state
    for svc in parents:
        chroot, user = state / row(svc)["chroot"], row(svc)["user"]
        parent = mx.procs[svc].pid
        # smtpd runs smtpd.sandboxes sandboxes (one per CPU) and a password helper per CPU
        sandboxes = {int(p) for p in re.findall(rf"event=sandbox_started sandbox={svc} pid=(\d+)", mx.log(svc))}
        started = {n: {int(p) for p in re.findall(rf"event=helper_started helper={n} pid=(\d+)", mx.log(svc))}
                   for n in HELPERS[svc]}
        helpers = set().union(*started.values())
        assert sandboxes and all(started.values()), (svc, mx.log(svc))
        # the parent stays root (it binds and reads the keys); its children are the sandboxes
        # and their helpers (smtpd: recipient lookups apart from password checks)
        assert proc_status(parent)["Uid"].split()[0] == "0"
        assert children(parent) == sandboxes | helpers, svc
        for sandbox in sandboxes:
            uid = assert_sandboxed(sandbox, chroot)
            assert uid == pwd.getpwnam(user).pw_uid
        # the helpers run as postmesh-auth with no capabilities, and cannot gain anything or exec
        for helper in helpers:
            hs = proc_status(helper)
            assert hs["NoNewPrivs"] == "1" and hs["Seccomp"] == "2"
            assert hs["Uid"].split()[0] == str(pwd.getpwnam(helper_user()).pw_uid)
            assert int(hs["CapEff"], 16) == 0
        assert f"event=privsep user={user} chroot={chroot}" in mx.log(svc)
    # the queue drops in place: its LMDB directory, user postmesh-queue
    queue = mx.procs["queue"].pid
    assert assert_sandboxed(queue, state / row("queue")["chroot"]) == pwd.getpwnam(row("queue")["user"]).pw_uid
    # the store is shared through its group; its root, the sandboxes' chroot, stays root's
    st = (state / row("delivery")["chroot"]).stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, grp.getgrnam(row("delivery")["group"]).gr_gid, 0o770)


def test_full_path_under_privsep_with_auth_checked_by_the_parent(mx):
    mx.start(*SERVICES, timeout=20)
    body = b"Subject: privsep\r\n\r\nthrough every sandbox\r\n"
    submit_with_auth(mx, [BOB, "ghost@example.test"], body)
    wait_for(lambda: messages(mx, BOB), timeout=30, what="bob's copy")
    (got,) = retrieve_all(mx, BOB, "hunter2")
    assert got.startswith(f"Return-Path: <{ALICE}>\r\nDelivered-To: {BOB}\r\n".encode())
    assert got.endswith(body)
    # the alias expanded to a non-user: delivery's users check (asked of its parent) says 5.1.1
    wait_for(lambda: re.search(r"event=failed id=\w+ to=nobody@example.test dsn=5.1.1", mx.log("delivery")),
             timeout=30, what="5.1.1 for nobody")
    # a wrong password is refused (535) and a sender the user does not own is refused (553)
    with smtplib.SMTP("127.0.0.1", mx.port("submission"), timeout=30) as s:
        s.ehlo("client.example.test")
        s.starttls(context=client_context())
        s.ehlo("client.example.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, "wrong")
        assert e.value.smtp_code == 535
        s.login(ALICE, "secret")
        code, msg = s.mail(BOB)
        assert code == 553 and b"not owned" in msg
        assert s.rset()[0] == 250
        assert s.mail(ALICE)[0] == 250
        code, msg = s.rcpt("nobody@example.test")
        assert code == 550 and b"5.1.1" in msg
    assert "event=auth client=" in mx.log("smtpd") and "result=fail" in mx.log("smtpd")


def test_password_hashes_stay_in_the_helper(mx):
    mx.start("queue", "smtpd", "pop3d", "imapd", timeout=20)
    # make every process handle a password: SMTP AUTH, a POP3 and an IMAP login
    with smtplib.SMTP("127.0.0.1", mx.port("submission"), timeout=30) as s:
        s.ehlo("c.example.test")
        s.starttls(context=client_context())
        s.ehlo("c.example.test")
        s.login(ALICE, "secret")
    assert retrieve_all(mx, ALICE, "secret") == []
    with imaplib.IMAP4_SSL("127.0.0.1", mx.port("imaps"), ssl_context=client_context(), timeout=30) as c:
        c.login(ALICE, "secret")
    needle = user_hash(mx, ALICE)
    for svc, helper_name in (("smtpd", "smtpd-lookup"), ("pop3d", "pop3d-passdb"), ("imapd", "imapd-passdb")):
        helper = last_pid(mx, svc, "helper_started", helper_name)
        assert memory_holds(helper, needle), f"{svc} helper: the scan must find the hash where it is"
        assert not memory_holds(sandbox_pid(mx, svc), needle), f"{svc} sandbox holds a password hash"
        assert not memory_holds(mx.procs[svc].pid, needle), f"{svc} parent holds a password hash"


def test_forbidden_syscall_kills_the_sandbox_and_a_new_one_serves(mx, monkeypatch):
    mx.start("queue", "delivery", "pop3d", timeout=20)
    monkeypatch.setenv("POSTMESH_TEST_FORBIDDEN_SYSCALL", "1")
    mx.start("smtpd")
    monkeypatch.delenv("POSTMESH_TEST_FORBIDDEN_SYSCALL")
    assert "event=test_hook_armed" in mx.log("smtpd")
    # a POP3 session of another service is open across the kill
    pop = poplib.POP3("127.0.0.1", mx.port("pop3"), timeout=15)
    pop.user(ALICE)
    pop.pass_("secret")
    # an SMTP session in the sandbox that is about to die
    bystander = smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=15)
    bystander.ehlo("bystander.example.test")
    with socket.create_connection(("127.0.0.1", mx.port("smtp")), timeout=15) as c:
        assert c.recv(512).startswith(b"220")
        c.sendall(b"XTESTEXEC\r\n")
        c.settimeout(15)
        assert c.recv(512) == b""  # no reply: the process is gone
    # the sandbox that serves 127.0.0.1 (and so the bystander too: sandboxes are chosen by address)
    died = wait_for(lambda: re.search(rf"event=sandbox_exited sandbox=smtpd pid=(\d+) index=(\d+) signal={SIGSYS}",
                                      mx.log("smtpd")), timeout=10, what="the sandbox's death by SIGSYS")
    old, index = int(died.group(1)), died.group(2)
    # at once, before the backoff even ran out: the socket is the parent's, the connection waits
    assert smtp_greeting(mx.port("smtp")).startswith(b"220")
    new = int(re.findall(rf"event=sandbox_started sandbox=smtpd pid=(\d+) index={index}\b", mx.log("smtpd"))[-1])
    assert new != old and not Path(f"/proc/{old}").exists()
    assert_sandboxed(new, mx.state / "empty")
    assert mx.procs["smtpd"].poll() is None
    # sessions of the dead sandbox are gone with it; new ones work end to end
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        bystander.noop()
    submit_with_auth(mx, [ALICE], b"Subject: after\r\n\r\nnew sandbox\r\n", user=BOB, password="hunter2")
    wait_for(lambda: messages(mx, ALICE), timeout=30, what="delivery after the restart")
    assert pop.stat()[0] == 0  # the POP3 session went on (it sees its login-time snapshot)
    pop.quit()
    # the hook is off unless armed: the same command is just unknown
    mx.stop("smtpd")
    offset = len(mx.log("smtpd"))
    mx.start("smtpd")
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=15) as s:
        assert s.docmd("XTESTEXEC")[0] == 502
        assert s.noop()[0] == 250
    fresh = mx.log("smtpd")[offset:]
    assert "event=test_hook" not in fresh and "event=sandbox_exited" not in fresh
    assert "event=sandbox_started" in fresh  # the line the one above looks for is still the one logged


def test_sighup_pushes_the_new_certificate_to_the_sandbox(mx):
    mx.start("queue", "smtpd", timeout=20)
    old_der = ssl.get_server_certificate(("127.0.0.1", mx.port("smtps")))
    sandbox = sandbox_pid(mx, "smtpd")
    assert sandbox
    (mx.root / "cert.pem").unlink()
    make_tls_pair(mx.root)  # a new pair in the same files
    offset = len(mx.log("smtpd"))
    mx.procs["smtpd"].send_signal(1)
    wait_for(lambda: "event=tls_reload result=ok" in mx.log("smtpd")[offset:], timeout=10, what="reload")
    assert ssl.get_server_certificate(("127.0.0.1", mx.port("smtps"))) != old_der
    assert sandbox_pid(mx, "smtpd") == sandbox  # swapped inside the running sandbox


def test_without_root_one_line_says_so():
    """Started as an ordinary user, smtpd runs the same parent/sandbox code minus chroot and
    setuid, and says so in one line per sandbox."""
    nobody = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="pm-unprivileged-"))  # pytest's tmp dirs are root-only
    try:
        os.chmod(root, 0o755)
        inst = Postmesh(root)
        inst.settings["smtpd"]["listen"] = inst.settings["smtpd"]["listen"][:1]
        inst.settings["privsep"] = {"allow_unprivileged": True}  # refused without it (test_sandbox.py)
        inst.write_config()
        for p in (inst.state, root / "users", root / "aliases"):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        # The install step, as that user: smtpd needs the queue's public key (nobody makes
        # up a peer's key any more).
        subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                        str(BIN / "postmesh"), "-c", str(inst.conf_path), "keys", "init"],
                       check=True, capture_output=True, cwd=root)
        log = root / "smtpd.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                                     "--clear-groups", str(BIN / "postmesh-smtpd"), "-c", str(inst.conf_path)],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=root)
        try:
            # event=started once every sandbox is ready (smtpd.sandboxes: one per CPU)
            wait_for(lambda: "event=started" in log.read_text(), timeout=10, what="unprivileged smtpd")
            text = log.read_text()
            assert len(re.findall(r"event=(?:started|worker_ready|sandbox_ready) listeners=", text)) == \
                text.count("event=sandbox_started")
            assert text.count("event=privsep_limited") == text.count("event=sandbox_started")
            assert "event=privsep user=" not in text
            sandbox = int(re.findall(r"event=sandbox_started sandbox=smtpd pid=(\d+)", text)[-1])
            st = proc_status(sandbox)
            assert st["Uid"].split()[0] == str(nobody.pw_uid)
            assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
            assert os.readlink(f"/proc/{sandbox}/root") == "/"
            assert smtp_greeting(inst.port("smtp")).startswith(b"220")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert proc.returncode == 0
        assert "event=sandbox_exited sandbox=smtpd" in log.read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_mailbox_made_by_root_after_start_is_handed_to_vmail(mx):
    """An administrator makes mailboxes as root while the services run: pop3d's sandbox and
    delivery's job worker (vmail) cannot write there, the parent repairs the ownership, the
    next attempt works."""
    mx.start(*SERVICES, timeout=20)
    vmail = grp.getgrnam("vmail").gr_gid  # the store's group: both processes' users may then write
    # pop3d: a Maildir (with a message) made by root -> SYS/TEMP once, then served
    put_message(mx, ALICE, "0000000000000001.0.mx.example.test", b"Subject: by hand\r\n\r\nx\r\n")
    p = poplib.POP3("127.0.0.1", mx.port("pop3"), timeout=15)
    p.user(ALICE)
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
        p.pass_("secret")
    p.quit()
    wait_for(lambda: "event=mailbox_repair address=alice@example.test fixed=" in mx.log("pop3d"), timeout=10,
             what="pop3d's repair")
    assert maildir(mx, ALICE).stat().st_gid == vmail
    assert (maildir(mx, ALICE) / "new" / "0000000000000001.0.mx.example.test").stat().st_gid == vmail
    assert len(retrieve_all(mx, ALICE, "secret")) == 1
    # delivery: bob's directory made by root -> deferred (EACCES), repaired, delivered on retry
    bob_dir = maildir(mx, BOB).parent
    bob_dir.mkdir(parents=True)
    assert bob_dir.stat().st_uid == 0
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=30) as s:
        s.sendmail("someone@remote.test", [BOB], b"Subject: to bob\r\n\r\nhi\r\n")
    wait_for(lambda: messages(mx, BOB), timeout=40, what="bob's copy after the repair")
    log = mx.log("delivery")
    assert "Permission denied" in log and "event=mailbox_repair address=bob@example.test fixed=" in log
    assert bob_dir.stat().st_gid == vmail


def test_repair_does_not_follow_symlinks(mx):
    """A delivery job worker (vmail) could plant a symlink in the store and ask for a repair:
    the parent must not chown what the link points to."""
    add_user(mx, "carol@example.test", "pw")
    mx.start(*SERVICES, timeout=20)
    store = mx.state / "mail"
    private = store / "private"  # root's, reachable from inside the chroot through the link
    private.mkdir(mode=0o755)
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=30) as s:
        s.sendmail("someone@remote.test", [ALICE], b"Subject: first\r\n\r\nx\r\n")  # makes example.test/
    wait_for(lambda: messages(mx, ALICE), timeout=30, what="alice's copy")
    os.symlink("../private", store / "example.test" / "carol")
    with smtplib.SMTP("127.0.0.1", mx.port("smtp"), timeout=30) as s:
        s.sendmail("someone@remote.test", ["carol@example.test"], b"Subject: c\r\n\r\nx\r\n")
    # the job worker follows the link, cannot write (EACCES) and asks; the parent refuses to follow
    wait_for(lambda: "event=mailbox_repair address=carol@example.test" in mx.log("delivery"), timeout=30,
             what="carol's repair request")
    assert private.stat().st_uid == 0 and not (private / "Maildir").exists()
    assert (store / "example.test" / "carol").is_symlink()
