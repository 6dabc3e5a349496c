"""Escapes tried from inside the project's own sandboxes (issue 10), the way an attacker who
owns a process would try them.

tests/sandbox/probe.c drops exactly as a service does (pm_runas_sandbox + pm_privsep_drop:
the service's user, group, chroot and seccomp profile) and then makes one attack; a call
the filter kills ends the probe with SIGSYS. Every profile must refuse signals to other
processes, other socket families, fork, exec, ptrace, credential changes, undoing
non-dumpability and TIOCSTI, while threads and the calls libraries need still work.

Under `postmesh run` (as `make run` does, from a terminal): a service has no terminal and no
controlling terminal, nothing typed into the operator's shell arrives, every service (and
sandbox) runs under its own uid, and none inherits the supervisor's environment or
descriptors. Without root a service refuses to start unless the configuration allows it,
and then its parent and helper keep their memory closed to a same-uid process. State is
created 0750; chroot directories stay root's.

Runs as root (the drops need it)."""
import fcntl
import grp
import os
import poplib
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import termios
import tty
from pathlib import Path

import pytest

from conftest import BIN, Postmesh, wait_for
from pop3_helpers import messages
from services_list import helper_user, profiles, row, supervised
from smtpd_helpers import add_user
from supervisor_harness import Supervisor

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandboxes drop root: needs root")

PROBE = BIN.parent / "tests" / "sandbox_probe"
SIGSYS = signal.SIGSYS
# From `postmesh services` (common/services.def): a new row is probed and run with the rest.
PROFILES = profiles()      # every service's seccomp profile and the look-up helpers' (auth)
SERVICES = supervised()    # what `postmesh run` starts
# Two columns of services.def that `postmesh services --json` does not give: whether a profile
# makes sockets itself (SC_SOCKET: the bus, DNS, outbound SMTP) and whether the sandboxed
# process connects to the queue (TO_QUEUE; smtpd and the mta also to the resolver,
# test_a_named_resolver_endpoint_alone_reaches_its_clients). One entry per profile;
# test_the_tables_below_know_every_profile names a row missing here.
MAKES_SOCKETS = {"queue": False, "resolver": True, "delivery": True, "mta": True, "bouncer": True, "smtpd": True,
                 "pop3d": False, "imapd": False, "auth": False}
CONNECTS_TO_QUEUE = {"queue": False, "resolver": False, "delivery": True, "mta": True, "bouncer": True,
                     "smtpd": True, "pop3d": False, "imapd": False, "auth": False}
# Services whose own chroot they write (SC_FILES without a shared group): the mta's MTA-STS
# policies (services/mta/sts_cache.h). The queue writes its chroot too, but resolves no names.
WRITES_OWN_CHROOT = {"mta"}


def need_probe():
    assert PROBE.exists(), f"{PROBE} missing: build it with `make BUILD=... all` (tests/sandbox/sandbox.mk)"


def probe(state, service, attack, arg=None, **popen):
    """'allowed', 'refused <ERRNO>' or 'killed' (SIGSYS) for one attack from service's sandbox."""
    need_probe()
    cmd = [str(PROBE), str(state), service, attack] + ([str(arg)] if arg is not None else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, **popen)
    if r.returncode == -SIGSYS:
        return "killed"
    m = re.search(rf"probe attack={attack} result=(allowed|refused)(?: errno=(\w+))?", r.stderr)
    assert m and r.returncode == 0, (cmd, r.returncode, r.stderr)
    return m.group(1) if m.group(1) == "allowed" else f"refused {m.group(2)}"


def test_the_tables_below_know_every_profile():
    wrong = [f"{name} (services.def's {column} column): add {sorted(set(PROFILES) - set(table))}, "
             f"remove {sorted(set(table) - set(PROFILES))}"
             for name, table, column in (("MAKES_SOCKETS", MAKES_SOCKETS, "SC_SOCKET"),
                                         ("CONNECTS_TO_QUEUE", CONNECTS_TO_QUEUE, "TO_QUEUE"))
             if set(table) != set(PROFILES)]
    assert not wrong, "test_sandbox.py's tables do not match `postmesh services`: " + "; ".join(wrong)


@pytest.fixture(scope="module")
def state():
    d = Path(tempfile.mkdtemp(prefix="pm-sandbox-"))
    yield d / "state"
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------- every profile
REFUSED_EVERYWHERE = {
    "kill_other": ("refused EPERM",),     # kill(other process of the same uid, 0)
    "kill_group": ("refused EPERM",),     # kill(0, ...): our whole process group
    "kill_all": ("refused EPERM",),       # kill(-1, ...)
    "tgkill_other": ("refused EPERM",),
    "fork": ("refused EPERM",),           # glibc fork = clone without CLONE_THREAD
    "fork_syscall": ("killed",),
    "exec": ("killed",),
    "ptrace": ("killed",),
    "setuid": ("killed",),
    "dumpable": ("killed",),              # PR_SET_DUMPABLE: would reopen /proc/<pid>/mem
    "socket_netlink": ("refused EAFNOSUPPORT", "refused EACCES"),
    "socket_packet": ("refused EAFNOSUPPORT", "refused EACCES"),
    "bind": ("killed", "refused EACCES"),  # nobody binds after the drop (but the resolver, below)
    "listen": ("killed", "refused EACCES"),  # nobody listens after the drop
}
# The resolver binds its DNS sockets to random source ports (libunbound, PM_SC_SOURCE_PORT),
# and still cannot listen on one.
ALLOWED_HERE = {("resolver", "bind"): ("allowed",)}


@pytest.mark.parametrize("service", PROFILES)
@pytest.mark.parametrize("attack", sorted(REFUSED_EVERYWHERE))
def test_profile_refuses(state, service, attack):
    assert probe(state, service, attack) in ALLOWED_HERE.get((service, attack), REFUSED_EVERYWHERE[attack])


@pytest.mark.parametrize("service", PROFILES)
def test_profile_keeps_what_libraries_need(state, service):
    """The same filters let through what the services run on: threads (clone3 answered ENOSYS,
    so glibc falls back to a clone whose flags the filter checks), signals to itself,
    FIONREAD (libevent), isatty() told "not a terminal", and sockets only where the service
    makes its own (the queue's and pop3d's are all made before the drop)."""
    assert probe(state, service, "thread") == "allowed"
    assert probe(state, service, "kill_self") == "allowed"
    assert probe(state, service, "fionread") == "allowed"
    assert probe(state, service, "tcgets", 0, stdin=subprocess.DEVNULL) == "refused ENOTTY"
    assert service in MAKES_SOCKETS, f"add {service} to MAKES_SOCKETS (its SC_SOCKET)"
    expected = "allowed" if MAKES_SOCKETS[service] else "refused EACCES"
    assert probe(state, service, "socket_inet") == expected
    # inotify (SC_NOTIFY, an instance and a watch) is imapd's alone: IDLE learns of new mail from it
    assert probe(state, service, "inotify", "/") == ("allowed" if service == "imapd" else "killed")


def open_pty_as_ctty():
    """A pty whose slave becomes the controlling terminal of the child (as the operator's
    terminal is of `make run`); raw, so injected input is readable at once."""
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def injected(slave):
    os.set_blocking(slave, False)
    try:
        return os.read(slave, 100)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("service", PROFILES)
def test_tiocsti_into_the_controlling_terminal_is_refused(state, service):
    master, slave, make_ctty = open_pty_as_ctty()
    try:
        got = probe(state, service, "tiocsti", 0, stdin=slave, start_new_session=True, preexec_fn=make_ctty)
        assert got == "killed", got
        assert injected(slave) == b""
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------------------- host names on the bus
CONNECTS = [s for s in PROFILES if CONNECTS_TO_QUEUE.get(s)]  # their sandboxed process connects to the queue
RESOLVER_FILES = {"hosts", "resolv.conf", "nsswitch.conf"}
NAMED, LITERAL = "tcp://localhost:1", "tcp://127.0.0.1:1"   # localhost: /etc/hosts, no DNS query


def probe_bus(state, service, endpoint, attack, arg=None):
    """probe() with endpoint as the queue's and the resolver's bus endpoint."""
    return probe(state, service, attack, arg, env=dict(os.environ, PROBE_BUS_ENDPOINT=endpoint))


def chroot_of(state, service):
    return state / row(service)["chroot"]


@pytest.mark.parametrize("service", CONNECTS)
def test_bus_names_sandbox_reads_only_the_resolver_copies(tmp_path, service):
    """A process connecting to tcp://localhost:PORT resolves the name in its sandbox (the copy
    of /etc/hosts), reads files read-only and nothing outside its chroot; writes, netlink and
    directory listings stay refused; etc/ holds only root's read-only copies."""
    state = tmp_path / "state"
    r = subprocess.run([str(PROBE), str(state), service, "resolve", "localhost"], capture_output=True, text=True,
                       timeout=20, env=dict(os.environ, PROBE_BUS_ENDPOINT=NAMED))
    assert "result=allowed" in r.stderr and "probe resolve address=127.0.0.1" in r.stderr, r.stderr
    assert probe_bus(state, service, NAMED, "open_read", "/etc/hosts") == "allowed"
    assert probe_bus(state, service, NAMED, "open_read", "/etc/passwd") == "refused ENOENT"  # not in the chroot
    assert probe_bus(state, service, NAMED, "open_write", "/etc/hosts").startswith("refused")
    assert probe_bus(state, service, NAMED, "socket_netlink") == "refused EAFNOSUPPORT"
    assert probe_bus(state, service, NAMED, "socket_udp") == "allowed"
    assert probe_bus(state, service, NAMED, "fork") == "refused EPERM"
    etc = chroot_of(state, service) / "etc"
    assert {p.name for p in etc.iterdir()} == RESOLVER_FILES
    st = etc.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755)
    for p in etc.iterdir():
        st = p.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o444), p
    assert (etc / "hosts").read_bytes() == Path("/etc/hosts").read_bytes()
    assert (etc / "nsswitch.conf").read_text() == "hosts: files dns\n"
    if row(service)["group"] or service in WRITES_OWN_CHROOT:
        # a store shared through a group, or a chroot the service writes: sticky, so root's
        # etc/ cannot be renamed away for a hosts file of the service's own
        assert chroot_of(state, service).stat().st_mode & 0o7777 == 0o1770
        assert probe_bus(state, service, NAMED, "rename_etc") == "refused EPERM"
    else:
        assert probe_bus(state, service, NAMED, "open_write", "/new-file") == "refused ENOENT"


def test_a_named_resolver_endpoint_alone_reaches_its_clients(tmp_path):
    """smtpd connects to the resolver too (its DNS checks, services.def TO_RESOLVER): a host
    name in resolver.endpoint alone gives smtpd and the mta the copies to resolve it, and
    not delivery, which connects to the queue only."""
    state = tmp_path / "state"
    env = dict(os.environ, PROBE_BUS_ENDPOINT=LITERAL, PROBE_RESOLVER_ENDPOINT=NAMED)

    def attack(service):
        return probe(state, service, "open_read", "/etc/hosts", env=env)
    assert attack("smtpd") == "allowed"
    assert attack("mta") == "allowed"
    assert attack("delivery") == "refused ENOENT"


def test_bus_names_leave_other_sandboxes_and_ip_literals_unchanged(tmp_path):
    """Only a process that connects to a named endpoint gets read-only opens: the resolver
    (it only binds) and the queue do not, even with the copies in their chroot; with IP
    literals smtpd's profile is the old one (a file root put in its chroot stays unreadable)
    and the copies an earlier configuration needed are gone."""
    state = tmp_path / "state"
    assert probe_bus(state, "smtpd", NAMED, "open_read", "/etc/hosts") == "allowed"
    marker = state / "empty" / "marker"
    marker.write_text("x")
    marker.chmod(0o444)
    assert probe_bus(state, "smtpd", NAMED, "open_read", "/marker") == "allowed"
    assert (state / "empty" / "etc" / "hosts").exists()
    assert probe_bus(state, "resolver", NAMED, "open_read", "/etc/hosts") == "refused ENOENT"
    assert probe_bus(state, "queue", NAMED, "socket_inet") == "refused EACCES"
    assert not (state / "queue" / "etc").exists()
    assert probe_bus(state, "smtpd", LITERAL, "open_read", "/marker") == "refused ENOENT"
    assert probe_bus(state, "smtpd", LITERAL, "socket_udp") == "allowed"
    assert sorted(p.name for p in (state / "empty").iterdir()) == ["marker"]
    assert probe_bus(state, "delivery", NAMED, "open_read", "/etc/hosts") == "allowed"
    assert probe_bus(state, "delivery", LITERAL, "open_read", "/etc/hosts") == "refused ENOENT"
    assert not (state / "mail" / "etc").exists()
    assert (state / "mail").stat().st_mode & 0o7777 == 0o770
    assert (state / "queue").stat().st_mode & 0o7777 == 0o770


def named_bus(root, **changes):
    inst = Postmesh(traversable(root))
    q = inst.settings["queue"]
    inst.configure(queue={"endpoint": q["endpoint"].replace("127.0.0.1", "localhost"), "listen": q["endpoint"],
                          "control": q["control"].replace("127.0.0.1", "localhost"), "control_listen": q["control"]},
                   **changes)
    return inst


def test_bus_names_keep_the_store_copies_roots_across_restarts(tmp_path):
    """delivery, pop3d and imapd hand every entry of the store to its group at each start;
    root's etc/ there is left alone, so delivery's next start finds it root's and refreshes it."""
    pm = named_bus(tmp_path)
    try:
        for _ in range(2):
            pm.start("delivery", "pop3d", "imapd", timeout=20)
            pm.stop_all()
        etc = pm.state / "mail" / "etc"
        assert {(p.name, p.stat().st_uid, p.stat().st_mode & 0o7777) for p in etc.iterdir()} == \
            {(n, 0, 0o444) for n in RESOLVER_FILES}
        assert (etc.stat().st_uid, etc.stat().st_gid, etc.stat().st_mode & 0o7777) == (0, 0, 0o755)
        assert "bus_names=1" in pm.log("delivery") and "bus_names=1" not in pm.log("pop3d")
        assert "bus_names=1" not in pm.log("imapd")
    finally:
        pm.stop_all()


def test_bus_names_refuse_a_local_domain_named_etc(tmp_path):
    pm = named_bus(tmp_path, domains=["example.test", "etc"])
    try:
        pm.start("delivery", wait=False)
        assert pm.procs["delivery"].wait(timeout=20) != 0
        assert re.search(r"event=startup_failed service=delivery .*local domain etc", pm.log("delivery"))
    finally:
        pm.stop_all()


# ---------------------------------------------------------------------------- postmesh run
def supervisor_bindir(root, services):
    """The supervisor finds services next to itself: a private bin dir with a copy of the CLI."""
    bindir = root / "bin"
    bindir.mkdir()
    shutil.copy2(BIN / "postmesh", bindir / "postmesh")
    for name, target in services.items():
        (bindir / f"postmesh-{name}").symlink_to(target)
    return bindir


def test_a_service_under_postmesh_run_cannot_type_into_the_operators_terminal(tmp_path):
    """The probe, installed as postmesh-bouncer, is started by `postmesh run` whose terminal is
    a pty (stdin, stdout, controlling terminal): it reports its descriptors and terminal,
    then tries TIOCSTI on fds 0, 1 and 2."""
    need_probe()
    pm = Postmesh(tmp_path)
    pm.write_config()
    bindir = supervisor_bindir(tmp_path, {"bouncer": PROBE})
    master, slave, make_ctty = open_pty_as_ctty()
    log = tmp_path / "run.log"
    env = dict(os.environ, POSTMESH_TEST_PROBE="tiocsti:0,tiocsti:1,tiocsti:2")
    with open(log, "wb") as logf:
        proc = subprocess.Popen([str(bindir / "postmesh"), "-c", str(pm.conf_path), "run"], stdin=slave,
                                stdout=slave, stderr=logf, cwd=tmp_path, env=env, start_new_session=True,
                                preexec_fn=make_ctty)
    try:
        wait_for(lambda: "event=exit svc=bouncer" in log.read_text(), timeout=20, what="the probe's end")
        text = log.read_text()
        assert "probe ctty=no" in text, text
        for fd in (0, 1, 2):
            assert f"probe fd={fd} tty=no" in text, text
        assert "result=allowed" not in text, text
        assert injected(slave) == b""
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        os.close(master)
        os.close(slave)


class LeakySupervisor(Supervisor):
    """`postmesh run` started with a variable in its environment and a descriptor it does not
    need, as an operator's shell may leave them."""

    def start_leaky(self, env, pass_fds, timeout=30):
        self.pm.write_config()
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([str(self.bindir / "postmesh"), "-c", str(self.pm.conf_path), "run"],
                                         stdout=logf, stderr=subprocess.STDOUT, cwd=self.pm.root, env=env,
                                         pass_fds=pass_fds)
        wait_for(lambda: self.proc.poll() is not None or re.search(r"svc=postmesh .*event=started ", self.log()),
                 timeout, what="postmesh run to start")
        assert self.proc.poll() is None, self.log()[-5000:]


def process_group(pgid):
    """Every pid whose process group is pgid (a service, its sandboxes, helpers and readers)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            out.append(int(p.name))
    return out


def ids(pid):
    st = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(st["Uid"].split()[0]), int(st["Gid"].split()[0])


def traversable(root):
    """As conftest's pm fixture: the service users may traverse pytest's 0700 tmp dirs (the
    helpers and the queue's reader read the users and aliases files there as their users)."""
    for d in (root, root.parent, root.parent.parent):
        if d.owner() == "root" and str(d).startswith("/tmp/"):
            d.chmod(d.stat().st_mode | 0o011)
    return root


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """Every service under one `postmesh run`, started with SANDBOX_LEAK_TEST in the
    environment and a file open without close-on-exec."""
    root = traversable(tmp_path_factory.mktemp("sandbox-run"))
    pm = Postmesh(root)
    add_user(pm, "alice@example.test", "secret")
    sv = LeakySupervisor(pm, SERVICES)
    leak_path = root / "leaked-descriptor"
    leak = os.open(leak_path, os.O_RDWR | os.O_CREAT, 0o600)
    os.set_inheritable(leak, True)
    env = dict(os.environ, SANDBOX_LEAK_TEST="secret-of-the-operator", LC_ALL="C.UTF-8")
    try:
        sv.start_leaky(env, pass_fds=(leak,))
        wait_for(lambda: all(re.search(rf"svc={svc} .*event=started", sv.log()) for svc in SERVICES), timeout=30,
                 what="every service")
        yield sv, leak_path
    finally:
        sv.stop()
        os.close(leak)


def service_processes(sv):
    return {svc: process_group(sv.spawned(svc)[-1]) for svc in SERVICES}


def test_every_service_runs_under_its_own_uid(running):
    sv, _ = running
    auth = pwd.getpwnam(helper_user()).pw_uid
    owners = {}
    for svc, pids in service_processes(sv).items():
        dropped = {pid: ident for pid, ident in ((p, ids(p)) for p in pids) if ident[0] != 0}
        own = pwd.getpwnam(row(svc)["user"]).pw_uid
        assert own in {uid for uid, _ in dropped.values()}, (svc, dropped)
        for pid, (uid, gid) in dropped.items():
            if uid == auth:
                continue  # the lookup helpers of smtpd, pop3d and delivery: one user, no network, no store
            assert uid == own, (svc, pid, uid)
            owners.setdefault(uid, set()).add(svc)
            if row(svc)["group"]:
                assert gid == grp.getgrnam(row(svc)["group"]).gr_gid, (svc, pid, gid)  # the store's group
    assert all(len(s) == 1 for s in owners.values()), owners
    assert len(owners) == len(SERVICES)


def test_no_service_inherits_the_supervisors_environment_or_descriptors(running):
    sv, leak_path = running
    for svc, pids in service_processes(sv).items():
        assert pids, svc
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            names = {e.split(b"=", 1)[0] for e in environ if e}
            assert b"SANDBOX_LEAK_TEST" not in names, (svc, pid)
            assert b"LC_ALL" in names, (svc, pid, names)  # what a service needs still passes
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                assert target != str(leak_path), (svc, pid, fd.name)
                assert not target.startswith("/dev/pts/") and target != "/dev/tty", (svc, pid, fd.name, target)


# ---------------------------------------------------------------------------- without root
def unprivileged_smtpd(root, allow):
    """smtpd started as nobody (setpriv), with privsep.allow_unprivileged as given."""
    nobody = pwd.getpwnam("nobody")
    inst = Postmesh(root)
    inst.settings["smtpd"]["listen"] = inst.settings["smtpd"]["listen"][:1]
    inst.settings["bus"] = {"curve": False}
    if allow:
        inst.settings["privsep"] = {"allow_unprivileged": True}
    inst.write_config()
    for p in (inst.state, root / "users", root / "aliases"):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    log = root / "smtpd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                                 "--clear-groups", str(BIN / "postmesh-smtpd"), "-c", str(inst.conf_path)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=root)
    return proc, log


@pytest.fixture
def nobody_root():
    root = Path(tempfile.mkdtemp(prefix="pm-unprivileged-"))  # pytest's tmp dirs are root-only
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_without_root_a_service_refuses_unless_allowed(nobody_root):
    proc, log = unprivileged_smtpd(nobody_root, allow=False)
    try:
        assert proc.wait(timeout=10) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert re.search(r"level=error event=privsep_refused service=smtpd .*allow_unprivileged", text), text
    assert "event=started" not in text


def as_nobody(code):
    nobody = pwd.getpwnam("nobody")
    return subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                           "/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=20)


def can_read_memory_as_nobody(pid):
    """Opens /proc/<pid>/mem and /proc/<pid>/environ as nobody: 'yes' or the error."""
    r = as_nobody(f"""
import os
out = []
for name in ("mem", "environ"):
    try:
        with open("/proc/{pid}/" + name, "rb") as f:
            f.read(1) if name == "environ" else None
        out.append("yes")
    except OSError as e:
        out.append(type(e).__name__)
print(",".join(out))
""")
    return r.stdout.strip()


def test_without_root_parent_and_helper_keep_their_memory_closed(nobody_root):
    """Allowed to run without root, smtpd logs privsep_limited; its parent and helper share the
    sandbox's uid but are not dumpable, so another process of that uid (a compromised sandbox)
    cannot open their /proc/<pid>/mem or environ."""
    proc, log = unprivileged_smtpd(nobody_root, allow=True)
    try:
        # event=started once every sandbox is ready (smtpd.sandboxes: one per CPU)
        wait_for(lambda: "event=started" in log.read_text(), timeout=10, what="unprivileged smtpd")
        text = log.read_text()
        assert text.count("event=privsep_limited") == text.count("event=sandbox_started"), text
        helper = int(re.findall(r"event=helper_started helper=\S+ pid=(\d+)", text)[-1])
        # the same reader can read a dumpable process of its uid: the check can see a leak
        control = as_nobody("import subprocess, time; p = subprocess.Popen(['sleep', '5']); time.sleep(0.2); "
                            "open(f'/proc/{p.pid}/mem', 'rb').close(); print('yes'); p.kill()")
        assert control.stdout.strip() == "yes", control.stderr
        for pid in (proc.pid, helper):
            assert can_read_memory_as_nobody(pid) == "PermissionError,PermissionError", pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------- state on disk
def chroot_group(chroot):
    """The group a chroot's services share it through: the store's group, or the own group
    (named after its user) of the one service that lives there (the queue)."""
    (group,) = {row(s)["group"] or row(s)["user"] for s in SERVICES if row(s)["chroot"] == chroot}
    return group


def test_state_dir_is_0750_and_chroots_stay_roots(tmp_path):
    """Whichever service starts first on a fresh state_dir makes it 0750 and its chroot: the
    empty chroot is root's 0755, the queue's and the store's are root's with the service's
    group."""
    traversable(tmp_path)
    # What each chroot is for is per chroot: services.def only names them.
    expect = {"empty": ("root", "root", 0o755), "mail": ("root", chroot_group("mail"), 0o770),
              "queue": ("root", chroot_group("queue"), 0o770), "mta": ("root", chroot_group("mta"), 0o770)}
    unknown = {row(s)["chroot"] for s in SERVICES} - set(expect)
    assert not unknown, f"services.def has chroots {unknown}: say here who owns them, with which mode"
    for svc in SERVICES:
        root = tmp_path / svc
        root.mkdir()
        root.chmod(0o711)
        pm = Postmesh(root)
        state = root / "fresh"
        pm.configure(state_dir=str(state), bus={"curve": False})
        pm.start(svc)
        try:
            assert state.stat().st_mode & 0o7777 == 0o750, (svc, oct(state.stat().st_mode))
        finally:
            pm.stop_all()
        st = (state / row(svc)["chroot"]).stat()
        seen = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o7777)
        assert seen == expect[row(svc)["chroot"]], (svc, seen)


def test_state_left_by_the_old_shared_users_keeps_working(pm):
    """An install from before one uid per service: the queue's LMDB and the mail store belong
    to other users (as to the old `postmesh` and `vmail`; here nobody:nogroup), the store
    0700/0600. Started as root, the services hand them to the new users: the queue to
    postmesh-queue, the store to the group vmail, and pop3d (postmesh-pop3d) reads and deletes
    what the old user wrote while delivery (postmesh-delivery) adds to the same Maildir."""
    alice = "alice@example.test"
    add_user(pm, alice, "secret")
    services = ("queue", "delivery", "smtpd", "pop3d")
    pm.start(*services, timeout=20)

    def send(subject):
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.sendmail("someone@remote.test", [alice], f"Subject: {subject}\r\n\r\nx\r\n".encode())

    send("before")
    wait_for(lambda: messages(pm, alice), timeout=30, what="the first copy")
    pm.stop_all()
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    for top in (pm.state / "queue", pm.state / "mail"):
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                os.chown(p, nobody, nogroup)
                p.chmod(0o700 if p.is_dir() else 0o600)
    pm.start(*services, timeout=20)
    send("after")
    wait_for(lambda: len(messages(pm, alice)) == 2, timeout=30, what="the second copy")
    store = grp.getgrnam(row("delivery")["group"]).gr_gid
    assert all(p.stat().st_gid == store for p in messages(pm, alice))
    assert {p.stat().st_uid for p in (pm.state / "queue").iterdir()} == {pwd.getpwnam(row("queue")["user"]).pw_uid}
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    p.user(alice)
    p.pass_("secret")
    assert p.stat()[0] == 2
    p.dele(1)
    p.dele(2)
    p.quit()
    assert messages(pm, alice) == []
