"""postmesh-imapd under hostile input: a table of what a client sends and the exact lines the
server must answer (then whether the session goes on or is closed), run on one server, each
row on a connection of its own; afterwards a normal session (login, select, fetch, logout)
must still be served and the service must still be running. Every failing row is reported
with what the server did answer, not only the first one.

Rows: overlong lines, literals too big (synchronizing, LITERAL+, APPEND), a literal cut short
by a disconnect, bad sequence sets, commands in the wrong state, STARTTLS with commands
pipelined after it (they must not run), too many bad commands, NUL bytes, deep nesting of
parentheses, bad tags."""
import re

import pytest

from conftest import wait_for
from imap_store import Wire, folder_dir, put, start_postmesh, tls_pair
from pop3_helpers import add_user

ALICE, PASSWORD = "alice@example.test", "hostile-secret"
MAX_LINE, MAX_COMMAND, MAX_MESSAGE = 8192, 65536, 1 << 20
LOGIN = f'LOGIN {ALICE} "{PASSWORD}"'


def rx(pattern):
    return re.compile(pattern.encode() if isinstance(pattern, str) else pattern)


# Steps of a row: ("send", bytes), ("line", exact bytes or rx(...) matched whole),
# ("closed",) the server closes, ("open",) the session goes on and nothing else was sent
# (a NOOP's OK is the very next line), ("tls",) the TLS handshake, ("hangup",) the client goes.
def send(data):
    return ("send", data if isinstance(data, bytes) else data.encode())


def line(expect):
    return ("line", expect if isinstance(expect, (bytes, re.Pattern)) else expect.encode())


OPEN, CLOSED, TLS, HANGUP = ("open",), ("closed",), ("tls",), ("hangup",)


# (name, state the row starts in: notauth / auth / selected, steps)
ROWS = [
    # ---- lines: one just under imapd.max_line runs; a longer one is refused whole (never cut
    # and run: there is no telling where the next command would start) and the session ends
    ("line just under max_line", "selected", [send(b"a1 SEARCH SUBJECT " + b"x" * (MAX_LINE - 18) + b"\r\n"),
                                              line("* SEARCH"), line("a1 OK Search completed."), OPEN]),
    ("overlong line", "notauth", [send(b"a1 LOGIN " + b"a" * (MAX_LINE + 100) + b" x\r\n"),
                                  line("* BYE Line too long"), CLOSED]),
    ("overlong line without end", "auth", [send(b"a1 SELECT " + b"Q" * (MAX_LINE * 3)),
                                           line("* BYE Line too long"), CLOSED]),
    ("empty line is ignored", "notauth", [send("\r\n"), OPEN]),
    # ---- literals: a synchronizing one too big is refused before the client sends it (no
    # "+"); a non-synchronizing one is already on its way: BAD, BYE, closed (RFC 7888 §4)
    ("huge synchronizing literal", "notauth", [send("a1 LOGIN {999999999}\r\n"),
                                               line("a1 NO [TOOBIG] Command too long"), OPEN]),
    ("huge APPEND literal", "auth", [send("a1 APPEND INBOX {999999999}\r\n"),
                                     line("a1 NO [TOOBIG] Message too big"), OPEN]),
    ("literal beyond 64 bits", "auth", [send("a1 APPEND INBOX {99999999999999999999}\r\n"),
                                        line("a1 BAD Invalid literal"), OPEN]),
    ("LITERAL+ over max_command", "notauth", [send(b"a1 LOGIN {%d+}\r\n" % (MAX_COMMAND + 10)
                                                   + b"u" * (MAX_COMMAND + 10) + b" pw\r\n"),
                                              line("a1 BAD [TOOBIG] Command too long"),
                                              line("* BYE Literal too big"), CLOSED]),
    ("LITERAL+ APPEND over max_message_size", "auth",
     [send(b"a1 APPEND INBOX {%d+}\r\n" % (MAX_MESSAGE + 1) + b"x" * (MAX_MESSAGE + 1) + b"\r\n"),
      line("a1 BAD [TOOBIG] Message too big"), line("* BYE Literal too big"), CLOSED]),
    ("synchronizing literal within limits", "notauth",
     [send(b"a1 LOGIN {%d}\r\n" % len(ALICE)), line("+ Ready for literal data"), send(ALICE.encode() + b' "wrong"\r\n'),
      line("a1 NO [AUTHENTICATIONFAILED] Authentication failed."), OPEN]),
    ("LOGIN before its literal in a refused state", "auth",
     [send(b"a1 LOGIN {5}\r\n"), line("a1 BAD Already logged in"), OPEN]),
    ("unterminated literal then disconnect", "notauth", [send("a1 LOGIN {100}\r\n"), line("+ Ready for literal data"),
                                                         send("only ten b"), HANGUP]),
    ("unterminated APPEND then disconnect", "auth", [send("a1 APPEND INBOX {5000}\r\n"),
                                                     line("+ Ready for literal data"),
                                                     send(b"Subject: cut\r\n\r\n" + b"y" * 1000), HANGUP]),
    ("literal length not a number", "notauth", [send("a1 LOGIN {12a}\r\n"), line("a1 BAD bad literal"), OPEN]),
    # ---- sequence sets (3 messages in the INBOX)
    ("seqset 0", "selected", [send("a1 FETCH 0 FLAGS\r\n"),
                              line("a1 BAD Invalid sequence set: numbers start at 1"), OPEN]),
    ("seqset 1:", "selected", [send("a1 FETCH 1: FLAGS\r\n"), line("a1 BAD Invalid sequence set: number expected"),
                               OPEN]),
    ("seqset *:* is the last message", "selected", [send("a1 FETCH *:* (FLAGS)\r\n"), line("* 3 FETCH (FLAGS ())"),
                                                     line("a1 OK Fetch completed."), OPEN]),
    ("seqset a", "selected", [send("a1 FETCH a FLAGS\r\n"), line("a1 BAD Invalid sequence set: number expected"),
                              OPEN]),
    ("seqset 4294967296", "selected", [send("a1 FETCH 4294967296 FLAGS\r\n"),
                                       line("a1 BAD Invalid sequence set: number too large"), OPEN]),
    ("seqset beyond the messages", "selected", [send("a1 FETCH 4 FLAGS\r\n"), line("a1 BAD Invalid messageset"),
                                                 OPEN]),
    ("UID set beyond the messages", "selected", [send("a1 UID FETCH 4294967295 FLAGS\r\n"),
                                                  line("a1 OK Fetch completed."), OPEN]),
    ("seqset 1,,2", "selected", [send("a1 FETCH 1,,2 FLAGS\r\n"), line("a1 BAD Invalid sequence set: number expected"),
                                 OPEN]),
    ("seqset 1:2:3", "selected", [send("a1 STORE 1:2:3 +FLAGS (\\Seen)\r\n"),
                                  line("a1 BAD Invalid sequence set: unexpected character"), OPEN]),
    ("seqset -1", "selected", [send("a1 SEARCH -1\r\n"), line("a1 BAD Unknown search key"), OPEN]),
    # ---- commands in the wrong state
    ("SELECT before LOGIN", "notauth", [send("a1 SELECT INBOX\r\n"), line("a1 BAD Log in first"), OPEN]),
    ("FETCH before LOGIN", "notauth", [send("a1 FETCH 1 FLAGS\r\n"), line("a1 BAD Log in first"), OPEN]),
    ("FETCH before SELECT", "auth", [send("a1 FETCH 1 FLAGS\r\n"), line("a1 BAD No mailbox selected"), OPEN]),
    ("EXPUNGE before SELECT", "auth", [send("a1 EXPUNGE\r\n"), line("a1 BAD No mailbox selected"), OPEN]),
    ("LOGIN twice", "auth", [send(f"a1 {LOGIN}\r\n"), line("a1 BAD Already logged in"), OPEN]),
    ("STARTTLS after LOGIN", "auth", [send("a1 STARTTLS\r\n"), line("a1 BAD Already logged in"), OPEN]),
    ("UID with a verb that has none", "auth", [send("a1 UID SELECT INBOX\r\n"), line("a1 BAD Unknown command"),
                                               OPEN]),
    ("DONE outside IDLE", "selected", [send("DONE\r\n"), line("* BAD Invalid tag"), OPEN]),
    # ---- STARTTLS injection: what was pipelined after it never runs
    ("STARTTLS with a pipelined LOGIN", "notauth",
     [send(f"a1 STARTTLS\r\na2 {LOGIN}\r\n"), line("a1 OK Begin TLS negotiation now"), TLS,
      send("a3 SELECT INBOX\r\n"), line("a3 BAD Log in first"), OPEN]),
    ("STARTTLS with a pipelined CAPABILITY", "notauth",
     [send("a1 STARTTLS\r\na2 CAPABILITY\r\n"), line("a1 OK Begin TLS negotiation now"), TLS, OPEN]),
    # ---- too many bad commands: the 20th closes the session
    ("too many bad commands", "notauth",
     [step for i in range(1, 20) for step in (send(f"b{i} BOGUS\r\n"), line(f"b{i} BAD Unknown command"))]
     + [send("b20 BOGUS\r\n"), line("b20 BAD Unknown command"), line("* BYE Too many invalid commands"), CLOSED]),
    # ---- NUL bytes (never valid outside a literal8)
    ("NUL in a command", "notauth", [send(b"a1 NO\0OP\r\n"), line("a1 BAD Invalid command"), OPEN]),
    ("NUL in a quoted string", "notauth", [send(b'a1 LOGIN "ali\0ce" "x"\r\n'),
                                           line("a1 BAD control character in quoted string"), OPEN]),
    ("NUL in a tag", "notauth", [send(b"a\0 NOOP\r\n"), line("* BAD Invalid tag"), OPEN]),
    # ---- nesting (within max_line)
    ("deep parentheses in FETCH", "selected", [send(b"a1 FETCH 1 " + b"(" * 3000 + b"FLAGS" + b")" * 3000 + b"\r\n"),
                                               line("a1 BAD lists nested too deep"), OPEN]),
    ("deep parentheses in SEARCH", "selected", [send(b"a1 SEARCH " + b"(" * 3000 + b"ALL" + b")" * 3000 + b"\r\n"),
                                                line("a1 BAD lists nested too deep"), OPEN]),
    ("unbalanced parentheses", "selected", [send("a1 FETCH 1 (FLAGS UID\r\n"), line("a1 BAD unterminated list"),
                                            OPEN]),
    # ---- tags and arguments
    ("tag only", "notauth", [send("a1\r\n"), line("* BAD Invalid tag"), OPEN]),
    ("tag too long", "notauth", [send(b"t" * 100 + b" NOOP\r\n"), line("* BAD Invalid tag"), OPEN]),
    ("tag with a bad character", "notauth", [send("a+b NOOP\r\n"), line("* BAD Invalid tag"), OPEN]),
    ("user name too long", "notauth", [send(b"a1 LOGIN " + b"u" * 300 + b" pw\r\n"),
                                       line("a1 BAD Invalid LOGIN arguments"), OPEN]),
]


def run_row(port, state, steps):
    """Runs one row; returns None or what went wrong (with what the server said)."""
    c = Wire(port)
    seen = [b"(greeting) " + c.greeting]
    try:
        if state in ("auth", "selected"):
            untagged, tagged = c.command(LOGIN, tag="L")
            assert tagged.startswith(b"OK"), tagged
        if state == "selected":
            untagged, tagged = c.command("SELECT INBOX", tag="S")
            assert tagged.startswith(b"OK"), tagged
        for step in steps:
            kind = step[0]
            if kind == "send":
                c.send(step[1])
            elif kind == "line":
                got = c.line(timeout=10)
                seen.append(got)
                want = step[1]
                if not (got == want if isinstance(want, bytes) else want.fullmatch(got)):
                    return f"expected {want!r}, got {got[:300]!r}"
            elif kind == "open":
                c.send(b"z NOOP\r\n")
                got = c.line(timeout=10)
                seen.append(got)
                if not got.startswith(b"z OK"):
                    return f"expected the session to go on (z OK), got {got[:300]!r}"
            elif kind == "closed":
                if not c.closed(10):
                    return "expected the server to close the connection"
                if c.buf:
                    return f"expected nothing more before the close, got {c.buf[:300]!r}"
            elif kind == "tls":
                c.buf = b""
                c.starttls()
            elif kind == "hangup":
                c.close()
        return None
    except (EOFError, OSError) as e:
        return f"{type(e).__name__} {str(e)[:200]} after {seen[-3:]!r}"
    finally:
        c.close()


@pytest.fixture
def hostile(pm):
    add_user(pm, ALICE, PASSWORD)
    mail = pm.state / "mail"
    for i in range(3):
        put(mail, ALICE, f"From: x@example.org\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode(), flags=[])
    cert, key = tls_pair(pm.root)
    return start_postmesh(pm, cert, key, max_line=MAX_LINE, max_command=MAX_COMMAND, max_message_size=MAX_MESSAGE,
                          timeout=30, max_connections_per_ip=200)


def test_hostile_table(pm, hostile):
    port = hostile.port("imap")
    failures = []
    for name, state, steps in ROWS:
        problem = run_row(port, state, steps)
        if problem:
            failures.append(f"{name}: {problem}")
        if pm.procs["imapd"].poll() is not None:
            failures.append(f"{name}: imapd exited with {pm.procs['imapd'].returncode}")
            break
    # the cut-short APPEND left nothing in the INBOX, and its temporary file went
    md = folder_dir(pm.state / "mail", ALICE)
    wait_for(lambda: not [f for f in (md / "tmp").iterdir()], 10, what="APPEND's temporary file removed")
    # the service still serves a normal session
    c = Wire(port)
    assert c.command(LOGIN)[1].startswith(b"OK")
    untagged, tagged = c.command("SELECT INBOX")
    assert tagged.startswith(b"OK") and b"* 3 EXISTS" in untagged, (untagged, tagged)
    untagged, tagged = c.command("FETCH 2 (BODY.PEEK[TEXT])")
    assert untagged == [b"* 2 FETCH (BODY[TEXT] {8}\r\nbody 1\r\n)"] and tagged.startswith(b"OK"), untagged
    untagged, tagged = c.command("LOGOUT")
    assert untagged[0].startswith(b"* BYE") and tagged.startswith(b"OK")
    assert pm.procs["imapd"].poll() is None
    assert not failures, f"{len(failures)} of {len(ROWS)} rows failed:\n" + "\n".join(failures) + \
        "\n-- imapd log (tail):\n" + pm.log("imapd")[-3000:]


def test_refusal_reaches_a_client_still_sending(pm, hostile):
    """An oversized LITERAL+ APPEND is refused and the session closed while the client's
    literal is still arriving. Read only after imapd has ended the session: a server that
    closes a socket with unread input sends a RST, and the RST destroys the BAD and the BYE
    before the client reads them (a client then sees "connection reset" and no reason).
    imapd half-closes and reads what is left (linger.h), so the refusal arrives whole."""
    port = hostile.port("imap")
    for _ in range(3):  # each time a fresh session
        c = Wire(port)
        try:
            assert c.command(LOGIN, tag="L")[1].startswith(b"OK")
            ended = pm.log("imapd").count("event=disconnect ")
            c.send(b"a1 APPEND INBOX {%d+}\r\n" % (MAX_MESSAGE * 4) + b"x" * (MAX_MESSAGE // 2))
            wait_for(lambda: pm.log("imapd").count("event=disconnect ") > ended, 10, what="imapd ends the session")
            assert c.line(timeout=10) == b"a1 BAD [TOOBIG] Message too big"
            assert c.line(timeout=10) == b"* BYE Literal too big"
            with pytest.raises(EOFError):
                c.line(timeout=10)
        finally:
            c.close()
