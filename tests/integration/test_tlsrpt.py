"""TLSRPT (RFC 8460) end to end against the real postmesh-queue and postmesh-mta: TLS sessions
counted per (UTC day, policy domain), kept across a queue restart, and `postmesh queue tlsrpt`
putting the day's report into the queue as a new message from the null sender to the domain's
rua; the test reads the report where it arrives, gunzips and parses the JSON.

Two ways in: the test as the mta worker on the bus (it takes the Jobs the queue dispatches for
mail submitted over SMTP and answers them with the TLS sessions it chooses: exact counts, the
edge's bounds, sessions refused when they are not the dispatched job's own), and real deliveries through the mta
to aiosmtpd peers on 127.0.0.x (a domain whose level is "encrypt" against a peer without
STARTTLS gives starttls-not-supported failures; a peer with STARTTLS gives successes), the
report then delivered by the mta to the rua domain's MX, DKIM-signed (dkimpy verifies it)."""
import base64
import email
import email.policy
import gzip
import itertools
import json
import re
import smtplib
import time

import dkim
import pytest
import zmq

import bus_wire as wire
from conftest import wait_for, write_key
from remote_peers import AioSink, Dnsmasq, common_port

RUA_DOMAIN = "reports.test"
RUA = f"tlsrpt@{RUA_DOMAIN}"
_rid = itertools.count(5000)


# ------------------------------------------------------------------ the bus side

def tls_session(domain, success, result_type="", mx="mx.rcpt.test", rip="127.0.0.2", sip="127.0.0.1",
                policy_type=0, strings=(), mx_patterns=(), rua=(f"mailto:{RUA}", "https://r.example/x")):
    """A TlsSession (proto field numbers)."""
    b = wire.field_bytes(1, domain)
    if policy_type:
        b += wire.field_int(2, policy_type)
    for s in strings:
        b += wire.field_bytes(3, s)
    for m in mx_patterns:
        b += wire.field_bytes(4, m)
    if success:
        b += wire.field_int(5, 1)
    for num, val in ((6, result_type), (7, sip), (8, mx), (9, rip)):
        if val:
            b += wire.field_bytes(num, val)
    for u in rua:
        b += wire.field_bytes(13, u)
    return b


def mta_result(job, sessions, status=wire.DELIVERED, **names):
    """The JobResult an mta sends for job (a parsed Job): it echoes the job's epoch, id, queue
    id and kind (names may change any: job_id=, queue_id=, epoch=, kind=), a verdict for each
    of its recipients and the TLS sessions given (encoded TlsSessions)."""
    n = {"job_id": job["job_id"], "queue_id": job["queue_id"], "epoch": job["epoch"], "kind": job["kind"], **names}
    body = wire.field_int(1, n["job_id"]) + wire.field_bytes(2, n["queue_id"])
    for r in job["recipients"]:
        rr = wire.field_int(1, r["index"]) + wire.field_int(2, status) + wire.field_bytes(3, "2.0.0") \
            + wire.field_bytes(4, "250 2.0.0 ok") + wire.field_bytes(5, "mx." + job["domain"])
        body += wire.field_bytes(3, rr)
    if n["epoch"]:
        body += wire.field_int(4, n["epoch"])
    body += wire.field_int(5, n["kind"])
    for s in sessions:
        body += wire.field_bytes(6, s)
    return wire.bus_message(0, wire.JOB_RESULT, body)


class Mta:
    """An mta worker on its own DEALER with a key in the mta role, the test in its place: it
    asks for jobs (Credit), takes the Jobs the queue dispatches for the mail the test submitted
    over SMTP, and answers them (mta_result) with whatever TLS sessions the test says it saw."""

    def __init__(self, pm, zctx, name="test-mta"):
        self.pm, self.name = pm, name
        keys = pm.state / "keys"
        pub, sec = zmq.curve_keypair()
        write_key(keys, f"mta.{name}", pub)
        s = zctx.socket(zmq.DEALER)
        s.linger = 0
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = (keys / "queue.pub").read_text().strip().encode()
        s.connect(pm.settings["queue"]["endpoint"])
        self.sock, self.jobs, self.pongs, self.received = s, [], set(), 0

    def close(self):
        self.sock.close()

    def pump(self, deadline_s):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self.sock.poll(100):
                return
            fields = wire.decode(self.sock.recv())
            if wire.JOB in fields:
                job = wire.parse_job(fields)
                job["raw"] = wire.decode(wire.first(fields, wire.JOB))
                self.jobs.append(job)
                self.received += 1
            elif wire.PING in fields:
                self.pongs.add(wire.first(fields, 2, 0))

    def sync(self):
        """Barrier: the queue handled everything this socket sent before."""
        rid = next(_rid)
        self.sock.send(wire.ping(rid))
        wait_for(lambda: (self.pump(0.2), rid in self.pongs)[1], 10, what="the queue's ping")

    def send(self, frame):
        self.sock.send(frame)

    def credit(self, n=4):
        self.sock.send(wire.credit(wire.WORKER_MTA, n, self.name, self.received))
        self.sync()

    def take(self, n, timeout=10):
        """The next n jobs, by destination domain."""
        wait_for(lambda: (self.pump(0.2), len(self.jobs) >= n)[1], timeout,
                 what=f"{n} jobs for the test mta (got {len(self.jobs)})\n{self.pm.log('queue')[-3000:]}")
        got, self.jobs = self.jobs[:n], self.jobs[n:]
        for j in got:
            assert j["kind"] == wire.WORKER_MTA and j["epoch"], j
        return {j["domain"]: j for j in got}

    def answer(self, job, sessions, **names):
        self.send(mta_result(job, sessions, **names))


def start_relay(pm, *services, **conf):
    """queue and smtpd, relaying for the test (127.0.0.0/8): mail to remote domains waits in
    the queue for an mta."""
    pm.configure(trusted_networks=["127.0.0.0/8"], **conf)
    pm.start("queue", "smtpd", *services)


def submit(pm, rcpts, subject="tlsrpt"):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=20) as s:
        s.sendmail("alice@client.test", rcpts, f"Subject: {subject}\r\n\r\nhello\r\n".encode())


def counted_reports(pm):
    out = pm.cli("queue", "tlsrpt").stdout
    m = re.search(r"(\d+) TLS reports queued", out)
    assert m, out
    return int(m.group(1))


def report_of(raw):
    """(message, the report's JSON) of an RFC 8460 5.3 mail (bytes)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg
    assert msg.get_param("report-type") == "tlsrpt", msg["Content-Type"]
    parts = [p for p in msg.iter_parts() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.iter_parts()]
    assert parts[0]["Content-Transfer-Encoding"].lower() == "base64"
    fname = parts[0].get_filename()
    data = gzip.decompress(base64.b64decode(parts[0].get_payload()))
    return msg, fname, json.loads(data)


def check_shape(report, domain):
    """The RFC 8460 4.4 members and types."""
    for k in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
        assert k in report, (k, report)
    dr = report["date-range"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", dr["start-datetime"]), dr
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", dr["end-datetime"]), dr
    assert report["policies"], report
    for p in report["policies"]:
        assert p["policy"]["policy-domain"] == domain, p
        assert p["policy"]["policy-type"] in ("tlsa", "sts", "no-policy-found"), p
        s = p["summary"]
        assert isinstance(s["total-successful-session-count"], int)
        assert isinstance(s["total-failure-session-count"], int)
        for d in p.get("failure-details", []):
            assert isinstance(d["failed-session-count"], int) and d["failed-session-count"] > 0, d
            assert d["result-type"], d


def test_sessions_counted_across_a_restart_become_one_report(pm, zctx):
    start_relay(pm, hostname="mail.sender.test", queue={"tlsrpt_organization": "Sender Org"})
    m = Mta(pm, zctx)
    m.credit()
    submit(pm, ["bob@rcpt.test"], "one")
    (job1,) = m.take(1).values()
    submit(pm, ["carol@rcpt.test"], "two")
    (job2,) = m.take(1).values()
    assert job1["domain"] == job2["domain"] == "rcpt.test" and job1["queue_id"] != job2["queue_id"]
    strings = ["3 1 1 " + "ab" * 32]
    ok = [tls_session("rcpt.test", True, policy_type=2, strings=strings) for _ in range(3)]
    bad = [tls_session("rcpt.test", False, "starttls-not-supported", policy_type=2, strings=strings)
           for _ in range(2)]
    other = [tls_session("rcpt.test", False, "certificate-expired", mx="mx2.rcpt.test", rip="127.0.0.3",
                         policy_type=2, strings=strings)]
    m.answer(job1, ok + bad[:1])
    m.answer(job2, bad[1:] + other)
    m.sync()
    pm.cli("status")            # a control command commits before it answers: the counts are stored
    pm.kill("queue")            # SIGKILL: only what was committed survives
    m.close()
    pm.start("queue")

    out = pm.cli("queue", "tlsrpt").stdout
    assert "1 TLS reports queued" in out, out
    log = pm.log("queue")
    line = re.search(r"event=tlsrpt_report id=(\w+) domain=rcpt\.test day=\S+ rcpts=1 successful=3 failed=3", log)
    assert line, log[-3000:]
    # made once: the day's record went with the report's commit
    assert counted_reports(pm) == 0
    rows = pm.queue_list()
    assert [r["id"] for r in rows] == [line.group(1)], rows   # the two messages delivered, the report

    m = Mta(pm, zctx, "test-mta-2")
    m.credit()
    job = m.take(1)[RUA_DOMAIN]
    raw = job["raw"]
    assert job["queue_id"] == line.group(1)
    assert wire.first(raw, 4, b"") == b""                 # the null sender
    assert [r["address"] for r in job["recipients"]] == [RUA]   # mailto: only, https: dropped
    msg, fname, report = report_of(wire.first(raw, 6))
    assert msg["TLS-Report-Domain"] == "rcpt.test"
    assert msg["TLS-Report-Submitter"] == "mail.sender.test"
    subject = " ".join(msg["Subject"].split())
    assert re.fullmatch(r"Report Domain: rcpt\.test Submitter: mail\.sender\.test Report-ID: <[^>]+>", subject), subject
    assert re.fullmatch(r"mail\.sender\.test!rcpt\.test!\d+!\d+!\w+\.json\.gz", fname), fname
    check_shape(report, "rcpt.test")
    assert report["organization-name"] == "Sender Org"
    (p,) = report["policies"]
    assert p["policy"]["policy-type"] == "tlsa" and p["policy"]["policy-string"] == strings
    assert p["summary"] == {"total-successful-session-count": 3, "total-failure-session-count": 3}
    details = {(d["result-type"], d["receiving-mx-hostname"], d["receiving-ip"]): d["failed-session-count"]
               for d in p["failure-details"]}
    assert details == {("starttls-not-supported", "mx.rcpt.test", "127.0.0.2"): 2,
                       ("certificate-expired", "mx2.rcpt.test", "127.0.0.3"): 1}, details
    m.close()


def test_a_finished_day_goes_out_by_itself(pm, zctx, monkeypatch):
    """The timer: once the day is over (and queue.tlsrpt_hour has passed), the queue sends it
    without being asked, soon after a start too. A test build moves the queue's TLSRPT clock
    by POSTMESH_TEST_TLSRPT_CLOCK seconds: a day later is "the next day"."""
    start_relay(pm, queue={"tlsrpt_hour": 0})
    m = Mta(pm, zctx)
    m.credit()
    submit(pm, ["bob@day.test"])
    m.answer(m.take(1)["day.test"], [tls_session("day.test", True), tls_session("day.test", False, "certificate-not-trusted")])
    m.sync()
    m.close()
    pm.stop("queue")                                     # SIGTERM: the last commit writes the counts
    monkeypatch.setenv("POSTMESH_TEST_TLSRPT_CLOCK", str(26 * 3600))
    pm.start("queue")
    wait_for(lambda: "event=tlsrpt_report" in pm.log("queue"), 10, what=f"the timer's report\n{pm.log('queue')[-2000:]}")
    assert re.search(r"event=tlsrpt_round queued=1 failed=0 dropped=0 all=0", pm.log("queue")), pm.log("queue")[-2000:]
    m = Mta(pm, zctx, "test-mta-2")
    m.credit()
    _, _, report = report_of(wire.first(m.take(1)[RUA_DOMAIN]["raw"], 6))
    check_shape(report, "day.test")
    dr = report["date-range"]
    assert dr["start-datetime"][:10] == dr["end-datetime"][:10] and dr["end-datetime"].endswith("T23:59:59Z"), dr
    (p,) = report["policies"]
    assert p["policy"]["policy-type"] == "no-policy-found" and "policy-string" not in p["policy"], p
    assert p["summary"] == {"total-successful-session-count": 1, "total-failure-session-count": 1}, p
    assert [d["result-type"] for d in p["failure-details"]] == ["certificate-not-trusted"], p
    assert counted_reports(pm) == 0
    m.close()


def test_the_edge_bounds_sessions(pm, zctx):
    """Results for real jobs (one message, a job per domain) that break a bound of the bus's
    edge are refused whole; some pass the edge and are still not counted."""
    start_relay(pm)
    m = Mta(pm, zctx)
    m.credit(16)
    long_domain = "x" * 256 + ".test"
    domains = ["b1.test", "b2.test", "b3.test", "b4.test", "b5.test", "upper.test", "bad.test", "nomailto.test",
               "bounds.test"]
    submit(pm, [f"bob@{d}" for d in domains])
    jobs = m.take(len(domains))
    assert sorted(jobs) == sorted(domains), list(jobs)
    good = tls_session("bounds.test", True)
    m.answer(jobs["b1.test"], [tls_session("b1.test", True)] * 17)                           # one too many
    m.answer(jobs["b2.test"], [tls_session("b2.test", False, "starttls\r\nX: y")])
    m.answer(jobs["b3.test"], [tls_session("b3.test", True, rua=[f"mailto:{RUA}"] * 9)])
    m.answer(jobs["b4.test"], [tls_session("b4.test", True, strings=["x" * 1025])])
    m.answer(jobs["b5.test"], [tls_session(long_domain, True)])
    # pass the edge, but not counted: a domain not in lower case (not a name for a header or a
    # quoted file name as it is), rua without a usable mailto: address
    m.answer(jobs["upper.test"], [tls_session("UPPER.test", True)])
    m.answer(jobs["bad.test"], [tls_session("bad.test", True, rua=["mailto:a@b@c", "mailto:x%0D%0A@y.test"])])
    m.answer(jobs["nomailto.test"], [tls_session("nomailto.test", True, rua=["https://r.example/x"])])
    m.sync()
    log = pm.log("queue")
    for field, problem in (("tls_sessions", "too_many"), ("tls_sessions[0].result_type", "control_character"),
                           ("tls_sessions[0].rua", "too_many"), ("tls_sessions[0].policy_strings[0]", "too_long"),
                           ("tls_sessions[0].policy_domain", "too_long")):
        assert f"body=job_result reason=invalid field={field} problem={problem} " in log, (field, log[-3000:])
    assert counted_reports(pm) == 0
    m.answer(jobs["bounds.test"], [good] * 16)                                          # the most there may be
    m.sync()
    assert counted_reports(pm) == 1
    assert re.search(r"event=tlsrpt_report id=\w+ domain=bounds\.test day=\S+ rcpts=1 successful=16 failed=0",
                     pm.log("queue")), pm.log("queue")[-3000:]
    m.close()


def test_only_a_dispatched_jobs_own_domain_counts(pm, zctx):
    """An mta reports only on the domain of a job the queue sent it, once: sessions for another
    domain, results for a job never dispatched, of another queue run, naming another message or
    kind, or answering a job a second time, count nothing (event=tlsrpt_refused)."""
    start_relay(pm)
    m = Mta(pm, zctx)
    m.credit(8)
    submit(pm, ["bob@rcpt.test", "carol@second.test"])
    jobs = m.take(2)
    a, b = jobs["rcpt.test"], jobs["second.test"]
    assert a["queue_id"] == b["queue_id"]
    qid = a["queue_id"]
    fail = [tls_session("rcpt.test", False, "certificate-expired")]
    never = max(a["job_id"], b["job_id"]) + 100
    m.answer(a, fail, job_id=never)                                  # a job never dispatched
    m.answer(a, fail, epoch=a["epoch"] ^ 1)                          # another queue run's
    m.answer(a, fail, queue_id="0000000000000001")                   # another message
    m.answer(a, fail, kind=wire.WORKER_DELIVERY)                     # another kind: the edge's (role)
    m.answer(b, fail + [tls_session('q"uote.test', False, "validation-failure")])   # not b's domain
    m.answer(a, [tls_session("other.test", False, "validation-failure"), tls_session("rcpt.test", True)])
    m.answer(a, fail)                                                # a again: the job is done
    m.sync()
    log = pm.log("queue")
    refused = re.findall(r"event=tlsrpt_refused id=(\S+) reason=(\w+) sessions=(\d+)", log)
    assert sorted(refused) == sorted([
        (qid, "no_job", "1"), (qid, "other_epoch", "1"), ("0000000000000001", "result_mismatch", "1"),
        (qid, "other_domain", "2"), (qid, "other_domain", "1"),
        (qid, "no_job", "1")]), log[-4000:]
    assert "key=mta.test-mta role=mta body=job_result reason=kind" in log, log[-4000:]
    assert re.search(rf"event=tlsrpt_refused id={qid} reason=other_domain sessions=2 job=\d+ job_domain=second\.test",
                     log), log[-4000:]
    assert pm.queue_list() == []                                     # both answers applied: delivered
    assert counted_reports(pm) == 1                                  # rcpt.test's, from a's one answer
    log = pm.log("queue")
    assert re.search(r"event=tlsrpt_report id=\w+ domain=rcpt\.test day=\S+ rcpts=1 successful=1 failed=0", log), \
        log[-3000:]
    assert len(re.findall(r"event=tlsrpt_report ", log)) == 1, log[-3000:]
    m.close()


def test_a_hostile_mta_cannot_fill_the_store_or_stop_its_commits(pm, zctx):
    """A compromised mta answering the jobs it was given with the largest sessions there may be,
    each with a policy of its own, must neither fill the store nor make the group commit fail,
    so mail is still taken and reports still go out."""
    pm.add_user("user@example.test")
    start_relay(pm, queue={"map_size_mb": 2})
    m = Mta(pm, zctx)
    m.credit(32)
    domains = [f"d{i}.test" for i in range(18)]
    submit(pm, [f"bob@{d}" for d in domains])
    jobs = m.take(len(domains))
    mxs = [f"mx{i}.example.test" for i in range(32)]
    for d, job in jobs.items():                                # ~4 MB of counts for a 2 MB store
        sessions = [tls_session(d, False, "validation-failure", strings=[f"{k}" + "p" * 999] + ["p" * 1000] * 31,
                                mx_patterns=mxs) for k in range(7)]
        m.answer(job, sessions)
        m.sync()
    pm.cli("status")                                           # the counts' commit
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=20) as s:
        s.sendmail("sender@client.test", ["user@example.test"], b"Subject: still taken\r\n\r\nhello\r\n")
    log = pm.log("queue")
    assert "event=tlsrpt_full" in log, log[-3000:]
    assert "event=commit_failed" not in log, log[-3000:]
    assert "event=tlsrpt_refused" not in log, log[-3000:]     # all were the jobs' own domains
    assert counted_reports(pm) >= 1, pm.log("queue")[-3000:]  # what was kept is still reported
    m.close()

# ------------------------------------------------------------------ real deliveries

SENDER = "alice@example.test"


@pytest.fixture
def net(pm, tmp_path):
    """rcpt.test: MX 10 mx1 (127.0.0.2, no STARTTLS), MX 20 mx2 (127.0.0.3, STARTTLS), level
    "encrypt" by a tls_policy row, a TLSRPT record with a mailto: and an https: rua;
    reports.test: the rua's MX (127.0.0.4), a plain sink."""
    from tls_peers import TestCA, TlsPeer
    record = f"v=TLSRPTv1; rua=mailto:{RUA},https://r.example/tlsrpt".encode()
    txt = f"--dns-rr=_smtp._tls.rcpt.test,16,{(bytes([len(record)]) + record).hex()}"  # TXT, its comma kept
    dns = Dnsmasq(tmp_path, [
        "--mx-host=rcpt.test,mx1.rcpt.test,10", "--mx-host=rcpt.test,mx2.rcpt.test,20",
        "--host-record=mx1.rcpt.test,127.0.0.2", "--host-record=mx2.rcpt.test,127.0.0.3",
        f"--mx-host={RUA_DOMAIN},mx.{RUA_DOMAIN},10", f"--host-record=mx.{RUA_DOMAIN},127.0.0.4", txt])
    peers = []
    try:
        port = common_port("127.0.0.2", "127.0.0.3", "127.0.0.4")
        ca = TestCA(tmp_path)
        peers.append(TlsPeer("127.0.0.2", port, ca.issue("mx1.rcpt.test"), starttls="none",
                             helo_name="ehlo-name.mx1.rcpt.test"))
        peers.append(TlsPeer("127.0.0.3", port, ca.issue("mx2.rcpt.test"), starttls="offer"))
        peers.append(AioSink("127.0.0.4", port, tmp_path))
        pm.configure(hostname="mail.sender.test", trusted_networks=["127.0.0.0/8"],
                     queue={"retry_min": 1, "retry_max": 2, "job_lease": 20},
                     resolver={"nameservers": [dns.nameserver], "timeout": 2, "negative_ttl": 0},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10,
                          "tls_policy": [{"domain": "rcpt.test", "level": "encrypt", "ca_file": ""}]})
        # the report is originating mail from postmaster@<hostname>: signed with that domain's key
        out = pm.cli("dkim", "keygen", "mail.sender.test", "tlsrpt", "--dir", str(tmp_path / "dkim")).stdout
        [key] = re.findall(r'key = "([^"]+)"', out)
        [txt_line] = [line for line in out.splitlines() if "IN TXT" in line]
        dkim_txt = "".join(re.findall(r'"([^"]*)"', txt_line.split("IN TXT", 1)[1]))
        pm.configure(dkim=[{"domain": "mail.sender.test", "selector": "tlsrpt", "key": key, "active": True}])
        yield {"pm": pm, "mx1": peers[0], "mx2": peers[1], "rua": peers[2], "dkim_txt": dkim_txt}
    finally:
        pm.stop_all()
        for p in peers:
            p.stop()
        dns.stop()


def send(pm, n):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.example.test")
        body = (f"From: <{SENDER}>\r\nTo: <bob@rcpt.test>\r\nSubject: tlsrpt {n}\r\n"
                f"Message-ID: <tlsrpt-{n}@example.test>\r\n\r\nhello\r\n")
        s.sendmail(SENDER, ["bob@rcpt.test"], body.encode())


def test_deliveries_with_failures_and_successes_are_reported_to_the_rua(net):
    pm = net["pm"]
    pm.start("resolver", "queue", "mta", "smtpd", timeout=20)
    for n in range(2):
        send(pm, n)
    wait_for(lambda: len(net["mx2"].messages) == 2, 30, what=f"two messages over TLS at mx2\n{pm.log('mta')[-3000:]}")
    assert all(m["tls"] for m in net["mx2"].messages), net["mx2"].messages
    assert net["mx1"].messages == [] and not net["mx1"].clear_mail   # encrypt: nothing in the clear
    wait_for(lambda: pm.queue_list() == [], 10, what="the queue empty")
    pm.cli("status")                 # committed: the counts are in the store
    pm.kill("queue")                 # the queue dies between the deliveries and the report
    pm.start("queue")

    assert "1 TLS reports queued" in pm.cli("queue", "tlsrpt").stdout, pm.log("queue")[-3000:]
    wait_for(lambda: net["rua"].messages, 30, what=f"the report at {RUA_DOMAIN}\n{pm.log('mta')[-3000:]}")
    (got,) = net["rua"].messages
    assert got["mail_from"] in ("", "<>"), got["mail_from"]
    assert got["rcpt_tos"] == [RUA], got["rcpt_tos"]
    msg, fname, report = report_of(got["content"])
    assert msg["TLS-Report-Domain"] == "rcpt.test" and msg["TLS-Report-Submitter"] == "mail.sender.test"
    want = {"tlsrpt._domainkey.mail.sender.test": net["dkim_txt"].encode()}
    assert b"DKIM-Signature:" in got["content"]
    assert dkim.verify(got["content"], dnsfunc=lambda name, timeout=5: want.get(name.decode().rstrip("."))), \
        got["content"][:2000]
    assert fname.startswith("mail.sender.test!rcpt.test!") and fname.endswith(".json.gz"), fname
    check_shape(report, "rcpt.test")
    (p,) = report["policies"]
    assert p["policy"]["policy-type"] == "no-policy-found", p
    assert p["summary"] == {"total-successful-session-count": 2, "total-failure-session-count": 2}, p
    (d,) = p["failure-details"]
    assert d["result-type"] == "starttls-not-supported", d
    assert d["receiving-mx-hostname"] == "mx1.rcpt.test" and d["receiving-ip"] == "127.0.0.2", d
    assert d["sending-mta-ip"] == "127.0.0.1", d          # our end of the connection
    assert d["receiving-mx-helo"] == "ehlo-name.mx1.rcpt.test", d   # the name in its EHLO reply
    assert d["failed-session-count"] == 2, d
    # sent once: the day went with the report, a second request finds nothing
    assert "0 TLS reports queued" in pm.cli("queue", "tlsrpt").stdout
