"""smtpd TLS and AUTH (issue 5): STARTTLS and implicit TLS, AUTH only over TLS and required on
submission/smtps, wrong passwords delayed and locked out, sender ownership, STARTTLS
pipelining, certificate reload on SIGHUP. Clients: smtplib, swaks, openssl s_client."""
import re
import signal
import smtplib
import ssl
import subprocess
import time

import pytest

from smtpd_helpers import (RawSMTP, add_alias, add_user, client_context, enable_tls, make_cert, queue_ids,
                           queue_show, status, wait_log)

MSG = "From: alice@example.test\r\nTo: x@remote.test\r\nSubject: tls\r\n\r\nhello\r\n"


@pytest.fixture
def mx(pm):
    add_user(pm, "alice@example.test", "secret")
    add_user(pm, "bob@example.test", "other")
    add_alias(pm, "sales@example.test", "alice@example.test", "carol@remote.test")
    enable_tls(pm, auth_fail_delay_ms=600)
    pm.start("queue", "smtpd")
    return pm


def queued(text):
    return re.search(r"queued as ([0-9A-F]{16})", text).group(1)


def test_starttls_login_and_relay(mx):
    with smtplib.SMTP("127.0.0.1", mx.port("submission"), timeout=30) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls") and not s.has_extn("auth")   # AUTH is never offered in the clear
        s.starttls(context=client_context())
        s.ehlo("client.test")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert not s.has_extn("starttls")
        assert s.login("alice@example.test", "secret") == (235, b"2.7.0 Authentication successful")
        s.mail("alice@example.test")
        assert s.rcpt("x@remote.test")[0] == 250                 # authenticated users may relay
        code, text = s.data(MSG)
        assert code == 250
    shown = queue_show(mx, queued(text.decode()))
    assert re.search(r"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)\s+by mx\.example\.test \(Postmesh\) "
                     r"with ESMTPSA", shown), shown
    log = mx.log("smtpd")
    assert "event=auth client=127.0.0.1:" in log and "result=ok user=alice@example.test" in log
    assert re.search(r"event=tls client=\S+ version=TLSv1\.[23] cipher=", log)


def test_auth_requires_tls(mx):
    c = RawSMTP(mx.port("smtp"))
    c.cmd("EHLO client.test")
    assert status(c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")) == (530, "5.7.0")
    c = RawSMTP(mx.port("submission"))
    ehlo = c.cmd("EHLO client.test")
    assert "STARTTLS" in ehlo[1] and not any(l.startswith("AUTH") for l in ehlo[1])
    assert status(c.cmd("AUTH LOGIN")) == (530, "5.7.0")
    # Submission without AUTH: MAIL refused.
    assert status(c.cmd("MAIL FROM:<alice@example.test>")) == (530, "5.7.0")
    c.starttls()
    c.cmd("EHLO client.test")
    assert status(c.cmd("MAIL FROM:<alice@example.test>")) == (530, "5.7.0")
    assert queue_ids(mx) == []


def test_wrong_password_delayed_then_locked_out(pm):
    add_user(pm, "alice@example.test", "secret")
    enable_tls(pm, auth_fail_delay_ms=500, auth_failures=3, auth_lockout=60)
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("submission"))
    c.starttls()
    c.cmd("EHLO client.test")
    # alice/wrong, nobody/secret (unknown user: same answer), alice/wrong.
    for b64 in ("AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==", "AG5vYm9keUBleGFtcGxlLnRlc3QAc2VjcmV0",
                "AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="):
        t0 = time.monotonic()
        assert status(c.cmd("AUTH PLAIN " + b64)) == (535, "5.7.8")
        assert time.monotonic() - t0 >= 0.45                      # every failure is answered late
    # Locked out: even the right password is not tried, from any session of this IP.
    d = RawSMTP(pm.port("submission"))
    d.starttls()
    d.cmd("EHLO client.test")
    assert status(d.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")) == (454, "4.7.0")
    assert "lockout=start" in pm.log("smtpd")
    assert status(c.cmd("AUTH LOGIN")) == (454, "4.7.0")


def test_auth_login_and_sender_ownership(mx):
    c = RawSMTP(mx.port("submission"))
    c.starttls()
    c.cmd("EHLO client.test")
    assert c.cmd("AUTH LOGIN") == (334, ["VXNlcm5hbWU6"])
    assert c.cmd("YWxpY2VAZXhhbXBsZS50ZXN0") == (334, ["UGFzc3dvcmQ6"])
    assert status(c.cmd("c2VjcmV0")) == (235, "2.7.0")
    assert status(c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")) == (503, "5.5.1")
    # Another user's address, a foreign one, or <>: refused. Her own or her alias: accepted.
    for sender in ("bob@example.test", "someone@remote.test", ""):
        assert status(c.cmd(f"MAIL FROM:<{sender}>")) == (553, "5.7.1"), sender
    assert status(c.cmd("MAIL FROM:<Alice@Example.test>")) == (250, "2.1.0")
    c.cmd("RSET")
    assert status(c.cmd("MAIL FROM:<sales@example.test>")) == (250, "2.1.0")
    assert status(c.cmd("RCPT TO:<x@remote.test>")) == (250, "2.1.5")


def test_starttls_discards_pipelined_commands(mx):
    c = RawSMTP(mx.port("smtp"))
    c.cmd("EHLO client.test")
    # Everything after STARTTLS in the same packet came in the clear and must be dropped.
    c.send("STARTTLS\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert status(c.reply()) == (220, "2.0.0")
    c.sock = client_context().wrap_socket(c.sock)
    c.buf = b""
    ehlo = c.cmd("EHLO client.test")                   # the first reply over TLS is EHLO's
    assert ehlo[0] == 250 and ehlo[1][0] == "mx.example.test"
    assert status(c.cmd("RCPT TO:<alice@example.test>")) == (503, "5.5.1")   # MAIL never ran
    assert status(c.cmd("STARTTLS")) == (503, "5.5.1")
    wait_log(mx, "smtpd", "event=starttls_discard")


def test_smtps_implicit_tls(mx):
    with smtplib.SMTP_SSL("127.0.0.1", mx.port("smtps"), timeout=30, context=client_context()) as s:
        s.ehlo("client.test")
        assert not s.has_extn("starttls") and s.has_extn("auth")
        s.login("alice@example.test", "secret")
        assert s.sendmail("alice@example.test", ["x@remote.test"], MSG) == {}
    c = RawSMTP(mx.port("smtps"), tls=True)
    c.cmd("EHLO client.test")
    assert status(c.cmd("MAIL FROM:<alice@example.test>")) == (530, "5.7.0")
    assert len(queue_ids(mx)) == 1


def test_swaks_tls_and_tlsc(mx):
    base = ["swaks", "--server", "127.0.0.1", "--from", "alice@example.test", "--to", "x@remote.test",
            "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "secret",
            "--helo", "client.test", "--timeout", "30"]
    r = subprocess.run(base + ["--port", str(mx.port("submission")), "--tls"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "queued as" in r.stdout
    r = subprocess.run(base + ["--port", str(mx.port("smtps")), "--tlsc"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # A wrong password through swaks: 535, exit status non-zero, nothing queued.
    bad = [a if a != "secret" else "nope" for a in base]
    r = subprocess.run(bad + ["--port", str(mx.port("smtps")), "--tlsc"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "535 5.7.8" in r.stdout
    assert len(queue_ids(mx)) == 2


def s_client(port, *args, starttls=True):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"]
    if starttls:
        cmd += ["-starttls", "smtp"]
    return subprocess.run(cmd + list(args), input="QUIT\r\n", capture_output=True, text=True, timeout=60)


def test_openssl_s_client_versions(mx):
    r = s_client(mx.port("smtp"), "-tls1_2")
    assert "Protocol version: TLSv1.2" in r.stderr, r.stderr
    r = s_client(mx.port("smtps"), "-tls1_3", starttls=False)
    assert "Protocol version: TLSv1.3" in r.stderr, r.stderr
    # TLS 1.1 and older are refused (OpenSSL's client needs its security level lowered to try).
    r = s_client(mx.port("smtps"), "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", starttls=False)
    assert "Protocol version" not in r.stderr and r.returncode != 0


def peer_cert(port):
    raw = RawSMTP(port, tls=True)
    der = raw.sock.getpeercert(binary_form=True)
    return raw, der


def test_certificate_reload_on_sighup(mx):
    old_session, old_der = peer_cert(mx.port("smtps"))
    cert, key = make_cert(mx.root, cn="new.example.test", name="new")
    # Replace the files in place, then SIGHUP.
    (mx.root / "tls-cert.pem").write_bytes(open(cert, "rb").read())
    (mx.root / "tls-key.pem").write_bytes(open(key, "rb").read())
    mx.procs["smtpd"].send_signal(signal.SIGHUP)
    wait_log(mx, "smtpd", "event=tls_reload result=ok")
    new_session, new_der = peer_cert(mx.port("smtps"))
    assert new_der != old_der
    assert ssl.DER_cert_to_PEM_cert(new_der).strip() == open(cert).read().strip()
    # The session opened before the reload still works.
    assert old_session.cmd("EHLO client.test")[0] == 250
    assert status(old_session.cmd("NOOP")) == (250, "2.0.0")
    # A broken file on reload keeps the old certificate.
    (mx.root / "tls-key.pem").write_text("garbage\n")
    mx.procs["smtpd"].send_signal(signal.SIGHUP)
    wait_log(mx, "smtpd", "event=tls_reload result=fail")
    third, der3 = peer_cert(mx.port("smtps"))
    assert der3 == new_der
