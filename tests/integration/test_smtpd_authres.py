"""Inbound SPF, DKIM and DMARC on port 25 (services/smtpd/authres.c), end to end: the real
sandboxed smtpd asks the real resolver, which asks a dnsmasq on loopback serving the records
of a table of cases; messages are signed by an independent signer (dkimpy) with an RSA and an
Ed25519 key made here; the client connects from 127.0.0.5, the address the SPF records name.
Each case asserts the SMTP reply to the end of DATA and, for accepted mail, the exact
Authentication-Results: header as delivered into the Maildir. A zone forwarded by dnsmasq to
a UDP port that never answers gives the temperror. One stack and one dnsmasq for the module."""
import base64
import smtplib
import socket
import subprocess

import dkim
import nacl.signing
import pytest

from conftest import Postmesh, traversable, wait_for
from pop3_helpers import add_user, messages
from remote_peers import Dnsmasq

CLIENT = "127.0.0.5"   # the SPF client address of every case
BOB = "bob@example.test"
HOST = "mx.example.test"


def rsa_key(root):
    key = root / "rsa.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True, timeout=60).stdout
    return key.read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def ed25519_key():
    sk = nacl.signing.SigningKey.generate()
    return base64.b64encode(bytes(sk)), "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(sk.verify_key)).decode()


def txt(name, *texts):
    """dnsmasq's --txt-record: one record, split into character-strings of at most 255 (no
    quotes: dnsmasq would keep them, as no shell removes them here)."""
    parts = []
    for t in texts:
        parts += [t[i:i + 255] for i in range(0, len(t), 255)]
    return f"--txt-record={name}," + ",".join(parts)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("authres"))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a name server that never answers
    silent.bind(("127.0.0.1", 0))
    rsa_pem, rsa_txt = rsa_key(root)
    ed_seed, ed_txt = ed25519_key()
    records = [
        txt("spf-pass.test", "v=spf1 ip4:127.0.0.5 -all"),
        txt("spf-fail.test", "v=spf1 ip4:127.0.0.99 -all"),
        txt("spf-soft.test", "v=spf1 ip4:127.0.0.99 ~all"),
        txt("spf-neutral.test", "v=spf1 ?all"),
        txt("spf-two.test", "v=spf1 -all"), txt("spf-two.test", "v=spf1 +all"),
        txt("spf-bad.test", "v=spf1 ip4:127.0.0.5 frobnicate:x.test -all"),
        txt("spf-mx.test", "v=spf1 include:inc.spf-mx.test -all"),
        txt("inc.spf-mx.test", "v=spf1 mx:spf-mx.test -all"),
        "--mx-host=spf-mx.test,mx1.spf-mx.test,10", "--mx-host=spf-mx.test,mx2.spf-mx.test,20",
        "--host-record=mx1.spf-mx.test,127.0.0.9", "--host-record=mx2.spf-mx.test,127.0.0.5",
        f"--server=/slow.test/127.0.0.1#{silent.getsockname()[1]}",
        txt("rsa._domainkey.dk.test", rsa_txt), txt("ed._domainkey.dk.test", ed_txt),
        txt("dm-spf.test", "v=spf1 ip4:127.0.0.5 -all"), txt("_dmarc.dm-spf.test", "v=DMARC1; p=reject"),
        txt("_dmarc.dm-dkim.test", "v=DMARC1; p=reject"), txt("rsa._domainkey.dm-dkim.test", rsa_txt),
        txt("_dmarc.dm-rej.test", "v=DMARC1; p=reject"), txt("rsa._domainkey.dm-rej.test", rsa_txt),
        txt("_dmarc.dm-none.test", "v=DMARC1; p=none"),
        txt("_dmarc.dm-org.test", "v=DMARC1; p=none; sp=reject"),
        txt("_dmarc.dm-orgq.test", "v=DMARC1; p=none; sp=quarantine"),
    ]
    dns = Dnsmasq(root, records)
    pm = Postmesh(root)
    try:
        add_user(pm, BOB, "secret")
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 2},
                     smtpd={"verify_inbound": True, "auth_dns_timeout": 4})
        pm.start("resolver", "queue", "delivery", "smtpd", timeout=20)
        yield {"pm": pm, "keys": {"rsa": rsa_pem, "ed": ed_seed}}
    finally:
        pm.stop_all()
        dns.stop()
        silent.close()


def message(case, frm, extra=b""):
    return extra + (f"From: {frm}\r\nTo: <{BOB}>\r\nSubject: case {case}\r\nX-Case: {case}\r\n"
            f"Date: Tue, 1 Dec 2026 22:00:00 +0000\r\nMessage-ID: <{case}@client.test>\r\n\r\n"
            f"Hello,\r\nthis is case {case}.\r\n").encode()


def sign(msg, keys, domain, selector):
    ed = selector == "ed"
    sig = dkim.sign(msg, selector.encode(), domain.encode(), keys[selector],
                    signature_algorithm=b"ed25519-sha256" if ed else b"rsa-sha256",
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def send(pm, sender, msg):
    """(code, text) of the reply to the end of DATA, from 127.0.0.5."""
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30, source_address=(CLIENT, 0)) as s:
        s.ehlo("client.test")
        s.mail(sender)
        s.rcpt(BOB)
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        return code, text.decode()


def our_header(delivered: bytes):
    """Our Authentication-Results: fields (authserv-id mx.example.test), unfolded lines kept."""
    head = delivered.split(b"\r\n\r\n", 1)[0].decode() + "\r\n"
    fields, cur = [], None
    for line in head.split("\r\n")[:-1]:
        if line[:1] in (" ", "\t") and cur is not None:
            cur += line + "\r\n"
            continue
        if cur is not None:
            fields.append(cur)
        cur = line + "\r\n"
    if cur is not None:
        fields.append(cur)
    return [f for f in fields if f.lower().startswith(f"authentication-results: {HOST};")]


def ar(spf, dkims, dmarc):
    lines = [f"Authentication-Results: {HOST};"] + ([f"\tspf={spf};"] if spf else [])
    lines += [f"\tdkim={d};" for d in dkims] + [f"\tdmarc={dmarc}"]
    return "\r\n".join(lines) + "\r\n"


RSA = "header.d={d} header.s=rsa header.a=rsa-sha256"
HELD = "held"  # accepted, then held in the queue (quarantine), so never delivered
# (case, MAIL FROM, From:, DKIM (domain, selector) or None, tamper body, extra header bytes,
#  reply code, expected Authentication-Results: (or a reply text for refusals))
CASES = [
    ("spf_pass", "a@spf-pass.test", "a@spf-pass.test", None, False, b"", 250,
     ar("pass smtp.mailfrom=a@spf-pass.test", ["none"], "none header.from=spf-pass.test")),
    ("spf_fail", "a@spf-fail.test", "a@spf-fail.test", None, False, b"", 250,
     ar("fail smtp.mailfrom=a@spf-fail.test", ["none"], "none header.from=spf-fail.test")),
    ("spf_softfail", "a@spf-soft.test", "a@spf-soft.test", None, False, b"", 250,
     ar("softfail smtp.mailfrom=a@spf-soft.test", ["none"], "none header.from=spf-soft.test")),
    ("spf_neutral", "a@spf-neutral.test", "a@spf-neutral.test", None, False, b"", 250,
     ar("neutral smtp.mailfrom=a@spf-neutral.test", ["none"], "none header.from=spf-neutral.test")),
    ("spf_none", "a@spf-none.test", "a@spf-none.test", None, False, b"", 250,
     ar("none smtp.mailfrom=a@spf-none.test", ["none"], "none header.from=spf-none.test")),
    ("spf_temperror", "a@slow.test", "a@spf-pass.test", None, False, b"", 250,
     ar("temperror smtp.mailfrom=a@slow.test", ["none"], "none header.from=spf-pass.test")),
    ("spf_permerror_two", "a@spf-two.test", "a@spf-two.test", None, False, b"", 250,
     ar("permerror smtp.mailfrom=a@spf-two.test", ["none"], "none header.from=spf-two.test")),
    ("spf_permerror_bad", "a@spf-bad.test", "a@spf-bad.test", None, False, b"", 250,
     ar("permerror smtp.mailfrom=a@spf-bad.test", ["none"], "none header.from=spf-bad.test")),
    ("spf_include_mx", "a@spf-mx.test", "a@spf-mx.test", None, False, b"", 250,
     ar("pass smtp.mailfrom=a@spf-mx.test", ["none"], "none header.from=spf-mx.test")),
    ("dkim_rsa", "a@dk.test", "a@dk.test", ("dk.test", "rsa"), False, b"", 250,
     ar("none smtp.mailfrom=a@dk.test", ["pass " + RSA.format(d="dk.test")], "none header.from=dk.test")),
    ("dkim_ed25519", "a@dk.test", "a@dk.test", ("dk.test", "ed"), False, b"", 250,
     ar("none smtp.mailfrom=a@dk.test", ["pass header.d=dk.test header.s=ed header.a=ed25519-sha256"],
        "none header.from=dk.test")),
    ("dkim_fail", "a@dk.test", "a@dk.test", ("dk.test", "rsa"), True, b"", 250,
     ar("none smtp.mailfrom=a@dk.test", ["fail (body hash did not verify) " + RSA.format(d="dk.test")],
        "none header.from=dk.test")),
    ("dmarc_pass_spf", "a@dm-spf.test", "a@dm-spf.test", None, False, b"", 250,
     ar("pass smtp.mailfrom=a@dm-spf.test", ["none"], "pass (p=reject) header.from=dm-spf.test")),
    ("dmarc_pass_dkim", "a@spf-pass.test", "a@dm-dkim.test", ("dm-dkim.test", "rsa"), False, b"", 250,
     ar("pass smtp.mailfrom=a@spf-pass.test", ["pass " + RSA.format(d="dm-dkim.test")],
        "pass (p=reject) header.from=dm-dkim.test")),
    ("dmarc_reject", "a@spf-pass.test", "a@dm-rej.test", None, False, b"", 550,
     "5.7.1 DMARC: the policy of dm-rej.test rejects this message"),
    ("dmarc_reject_aligned", "a@spf-pass.test", "a@dm-rej.test", ("dm-rej.test", "rsa"), False, b"", 250,
     ar("pass smtp.mailfrom=a@spf-pass.test", ["pass " + RSA.format(d="dm-rej.test")],
        "pass (p=reject) header.from=dm-rej.test")),
    ("dmarc_none_policy", "a@spf-pass.test", "a@dm-none.test", None, False, b"", 250,
     ar("pass smtp.mailfrom=a@spf-pass.test", ["none"], "fail (p=none) header.from=dm-none.test")),
    ("dmarc_subdomain_policy", "a@spf-pass.test", "a@sub.dm-org.test", None, False, b"", 550,
     "5.7.1 DMARC: the policy of sub.dm-org.test rejects this message"),
    ("dmarc_subdomain_quarantine", "a@spf-pass.test", "a@sub.dm-orgq.test", None, False, b"", 250, HELD),
    ("forged_ar", "a@spf-pass.test", "a@spf-pass.test", None, False,
     b"Authentication-Results: mx.example.test; dkim=pass header.d=bank.test\r\n"
     b"Authentication-Results: other.example.net; dkim=pass header.d=bank.test\r\n", 250,
     ar("pass smtp.mailfrom=a@spf-pass.test", ["none"], "none header.from=spf-pass.test")),
]


def test_authentication_results_table(stack):
    pm, keys = stack["pm"], stack["keys"]
    replies = {}
    for case, sender, frm, signer, tamper, extra, _, _ in CASES:
        msg = message(case, frm, extra)
        if signer:
            msg = sign(msg, keys, *signer)
        if tamper:
            msg = msg.replace(b"this is case", b"this was case")
        replies[case] = send(pm, sender, msg)
    accepted = [c for c in CASES if c[6] == 250 and c[7] != HELD]

    def delivered():
        found = {}
        for path in messages(pm, BOB):
            data = path.read_bytes()
            for c in accepted:
                if f"\r\nX-Case: {c[0]}\r\n".encode() in data:
                    found[c[0]] = data
        return found if len(found) == len(accepted) else None
    mail = wait_for(delivered, 30, what="every accepted case in the Maildir")
    failures = []
    for case, _, _, _, _, _, code, expect in CASES:
        got_code, text = replies[case]
        if got_code != code:
            failures.append(f"{case}: reply {got_code} {text}, expected {code}")
            continue
        if code != 250 or expect == HELD:
            if expect != HELD and text != expect:
                failures.append(f"{case}: reply text {text!r}, expected {expect!r}")
            continue
        headers = our_header(mail[case])
        if headers != [expect]:
            failures.append(f"{case}: got {headers!r}\n   expected {expect!r}")
    assert not failures, "\n".join(failures)
    forged = mail["forged_ar"]
    assert b"Authentication-Results: other.example.net; dkim=pass header.d=bank.test\r\n" in forged
    assert b"header.d=bank.test" not in b"".join(h.encode() for h in our_header(forged))
    log = pm.log("smtpd")
    assert "event=authres client=127.0.0.5:" in log
    assert "spf=fail dkim=none dmarc=none from_domain=spf-fail.test action=accept" in log
    assert "dmarc=fail from_domain=dm-rej.test action=reject" in log
    assert "dmarc=fail from_domain=sub.dm-orgq.test action=quarantine" in log
    held = wait_for(lambda: [r["line"] for r in pm.queue_list() if "hold_reason" in r["line"]], 10,
                    what="the quarantined message held in the queue")
    assert len(held) == 1 and "sub.dm-orgq.test" in held[0], held


def test_reject_and_quarantine_knobs_and_trusted_clients(stack):
    """spf_fail_action = "reject": an SPF fail gets 550 5.7.23; dmarc_action = "quarantine": a
    p=reject fail is accepted and held; a client in trusted_networks is ours: not checked, and
    its message is delivered as it came."""
    pm = stack["pm"]
    pm.stop("smtpd")
    pm.configure(trusted_networks=["127.0.0.7/32"],
                 smtpd={"spf_fail_action": "reject", "dmarc_action": "quarantine"})
    pm.start("smtpd", timeout=20)
    before = {r["id"] for r in pm.queue_list()}
    code, text = send(pm, "a@spf-fail.test", message("knob_spf", "a@spf-fail.test"))
    assert (code, text) == (550, "5.7.23 SPF: spf-fail.test does not permit 127.0.0.5 to send its mail")
    code, _ = send(pm, "a@spf-pass.test", message("knob_dmarc", "a@dm-rej.test"))
    assert code == 250
    held = wait_for(lambda: [r["line"] for r in pm.queue_list() if r["id"] not in before and "hold_reason" in r["line"]],
                    10, what="the DMARC fail held")
    assert len(held) == 1 and "dm-rej.test" in held[0], held
    forged = b"Authentication-Results: mx.example.test; spf=pass\r\n"
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30, source_address=("127.0.0.7", 0)) as s:
        s.ehlo("trusted.test")
        s.sendmail("a@spf-fail.test", [BOB], message("knob_trusted", "a@dm-rej.test", forged))

    def trusted():
        for path in messages(pm, BOB):
            data = path.read_bytes()
            if b"X-Case: knob_trusted\r\n" in data:
                return data
    data = wait_for(trusted, 20, what="the trusted client's message")
    assert our_header(data) == ["Authentication-Results: mx.example.test; spf=pass\r\n"]  # its own, untouched
