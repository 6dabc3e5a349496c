"""Queue shards and the bind/connect split, with the real binaries: two queue processes, each
with its own store, are the two shards of one installation (queue.endpoint and queue.control
are lists; each shard's own file says where it binds). smtpd spreads submissions over both
and keeps answering 250 while one is dead; delivery and the bouncer work with both; nothing
acknowledged is lost when the dead shard comes back; `postmesh queue` and `status` show
every shard. And a queue that binds 127.0.0.1 while its clients connect to "localhost" (the
CLI, and the chrooted services, which resolve the name from a copy of /etc/hosts in their
chroot: docs/security.md)."""
import copy
import json
import re
import signal
import smtplib
import subprocess
import time

import pytest

from conftest import BIN, free_port, to_libconfig, wait_for
from pop3_helpers import add_user, maildir

ALICE, SENDER = "alice@example.test", "sender@remote.test"
BATCH = 8


def shard_config(pm, listen, control_listen, state_dir, path):
    """The file of a second shard: the installation's settings, its own binds and store; the
    keys are the installation's (every shard holds the queue's key)."""
    settings = copy.deepcopy(pm.settings)
    settings["queue"].update(listen=listen, control_listen=control_listen)
    settings["state_dir"] = str(state_dir)
    settings.setdefault("bus", {})["keys_dir"] = str(pm.state / "keys")
    path.write_text("".join(f"{k} = {to_libconfig(v)};\n" for k, v in settings.items()))
    return path


@pytest.fixture
def shards(pm):
    add_user(pm, ALICE, "secret")
    (pm.root / "aliases").write_text("loop1@example.test: loop2@example.test\n"
                                     "loop2@example.test: loop1@example.test\n")
    e1, c1, e2, c2 = (f"tcp://127.0.0.1:{free_port()}" for _ in range(4))
    pm.configure(queue={"endpoint": [e1, e2], "control": [c1, c2], "listen": e1, "control_listen": c1,
                        "job_lease": 5})
    pm.shard2_conf = shard_config(pm, e2, c2, pm.root / "state2", pm.root / "queue2.conf")
    pm.endpoints, pm.controls = [e1, e2], [c1, c2]
    pm.start("queue", timeout=20)
    pm.start("queue", name="queue2", conf=pm.shard2_conf, timeout=20)
    pm.start("delivery", "smtpd", "bouncer", timeout=20)
    # smtpd learns which shards answer from its Pings: both up before the first message.
    wait_for(lambda: pm.log("smtpd").count("event=queue_shard_up") >= 2, timeout=10, what="smtpd sees both shards")
    return pm


def submit(pm, n, tag, rcpt=ALICE):
    """n messages, one connection each; every one must be answered 250. Returns the ids."""
    ids = []
    for i in range(n):
        with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
            s.ehlo("client.remote.test")
            s.mail(SENDER if rcpt == ALICE else ALICE)
            code, text = s.rcpt(rcpt)
            assert code == 250, (code, text)
            code, text = s.data(f"Subject: {tag} {i}\r\n\r\nbody {tag} {i}\r\n".encode())
            assert code == 250, (tag, i, code, text, pm.log("smtpd")[-3000:])
            ids.append(re.search(rb"queued as ([0-9A-F]{16})", text).group(1).decode())
    return ids


def committed_ids(pm, proc):
    return set(re.findall(r"event=committed id=([0-9A-F]{16})", pm.log(proc)))


def delivered_ids(pm, address=ALICE):
    """Queue ids of the files in the mailbox (named <queue id>.<rcpt index>.<host>)."""
    md = maildir(pm, address)
    names = [p.name for sub in ("new", "cur") if (md / sub).exists() for p in (md / sub).iterdir()]
    return {n.split(".")[0] for n in names}


def cli_json(pm, *args):
    r = pm.cli(*args, check=False)
    return r.returncode, json.loads(r.stdout)


def by_control(doc):
    return {s["control"]: s for s in doc["shards"]}


def test_submissions_spread_over_shards_and_survive_a_dead_one(shards):
    pm = shards
    first = submit(pm, BATCH, "first")
    assert len(set(first)) == BATCH
    # Round robin over both shards: each committed some of them, none both. A queue writes
    # its committed line after the reply that lets smtpd say 250: poll for the last ones.
    wait_for(lambda: set(first) <= committed_ids(pm, "queue") | committed_ids(pm, "queue2"), timeout=10,
             what="every committed line in the shards' logs")
    on1, on2 = committed_ids(pm, "queue") & set(first), committed_ids(pm, "queue2") & set(first)
    assert on1 and on2 and not on1 & on2 and on1 | on2 == set(first), (on1, on2)
    # delivery takes jobs from both.
    wait_for(lambda: set(first) <= delivered_ids(pm), timeout=30, what="the first batch delivered")

    # Held in both stores (no delivery running): `postmesh queue list --json` and `status
    # --json` show each shard by its control endpoint.
    pm.stop("delivery")
    held = submit(pm, BATCH, "held")
    rc, doc = cli_json(pm, "queue", "list", "--json")
    assert rc == 0 and doc["ok"] is True
    listed = {c: {m["id"] for m in s["messages"]} for c, s in by_control(doc).items()}
    assert set(listed) == set(pm.controls)
    assert listed[pm.controls[0]] and listed[pm.controls[1]]
    assert listed[pm.controls[0]] | listed[pm.controls[1]] == set(held)
    rc, doc = cli_json(pm, "status", "--json")
    assert rc == 0 and all(s["ok"] for s in doc["shards"])
    assert sum(s["counters"]["messages"] for s in doc["shards"]) == BATCH
    one = next(iter(listed[pm.controls[1]]))
    assert f"id: {one}" in pm.cli("queue", "show", one).stdout   # found on the shard holding it

    # The first shard dies (SIGKILL: no goodbye). Intake goes on, every message 250, all of
    # it on the shard that is left.
    pm.kill("queue")
    during = submit(pm, BATCH, "during")
    assert set(during) <= committed_ids(pm, "queue2")
    # The CLI reports the silent shard, shows the other, and says so in its exit status.
    rc, doc = cli_json(pm, "status", "--json")
    shard = by_control(doc)
    assert rc == 1 and doc["ok"] is False
    assert shard[pm.controls[0]]["ok"] is False and shard[pm.controls[1]]["ok"] is True
    r = pm.cli("queue", "list", check=False, timeout=60)
    assert r.returncode == 1 and pm.controls[0] in r.stderr and "did not answer" in r.stderr
    assert set(during) <= {line.split()[0] for line in r.stdout.splitlines()}

    # It comes back with its store: nothing acknowledged is lost.
    pm.start("queue", timeout=20)
    pm.start("delivery", timeout=20)
    acked = set(first) | set(held) | set(during)
    wait_for(lambda: acked <= delivered_ids(pm), timeout=60,
             what=f"every acknowledged message delivered (missing {acked - delivered_ids(pm)})")
    rc, doc = cli_json(pm, "status", "--json")
    assert rc == 0 and len(doc["shards"]) == 2 and all(s["ok"] for s in doc["shards"])


def test_a_stalled_shard_is_bypassed(shards):
    """A shard that is connected but does not answer (SIGSTOP: a hung process, a stuck
    disk): a submission sent there goes to the other shard after the per-shard timeout, well
    within submit_timeout, and the client still gets 250. When the stalled shard wakes up it
    may commit its copy too (a duplicate, never a loss)."""
    pm = shards
    pm.procs["queue"].send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        ids = submit(pm, 4, "stalled")
        assert time.monotonic() - t0 < 4 * pm.settings["smtpd"]["submit_timeout"]
        assert set(ids) <= committed_ids(pm, "queue2")
        log = pm.log("smtpd")
        assert "reason=no_answer" in log or "reason=timeout" in log, log[-3000:]
    finally:
        pm.procs["queue"].send_signal(signal.SIGCONT)
    wait_for(lambda: set(ids) <= delivered_ids(pm), timeout=30, what="the messages delivered")


def test_bouncer_submits_its_dsn_to_the_shard_that_is_up(shards):
    """An alias loop fails at commit and owes the sender a DSN. With the first shard dead the
    bouncer must hand the DSN to the second one (a bouncer talking only to the first endpoint
    could not)."""
    pm = shards
    pm.kill("queue")
    wait_for(lambda: "event=queue_shard_down shard=0" in pm.log("bouncer"), timeout=10,
             what="the bouncer notices the dead shard")
    (qid,) = submit(pm, 1, "loop", rcpt="loop1@example.test")
    assert qid in committed_ids(pm, "queue2")
    wait_for(lambda: re.search(rf"event=dsn id={qid} dsn_id=([0-9A-F]{{16}})", pm.log("bouncer")), timeout=30,
             what="the DSN committed")
    dsn_id = re.search(rf"event=dsn id={qid} dsn_id=([0-9A-F]{{16}})", pm.log("bouncer")).group(1)
    assert dsn_id in committed_ids(pm, "queue2")
    wait_for(lambda: dsn_id in delivered_ids(pm), timeout=30, what="the DSN in the sender's mailbox")


def test_queue_with_shards_refuses_to_start_without_its_binds(pm):
    pm.configure(queue={"endpoint": [f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"],
                        "control": [f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"]})
    pm.ensure_keys()
    r = subprocess.run([str(BIN / "postmesh-queue"), "-c", str(pm.conf_path)], capture_output=True, text=True,
                       timeout=30, cwd=pm.root)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "queue.listen" in r.stderr and "queue.control_listen" in r.stderr and "2 shards" in r.stderr
    check = pm.cli("check", check=False).stdout
    assert "2 queue shards" in check and "queue.listen and queue.control_listen are not set" in check


def split_config(pm):
    port, control, resolver = free_port(), free_port(), free_port()
    pm.configure(queue={"endpoint": f"tcp://localhost:{port}", "control": f"tcp://localhost:{control}",
                        "listen": f"tcp://127.0.0.1:{port}", "control_listen": f"tcp://127.0.0.1:{control}"},
                 resolver={"endpoint": f"tcp://localhost:{resolver}", "listen": f"tcp://127.0.0.1:{resolver}"})
    return port, control, resolver


def test_queue_binds_an_address_while_clients_connect_to_a_host_name(pm):
    """ZeroMQ takes no host name in a bind: the queue binds queue.listen (127.0.0.1 here, all
    interfaces in a container) and the resolver resolver.listen, while clients connect by
    name, over CurveZMQ (the server's key is found by the endpoint the client names)."""
    port, control, resolver = split_config(pm)
    pm.start("queue", "resolver", timeout=20)
    assert f"listen=tcp://127.0.0.1:{port} control_listen=tcp://127.0.0.1:{control}" in pm.log("queue")
    assert f"listen=tcp://127.0.0.1:{resolver}" in pm.log("resolver")
    assert "messages=0" in pm.cli("status").stdout          # tcp://localhost:CONTROL, CurveZMQ
    rc, doc = cli_json(pm, "queue", "list", "--json")
    assert rc == 0 and doc == {"ok": True, "shards": [{"control": f"tcp://localhost:{control}", "ok": True,
                                                       "messages": []}]}
    assert "event=bus_denied" not in pm.log("queue")


def test_chrooted_services_connect_to_the_queue_by_name(pm):
    """smtpd's and delivery's workers, chrooted and under seccomp, reach the queue as
    tcp://localhost:PORT: ZeroMQ resolves the name in there (through the copy of /etc/hosts
    their chroots get), and again on every reconnect: the queue restarted, both find it."""
    add_user(pm, ALICE, "secret")
    split_config(pm)
    pm.start("queue", "delivery", "smtpd", timeout=20)
    for svc in ("smtpd", "delivery"):
        assert re.search(r"event=privsep user=postmesh-%s .*bus_names=1" % svc, pm.log(svc)), pm.log(svc)[-2000:]
    (qid,) = submit(pm, 1, "named")
    wait_for(lambda: qid in delivered_ids(pm), timeout=30, what="the message delivered")
    pm.stop("queue")
    pm.start("queue", timeout=20)
    (qid2,) = submit(pm, 1, "after the queue's restart")
    wait_for(lambda: qid2 in delivered_ids(pm), timeout=30, what="the second message delivered")
