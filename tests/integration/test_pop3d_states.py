"""pop3d's command table over the wire: every verb in every state (AUTHORIZATION, after
USER, TRANSACTION, over TLS, without a TLS pair, off loopback) gets the exact first reply line
it got from the per-state switches before the table, CAPA lists what the session can still
use, and a refusal by the table counts as an error like any other."""
import pytest

from pop3_helpers import RawPOP3, add_user, client_tls_context, make_tls_pair, put_message

ALICE = "alice@example.test"
MSG1 = b"Subject: one\r\n\r\nfirst\r\n"
MSG2 = b"Subject: two\r\n\r\nsecond message\r\n"
OCTETS = len(MSG1) + len(MSG2)
BEFORE, AFTER = b"-ERR not allowed before login", b"-ERR not allowed after login"

# One command line per verb, with arguments that are right wherever the verb is allowed.
VERBS = {"USER": f"USER {ALICE}", "PASS": "PASS secret", "APOP": "APOP alice 0123456789abcdef", "AUTH": "AUTH",
         "STLS": "STLS", "STAT": "STAT", "LIST": "LIST", "RETR": "RETR 1", "DELE": "DELE 1", "RSET": "RSET",
         "TOP": "TOP 1 0", "UIDL": "UIDL", "NOOP": "NOOP", "CAPA": "CAPA", "QUIT": "QUIT"}
TRANSACTION_ONLY = ("STAT", "LIST", "RETR", "DELE", "RSET", "TOP", "UIDL")

AUTHORIZATION = {
    "USER": b"+OK send PASS", "PASS": b"-ERR send USER first", "APOP": b"-ERR APOP is not supported",
    "AUTH": b"+OK", "STLS": b"+OK begin TLS negotiation", "NOOP": b"+OK", "CAPA": b"+OK capability list follows",
    "QUIT": b"+OK bye", **{v: BEFORE for v in TRANSACTION_ONLY}}
AFTER_USER = dict(AUTHORIZATION, PASS=f"+OK 2 messages ({OCTETS} octets)".encode())
TRANSACTION = {
    **{v: AFTER for v in ("USER", "PASS", "APOP", "AUTH", "STLS")},
    "STAT": f"+OK 2 {OCTETS}".encode(), "LIST": f"+OK 2 messages ({OCTETS} octets)".encode(),
    "RETR": f"+OK {len(MSG1)} octets".encode(), "DELE": b"+OK message deleted",
    "RSET": f"+OK 2 messages ({OCTETS} octets)".encode(), "TOP": b"+OK top of message follows",
    "UIDL": b"+OK unique-id listing follows", "NOOP": b"+OK", "CAPA": b"+OK capability list follows",
    "QUIT": b"+OK bye (2 messages left)"}
SERVER_CAPA = {b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"IMPLEMENTATION Postmesh"}


def start(pm, tls=True, **pop3d):
    add_user(pm, ALICE, "secret")
    put_message(pm, ALICE, "0000000000000001.0.mx.example.test", MSG1)
    put_message(pm, ALICE, "0000000000000002.0.mx.example.test", MSG2)
    settings = {"auth_delay": 0, "max_connections_per_ip": 1000}
    settings.update(pop3d)
    if tls:
        cert, key = make_tls_pair(pm.root)
        pm.configure(tls={"certificate": str(cert), "key": str(key)}, pop3d=settings)
    else:
        pm.configure(pop3d=settings)
    pm.start("pop3d")
    return pm


def session(pm, state):
    """A new connection brought to state: "auth", "user", "trans", "tls" (pop3s), "stls"."""
    if state == "tls":
        c = RawPOP3(pm.port("pop3s"))
        c.sock = client_tls_context().wrap_socket(c.sock, server_hostname="mx.example.test")
    else:
        c = RawPOP3(pm.port("pop3"))
    assert c.line().startswith(b"+OK")
    if state == "stls":
        assert c.cmd("STLS") == b"+OK begin TLS negotiation"
        c.starttls()
    if state in ("user", "trans"):
        assert c.cmd(f"USER {ALICE}") == b"+OK send PASS"
    if state == "trans":
        assert c.cmd("PASS secret").startswith(b"+OK 2 messages")
    return c


def replies(pm, state):
    """Each verb's first reply line, every one on a fresh session (no QUIT: nothing is deleted)."""
    got = {}
    for verb, line in VERBS.items():
        c = session(pm, state)
        got[verb] = c.cmd(line)
        c.close()
    return got


def capa(pm, state):
    c = session(pm, state)
    assert c.cmd("CAPA") == b"+OK capability list follows"
    lines = set(c.multiline().split(b"\r\n")) - {b""}
    c.close()
    return lines


def test_every_verb_in_every_state(pm):
    start(pm)
    assert replies(pm, "auth") == AUTHORIZATION
    assert replies(pm, "user") == AFTER_USER
    assert replies(pm, "trans") == TRANSACTION
    over_tls = dict(AUTHORIZATION, STLS=b"-ERR TLS is already active")
    assert replies(pm, "tls") == over_tls
    assert replies(pm, "stls") == over_tls
    assert capa(pm, "auth") == {b"TOP", b"UIDL", b"USER", b"SASL PLAIN", b"STLS"} | SERVER_CAPA
    assert capa(pm, "user") == {b"TOP", b"UIDL", b"USER", b"SASL PLAIN", b"STLS"} | SERVER_CAPA
    assert capa(pm, "tls") == {b"TOP", b"UIDL", b"USER", b"SASL PLAIN"} | SERVER_CAPA
    assert capa(pm, "trans") == {b"TOP", b"UIDL"} | SERVER_CAPA


def test_without_a_tls_pair(pm):
    start(pm, tls=False)
    assert replies(pm, "auth") == dict(AUTHORIZATION, STLS=b"-ERR TLS is not available")
    assert capa(pm, "auth") == {b"TOP", b"UIDL", b"USER", b"SASL PLAIN"} | SERVER_CAPA


def test_off_loopback_without_tls(pm):
    # plaintext_auth_loopback = false: the loopback client counts as remote
    start(pm, plaintext_auth_loopback=False)
    assert replies(pm, "auth") == dict(AUTHORIZATION, USER=b"-ERR [AUTH] plaintext login requires TLS (use STLS)")
    c = session(pm, "auth")
    # AUTH's own rules: the mechanism first, then TLS; the list is empty in the clear
    assert c.cmd("AUTH CRAM-MD5") == b"-ERR unsupported authentication mechanism"
    assert c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=") == \
        b"-ERR [AUTH] authentication requires TLS (use STLS)"
    assert c.cmd("AUTH") == b"+OK"
    assert c.multiline() == b""
    c.close()
    assert capa(pm, "auth") == {b"TOP", b"UIDL", b"STLS"} | SERVER_CAPA
    assert capa(pm, "stls") == {b"TOP", b"UIDL", b"USER", b"SASL PLAIN"} | SERVER_CAPA


@pytest.mark.parametrize("state,line,reply", [("auth", "STAT", BEFORE), ("trans", f"USER {ALICE}", AFTER)])
def test_refusals_count_as_errors(pm, state, line, reply):
    start(pm)
    c = session(pm, state)
    for _ in range(10):  # POP3_MAX_ERRORS
        assert c.cmd(line) == reply
    assert c.line() == b"-ERR too many errors, closing"
    assert c.closed()
