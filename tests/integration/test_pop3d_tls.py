"""pop3d TLS: STLS (RFC 2595) with pipelined input discarded, implicit TLS on pop3s,
TLS 1.2+, passwords only over TLS unless the client is on loopback, certificate reload."""
import poplib
import signal
import socket
import ssl
import subprocess

import pytest

from pop3_helpers import RawPOP3, add_user, client_tls_context, make_tls_pair, put_message

ALICE = "alice@example.test"
MSG = b"Subject: tls\r\n\r\nover tls\r\n"


def start(pm, **pop3d):
    add_user(pm, ALICE, "secret")
    put_message(pm, ALICE, "0000000000000001.0.mx.example.test", MSG)
    cert, key = make_tls_pair(pm.root)
    settings = {"auth_delay": 1}
    settings.update(pop3d)
    pm.configure(tls={"certificate": str(cert), "key": str(key)}, pop3d=settings)
    pm.start("pop3d")
    return pm


def test_stls_then_login(pm):
    start(pm)
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    assert "STLS" in p.capa()
    p.stls(context=client_tls_context())
    assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps
    p.user(ALICE)
    p.pass_("secret")
    assert b"\r\n".join(p.retr(1)[1]) + b"\r\n" == MSG
    p.quit()
    assert "event=tls " in pm.log("pop3d")


def test_input_pipelined_after_stls_is_discarded(pm):
    start(pm)
    c = RawPOP3(pm.port("pop3"))
    c.line()
    # STLS and a command in the same packet (CVE-2011-0411): the USER must not survive
    c.send(f"STLS\r\nUSER {ALICE}\r\n".encode())
    assert c.line() == b"+OK begin TLS negotiation"
    c.starttls()
    # if USER had been kept, PASS would log in; it must say "send USER first"
    assert c.cmd("PASS secret").startswith(b"-ERR")
    assert c.cmd("NOOP") == b"+OK"
    c.close()
    assert "event=stls_pipelined_dropped" in pm.log("pop3d")


def test_pop3s_implicit_tls(pm):
    start(pm)
    p = poplib.POP3_SSL("127.0.0.1", pm.port("pop3s"), context=client_tls_context(), timeout=15)
    assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto):
        p._shortcmd("STLS")
    p.user(ALICE)
    p.pass_("secret")
    assert p.stat() == (1, len(MSG))
    p.quit()


def test_tls_below_1_2_refused(pm):
    start(pm)
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{pm.port('pop3s')}", "-tls1_1", "-cipher",
         "DEFAULT:@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "Cipher is (NONE)" in out.stdout
    assert "protocol version" in out.stderr  # the server's alert, not a client-side refusal
    # the same tool with TLS 1.2 works, so the refusal above is the server's
    ok = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pm.port('pop3s')}", "-tls1_2", "-crlf",
                         "-ign_eof"],
                        input="QUIT\n", capture_output=True, text=True, timeout=30)
    assert "+OK" in ok.stdout


def test_plaintext_login_refused_off_loopback(pm):
    # plaintext_auth_loopback = false makes the loopback test client count as remote
    start(pm, plaintext_auth_loopback=False)
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    caps = p.capa()
    assert "USER" not in caps and "SASL" not in caps and "STLS" in caps
    with pytest.raises(poplib.error_proto, match="TLS"):
        p.user(ALICE)
    with pytest.raises(poplib.error_proto, match="TLS"):
        p._shortcmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")
    p.stls(context=client_tls_context())
    p.user(ALICE)
    p.pass_("secret")
    assert p.stat()[0] == 1
    p.quit()


def test_certificate_reload_on_sighup_keeps_sessions(pm):
    start(pm)
    old = ssl.get_server_certificate(("127.0.0.1", pm.port("pop3s")))
    p = poplib.POP3_SSL("127.0.0.1", pm.port("pop3s"), context=client_tls_context(), timeout=15)
    p.user(ALICE)
    p.pass_("secret")
    # a new pair in the same files, then SIGHUP
    (pm.root / "cert.pem").unlink()
    make_tls_pair(pm.root)
    pm.procs["pop3d"].send_signal(signal.SIGHUP)
    from conftest import wait_for
    wait_for(lambda: "event=tls_reloaded" in pm.log("pop3d"), timeout=10, what="reload")
    new = ssl.get_server_certificate(("127.0.0.1", pm.port("pop3s")))
    assert new != old
    assert p.stat() == (1, len(MSG))  # the old session goes on
    p.quit()


def test_pop3s_skipped_without_certificate(pm):
    pm.start("pop3d")
    assert "event=listen_skipped" in pm.log("pop3d")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", pm.port("pop3s")), timeout=3).close()
    p = poplib.POP3("127.0.0.1", pm.port("pop3"), timeout=15)
    assert "STLS" not in p.capa()
    p.quit()
