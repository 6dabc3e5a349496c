"""Several smtpd sandboxes (session processes) on the same ports (issue 12, "use both
cores"), seen from outside:

- with smtpd.sandboxes = 2 there are two sandbox processes and both serve sessions: clients
  from 16 loopback addresses spread over both (each session's log line carries the pid of
  the sandbox that runs it), and every address always reaches the same sandbox;
- killing one sandbox leaves the other's sessions intact (a transaction on it completes) and
  the parent starts a successor in its place, which serves that sandbox's clients;
- the per-address limits hold across sandboxes: max_connections_per_ip = 3 refuses the 4th
  connection of every address, and max_connections is for the whole smtpd;
- the metrics port shows every sandbox's sessions and counters added up, and a counter does
  not go back when a sandbox is replaced;
- SIGTERM drains every sandbox: a transaction open on each completes, and all exit.
"""
import os
import re
import signal
import socket
import urllib.request

from conftest import free_port, wait_for
from smtpd_helpers import RawSMTP

SOURCES = [f"127.0.0.{i}" for i in range(1, 17)]


def sandbox_pids(pm):
    """{index: pid} of the sandboxes started last in each slot."""
    out = {}
    for pid, ix in re.findall(r"pid=\d+ .*event=sandbox_started sandbox=smtpd pid=(\d+) index=(\d+)", pm.log("smtpd")):
        out[int(ix)] = int(pid)
    return out


def served_by(pm, source, after=0):
    """pids that logged a connect from source (log text from offset after)."""
    text = pm.log("smtpd")[after:]
    return {int(p) for p in re.findall(rf"pid=(\d+) \S+ event=connect client={re.escape(source)}:", text)}


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def dead(pid):
    """Gone, or a zombie: a process reaped between two looks at it is gone too (reading its
    /proc entry then fails with ESRCH, or the entry is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (ProcessLookupError, FileNotFoundError):
        return True


def start(pm, **smtpd):
    pm.configure(smtpd={"sandboxes": 2, **smtpd})
    pm.start("queue", "smtpd")
    pids = wait_for(lambda: (w := sandbox_pids(pm)) and len(w) == 2 and w, 10, what="two sandboxes")
    # pm.start waited for event=started, which the last of the sandboxes to be ready logs
    assert len(re.findall(r"event=(?:started|sandbox_ready) listeners=.* sandboxes=2", pm.log("smtpd"))) == 2
    return pids


def open_from(pm, source):
    s = RawSMTP(pm.port("smtp"), source=source)
    assert s.greeting[0] == 220, s.greeting
    assert s.cmd("EHLO client.test")[0] == 250
    return s


def spread(pm):
    """{source: pid} after one session from each source."""
    for src in SOURCES:
        s = open_from(pm, src)
        assert s.cmd("QUIT")[0] == 221
        s.close()
    wait_for(lambda: all(served_by(pm, src) for src in SOURCES), 10, what="every connect logged")
    return {src: served_by(pm, src) for src in SOURCES}


def test_two_workers_share_the_port_by_client_address(pm):
    pids = start(pm)
    assert len(set(pids.values())) == 2 and all(alive(p) for p in pids.values())
    # twice round: the same address must reach the same sandbox every time
    first = spread(pm)
    second = spread(pm)
    for src in SOURCES:
        assert len(second[src]) == 1 and first[src] == second[src], (src, first[src], second[src])
    used = set().union(*first.values())
    assert used == set(pids.values()), f"sessions served by {used}, sandboxes {pids}"
    counts = {p: sum(1 for s in SOURCES if first[s] == {p}) for p in used}
    assert min(counts.values()) >= 3, f"uneven spread of 16 addresses: {counts}"


def transaction(s, rcpt="postmaster@example.test"):
    assert s.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    assert s.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert s.cmd("DATA")[0] == 354
    code, lines = s.cmd("Subject: t\r\n\r\nbody\r\n.")
    assert code == 250, lines


def test_a_crashed_worker_is_restarted_and_the_other_keeps_its_sessions(pm):
    pids = start(pm)
    mapping = spread(pm)
    victim, survivor = pids[0], pids[1]
    src_victim = next(s for s in SOURCES if mapping[s] == {victim})
    src_survivor = next(s for s in SOURCES if mapping[s] == {survivor})
    kept = [open_from(pm, src_survivor) for _ in range(3)]
    doomed = open_from(pm, src_victim)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: dead(victim), 10,
             what="the victim to die")
    # the survivor's sessions are intact: a whole transaction on each
    for s in kept:
        transaction(s)
        assert s.cmd("QUIT")[0] == 221
        s.close()
    doomed.close()
    # the parent starts a successor in the same slot, and it serves the victim's addresses
    new = wait_for(lambda: (w := sandbox_pids(pm)).get(0) not in (None, victim) and w[0], 10, what="a new sandbox 0")
    assert sandbox_pids(pm)[1] == survivor and alive(survivor)
    offset = len(pm.log("smtpd"))
    s = wait_for(lambda: _try_open(pm, src_victim), 10, what="the new sandbox to serve")
    transaction(s)
    s.cmd("QUIT")
    s.close()
    wait_for(lambda: served_by(pm, src_victim, offset), 10, what="the connect log line")
    assert served_by(pm, src_victim, offset) == {new}
    assert "event=sandbox_exited sandbox=smtpd pid=%d index=0 signal=9" % victim in pm.log("smtpd")


def _try_open(pm, src):
    try:
        return open_from(pm, src)
    except (ConnectionError, OSError):
        return None


def test_per_address_limit_holds_across_workers(pm):
    pids = start(pm, max_connections_per_ip=3)
    held = []
    for src in SOURCES[:8]:
        three = [open_from(pm, src) for _ in range(3)]
        held += three
        fourth = RawSMTP(pm.port("smtp"), source=src)
        assert fourth.greeting[0] == 421 and "too many connections" in fourth.greeting[1][0], (src, fourth.greeting)
        fourth.close()
    # the 8 addresses were served by both sandboxes, so each sandbox enforced its own share
    used = set().union(*(served_by(pm, src) for src in SOURCES[:8]))
    assert used == set(pids.values()), used
    for s in held:
        s.close()


def test_max_connections_is_for_all_workers(pm):
    pids = start(pm, max_connections=4)
    mapping = spread(pm)
    a = next(s for s in SOURCES if mapping[s] == {pids[0]})
    b = next(s for s in SOURCES if mapping[s] == {pids[1]})
    held = [open_from(pm, a), open_from(pm, a), open_from(pm, b), open_from(pm, b)]
    # the other sandbox's two count: neither sandbox takes a fifth
    for src in (a, b):
        s = RawSMTP(pm.port("smtp"), source=src)
        assert s.greeting[0] == 421, (src, s.greeting)
        s.close()
    held.pop().close()
    held.pop().close()  # two of b's gone: room again, for a's sandbox too (once it sees the tally)
    s = wait_for(lambda: (x := RawSMTP(pm.port("smtp"), source=a)).greeting[0] == 220 and x, 5, what="room again")
    s.close()
    for h in held:
        h.close()


def test_sessions_gauge_counts_every_worker(pm):
    port = free_port()
    pm.configure(smtpd={"metrics": f"127.0.0.1:{port}"})
    pids = start(pm)
    mapping = spread(pm)
    a = next(s for s in SOURCES if mapping[s] == {pids[0]})
    b = next(s for s in SOURCES if mapping[s] == {pids[1]})
    held = [open_from(pm, a), open_from(pm, b), open_from(pm, b), open_from(pm, b)]

    def metric(name):
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        m = re.search(rf"^{name} (\d+)", body, re.M)
        return int(m.group(1)) if m else None
    wait_for(lambda: metric("postmesh_smtpd_sessions") == 4, 5, what="the gauge to count 4 sessions on two sandboxes")
    # the counters of both sandboxes, added up: 16 sessions of the spread and the 4 held
    assert metric("postmesh_smtpd_connections_total") == len(SOURCES) + 4
    for h in held:
        h.close()
    wait_for(lambda: metric("postmesh_smtpd_sessions") == 0, 5, what="the gauge to drop to 0")
    # a sandbox killed and replaced: its successor goes on from its counters (never backwards)
    os.kill(pids[1], signal.SIGKILL)
    wait_for(lambda: sandbox_pids(pm).get(1) != pids[1], 10, what="a new sandbox 1")
    assert metric("postmesh_smtpd_connections_total") == len(SOURCES) + 4


def test_sigterm_drains_every_worker(pm):
    pids = start(pm, drain_timeout=10)
    mapping = spread(pm)
    sessions = []
    for ix in (0, 1):
        src = next(s for s in SOURCES if mapping[s] == {pids[ix]})
        s = open_from(pm, src)
        assert s.cmd("MAIL FROM:<a@remote.test>")[0] == 250
        assert s.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
        sessions.append(s)
    proc = pm.procs["smtpd"]
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: pm.log("smtpd").count("event=draining") >= 2, 5, what="both sandboxes draining")
    # a new client is refused on the port while the transactions finish
    try:
        socket.create_connection(("127.0.0.1", pm.port("smtp")), timeout=2).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    for s in sessions:
        assert s.cmd("DATA")[0] == 354
        code, lines = s.cmd("Subject: t\r\n\r\nbody\r\n.")
        assert code == 250, lines
        s.close()
    proc.wait(15)
    assert not any(alive(p) for p in pids.values())
    assert refused, "the port still accepted while draining"
    pm.procs.pop("smtpd")


def test_ipv6_listener_with_two_workers(pm):
    """The selector reads an IPv6 source too: sessions on [::1] are served, always by one sandbox."""
    port = free_port()  # free on 127.0.0.1; [::1] is another address, as free
    pm.settings["smtpd"]["listen"].append({"address": f"[::1]:{port}", "mode": "smtp"})
    pids = start(pm)
    for _ in range(6):
        s = socket.create_connection(("::1", port), timeout=10)
        assert s.recv(512).startswith(b"220")
        s.sendall(b"QUIT\r\n")
        assert s.recv(512).startswith(b"221")
        s.close()
    used = wait_for(lambda: (u := {int(p) for p in re.findall(r"pid=(\d+) \S+ event=connect client=::1:",
                                                                 pm.log("smtpd"))}) and len(re.findall(
        r"event=connect client=::1:", pm.log("smtpd"))) == 6 and u, 10, what="six connects logged")
    assert len(used) == 1 and used <= set(pids.values()), used
