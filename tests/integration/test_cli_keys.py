"""`postmesh keys init|list`, the key and permission checks of `postmesh check`, and the keys
`postmesh run` creates before it starts anything."""
import os
import re
import shutil
import signal
import stat
import subprocess

import zmq

from conftest import BIN, wait_for
from services_list import bus_keys, users as service_users

Z85 = re.compile(r"^[0-9a-zA-Z.:+=^!/*?&<>()\[\]{}@%$#-]{40}$")


def key_lines(text):
    return {line.split()[0]: line.split()[1] for line in text.splitlines()}


def key_roles(text):
    return {line.split()[0]: line.split(None, 2)[2] for line in text.splitlines()}


def test_keys_init_and_list(pm):
    pm.write_config()
    keys = pm.state / "keys"
    r = pm.cli("keys", "list", check=False)
    assert r.returncode == 1 and "keys init" in r.stderr

    first = key_lines(pm.cli("keys", "init").stdout)
    assert sorted(first) == sorted(bus_keys())
    for name, pub in first.items():
        assert Z85.match(pub), pub
        assert stat.S_IMODE((keys / f"{name}.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((keys / f"{name}.pub").stat().st_mode) == 0o644
        assert (keys / f"{name}.pub").read_text().strip() == pub
        assert (keys / f"{name}.key").read_text().splitlines()[0] == pub

    # Idempotent: the same keys, the files untouched.
    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    assert key_lines(pm.cli("keys", "init").stdout) == first
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before

    # list: every *.pub, sorted, the operator's own additions included.
    extra = zmq.curve_keypair()[0].decode()
    (keys / "monitoring.pub").write_text(extra + "\n")
    out = pm.cli("keys", "list").stdout
    assert key_lines(out) == {**first, "monitoring": extra}
    assert [line.split()[0] for line in out.splitlines()] == sorted(bus_keys() + ["monitoring"])
    roles = key_roles(out)
    assert roles["smtpd"] == "smtpd" and roles["cli"] == "cli", out
    assert roles["monitoring"] == "(no role: not admitted)", out     # a name must say its role
    assert pm.cli("keys", "frob", check=False).returncode == 2

    # keys add: a replica's own pair, named <role>.<replica>; it says where the files go.
    r = pm.cli("keys", "add", "smtpd.eu-1")
    assert (keys / "smtpd.eu-1.key").exists() and stat.S_IMODE((keys / "smtpd.eu-1.key").stat().st_mode) == 0o600
    assert "queue.pub resolver.pub" in r.stdout and "bus.key_name" in r.stdout, r.stdout
    assert key_roles(pm.cli("keys", "list").stdout)["smtpd.eu-1"] == "smtpd"
    for bad in ("eu-1", "frob.x", "smtpd.", "smtpd.a/b", "smtpd"):
        assert pm.cli("keys", "add", bad, check=False).returncode == 2, bad
    where = pm.cli("keys", "where").stdout
    assert "queue.key" in where and "cli" in where and "delivery*.pub" in where, where

    # The queue uses the pair made ahead of time, and the CLI's key is admitted.
    pm.start("queue")
    assert (keys / "queue.pub").read_text().strip() == first["queue"]
    assert "messages=0" in pm.cli("status").stdout


def check(pm):
    r = pm.cli("check", check=False)
    return r.returncode, r.stdout


def test_check_keys_permissions_and_runas(pm):
    pm.write_config()
    keys = pm.state / "keys"
    code, out = check(pm)
    assert code == 0, out
    assert re.search(r"^ok\s+keys\s+.*none yet", out, re.M), out
    pm.cli("keys", "init")
    code, out = check(pm)
    assert code == 0 and re.search(rf"^ok\s+keys\s+.*: {len(bus_keys())} service keypairs", out, re.M), out

    # What the queue would run as, root or not.
    runas = re.search(r"^ok\s+queue\s+runs as: (.*)$", out, re.M)
    assert runas, out
    if os.geteuid() == 0:
        assert f"postmesh-queue (uid {int(subprocess.check_output(['id', '-u', 'postmesh-queue']))}), chroot " \
               f"{pm.state}/queue" in runas.group(1)
        accounts = re.search(r"^ok\s+accounts\s+(.*)$", out, re.M)
        assert accounts, out
        for user in service_users():
            assert re.search(rf"(^|, ){user} \(\d+\)", accounts.group(1)), out
        if (BIN / "postmesh-smtpd").exists():
            assert re.search(r"^ok\s+smtpd\s+runs as: parent root .*sandboxes postmesh-smtpd", out, re.M), out
    else:
        assert f"uid {os.geteuid()}" in runas.group(1) and "no chroot" in runas.group(1)

    # A secret key others can read is a failure; so is a .pub that does not match its .key.
    (keys / "queue.key").chmod(0o640)
    code, out = check(pm)
    assert code == 1 and re.search(r"^FAIL\s+keys\s+.*queue\.key: secret key readable by others", out, re.M), out
    (keys / "queue.key").chmod(0o600)
    good = (keys / "smtpd.pub").read_text()
    (keys / "smtpd.pub").write_text(zmq.curve_keypair()[0].decode() + "\n")
    code, out = check(pm)
    assert code == 1 and re.search(r"^FAIL\s+keys\s+.*smtpd\.pub: missing or does not match", out, re.M), out
    (keys / "smtpd.pub").write_text(good)
    (keys / "mta.key").write_text("not a key\n")
    code, out = check(pm)
    assert code == 1 and re.search(r"^FAIL\s+keys\s+.*mta\.key: not a CurveZMQ keypair", out, re.M), out
    (keys / "mta.key").unlink()
    pm.cli("keys", "init")
    # Whoever can write the keys directory can admit any key.
    keys.chmod(0o777)
    code, out = check(pm)
    assert code == 1 and re.search(r"^FAIL\s+keys\s+.*writable by others", out, re.M), out
    keys.chmod(0o755)
    assert check(pm)[0] == 0

    # Password hashes must not be world-readable; an empty file only earns a warning.
    users = pm.root / "users"
    users.chmod(0o644)
    code, out = check(pm)
    assert code == 0 and re.search(r"^warn\s+users\s+.*world-readable", out, re.M), out
    pm.add_user("alice@example.test")
    code, out = check(pm)
    assert code == 1 and re.search(r"^FAIL\s+users\s+.*1 password hashes readable by every local user", out,
                                   re.M), out
    users.chmod(0o640)
    code, out = check(pm)
    assert code == 0 and re.search(r"^ok\s+users\s+.*1 users \(mode 640\)", out, re.M), out

    # A state dir anyone may write is a failure.
    pm.state.chmod(0o777)
    code, out = check(pm)
    assert code == 1 and re.search(r"^FAIL\s+state_dir\s+.*writable by others", out, re.M), out
    pm.state.chmod(0o750)
    code, out = check(pm)
    assert code == 0 and re.search(r"^ok\s+state_dir\s+.*mode 750", out, re.M), out


def test_run_creates_the_keys_before_any_service(pm):
    if not (BIN / "postmesh-queue").exists():
        import pytest
        pytest.skip("needs postmesh-queue")
    bindir = pm.root / "bin"
    bindir.mkdir()
    shutil.copy2(BIN / "postmesh", bindir / "postmesh")   # services are found next to it: only the queue
    (bindir / "postmesh-queue").symlink_to(BIN / "postmesh-queue")
    pm.write_config()
    log_path = pm.root / "run.log"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([str(bindir / "postmesh"), "-c", str(pm.conf_path), "run"], stdout=logf,
                                stderr=subprocess.STDOUT, cwd=pm.root)
    try:
        wait_for(lambda: proc.poll() is not None or re.search(r"svc=postmesh .*event=started", log_path.read_text()),
                 20, what="postmesh run to start")
        log = log_path.read_text()
        assert proc.poll() is None, log
        ready = re.search(rf"svc=postmesh .*event=keys_ready dir=\S+ created={len(bus_keys())}", log)
        assert ready and ready.start() < log.index("event=spawn svc=queue"), log
        assert sorted(p.stem for p in (pm.state / "keys").glob("*.key")) == sorted(bus_keys())
        assert "messages=0" in pm.cli("status").stdout
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0
