"""Metrics and health: every service serves Prometheus text on <service>.metrics (GET /metrics)
and a readiness answer (GET /health); `postmesh ping SERVICE` is the health check built on it.
Real clients only: smtplib for mail, http.client / raw sockets for HTTP."""
import http.client
import re
import smtplib
import socket
import time

import pytest

from conftest import free_port, wait_for
from services_list import supervised

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
                    r'(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def http_get(port, path, timeout=5.0, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def parse(text):
    """Text format 0.0.4, strictly: HELP then TYPE before a metric's samples, every sample
    line well-formed. Returns {(name, frozenset(labels)): value}."""
    samples, typed = {}, {}
    lines = text.split("\n")
    assert lines[-1] == "", "exposition must end with a newline"
    for line in lines[:-1]:
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name.startswith("postmesh_"), line
            typed[name] = None
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in typed, f"TYPE before HELP: {line}"
            assert kind in ("counter", "gauge", "histogram"), line
            typed[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"bad sample line: {line!r}"
            name = m.group(1)
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
            assert typed.get(base), f"sample before its TYPE: {line}"
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            samples[(name, labels)] = float(m.group(3))
    return samples


def scrape(port):
    status, text = http_get(port, "/metrics")
    assert status == 200
    return parse(text)


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def mpm(pm):
    """queue, delivery and smtpd with metrics on free loopback ports; alice exists."""
    pm.mports = {svc: free_port() for svc in ("queue", "smtpd", "delivery")}
    pm.configure(**{svc: {"metrics": f"127.0.0.1:{port}"} for svc, port in pm.mports.items()})
    pm.add_user("alice@example.test")
    return pm


def healthy(port):
    try:
        return http_get(port, "/health", timeout=2)[0] == 200
    except OSError:
        return False


def test_counters_move_with_mail(mpm):
    pm = mpm
    pm.start("queue", "delivery", "smtpd")
    for svc in ("queue", "delivery", "smtpd"):
        wait_for(lambda: healthy(pm.mports[svc]), 10, what=f"{svc} healthy")
    before = {svc: scrape(port) for svc, port in pm.mports.items()}

    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10) as s:
        for i in range(3):
            s.sendmail("bob@example.org", ["alice@example.test"], f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())
        s.mail("bob@example.org")
        code, _ = s.rcpt("nobody@example.test")
        assert code == 550
        s.rset()

    q = pm.mports["queue"]
    wait_for(lambda: value(scrape(q), "postmesh_queue_deliveries_total", kind="local", result="delivered")
             - value(before["queue"], "postmesh_queue_deliveries_total", kind="local", result="delivered") == 3,
             15, what="three local deliveries counted")
    after = {svc: scrape(port) for svc, port in pm.mports.items()}

    def delta(svc, name, **labels):
        return value(after[svc], name, **labels) - value(before[svc], name, **labels)

    assert delta("smtpd", "postmesh_smtpd_messages_total", result="accepted", reason="2.0.0") == 3
    assert delta("smtpd", "postmesh_smtpd_envelope_rejects_total", command="RCPT", reason="5.1.1") == 1
    assert delta("smtpd", "postmesh_smtpd_connections_total") == 1
    # The gauge drops when smtpd has closed the session, which may be just after the client
    # saw 221: wait for it rather than read it once.
    wait_for(lambda: value(scrape(pm.mports["smtpd"]), "postmesh_smtpd_sessions") == 0, 10,
             what="the session gauge back at 0")
    assert delta("smtpd", "postmesh_bus_messages_total", direction="sent", type="submit") == 3
    assert delta("queue", "postmesh_bus_messages_total", direction="received", type="submit") == 3
    assert delta("queue", "postmesh_queue_submissions_total", result="committed", reason="2.0.0") == 3
    # group commit: three submissions and three results in at least one, at most six commits
    commits = delta("queue", "postmesh_queue_commits_total")
    assert 1 <= commits <= 6
    assert delta("queue", "postmesh_queue_commit_batch_size_count") == commits
    assert delta("queue", "postmesh_queue_commit_seconds_count") == commits
    assert delta("queue", "postmesh_queue_commit_batch_size_sum") >= 6  # 3 new + 3 changed records
    assert value(after["queue"], "postmesh_queue_commit_seconds_bucket", le="+Inf") == \
        value(after["queue"], "postmesh_queue_commit_seconds_count")
    assert delta("delivery", "postmesh_bus_messages_total", direction="received", type="job") >= 1
    wait_for(lambda: value(scrape(q), "postmesh_queue_messages", state="queued")
             + value(scrape(q), "postmesh_queue_messages", state="active") == 0, 10, what="queue empty")
    for svc in ("queue", "delivery", "smtpd"):
        assert value(after[svc], "postmesh_ready") == 1


def test_queue_depth_by_state(mpm):
    pm = mpm
    pm.start("queue", "smtpd")  # no delivery: the message waits
    q = pm.mports["queue"]
    wait_for(lambda: healthy(q), 10, what="queue healthy")
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10) as s:
        s.sendmail("bob@example.org", ["alice@example.test"], b"Subject: wait\r\n\r\nx\r\n")
    wait_for(lambda: value(scrape(q), "postmesh_queue_messages", state="queued") == 1, 10, what="one queued")
    qid = pm.queue_list()[0]["id"]
    pm.cli("queue", "hold", qid)
    samples = scrape(q)
    assert value(samples, "postmesh_queue_messages", state="hold") == 1
    assert value(samples, "postmesh_queue_messages", state="queued") == 0


def test_health_and_ping(mpm):
    pm = mpm
    pm.start("queue", "smtpd")
    s, q = pm.mports["smtpd"], pm.mports["queue"]
    wait_for(lambda: healthy(s), 10, what="smtpd healthy")
    r = pm.cli("ping", "smtpd")
    assert r.returncode == 0 and "smtpd ok" in r.stdout
    assert pm.cli("ping", "queue").returncode == 0

    # the queue goes away: smtpd is alive but not ready, and says why
    pm.stop("queue")
    wait_for(lambda: http_get(s, "/health")[0] == 503, 10, what="smtpd unready without the queue")
    status, body = http_get(s, "/health")
    assert "not connected to queue" in body
    assert value(scrape(s), "postmesh_ready") == 0
    r = pm.cli("ping", "smtpd", check=False)
    assert r.returncode == 1 and "not ready" in r.stderr and "not connected to queue" in r.stderr
    r = pm.cli("ping", "queue", check=False)
    assert r.returncode == 1 and "did not answer" in r.stderr
    # but alive: a liveness probe must not get it restarted for its peer's outage
    assert http_get(s, "/live") == (200, "ok\n")
    r = pm.cli("ping", "--live", "smtpd")
    assert r.returncode == 0 and "smtpd ok" in r.stdout

    # it comes back: ready again
    pm.start("queue")
    wait_for(lambda: healthy(s), 10, what="smtpd ready again")
    assert pm.cli("ping", "smtpd").returncode == 0

    pm.stop("smtpd")
    r = pm.cli("ping", "smtpd", check=False)
    assert r.returncode == 1 and "did not answer" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # without a metrics address: the queue over the bus, the others cannot be asked
    r = pm.cli("ping", "mta", check=False)
    assert r.returncode == 2 and "set mta.metrics to check mta" in r.stderr
    r = pm.cli("ping", "nonsense", check=False)
    assert r.returncode == 2
    pm.stop("queue")
    pm.configure(queue={"metrics": ""})
    r = pm.cli("ping", "queue", check=False)
    assert r.returncode == 1 and "did not answer a ping" in r.stderr
    pm.start("queue")
    r = pm.cli("ping", "queue")
    assert r.returncode == 0 and pm.settings["queue"]["control"] in r.stdout


def test_wildcard_bind_address_is_pinged_on_loopback(pm):
    port = free_port()
    pm.configure(queue={"metrics": f"0.0.0.0:{port}"})
    pm.start("queue")
    r = pm.cli("ping", "queue")
    assert f"127.0.0.1:{port}" in r.stdout


def test_hostile_requests_do_not_hurt(mpm):
    pm = mpm
    pm.start("queue", "smtpd")
    s = pm.mports["smtpd"]
    wait_for(lambda: healthy(s), 10, what="smtpd healthy")

    # a header far beyond the limit: refused (or the connection dropped), never served
    with socket.create_connection(("127.0.0.1", s), timeout=5) as c:
        try:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        except OSError:
            pass
        try:
            answer = c.recv(4096)
        except OSError:
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    assert b"postmesh_" not in answer

    assert http_get(s, "/nothing")[0] == 404
    assert http_get(s, "/metrics", method="POST")[0] == 405
    with socket.create_connection(("127.0.0.1", s), timeout=5) as c:
        c.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", s), timeout=5) as c:  # request, then half-close
        c.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(4096):
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\nok\n")
    status, body = http_get(s, "/health?probe=1")
    assert status == 200 and body == "ok\n"

    # more idle connections than it serves at once: they wait or are refused, and once
    # they are gone it answers at once; nothing else in the process noticed
    idle = []
    try:
        for _ in range(40):  # 8 served + the kernel's backlog; beyond that SYNs go unanswered
            try:
                idle.append(socket.create_connection(("127.0.0.1", s), timeout=0.5))
            except OSError:
                break
        assert len(idle) >= 8
    finally:
        for c in idle:
            c.close()
    wait_for(lambda: healthy(s), 5, what="health after the idle connections")
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10) as c:
        c.sendmail("bob@example.org", ["alice@example.test"], b"Subject: still\r\n\r\nfine\r\n")
    assert pm.procs["smtpd"].poll() is None
    assert "sandbox_exited" not in pm.log("smtpd")


def test_idle_connection_is_closed(mpm):
    """A client that sends nothing is dropped by the per-connection deadline."""
    pm = mpm
    pm.start("queue")
    q = pm.mports["queue"]
    wait_for(lambda: healthy(q), 10, what="queue healthy")
    with socket.create_connection(("127.0.0.1", q), timeout=20) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
        began = time.monotonic()
        assert c.recv(100) == b""
        assert time.monotonic() - began < 5  # the request must be whole within 2 s


def test_one_peer_cannot_take_every_slot(mpm):
    """Eight slots in all, two per address: one client holding idle connections blinds
    nobody else (the probes, the scraper)."""
    pm = mpm
    pm.start("queue")
    q = pm.mports["queue"]
    wait_for(lambda: healthy(q), 10, what="queue healthy")
    held = [socket.create_connection(("127.0.0.1", q), timeout=5) for _ in range(2)]
    try:
        for c in held:
            c.sendall(b"GET /health HTTP/1.1\r\n")  # never finished
        # the same address again: closed at once, unanswered
        third = socket.create_connection(("127.0.0.1", q), timeout=5)
        try:
            third.sendall(b"GET /health HTTP/1.1\r\n\r\n")
            answer = third.recv(100)
        except ConnectionResetError:  # closed with our request unread
            answer = b""
        assert answer == b""
        third.close()
        # another address is served meanwhile
        other = http.client.HTTPConnection("127.0.0.1", q, timeout=5, source_address=("127.0.0.2", 0))
        other.request("GET", "/health")
        assert other.getresponse().status == 200
        other.close()
    finally:
        for c in held:
            c.close()


def test_draining_smtpd_is_unready(mpm):
    """SIGTERM: smtpd stops accepting, and its readiness says so at once (a load balancer
    stops sending clients), while a session in a transaction goes on."""
    import signal
    pm = mpm
    pm.configure(smtpd={"drain_timeout": 5})
    pm.start("queue", "smtpd")
    s = pm.mports["smtpd"]
    wait_for(lambda: healthy(s), 10, what="smtpd healthy")
    c = smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=10)
    c.ehlo("busy.test")
    c.mail("bob@example.org")
    c.rcpt("alice@example.test")
    pm.procs["smtpd"].send_signal(signal.SIGTERM)
    wait_for(lambda: "event=draining" in pm.log("smtpd"), 5, what="draining")
    status, body = http_get(s, "/health")
    assert status == 503 and "draining" in body
    assert c.noop()[0] == 250  # the transaction's session is still served
    c.close()


def test_every_service_serves_from_its_sandbox(pm):
    """Each service `postmesh run` starts answers from the process that counts (the sandbox
    or job worker of a privsep parent: mta, delivery, smtpd and pop3d): its seccomp profile
    lets it accept on the metrics socket only, and a scrape does not kill it."""
    services = supervised()
    ports = {svc: free_port() for svc in services}
    pm.configure(**{svc: {"metrics": f"127.0.0.1:{port}"} for svc, port in ports.items()})
    pm.start(*services)
    for svc in services:
        wait_for(lambda: healthy(ports[svc]), 10, what=f"{svc} healthy")
        samples = scrape(ports[svc])
        assert value(samples, "postmesh_ready") == 1, svc
        if svc == "resolver":
            assert ("postmesh_resolver_queries_total", frozenset()) not in samples  # labelled: no bare sample
    for svc in services:
        assert pm.procs[svc].poll() is None, f"{svc} died:\n{pm.log(svc)[-2000:]}"
        assert "sandbox_exited" not in pm.log(svc), pm.log(svc)[-2000:]
