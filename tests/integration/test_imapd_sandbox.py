"""imapd's privilege separation, seen as an attacker who owns its sandbox would see it
(issue 15: "privilege separation as pop3d").

The sandbox that parses every IMAP command runs as postmesh-imapd (group vmail), chrooted in
state_dir/mail, with no_new_privs, a seccomp filter (mode 2), no capability, no terminal and
no descriptor of a directory or a readable file outside its chroot. The password hashes are
the helper's alone (postmesh-auth, the users file's only reader, through a descriptor its
root parent opened); the root parent keeps the listening sockets and read the TLS pair,
whose key file the sandbox's user cannot open. tests/sandbox/probe.c then drops exactly as
the sandbox does, on the same store, and tries what an attacker would: what imapd's profile
adds (inotify for IDLE) works, the rest (exec, ptrace, raw sockets, network, fork, setuid,
other processes, files outside the store) is refused or kills.

Elsewhere: test_sandbox.py probes every profile (imapd's included, from `postmesh services`)
and runs every service under `postmesh run`; test_privsep.py checks every privsep parent's
children and scans the memory of imapd's processes for a password hash after a login."""
import fcntl
import grp
import os
import pwd
import re
import signal
import stat
import subprocess
import termios
import tty
from pathlib import Path

import pytest

from conftest import BIN, wait_for
from imap_helpers import Target
from services_list import helper_user, row, rows, supervised
from supervisor_harness import Supervisor

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops root: needs root")

PROBE = BIN.parent / "tests" / "sandbox_probe"


def status(pid):
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if ":\t" in line)


def stat_fields(pid):
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, session, tty_nr, ...]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def descriptors(pid):
    """fd -> (target, open flags) of a running process."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            flags = int(re.search(r"^flags:\s+([0-7]+)", Path(f"/proc/{pid}/fdinfo/{fd}").read_text(), re.M)[1], 8)
        except OSError:
            continue
        out[int(fd)] = (target, flags)
    return out


def listening_inodes(port):
    """Socket inodes listening on 127.0.0.1:port (/proc/net/tcp, state 0A)."""
    want = f"0100007F:{port:04X}"
    return {f.split()[9] for f in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if f.split()[1] == want and f.split()[3] == "0A"}


def imapd_pids(pm):
    log = pm.log("imapd")
    sandbox = int(re.findall(r"event=sandbox_started sandbox=imapd pid=(\d+)", log)[-1])
    helper = int(re.findall(r"event=helper_started helper=imapd-passdb pid=(\d+)", log)[-1])
    return pm.procs["imapd"].pid, helper, sandbox


@pytest.fixture
def served(pm):
    """imapd over a store with one message, users file and TLS key as an install leaves them
    (0640 and 0600, root's), one client logged in over TLS with INBOX selected."""
    target = Target(pm, "postmesh")
    users = pm.root / "users"
    users.touch()
    os.chown(users, 0, 0)
    users.chmod(0o640)
    target.start()
    target.put(b"Subject: x\r\n\r\ny\r\n")
    client = target.login(select="INBOX", mode="imaps")
    yield target
    client.logout()
    target.stop()


def test_the_services_row_and_list_name_imapd():
    r = row("imapd")
    assert {k: r[k] for k in ("user", "uid", "group", "chroot", "privsep", "core", "bus_key")} == {
        "user": "postmesh-imapd", "uid": 2509, "group": "vmail", "chroot": "mail", "privsep": "sandboxes",
        "core": False, "bus_key": False}
    assert "IMAP" in r["description"] and "IDLE" in r["description"]
    assert supervised().index("imapd") == supervised().index("pop3d") + 1  # started after pop3d
    assert "imapd" in row("auth")["description"]  # its password helper is an `auth` one
    # its own uid (it cannot signal or trace delivery or pop3d), the store's group
    assert [s["name"] for s in rows() if s["uid"] == 2509] == ["imapd"]
    assert pwd.getpwnam("postmesh-imapd").pw_uid == 2509
    assert "postmesh-imapd" in grp.getgrnam("vmail").gr_mem
    text = subprocess.run([str(BIN / "postmesh"), "services"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^imapd +imapd +postmesh-imapd +2509 +vmail +mail +sandboxes ", text, re.M), text


def test_the_imapd_processes_are_confined(served):
    pm = served.pm
    parent, helper, sandbox = imapd_pids(pm)
    chroot = os.path.realpath(pm.state / "mail")
    # the parent: root, holding the listening sockets; its children: the sandbox and the helper
    assert status(parent)["Uid"].split() == ["0"] * 4
    held = {t for t, _ in descriptors(parent).values()}
    for mode in ("imap", "imaps"):
        assert {f"socket:[{i}]" for i in listening_inodes(pm.port(mode))} <= held, mode
    children = {int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()}
    assert children == {helper, sandbox}
    # the sandbox
    st = status(sandbox)
    imapd_uid, vmail = pwd.getpwnam("postmesh-imapd").pw_uid, grp.getgrnam("vmail").gr_gid
    assert st["Uid"].split() == [str(imapd_uid)] * 4 and st["Gid"].split() == [str(vmail)] * 4
    assert st["Groups"].strip() == ""
    assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2"
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    assert os.readlink(f"/proc/{sandbox}/root") == chroot
    assert os.readlink(f"/proc/{sandbox}/cwd").startswith(chroot)
    # a chroot escape needs a directory descriptor from outside; a secret needs a readable one
    users, key = os.path.realpath(pm.settings["users_file"]), os.path.realpath(served.pm.settings["tls"]["key"])
    for fd, (target, flags) in descriptors(sandbox).items():
        if not target.startswith("/"):
            continue  # sockets, pipes, epoll, signalfd, inotify
        if target.startswith(chroot + "/") or target == chroot:
            continue
        assert target not in (users, key), (fd, target)
        assert not stat.S_ISDIR(os.stat(f"/proc/{sandbox}/fd/{fd}").st_mode), (fd, target)
        assert target == "/dev/null" or flags & os.O_ACCMODE == os.O_WRONLY, (fd, target, oct(flags))  # the log
    # the helper: postmesh-auth, no capability, the only one holding the users file
    hs = status(helper)
    assert hs["Uid"].split()[0] == str(pwd.getpwnam(helper_user()).pw_uid)
    assert hs["NoNewPrivs"].strip() == "1" and hs["Seccomp"].strip() == "2" and int(hs["CapEff"], 16) == 0
    holders = [pid for pid in (parent, helper, sandbox) if users in {t for t, _ in descriptors(pid).values()}]
    assert holders == [helper]
    assert not any(t.startswith("socket:") and t in held for t, _ in descriptors(helper).values())


def as_sandbox_user(code):
    """code run as postmesh-imapd with the sandbox's group and no other."""
    return subprocess.run(["setpriv", "--reuid=postmesh-imapd", "--regid=vmail", "--clear-groups",
                           "/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=20)


def test_the_sandbox_user_cannot_read_the_users_file_or_the_tls_key(served):
    pm = served.pm
    for path in (pm.settings["users_file"], pm.settings["tls"]["key"]):
        r = as_sandbox_user(f"open({path!r}, 'rb')")
        assert r.returncode != 0 and "PermissionError" in r.stderr, (path, r.stdout, r.stderr)
    # the control: that user reads what the store gives its group
    (msg,) = served.files()
    r = as_sandbox_user(f"print(len(open({str(msg)!r}, 'rb').read()))")
    assert r.returncode == 0 and r.stdout.strip() == str(msg.stat().st_size), r.stderr
    # and the logins still work: the helper reads the root-only file through its descriptor
    served.login().logout()


def probe(state, attack, arg=None):
    """One attack from imapd's sandbox on this state dir's store: 'allowed', 'refused ERRNO'
    or 'killed'."""
    assert PROBE.exists(), f"{PROBE} missing: make BUILD=... all"
    cmd = [str(PROBE), str(state), "imapd", attack] + ([str(arg)] if arg is not None else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if r.returncode == -signal.SIGSYS:
        return "killed"
    m = re.search(rf"probe attack={attack} result=(allowed|refused)(?: errno=(\w+))?", r.stderr)
    assert m and r.returncode == 0, (cmd, r.returncode, r.stderr)
    return m[1] if m[1] == "allowed" else f"refused {m[2]}"


def test_what_an_attacker_in_the_sandbox_can_and_cannot_do(served):
    pm = served.pm
    (msg,) = served.files()
    inside = "/" + str(msg.relative_to(pm.state / "mail"))
    new_dir = str(Path(inside).parent.parent / "new")
    expected = {
        # what imapd needs: its store, IDLE's inotify on a folder, threads, its own signals
        ("open_read", inside): "allowed",
        ("inotify", None): "allowed",
        ("inotify", new_dir): "allowed",
        ("thread", None): "allowed",
        ("kill_self", None): "allowed",
        # nothing outside the store: no /etc, no users file, no key, no /proc of others
        ("open_read", "/etc/passwd"): "refused ENOENT",
        ("open_read", pm.settings["users_file"]): "refused ENOENT",
        ("open_read", pm.settings["tls"]["key"]): "refused ENOENT",
        ("inotify", "/etc"): "refused ENOENT",
        ("procmem", pm.procs["imapd"].pid): "refused ENOENT",
        # no network of its own: every socket it serves was accepted on the parent's ports
        ("socket_inet", None): "refused EACCES",
        ("socket_udp", None): "refused EACCES",
        ("socket_packet", None): "refused EACCES",
        ("socket_netlink", None): "refused EACCES",
        ("bind", None): "refused EACCES",
        # no other process, no new program, no new privilege
        ("kill_other", None): "refused EPERM",
        ("kill_all", None): "refused EPERM",
        ("tgkill_other", None): "refused EPERM",
        ("fork", None): "refused EPERM",
        ("fork_syscall", None): "killed",
        ("exec", None): "killed",
        ("ptrace", None): "killed",
        ("setuid", None): "killed",
        ("dumpable", None): "killed",
    }
    got = {k: probe(pm.state, *k) for k in expected}
    assert got == expected
    assert served.login().noop()[0] == "OK"  # the probe's drops changed nothing for the service


def test_imapd_under_postmesh_run_has_no_terminal(pm):
    """`postmesh run` started from a terminal (a pty as stdin, stdout and controlling
    terminal): imapd's parent, helper and sandbox have none of it."""
    master, slave = os.openpty()
    tty.setraw(slave)
    sv = Supervisor(pm, ["imapd"])
    pm.write_config()
    with open(sv.log_path, "ab") as logf:
        sv.proc = subprocess.Popen([str(sv.bindir / "postmesh"), "-c", str(pm.conf_path), "run"], stdin=slave,
                                   stdout=slave, stderr=logf, cwd=pm.root, start_new_session=True,
                                   preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    try:
        wait_for(lambda: re.search(r"svc=imapd .*event=started", sv.log()), timeout=20, what="imapd under run")
        (pid,) = sv.spawned("imapd")
        procs = [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert len(procs) == 3, procs  # the parent, its helper and its sandbox
        terminal_session = int(stat_fields(sv.proc.pid)[3])
        assert stat_fields(sv.proc.pid)[4] != "0"  # the control: the supervisor has the terminal
        for p in procs:
            fields = stat_fields(p)
            assert fields[4] == "0", (p, "has a controlling terminal")
            assert int(fields[3]) != terminal_session, (p, "is in the terminal's session")
            for target, _ in descriptors(p).values():
                assert not target.startswith("/dev/pts/") and target not in ("/dev/tty", "/dev/ptmx"), (p, target)
    finally:
        sv.stop()
        os.close(master)
        os.close(slave)
