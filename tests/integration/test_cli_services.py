"""`postmesh services`: the one list of services (common/services.def), and that what uses
it agrees with it: `postmesh check` and `keys init` (built from the same rows), and
scripts/install-deps.sh, which reads the file itself before anything is built."""
import os
import pwd
import re
import stat
import subprocess

from conftest import BIN, REPO
from services_list import bus_keys, groups, row, rows, supervised, users

INSTALL_DEPS = REPO / "scripts" / "install-deps.sh"


def test_table_and_json_are_the_same_list_and_need_no_config(tmp_path):
    env = dict(os.environ, POSTMESH_CONFIG=str(tmp_path / "no-such.conf"))
    r = subprocess.run([str(BIN / "postmesh"), "services"], capture_output=True, text=True, timeout=10, env=env)
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.splitlines()
    assert header.split()[:10] == ["name", "role", "user", "uid", "group", "chroot", "privsep", "start", "core", "key"]
    table = {line.split()[0]: line.split(None, 10) for line in lines if not line.startswith("group ")}
    assert list(table) == [s["name"] for s in rows()]
    dash = lambda v: "-" if v is None else str(v)  # noqa: E731
    for s in rows():
        name, role, user, uid, group, chroot, privsep, start, core, key, description = table[s["name"]]
        assert (role, user, uid, group, chroot, privsep, start) == (
            dash(s["role"]), dash(s["user"]), dash(s["uid"]), dash(s["group"]), dash(s["chroot"]), s["privsep"],
            dash(s["start"])), (name, table[name])
        assert core == ("-" if not s["start"] else "yes" if s["core"] else "no")
        assert key == ("yes" if s["bus_key"] else "no")
        assert description == s["description"]
    for g, gid in groups().items():
        assert re.search(rf"^group {g} \(gid {gid}\): ", r.stdout, re.M), r.stdout
    # What the rest of the system relies on, in the list's own words.
    assert supervised()[0] == "queue" and row("queue")["core"]
    assert "cli" in bus_keys() and row("cli")["start"] is None and row("cli")["user"] is None
    assert row("auth")["privsep"] == "helper" and row("auth")["user"] == "postmesh-auth"
    bad = subprocess.run([str(BIN / "postmesh"), "services", "--frob"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "usage: postmesh services" in bad.stderr


def test_check_and_keys_init_report_what_services_lists(pm):
    pm.write_config()
    made = [line.split()[0] for line in pm.cli("keys", "init").stdout.splitlines()]
    assert made == bus_keys()
    out = pm.cli("check").stdout
    assert re.search(rf"^ok\s+keys\s+.*: {len(bus_keys())} service keypairs", out, re.M), out
    # One pair of lines per service `postmesh run` starts, in its start order.
    described = [m.group(1) for m in re.finditer(rf"^ok\s+(\w+)\s+{re.escape(str(BIN))}/postmesh-(\w+):", out, re.M)]
    assert described == supervised(), out
    root = os.geteuid() == 0
    for name in supervised():
        s = row(name)
        runas = re.search(rf"^ok\s+{name}\s+runs as: (.*)$", out, re.M).group(1)
        assert f"seccomp profile {name}" in runas, runas
        chroot = f"{pm.state}/{s['chroot']}"
        if not root:
            assert f"as root: {s['user']} " in runas and runas.endswith(f" in {chroot}"), runas
            continue
        who = f"{s['user']} (uid {pwd.getpwnam(s['user']).pw_uid})" + (f" group {s['group']}" if s["group"] else "")
        children = {"sandboxes": "sandboxes ", "job-workers": "job workers ", "plain": ""}[s["privsep"]]
        prefix = "parent root " if children else ""
        assert runas.startswith(prefix), runas
        assert f"{children}{who}, chroot {chroot}, no_new_privs" in runas, runas
    if root:
        accounts = re.search(r"^ok\s+accounts\s+(.*)$", out, re.M).group(1)
        listed = dict(re.findall(r"(postmesh-[a-z0-9]+) \((\d+)\)", accounts))
        assert {u: int(uid) for u, uid in listed.items()} == {u: pwd.getpwnam(u).pw_uid for u in users()}, accounts


def accounts_lines():
    r = subprocess.run(["sh", str(INSTALL_DEPS), "--accounts"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()]


def test_install_deps_lists_the_accounts_of_the_list():
    lines = accounts_lines()
    assert {(n, int(i)) for kind, n, i, *_ in lines if kind == "group"} == set(groups().items())
    assert {(n, int(i)) for kind, n, i, *_ in lines if kind == "user"} == set(users().items())
    shared = {line[1]: line[3] for line in lines if line[0] == "user" and len(line) == 4}
    assert shared == {s["user"]: s["group"] for s in rows() if s["group"]}
    # Groups first: a user joins a group that exists.
    kinds = [line[0] for line in lines]
    assert kinds == sorted(kinds), kinds


STUB = """#!/bin/sh
echo "$(basename "$0") $*" >>"$STUB_LOG"
case "$(basename "$0") $*" in
"id -u") echo 0 ;;                       # as root
"id -nG "*) echo "$3" ;;                 # only its own group
id*|getent*) exit 2 ;;                   # no such user, group or id yet
esac
exit 0
"""


def test_install_deps_creates_the_accounts_of_the_list(tmp_path):
    """--users on a machine without any of them: exactly the listed users and groups, with the
    pinned ids, each store user in its group (useradd and friends are stubs that log)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for tool in ("id", "getent", "groupadd", "useradd", "usermod"):
        (stubs / tool).write_text(STUB)
        (stubs / tool).chmod(stat.S_IRWXU)
    log = tmp_path / "calls"
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", STUB_LOG=str(log))
    r = subprocess.run(["sh", str(INSTALL_DEPS), "--users"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    calls = [line.split() for line in log.read_text().splitlines()]

    def made(tool, flag):
        return {c[-1]: int(c[c.index(flag) + 1]) for c in calls if c[0] == tool}
    own_groups = dict(users())
    assert made("groupadd", "--gid") == {**groups(), **own_groups}
    assert made("useradd", "--uid") == users()
    for c in (c for c in calls if c[0] == "useradd"):
        assert c[c.index("--gid") + 1] == c[-1] and c[c.index("--shell") + 1] == "/usr/sbin/nologin", c
    joined = {c[-1]: c[c.index("-G") + 1] for c in calls if c[0] == "usermod"}
    assert joined == {s["user"]: s["group"] for s in rows() if s["group"]}
    # Every group before the users that join it.
    first_user = next(i for i, c in enumerate(calls) if c[0] == "useradd")
    for g in groups():
        assert max(i for i, c in enumerate(calls) if c[0] == "groupadd" and c[-1] == g) < first_user
