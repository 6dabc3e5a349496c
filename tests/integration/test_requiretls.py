"""REQUIRETLS (RFC 8689) end to end.

smtpd: REQUIRETLS is offered in EHLO only inside TLS (after STARTTLS, or on the smtps port),
MAIL FROM ... REQUIRETLS in the clear is refused 530 5.7.10, and over TLS the message is
stored with it (DATA and BDAT, next to the DSN parameters): `postmesh queue show` says
`requiretls: yes`, `queue list --json` has "requiretls": true.

mta (needs the DANE wiring of outbound.c, the signed zone of dnssec_zone.py and the peers of
tls_peers.py): a REQUIRETLS message to a peer whose TLS nobody can authenticate (insecure
zone, no MTA-STS) is returned with 5.7.10, to a DANE-authenticated peer that does not offer
REQUIRETLS with 5.7.30 (RFC 8689 4.2.1), and nothing reaches either; to a DANE peer that
offers it the message is delivered over verified TLS with REQUIRETLS on its MAIL FROM. The
notice goes back to the sender with its headers only (RFC 8689 5: as if RET=HDRS, RET=FULL
disregarded) and is itself marked REQUIRETLS: to a remote sender it goes from <> with
REQUIRETLS where the sender's MX offers it, and without it (not held back) where it does not.
`TLS-Required: No` (without REQUIRETLS) lets a message through to a peer whose TLSA does not
match (DANE ignored for it, RFC 8689 3); with REQUIRETLS the header is ignored."""
import email
import email.policy
import json
import re
import shutil
import smtplib

import pytest

from conftest import BIN, Postmesh, traversable, wait_for
from dnssec_zone import SignedZone
from pop3_helpers import messages
from smtpd_helpers import RawSMTP, add_user, client_context, enable_tls, queue_show, status, wait_log
from tls_peers import TestCA, TlsPeer, common_port, tlsa_owner

MSG = ("From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: needs tls\r\n"
       "Message-ID: <rt-1@example.test>\r\n\r\nTHE-SECRET-BODY\r\n")


@pytest.fixture
def mx(pm):
    """smtpd with a certificate and the queue, nothing that delivers: messages stay queued."""
    add_user(pm, "alice@example.test", "secret")
    add_user(pm, "bob@example.test", "secret")
    enable_tls(pm)
    pm.start("queue", "smtpd")
    return pm


def ehlo_keywords(reply):
    code, lines = reply
    assert code == 250, lines
    return [line.split()[0].upper() for line in lines[1:]]


def queued_id(reply):
    code, lines = reply
    assert code == 250, lines
    return re.search(r"queued as ([0-9A-F]{16})", lines[-1]).group(1)


def list_json(pm):
    doc = json.loads(pm.cli("queue", "list", "--json").stdout)
    return {m["id"]: m for shard in doc["shards"] for m in shard["messages"]}


# ------------------------------------------------------------------ smtpd


def test_offered_only_inside_tls(mx):
    c = RawSMTP(mx.port("smtp"))
    clear = ehlo_keywords(c.cmd("EHLO client.test"))
    assert "STARTTLS" in clear and "REQUIRETLS" not in clear
    c.starttls()
    inside = ehlo_keywords(c.cmd("EHLO client.test"))
    assert "REQUIRETLS" in inside and "STARTTLS" not in inside
    c.close()
    # Implicit TLS (smtps): offered from the first EHLO; HELO offers nothing at all.
    s = RawSMTP(mx.port("smtps"), tls=True)
    assert "REQUIRETLS" in ehlo_keywords(s.cmd("EHLO client.test"))
    assert s.cmd("HELO client.test")[0] == 250
    s.close()
    # smtplib sees it the same way.
    with smtplib.SMTP("127.0.0.1", mx.port("submission"), timeout=10) as sm:
        sm.ehlo("client.test")
        assert not sm.has_extn("requiretls")
        sm.starttls(context=client_context())
        sm.ehlo("client.test")
        assert sm.has_extn("requiretls")


def test_refused_in_the_clear(mx):
    c = RawSMTP(mx.port("smtp"))
    c.cmd("EHLO client.test")
    assert status(c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS")) == (530, "5.7.10")
    # The session goes on: the same MAIL without it is taken.
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    # Bad forms, before any TLS question.
    assert status(c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS=YES")) == (501, "5.5.4")
    c.cmd("HELO client.test")
    assert status(c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS")) == (555, "5.5.4")
    c.close()
    log = mx.log("smtpd")
    assert re.search(r"event=reject client=\S+ stage=MAIL address=alice@example\.test reply=\"530 5\.7\.10", log), log
    assert mx.queue_list() == []


def test_stored_with_the_message(mx):
    c = RawSMTP(mx.port("smtp"))
    c.cmd("EHLO client.test")
    c.starttls()
    c.cmd("EHLO client.test")
    # DATA, with the DSN parameters next to it.
    assert c.cmd("MAIL FROM:<alice@example.test> RET=FULL REQUIRETLS ENVID=rt1")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test> NOTIFY=FAILURE")[0] == 250
    assert c.cmd("DATA")[0] == 354
    with_data = queued_id(c.cmd(MSG + "."))
    # BDAT.
    assert c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    body = MSG.encode()
    c.send(b"BDAT %d LAST\r\n" % len(body) + body)
    with_bdat = queued_id(c.reply())
    # RSET forgets it; the next transaction is an ordinary one.
    assert c.cmd("MAIL FROM:<alice@example.test> REQUIRETLS")[0] == 250
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    plain = queued_id(c.cmd(MSG + "."))
    c.close()

    for qid in (with_data, with_bdat):
        assert "\nrequiretls: yes\n" in queue_show(mx, qid)
        wait_log(mx, "queue", f"event=received id={qid} ")
        line = next(l for l in mx.log("queue").splitlines() if f"event=received id={qid} " in l)
        assert line.endswith(" requiretls=yes"), line
        assert re.search(rf"event=queued id={qid} .* requiretls=yes", mx.log("smtpd"))
    assert "requiretls" not in queue_show(mx, plain)
    listed = list_json(mx)
    assert listed[with_data]["requiretls"] is True and listed[with_bdat]["requiretls"] is True
    assert listed[plain]["requiretls"] is False
    # Kept across a queue restart (it is in the stored record, not only in memory).
    mx.stop("queue")
    mx.start("queue")
    assert "\nrequiretls: yes\n" in queue_show(mx, with_data)
    assert "requiretls" not in queue_show(mx, plain)


def test_submission_port(mx):
    """An authenticated submission over STARTTLS: the MUA's REQUIRETLS (RFC 8689 4.3)."""
    with smtplib.SMTP("127.0.0.1", mx.port("submission"), timeout=10) as s:
        s.ehlo("client.test")
        s.starttls(context=client_context())
        s.ehlo("client.test")
        s.login("alice@example.test", "secret")
        code, text = s.mail("alice@example.test", ["REQUIRETLS"])
        assert code == 250, text
        assert s.rcpt("carol@remote.test")[0] == 250
        code, text = s.data(MSG)
        assert code == 250
    qid = re.search(r"queued as ([0-9A-F]{16})", text.decode()).group(1)
    assert "\nrequiretls: yes\n" in queue_show(mx, qid)


# ------------------------------------------------------------------ end to end (mta, bouncer)
# Every MX host is a TlsPeer on 127.0.0.x with a certificate of the test CA. Their names are
# in the signed zone sec.test (the resolver validates it, the zone's key as trust anchor),
# except insec.sec.test, an unsigned delegation: DNSSEC says "insecure" there, and there is no
# MTA-STS policy either, so nothing can authenticate that server's TLS.
E2E_SERVICES = ("resolver", "queue", "mta", "delivery", "bouncer", "smtpd")
PEERS = {  # domain -> (MX host, address, TLSA: "good" / "other" / None, offers REQUIRETLS)
    "dane.sec.test": ("mx.dane.sec.test", "127.0.0.2", "good", True),
    "norq.sec.test": ("mx.norq.sec.test", "127.0.0.3", "good", False),
    "bad.sec.test": ("mx.bad.sec.test", "127.0.0.4", "other", True),
    "insec.sec.test": ("mx.insec.sec.test", "127.0.0.5", None, True),
}
# (case, recipient domain, MAIL parameters, extra header lines)
CASES = [
    ("rt_dane", "dane.sec.test", ["REQUIRETLS"], ""),
    ("rt_norq", "norq.sec.test", ["REQUIRETLS", "RET=FULL"], ""),
    ("rt_insec", "insec.sec.test", ["REQUIRETLS", "RET=FULL"], ""),
    ("rt_bad_header_ignored", "bad.sec.test", ["REQUIRETLS"], "TLS-Required: No\r\n"),
    ("no_rt_insec", "insec.sec.test", [], ""),
    ("tlsreq_no_bad", "bad.sec.test", [], "TLS-Required: No\r\n"),
    ("control_bad", "bad.sec.test", [], ""),
    # Remote senders: their notices go out through the mta, from <> (RFC 8689 5).
    ("notice_to_dane", "norq.sec.test", ["REQUIRETLS"], ""),
    ("notice_to_norq", "insec.sec.test", ["REQUIRETLS"], ""),
]
REMOTE_SENDERS = {"notice_to_dane": "carol@dane.sec.test", "notice_to_norq": "dave@norq.sec.test"}


def sender_of(case):
    return REMOTE_SENDERS.get(case) or f"{case.replace('_', '-')}@example.test"


def body_of(case, extra):
    return (f"From: <{sender_of(case)}>\r\nTo: <bob@x.test>\r\nSubject: case {case}\r\n{extra}"
            f"Message-ID: <{case}@example.test>\r\n\r\nTHE-SECRET-BODY of {case}\r\n").encode()


def _have_e2e():
    return all((BIN / f"postmesh-{s}").exists() for s in E2E_SERVICES) and shutil.which("nsd") \
        and shutil.which("ldns-signzone")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not _have_e2e():
        pytest.skip("needs every service binary, nsd and ldns-signzone")
    root = traversable(tmp_path_factory.mktemp("requiretls"))
    pm = Postmesh(root)
    ca = TestCA(root / "pki")
    other = ca.issue("someone.else.test")
    zone = SignedZone(root / "dns", origin="sec.test")
    port = common_port(*(ip for _, ip, _, _ in PEERS.values()))
    peers = {}
    try:
        child = zone.add_unsigned_child("insec.sec.test")
        for domain, (host, ip, tlsa, rt) in PEERS.items():
            cert = ca.issue(host)
            lines = [f"{domain}. 300 IN MX 10 {host}.", f"{host}. 300 IN A {ip}"]
            if tlsa:  # at _25._tcp and at the port the mta uses here (mta.remote_port)
                rdata = (cert if tlsa == "good" else other).tlsa(3, 1, 1)
                lines += [f"{tlsa_owner(host, p)}. 300 IN TLSA {rdata}" for p in (25, port)]
            if domain == "insec.sec.test":
                child.records += lines
            else:
                zone.add(lines)
            peers[domain] = TlsPeer(ip, port, cert, requiretls=rt)
        zone.start()
        add_user(pm, "bob@example.test", "secret")
        for case, *_ in CASES:
            if case not in REMOTE_SENDERS:
                add_user(pm, sender_of(case), "secret")
        enable_tls(pm)
        pm.configure(trusted_networks=["127.0.0.0/8"],
                     queue={"retry_min": 1, "retry_max": 2, "job_lease": 20, "max_lifetime": 3600,
                            "delay_warning": 0},
                     resolver={"nameservers": [zone.nameserver], "timeout": 2, "dnssec": True,
                               "trust_anchors": [str(zone.anchor_file)]},
                     mta={"remote_port": port, "connect_timeout": 3, "command_timeout": 10,
                          "ca_file": str(ca.cert), "tls_level": "dane"})
        pm.start(*E2E_SERVICES, timeout=20)
        qids = {}
        c = RawSMTP(pm.port("smtp"))
        c.cmd("EHLO client.test")
        c.starttls()
        assert "REQUIRETLS" in ehlo_keywords(c.cmd("EHLO client.test"))
        for case, domain, params, extra in CASES:
            assert c.cmd(f"MAIL FROM:<{sender_of(case)}> {' '.join(params)}".rstrip())[0] == 250
            assert c.cmd(f"RCPT TO:<bob@{domain}>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            qids[case] = queued_id(c.cmd(body_of(case, extra) + b"."))
        c.close()
        yield {"pm": pm, "qids": qids, "peers": peers}
    finally:
        pm.stop_all()
        for p in peers.values():
            p.stop()
        zone.stop()


def delivered(world, domain, case):
    """The messages of case the peer of domain received."""
    return [m for m in world["peers"][domain].messages if f"case {case}".encode() in m["content"]]


def mta_events(world, case, event):
    qid = world["qids"][case]
    return [x for x in world["pm"].log("mta").splitlines() if f"event={event} id={qid} " in x]


def the_notice(world, case):
    pm = world["pm"]
    wait_for(lambda: messages(pm, sender_of(case)), 40, what=f"the notice for {case}")
    [path] = messages(pm, sender_of(case))
    raw = path.read_bytes()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def check_returned(world, case, status):
    raw, msg = the_notice(world, case)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    parts = msg.get_payload()
    report = parts[1].get_payload()
    assert report[1]["Status"] == status, raw
    assert report[1]["Action"] == "failed"
    # RFC 8689 5: headers only, RET=FULL disregarded; and it says so.
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert f"Subject: case {case}".encode() in raw
    assert b"THE-SECRET-BODY" not in raw
    assert "sent with REQUIRETLS" in parts[0].get_content()
    # The notice itself was queued with REQUIRETLS (and from <>).
    qid = world["qids"][case]
    line = wait_for(lambda: next((x for x in world["pm"].log("queue").splitlines()
                                  if "event=received " in x and f"dsn_for={qid}" in x), None), 10,
                    what="the notice's intake")
    assert "from=<>" in line and line.endswith(" requiretls=yes"), line
    return raw


def test_delivered_over_dane_with_requiretls(world):
    wait_for(lambda: delivered(world, "dane.sec.test", "rt_dane"), 40, what="delivery to the DANE peer")
    [m] = delivered(world, "dane.sec.test", "rt_dane")
    assert m["tls"] and m["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert "REQUIRETLS" in m["mail_options"], m["mail_options"]
    world["peers"]["dane.sec.test"].assert_nothing_in_clear()
    [line] = wait_for(lambda: mta_events(world, "rt_dane", "delivered"), 10, what="the delivery log line")
    assert "tls=verified" in line and "dane=yes" in line, line


def test_peer_without_requiretls_returns_5_7_30(world):
    raw = check_returned(world, "rt_norq", "5.7.30")
    assert b"does not offer it" in raw
    peer = world["peers"]["norq.sec.test"]
    # It was reached over TLS (DANE-verified) and given up before MAIL: nothing of the
    # envelope, in the clear or not (the peer also gets a notice of another case, from <>).
    assert peer.commands("STARTTLS")
    assert not [e for e in peer.commands("MAIL") if f"<{sender_of('rt_norq')}>" in e["arg"]]
    assert not delivered(world, "norq.sec.test", "rt_norq")
    assert mta_events(world, "rt_norq", "bounced")


def test_unauthenticated_tls_returns_5_7_10(world):
    check_returned(world, "rt_insec", "5.7.10")
    peer = world["peers"]["insec.sec.test"]
    assert not delivered(world, "insec.sec.test", "rt_insec")
    assert not [e for e in peer.events if e["command"] == "MAIL" and f"<{sender_of('rt_insec')}>" in e["arg"]]
    # Control: the same insecure peer takes ordinary mail (opportunistic TLS), so the test
    # above can fail.
    wait_for(lambda: delivered(world, "insec.sec.test", "no_rt_insec"), 40, what="ordinary mail to insec")


def test_tls_required_no_skips_dane(world):
    """TLS-Required: No: the TLSA mismatch does not hold the message (RFC 8689 3); the same
    message without the header is deferred, never sent in the clear."""
    wait_for(lambda: delivered(world, "bad.sec.test", "tlsreq_no_bad"), 40, what="TLS-Required: No delivery")
    wait_for(lambda: mta_events(world, "control_bad", "deferred"), 40, what="the control's deferral")
    assert not delivered(world, "bad.sec.test", "control_bad")
    [line, *_] = mta_events(world, "control_bad", "deferred")
    assert " dsn=4.7." in line, line


def test_tls_required_header_ignored_with_requiretls(world):
    """RFC 8689 4.1: with the MAIL parameter the header is ignored: DANE still applies, the
    mismatching peer never gets it."""
    wait_for(lambda: mta_events(world, "rt_bad_header_ignored", "deferred")
             or mta_events(world, "rt_bad_header_ignored", "bounced"), 40, what="the verdict")
    assert not delivered(world, "bad.sec.test", "rt_bad_header_ignored")
    peer = world["peers"]["bad.sec.test"]
    assert not [e for e in peer.events
                if e["command"] == "MAIL" and f"<{sender_of('rt_bad_header_ignored')}>" in e["arg"]]


def notice_at(world, domain, case):
    """The notices about case's message that the peer of domain received."""
    def found():
        return [m for m in world["peers"][domain].messages
                if m["mail_from"] in ("", "<>") and f"Subject: case {case}".encode() in m["content"]]
    return wait_for(found, 40, what=f"the notice for {case} at {domain}")


def test_notice_goes_out_with_requiretls_where_offered(world):
    """A REQUIRETLS notice to a remote sender: from <>, over TLS, REQUIRETLS on its MAIL FROM
    (the sender's MX offers it), headers only."""
    [m] = notice_at(world, "dane.sec.test", "notice_to_dane")
    assert m["rcpt_tos"] == [sender_of("notice_to_dane")]
    assert m["tls"] and "REQUIRETLS" in m["mail_options"], m
    assert b"Status: 5.7.30" in m["content"] and b"THE-SECRET-BODY" not in m["content"]


def test_notice_not_held_back_where_not_offered(world):
    """RFC 8689 5: the null sender's notice is not discarded for want of REQUIRETLS: it goes
    (over DANE TLS here) without the parameter to a server that does not offer it."""
    [m] = notice_at(world, "norq.sec.test", "notice_to_norq")
    assert m["rcpt_tos"] == [sender_of("notice_to_norq")]
    assert m["tls"] and "REQUIRETLS" not in m["mail_options"], m
    assert b"Status: 5.7.10" in m["content"] and b"THE-SECRET-BODY" not in m["content"]
