"""Inbound SPF, DKIM and DMARC attacked end to end (services/smtpd/authres.c): a sender who
owns its domains' DNS (a dnsmasq on loopback) and writes the message. Each case is one that
went wrong before the fixes of issue 14's review:
- one-letter domains: libopendmarc put x.de and y.de in one organizational domain ("de"),
  so a pass for y.de passed DMARC for x.de (p=reject);
- a From: display name longer than our copy of the value hid the domain: dmarc=none;
- a DKIM-signed body bigger than ~60 kB was hashed only in part: dkim=fail, and under
  p=reject a legitimate message was refused;
- more than two void lookups are an SPF permerror (RFC 7208 4.6.4);
and checks that hold: values that try to add results to our Authentication-Results:, forged
ones claiming our hostname in odd spellings, temperrors that never refuse (with
spf_fail_action = "reject"), a DNS list's 127.255.255.254 error answer that lists no one (every
case connects from a client it names), no sanitizer report in smtpd's log (run the module with an ASan
build: POSTMESH_BIN=build-...-asan/bin), and, under strace, that a sandbox verifying a
message never talks to port 53 nor reads /etc/resolv.conf. One stack, one dnsmasq."""
import base64
import os
import re
import smtplib
import socket
import subprocess

import dkim
import pytest

from conftest import Postmesh, traversable, wait_for
from pop3_helpers import add_user, messages
from remote_peers import Dnsmasq
from syscall_trace import STRACE, Tracer, descendants

CLIENT = "127.0.0.5"
BOB = "bob@example.test"
HOST = "mx.example.test"


def txt(name, *texts):
    parts = []
    for t in texts:
        parts += [t[i:i + 255] for i in range(0, len(t), 255)]
    return f"--txt-record={name}," + ",".join(parts)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("authres_attacks"))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    key = root / "rsa.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True, timeout=60).stdout
    rsa_txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    records = [
        "--local=/de/",
        txt("y.de", "v=spf1 ip4:127.0.0.5 -all"), txt("_dmarc.x.de", "v=DMARC1; p=reject"),
        txt("spf-pass.test", "v=spf1 ip4:127.0.0.5 -all"),
        txt("_dmarc.dm-rej.test", "v=DMARC1; p=reject"),
        txt("_dmarc.dm-big.test", "v=DMARC1; p=reject"), txt("_dmarc.dm-trace.test", "v=DMARC1; p=reject"),
        txt("trace.test", "v=spf1 a:a.trace.test mx:trace.test -all"), txt("rsa._domainkey.dm-big.test", rsa_txt),
        txt("void.test", "v=spf1 a:v1.void.test a:v2.void.test mx:v3.void.test ip4:127.0.0.5 -all"),
        f"--server=/slow.test/127.0.0.1#{silent.getsockname()[1]}",
        # the list's own error answer for our client (RFC 5782 / Spamhaus 127.255.255.x): no listing
        "--host-record=5.0.0.127.bl.test,127.255.255.254",
    ]
    dns = Dnsmasq(root, records)
    pm = Postmesh(root)
    try:
        add_user(pm, BOB, "secret")
        pm.configure(resolver={"nameservers": [dns.nameserver], "timeout": 1},
                     smtpd={"verify_inbound": True, "auth_dns_timeout": 2, "spf_fail_action": "reject",
                            "dnsbl": [{"zone": "bl.test", "weight": 2}], "dnsbl_threshold": 2})
        pm.start("resolver", "queue", "delivery", "smtpd", timeout=20)
        yield {"pm": pm, "key": key.read_bytes()}
    finally:
        pm.stop_all()
        dns.stop()
        silent.close()


def message(case, frm, extra=b"", body=None):
    body = body if body is not None else f"Hello,\r\nthis is case {case}.\r\n".encode()
    return extra + (f"From: {frm}\r\nTo: <{BOB}>\r\nSubject: case {case}\r\nX-Case: {case}\r\n"
                    f"Date: Tue, 1 Dec 2026 22:00:00 +0000\r\nMessage-ID: <{case}@client.test>\r\n\r\n"
                    ).encode() + body


def send(pm, sender, msg, helo="client.test"):
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30, source_address=(CLIENT, 0)) as s:
        s.ehlo(helo)
        s.mail(sender)
        s.rcpt(BOB)
        try:
            code, text = s.data(msg)
        except smtplib.SMTPDataError as e:
            code, text = e.smtp_code, e.smtp_error
        return code, text.decode()


def delivered(pm, case):
    def find():
        for path in messages(pm, BOB):
            data = path.read_bytes()
            if f"\r\nX-Case: {case}\r\n".encode() in data:
                return data
    return wait_for(find, 20, what=f"case {case} in the Maildir")


def our_results(data):
    """The results of our Authentication-Results: (authserv-id HOST), one string per folded
    line after the authserv-id; asserts there is exactly one such field."""
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    fields = re.split(r"\r\n(?![ \t])", head)
    ours = [f for f in fields if f.lower().startswith(f"authentication-results: {HOST};")]
    assert len(ours) == 1, fields
    return [line.strip().rstrip(";") for line in ours[0].split("\r\n")[1:]]


def test_dmarc_one_letter_domain_does_not_align(stack):
    pm = stack["pm"]
    code, text = send(pm, "a@y.de", message("oneletter", "a@x.de"))
    assert (code, text) == (550, "5.7.1 DMARC: the policy of x.de rejects this message")


def test_dmarc_long_display_name_keeps_the_domain(stack):
    pm = stack["pm"]
    words = [f"word{i:03d}" for i in range(500)]  # a display name of 4.5 kB, folded (lines of 1000 at most)
    frm = "\r\n ".join(" ".join(words[i:i + 10]) for i in range(0, 500, 10)) + " <boss@dm-rej.test>"
    code, text = send(pm, "a@spf-pass.test", message("longfrom", frm))
    assert (code, text) == (550, "5.7.1 DMARC: the policy of dm-rej.test rejects this message")


def test_dkim_big_body_passes(stack):
    """300 kB, signed by dkimpy; only DKIM can pass DMARC (p=reject): the body must be hashed whole."""
    pm = stack["pm"]
    body = b"".join(b"line %06d of a long body, signed whole\r\n" % i for i in range(7500))
    msg = message("bigbody", "a@dm-big.test", body=body)
    msg = dkim.sign(msg, b"rsa", b"dm-big.test", stack["key"],
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + msg
    code, text = send(pm, "a@spf-pass.test", msg)
    assert code == 250, text
    results = our_results(delivered(pm, "bigbody"))
    assert results == ["spf=pass smtp.mailfrom=a@spf-pass.test",
                       "dkim=pass header.d=dm-big.test header.s=rsa header.a=rsa-sha256",
                       "dmarc=pass (p=reject) header.from=dm-big.test"], results


def test_spf_three_void_lookups_are_permerror(stack):
    pm = stack["pm"]
    code, text = send(pm, "a@void.test", message("voids", "a@void.test"))
    assert code == 250, text
    assert our_results(delivered(pm, "voids"))[0] == "spf=permerror smtp.mailfrom=a@void.test"


def test_values_cannot_add_results_and_forged_ones_go(stack):
    pm = stack["pm"]
    forged = (b"authentication-results: MX.Example.TEST; dkim=pass header.d=bank.test\r\n"
              b"Authentication-Results: (x) mx.example.test;\r\n\tdmarc=pass header.from=bank.test\r\n"
              b"Authentication-Results: \"mx.example.test\"; spf=pass\r\n"
              b"Authentication-Results: other.example.net; dkim=pass header.d=bank.test\r\n")
    frm = '"x;dmarc=pass" <a@spf-pass.test>'
    code, text = send(pm, '"x;dkim=pass header.d=bank.test"@spf-pass.test', message("inject", frm, forged),
                      helo="helo.test")
    assert code == 250, text
    data = delivered(pm, "inject")
    results = our_results(data)
    assert [r.split("=", 1)[0] for r in results] == ["spf", "dkim", "dmarc"], results
    assert results[0] == 'spf=pass smtp.mailfrom="\\"x;dkim=pass header.d=bank.test\\"@spf-pass.test"', results
    assert b"bank.test; dkim=pass" not in data and b"MX.Example.TEST" not in data
    assert b"(x) mx.example.test" not in data and b'"mx.example.test"; spf' not in data
    assert b"Authentication-Results: other.example.net; dkim=pass header.d=bank.test\r\n" in data
    # the null sender: the HELO name is the SPF identity, and it is quoted too
    code, text = send(pm, "<>", message("injecthelo", "a@spf-pass.test"), helo="evil;dkim=pass.test")
    assert code == 250, text
    results = our_results(delivered(pm, "injecthelo"))
    assert results[0] == 'spf=none smtp.helo="evil;dkim=pass.test"', results
    assert [r.split("=", 1)[0] for r in results] == ["spf", "dkim", "dmarc"], results
    # a NUL in the header (what a reader sees after it is unknown) never reaches the checks
    code, _ = send(pm, "a@spf-pass.test", message("nul", "a@spf-pass.test\0, b@dm-rej.test"))
    assert code == 554


def test_temperror_never_refuses(stack):
    """spf_fail_action = "reject" here: an SPF temperror, and a DMARC record that times out
    (p=reject could be behind it), are recorded, never refused."""
    pm = stack["pm"]
    code, text = send(pm, "a@slow.test", message("spftemp", "a@spf-pass.test"))
    assert code == 250, text
    assert our_results(delivered(pm, "spftemp"))[0] == "spf=temperror smtp.mailfrom=a@slow.test"
    code, text = send(pm, "a@spf-pass.test", message("dmarctemp", "a@x.slow.test"))
    assert code == 250, text
    assert our_results(delivered(pm, "dmarctemp"))[-1] == "dmarc=temperror header.from=x.slow.test"


def test_no_sanitizer_report(stack):
    log = stack["pm"].log("smtpd")
    assert "event=authres" in log
    assert re.search(r"event=dnsbl client=127\.0\.0\.5 zone=- .*listed=no", log), "127.255.255.254 counted"
    for word in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "event=spf_library_error"):
        assert word not in log, log[log.index(word) - 200:log.index(word) + 2000]


class NetTracer(Tracer):
    SYSCALLS = "connect,sendto,sendmsg,write,open,openat"


@pytest.mark.skipif(not STRACE or os.geteuid() != 0, reason="needs strace and root (ptrace)")
def test_sandbox_never_uses_libc_dns(stack, tmp_path):
    pm = stack["pm"]
    tracer = NetTracer(tmp_path / "strace", descendants(pm.procs["smtpd"].pid))
    try:
        # names no earlier case asked (the sandbox caches answers): SPF, DKIM none, DMARC
        code, _ = send(pm, "a@trace.test", message("traced", "a@dm-trace.test"))
        assert code == 550  # p=reject, nothing aligned: it ran all three checks
    finally:
        tracer.stop()
    calls = tracer.calls()
    # the questions went to the resolver over the bus (the name is in the protobuf), so the
    # trace covered the process that verified
    assert any("dm-trace.test" in c.args for c in calls if c.name in ("sendto", "sendmsg", "write")), \
        "the trace did not see the verification's DNS"
    bad = [c for c in calls if "resolv.conf" in c.args or "nsswitch" in c.args or "htons(53)" in c.args
           or ":53]" in c.path]
    assert not bad, bad
