"""Several hosts, as an operator deploys them: every service in a network namespace of its own
(netns.py: veth pairs to a bridge in a switch namespace, 10.231.0.0/24 inside the test's
namespaces only), speaking CurveZMQ over TCP between them. Each host has its own config file
(they differ in paths only), its own state_dir, and a keys directory holding its own secret key
and the public keys `postmesh keys where` says it needs, copied from one `postmesh keys init`
(plus `keys add` for the two smtpd replicas, each with a key of its own).

    queue0 .10, queue1 .11 (shards)   resolver .20   mta .30   mail .40 (delivery + pop3d)
    smtpd1 .51, smtpd2 .52 (replicas)  client .100 (SMTP/POP3 clients and the CLI)

Mail through both replicas is delivered and read back over POP3; a replica killed, the other
serves; with two shards, submissions are spread over both, one shard killed leaves intake going
on the other with no client-visible error, and every acknowledged message is delivered once
the shard is back. Mail is for the local domain only, so no DNS answer is needed: the resolver
is given a nameserver address on the test network where nothing listens.
"""
import email
import poplib
import re
import shutil
import smtplib
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import netns
from conftest import BIN, Postmesh, traversable, wait_for
from pop3_helpers import client_tls_context, hash_password, make_tls_pair

SUBNET = "10.231.0"
ADDR = {"queue0": 10, "queue1": 11, "resolver": 20, "mta": 30, "mail": 40,
        "smtpd1": 51, "smtpd2": 52, "client": 100}
REPLICA_KEY = {"smtpd1": "smtpd.r1", "smtpd2": "smtpd.r2"}
USER, PASSWORD = "alice@example.test", "multihost-secret"
QUEUE_PORT, CONTROL_PORT, RESOLVER_PORT = 7701, 7702, 7703
SMTP_TIMEOUT = 15                   # one client exchange; a whole test takes about 5 s


def ip(host):
    return f"{SUBNET}.{ADDR[host]}"


class HostPm(Postmesh):
    """The Postmesh installation of one host: its services run in that host's namespace."""

    def __init__(self, root: Path, host: netns.Host):
        root.mkdir(mode=0o755)
        super().__init__(root)
        self.host = host
        self.exec_prefix = host.command()

    def ensure_keys(self):
        pass                        # the operator put this host's keys in place (install_keys)


class Mesh:
    def __init__(self, tmp_path, shards):
        self.tmp, self.shards = tmp_path, shards
        self.net = netns.Network(SUBNET)
        self.pms = {}
        self.acked = {}             # every message answered 250: {Message-ID: queue id}
        try:
            self.install(tmp_path, shards)
        except BaseException:
            self.net.close()
            raise

    def install(self, tmp_path, shards):
        self.hosts = {name: self.net.add_host(name, octet) for name, octet in ADDR.items()
                      if not (name.startswith("queue") and int(name[5:]) >= shards)}
        self.keygen()
        cert, key = make_tls_pair(tmp_path)
        users = f"{USER}:{hash_password(PASSWORD)}\n"
        for name, host in self.hosts.items():
            pm = HostPm(tmp_path / name, host)
            (pm.root / "users").write_text(users)
            for f in (cert, key):
                shutil.copy2(f, pm.root / f.name)
            pm.settings = self.settings(pm, name)
            self.install_keys(pm, name)
            pm.write_config()
            self.pms[name] = pm

    # ------------------------------------------------------------------ config
    def settings(self, pm, name):
        queues = [f"tcp://{ip(f'queue{i}')}:{QUEUE_PORT}" for i in range(self.shards)]
        controls = [f"tcp://{ip(f'queue{i}')}:{CONTROL_PORT}" for i in range(self.shards)]
        bus = {"curve": True, "keys_dir": str(pm.root / "keys")}
        if name in REPLICA_KEY:
            bus["key_name"] = REPLICA_KEY[name]
        return {
            "hostname": "mx.example.test",
            "state_dir": str(pm.state),
            "domains": ["example.test"],
            "users_file": str(pm.root / "users"),
            "aliases_file": str(pm.root / "aliases"),
            "trusted_networks": [],
            "debug": True,
            "bus": bus,
            "tls": {"certificate": str(pm.root / "cert.pem"), "key": str(pm.root / "key.pem")},
            "queue": {
                "endpoint": queues, "control": controls,
                "listen": f"tcp://*:{QUEUE_PORT}", "control_listen": f"tcp://*:{CONTROL_PORT}",
                "map_size_mb": 64, "retry_min": 1, "retry_max": 4, "max_lifetime": 3600,
                "delay_warning": 0, "job_lease": 10,
            },
            "resolver": {"endpoint": f"tcp://{ip('resolver')}:{RESOLVER_PORT}",
                         "listen": f"tcp://*:{RESOLVER_PORT}",
                         # on the test network, where nothing answers: no query can leave it
                         "nameservers": [f"{SUBNET}.250:53"], "timeout": 2},
            "smtpd": {"listen": [{"address": "0.0.0.0:25", "mode": "smtp"}], "submit_timeout": 5,
                      "drain_timeout": 2, "verify_inbound": False},  # no DNS answers here
            "mta": {"remote_port": 25, "connect_timeout": 3, "command_timeout": 10},
            "pop3d": {"listen": [{"address": "0.0.0.0:995", "mode": "pop3s"}], "drain_timeout": 2},
        }

    # ------------------------------------------------------------------ keys
    def keygen(self):
        """`postmesh keys init` once, `keys add` per replica, as the operator on one machine."""
        self.keys = self.tmp / "keygen"
        conf = self.tmp / "keygen.conf"
        conf.write_text(f'state_dir = "{self.tmp / "keygen-state"}";\nbus = {{ keys_dir = "{self.keys}"; }};\n')
        cli = [str(BIN / "postmesh"), "-c", str(conf), "keys"]
        for args in (["init"], *(["add", k] for k in REPLICA_KEY.values())):
            subprocess.run([*cli, *args], check=True, capture_output=True, timeout=30)
        where = subprocess.run([*cli, "where"], check=True, capture_output=True, text=True, timeout=30).stdout
        # "smtpd   DIR/smtpd.key (its only secret key; 0600) + queue.pub resolver.pub"
        self.needs = {}
        for line in where.splitlines():
            m = re.match(r"(\S+)\s+\S+\.key \(.*?\) \+ (.*)", line)
            if m:
                self.needs[m.group(1)] = re.sub(r"\(.*?\)|;.*", "", m.group(2)).split()
        assert {"queue", "resolver", "smtpd", "mta", "delivery", "cli"} <= set(self.needs), where

    def install_keys(self, pm, name):
        """Into this host's keys_dir: the .key of each of its processes and the public keys
        `keys where` names for them, nothing else."""
        roles = {"queue0": ["queue"], "queue1": ["queue"], "resolver": ["resolver"], "mta": ["mta"],
                 "mail": ["delivery"], "client": ["cli"]}.get(name, [REPLICA_KEY.get(name)])
        d = pm.root / "keys"
        d.mkdir(mode=0o755)
        for key_name in roles:
            role = key_name.split(".")[0]
            for pattern in [f"{key_name}.key", f"{key_name}.pub", *self.needs[role]]:
                matches = list(self.keys.glob(pattern))
                assert matches, f"{pattern} for {name}"
                for f in matches:
                    shutil.copy2(f, d / f.name)

    # ------------------------------------------------------------------ services
    def start(self, name, *services, timeout=15.0):
        pm = self.pms[name]
        return pm.start(*services, timeout=timeout)

    def start_all(self):
        for i in range(self.shards):
            self.start(f"queue{i}", "queue")
        self.start("resolver", "resolver")
        self.start("mta", "mta")
        self.start("mail", "delivery", "pop3d")
        self.start("smtpd1", "smtpd")
        self.start("smtpd2", "smtpd")

    def stop_all(self):
        for pm in self.pms.values():
            pm.stop_all()

    def close(self):
        try:
            self.stop_all()
        finally:
            self.net.close()

    def logs(self):
        return "".join(f"\n===== {n}/{svc}\n{pm.log(svc)[-2500:]}" for n, pm in self.pms.items()
                       for svc in pm.logs)

    # ------------------------------------------------------------------ clients
    def send(self, replica, tag, count):
        """count messages through one replica, from the client host, one session. Returns
        {message_id: queue_id} of those acknowledged with 250; any other answer fails."""
        acked = {}
        with self.hosts["client"].entered():
            with smtplib.SMTP(ip(replica), 25, local_hostname="client.example.net", timeout=SMTP_TIMEOUT) as s:
                s.ehlo()
                for i in range(count):
                    mid = f"<{tag}-{i}.{uuid.uuid4().hex[:8]}@client.example.net>"
                    body = f"Message-ID: {mid}\r\nSubject: {tag} {i}\r\n\r\nvia {replica}\r\n"
                    for code, resp in (s.mail("bob@example.net"), s.rcpt(USER)):
                        assert code == 250, (replica, code, resp)
                    code, resp = s.data(body)
                    assert code == 250, f"{replica} answered {code} {resp!r} to message {i}{self.logs()}"
                    acked[mid] = resp.decode().rsplit(" ", 1)[-1]
        self.acked.update(acked)
        return acked

    def wait_uses_shard(self, replica, shard):
        """One message at a time through replica until one is committed by shard: a
        replica's connections to the shards come up on their own time."""
        def landed():
            sent = self.send(replica, f"probe-{shard}", 1)
            return shard in self.shard_of(list(sent.values())).values()
        wait_for(landed, 10, interval=0.1, what=f"{replica} to submit to shard {shard}")

    def maildir_ids(self):
        """Message-IDs in the user's Maildir (new/ and cur/), with repeats."""
        md = self.pms["mail"].state / "mail" / "example.test" / "alice" / "Maildir"
        ids = []
        for sub in ("new", "cur"):
            if (md / sub).is_dir():
                for p in (md / sub).iterdir():
                    ids.append(email.message_from_bytes(p.read_bytes())["Message-ID"])
        return ids

    def wait_delivered(self, mids, timeout=20):
        def done():
            have = set(self.maildir_ids())
            return all(m in have for m in mids)
        try:
            wait_for(done, timeout, interval=0.1, what=f"{len(mids)} messages in the Maildir")
        except AssertionError:
            missing = set(mids) - set(self.maildir_ids())
            raise AssertionError(f"{len(missing)} not delivered: {sorted(missing)[:5]}{self.logs()}")

    def pop3_ids(self):
        """Message-IDs read back over POP3S from the mail host, from the client host."""
        with self.hosts["client"].entered():
            p = poplib.POP3_SSL(ip("mail"), 995, context=client_tls_context(), timeout=SMTP_TIMEOUT)
        try:
            p.user(USER)
            p.pass_(PASSWORD)
            ids = []
            for i in range(1, p.stat()[0] + 1):
                msg = email.message_from_bytes(b"\r\n".join(p.retr(i)[1]))
                ids.append(msg["Message-ID"])
            return ids
        finally:
            p.quit()

    def wait_refused(self, replica):
        """Until a connection to the replica's port 25 is refused (its worker may outlive the
        killed master by a moment)."""
        def refused():
            with self.hosts["client"].entered():
                try:
                    smtplib.SMTP(ip(replica), 25, local_hostname="client.example.net", timeout=5).quit()
                except ConnectionRefusedError:
                    return True
                except (ConnectionError, smtplib.SMTPServerDisconnected):
                    pass                # accepted by the dying worker, then dropped
            return False
        wait_for(refused, 10, what=f"{replica} to refuse connections")

    # ------------------------------------------------------------------ what the logs say
    def admitted(self, name, svc):
        """(key name, peer address) pairs the server on this host let in over the bus."""
        return set(re.findall(r"event=bus_admitted key=(\S+) role=\S+ address=(\S+)", self.pms[name].log(svc)))

    def wait_admitted(self, name, svc, clients):
        want = {(REPLICA_KEY.get(c, {"mail": "delivery"}.get(c, c)), ip(c)) for c in clients}
        wait_for(lambda: want <= self.admitted(name, svc), 10,
                 what=f"{sorted(want - self.admitted(name, svc))} admitted by {name}/{svc}")

    def wait_settled(self):
        """Until every shard has removed every acknowledged message (delivered and recorded)."""
        def settled():
            logs = "".join(self.pms[f"queue{i}"].log("queue") for i in range(self.shards))
            return all(f"event=removed id={q} " in logs for q in self.acked.values())
        wait_for(settled, 10, what="every acknowledged message removed from its shard")

    def shard_of(self, qids):
        """{queue id: shard} for acknowledged submissions: each must have been committed by a
        shard (the log line may follow the 250 by a moment)."""
        found = {}

        def all_found():
            for i in range(self.shards):
                log = self.pms[f"queue{i}"].log("queue")
                for q in qids:
                    if f"event=committed id={q}" in log:
                        found.setdefault(q, i)
            return len(found) == len(qids)
        wait_for(all_found, 5, what="every acknowledged submission in a shard's log")
        return found


@pytest.fixture
def mesh_factory(tmp_path):
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    traversable(tmp_path)
    made = []

    def make(shards):
        root = tmp_path / f"mesh{len(made)}"
        root.mkdir(mode=0o755)
        m = Mesh(root, shards)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()
    for m in made:
        assert not m.net.leftovers(), m.net.leftovers()


def test_multihost_two_replicas_one_queue(mesh_factory):
    """One queue, two smtpd replicas: mail through both is delivered and read over POP3 from
    another host; with one replica killed the other serves."""
    mesh = mesh_factory(1)
    mesh.start_all()
    # Everyone reached the queue over the test network with a key of its own; the mta the resolver.
    mesh.wait_admitted("queue0", "queue", ["mta", "mail", "smtpd1", "smtpd2"])
    mesh.wait_admitted("resolver", "resolver", ["mta"])
    a = mesh.send("smtpd1", "r1", 3)
    b = mesh.send("smtpd2", "r2", 3)
    mesh.wait_delivered([*a, *b])
    assert f"client={ip('client')}:" in mesh.pms["smtpd1"].log("smtpd")
    assert sorted(mesh.pop3_ids()) == sorted([*a, *b])
    # The CLI on another host, over the control endpoint with its own key.
    wait_for(lambda: "messages=0" in mesh.pms["client"].cli("status").stdout, 10,
             what="`postmesh status` from the client host showing an empty queue")

    mesh.pms["smtpd1"].kill("smtpd")
    mesh.wait_refused("smtpd1")
    c = mesh.send("smtpd2", "after-kill", 3)
    mesh.wait_delivered(c)
    assert sorted(mesh.maildir_ids()) == sorted([*a, *b, *c])       # each exactly once


def test_multihost_two_queue_shards(mesh_factory):
    """Two queue shards: both replicas and both workers connect to each; submissions are
    spread over the shards; a replica killed, the other serves; a shard killed (holding mail
    no worker has taken yet), intake goes on through the other without an error, the other
    shard's mail is delivered meanwhile, and once the shard is back every acknowledged
    message is delivered, each exactly once."""
    mesh = mesh_factory(2)
    mesh.start_all()
    for shard in ("queue0", "queue1"):
        mesh.wait_admitted(shard, "queue", ["mta", "mail", "smtpd1", "smtpd2"])
    mesh.wait_admitted("resolver", "resolver", ["mta"])

    # Both replicas, both shards: once a replica has reached shard 1, it spreads its mail.
    for replica in ("smtpd1", "smtpd2"):
        mesh.wait_uses_shard(replica, 1)
    for replica in ("smtpd1", "smtpd2"):
        shards = mesh.shard_of(list(mesh.send(replica, replica, 6).values()))
        assert set(shards.values()) == {0, 1}, f"{replica} sent all to one shard: {shards}"
    mesh.wait_delivered(mesh.acked)
    assert sorted(mesh.pop3_ids()) == sorted(mesh.acked)

    # A replica killed: the other serves; then it is replaced.
    mesh.pms["smtpd1"].kill("smtpd")
    mesh.wait_refused("smtpd1")
    alone = mesh.send("smtpd2", "alone", 4)
    mesh.wait_delivered(alone)
    mesh.start("smtpd1", "smtpd")
    mesh.wait_uses_shard("smtpd1", 1)
    mesh.wait_delivered(mesh.acked)
    mesh.wait_settled()

    # Mail waits in both shards (no delivery worker), then shard 1 dies with its share.
    mesh.pms["mail"].stop("delivery")
    held = {**mesh.send("smtpd1", "held1", 6), **mesh.send("smtpd2", "held2", 6)}
    held_shards = mesh.shard_of(list(held.values()))
    on_shard1 = [q for q, s in held_shards.items() if s == 1]
    assert on_shard1 and len(on_shard1) < len(held), held_shards
    mesh.pms["queue1"].kill("queue")

    # Intake goes on, every submission answered 250 at once, all of it on shard 0.
    t0 = time.monotonic()
    during = {**mesh.send("smtpd1", "down1", 6), **mesh.send("smtpd2", "down2", 6)}
    assert time.monotonic() - t0 < 10
    assert set(mesh.shard_of(list(during.values())).values()) == {0}
    # The worker serves the shard that is up: everything not on shard 1 arrives.
    mesh.start("mail", "delivery")
    not_on_1 = [m for m, q in {**held, **during}.items() if q not in on_shard1]
    mesh.wait_delivered(not_on_1)
    assert not set(mesh.maildir_ids()) & {m for m, q in held.items() if q in on_shard1}

    # Shard 1 returns with what it had acknowledged; the running worker reconnects and
    # delivers it, and both replicas submit there again.
    mesh.start("queue1", "queue")
    assert f"event=store_loaded messages={len(on_shard1)} " in mesh.pms["queue1"].log("queue")
    for replica in ("smtpd1", "smtpd2"):
        mesh.wait_uses_shard(replica, 1)
    mesh.wait_delivered(mesh.acked)
    assert sorted(mesh.maildir_ids()) == sorted(mesh.acked), "lost or duplicated mail"
