"""smtpd's command table seen from a client (services/smtpd/command_table.c; the unit test
test_smtpd_commands.c walks every combination): each verb's state rules on the wire with
their exact replies, HELP and EHLO as the table makes them (EHLO offers a command exactly
when the client may use it), EXPN counting as an error, BDAT's chunk read even when refused, the
refusals that are logged, and ETRN's own checks (who may, where in the dialogue, which
nodes) that need no queue (test_etrn.py has the rest of ETRN)."""
import pytest

from conftest import wait_for
from smtpd_helpers import RawSMTP, enable_tls, wait_log

TRUSTED, UNTRUSTED = "127.0.0.2", "127.0.0.1"
HELP = "2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH ETRN HELP"


@pytest.fixture
def mx(pm):
    enable_tls(pm, max_errors=50)   # the tests below make many errors in one session
    pm.configure(trusted_networks=[f"{TRUSTED}/32"])
    pm.start("queue", "smtpd")
    return pm


def ehlo(c):
    code, lines = c.cmd("EHLO client.test")
    assert code == 250, lines
    return lines[1:]


def test_every_verb_refused_out_of_place(mx):
    c = RawSMTP(mx.port("smtp"), source=UNTRUSTED)
    # Before HELO: MAIL needs a greeting, RCPT and DATA a transaction; arguments first.
    assert c.cmd("MAIL FROM:<a@remote.test>") == (503, ["5.5.1 Error: send HELO/EHLO first"])
    assert c.cmd("RCPT TO:<postmaster@example.test>") == (503, ["5.5.1 Error: need MAIL command"])
    assert c.cmd("DATA") == (503, ["5.5.1 Error: need MAIL command"])
    assert c.cmd("DATA now") == (501, ["5.5.4 Syntax: DATA"])
    assert c.cmd("RSET please") == (501, ["5.5.4 Syntax: RSET"])
    assert c.cmd("VRFY") == (501, ["5.5.4 Syntax: VRFY address"])
    assert c.cmd("HELO") == (501, ["5.5.4 Syntax: HELO hostname"])
    assert c.cmd("EHLO") == (501, ["5.5.4 Syntax: EHLO hostname"])
    assert c.cmd("STARTTLS now") == (501, ["5.5.4 Syntax: STARTTLS"])
    assert c.cmd("AUTH PLAIN AGFAYgBj") == (530, ["5.7.0 Must issue a STARTTLS command first"])
    assert c.cmd("ETRN example.net") == (502, ["5.7.0 Error: ETRN not available"])
    # Allowed anywhere.
    assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert c.cmd("VRFY bob")[0] == 252
    assert c.cmd("HELP") == (214, [HELP])
    assert c.cmd("EXPN staff") == (502, ["5.5.1 Error: EXPN not supported"])
    # BDAT outside a transaction: its chunk is read (test_smtpd_bdat.py), then refused.
    c.send("BDAT 6 LAST\r\nNOOP\r\n")
    assert c.reply() == (503, ["5.5.1 Error: need MAIL command"])
    # EHLO: STARTTLS offered (configured, not active), AUTH not in the clear, no ETRN for
    # this client, HELP last.
    assert ehlo(c) == ["PIPELINING", "SIZE 36700160", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN",
                       "CHUNKING", "STARTTLS", "HELP"]
    # A greeting refused keeps the one before, and says nothing more than its 501.
    for verb in ("EHLO", "HELO"):
        assert c.cmd(f"{verb} {'x' * 300}") == (501, [f"5.5.4 Syntax: {verb} hostname"])
        assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert c.cmd("AUTH PLAIN AGFAYgBj") == (530, ["5.7.0 Must issue a STARTTLS command first"])
    assert c.cmd("MAIL FROM:<a@remote.test>") == (250, ["2.1.0 Ok"])
    assert c.cmd("MAIL FROM:<a@remote.test>") == (503, ["5.5.1 Error: nested MAIL command"])
    assert c.cmd("RSET") == (250, ["2.0.0 Ok"])
    c.starttls()
    # RFC 3207: the greeting is forgotten; AUTH needs EHLO (not HELO), STARTTLS is done.
    assert c.cmd("AUTH PLAIN AGFAYgBj") == (503, ["5.5.1 Error: send EHLO first"])
    assert c.cmd("HELO client.test")[0] == 250
    assert c.cmd("AUTH PLAIN AGFAYgBj") == (503, ["5.5.1 Error: send EHLO first"])
    # Inside TLS: REQUIRETLS (RFC 8689) and AUTH, no STARTTLS.
    assert ehlo(c) == ["PIPELINING", "SIZE 36700160", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN",
                       "CHUNKING", "REQUIRETLS", "AUTH PLAIN LOGIN", "HELP"]
    assert c.cmd("STARTTLS") == (503, ["5.5.1 Error: TLS already active"])
    assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd("AUTH PLAIN AGFAYgBj") == (503, ["5.5.1 Error: MAIL transaction in progress"])
    assert c.cmd("QUIT") == (221, ["2.0.0 Bye"])
    c.close()
    # AUTH's refusals are logged (all five), the sequencing ones of others are not.
    wait_for(lambda: "event=disconnect" in mx.log("smtpd"), 10, what="the session's end")
    log = mx.log("smtpd")
    assert log.count("stage=AUTH reply=") == 5, log
    assert "stage=MAIL" not in log and "stage=RCPT" not in log and "stage=DATA" not in log


def test_submission_needs_auth_for_mail_and_logs_it(mx):
    c = RawSMTP(mx.port("submission"), source=UNTRUSTED)
    assert c.cmd("MAIL FROM:<a@remote.test>") == (503, ["5.5.1 Error: send HELO/EHLO first"])
    ehlo(c)
    assert c.cmd("MAIL FROM:<a@remote.test>") == (530, ["5.7.0 Authentication required"])
    c.close()
    wait_log(mx, "smtpd", 'stage=MAIL address="" reply="530 5.7.0 Authentication required"')


def test_a_message_sent_before_354_never_runs_as_commands(mx):
    """DATA refused, whether by the table (no transaction) or by its handler (no valid
    recipient), with the message already behind it: 421 and the end, not its lines run."""
    for setup, code in (([], 503), (["MAIL FROM:<a@remote.test>", "RCPT TO:<nobody@example.test>"], 554)):
        c = RawSMTP(mx.port("smtp"), source=UNTRUSTED)
        ehlo(c)
        for line in setup:
            c.cmd(line)
        c.send("DATA\r\nRSET\r\nMAIL FROM:<evil@remote.test>\r\n.\r\n")
        assert c.reply()[0] == code
        assert c.reply() == (421, ["4.5.0 mx.example.test Error: SMTP protocol synchronization"])
        assert c.closed_by_server()
    assert mx.log("smtpd").count("reason=pipelining_after_refused_data") == 2


def test_expn_counts_as_an_error(pm):
    pm.configure(smtpd={"max_errors": 2})
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    assert c.cmd("EXPN a")[0] == 502
    assert c.cmd("NOOP")[0] == 250      # a command that is not an error does not count
    assert c.cmd("EXPN b")[0] == 502
    code, lines = c.cmd("EXPN c")        # the third error: its reply, then 421 and goodbye
    assert code == 502
    assert c.reply() == (421, ["4.7.0 mx.example.test Error: too many errors"])
    assert c.closed_by_server()


def test_without_a_certificate_starttls_and_auth_are_not_there(pm):
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    assert "STARTTLS" not in ehlo(c)
    assert c.cmd("STARTTLS") == (502, ["5.5.1 Error: STARTTLS not available"])
    assert c.cmd("AUTH PLAIN AGFAYgBj") == (503, ["5.5.1 Error: authentication not enabled"])
    assert c.cmd("HELP") == (214, [HELP])   # HELP names the commands, available or not
    c.close()


def test_etrn_checks_before_the_queue(mx):
    c = RawSMTP(mx.port("smtp"), source=TRUSTED)
    assert c.cmd("ETRN example.net") == (503, ["5.5.1 Error: send HELO/EHLO first"])
    assert ehlo(c)[-2:] == ["ETRN", "HELP"]   # offered to a trusted client
    assert c.cmd("ETRN") == (501, ["5.5.4 Syntax: ETRN domain"])
    for bad in ("exa mple.net", "@", "-bad-.net", "a..b", "[127.0.0.1]"):
        assert c.cmd(f"ETRN {bad}") == (501, ["5.5.4 Syntax: ETRN domain"]), bad
    assert c.cmd("ETRN #outbound") == (458, ["4.5.4 Unable to queue messages: queue names (#) are not supported"])
    # Our own domain's mail is delivered here, not waiting for anybody.
    assert c.cmd("ETRN example.test") == (459, ["4.7.1 Node example.test not allowed: mail for it is delivered here"])
    assert c.cmd("ETRN @EXAMPLE.test") == (459, ["4.7.1 Node @EXAMPLE.test not allowed: mail for it is delivered here"])
    assert c.cmd("MAIL FROM:<a@remote.test>")[0] == 250
    assert c.cmd("ETRN example.net") == (503, ["5.5.1 Error: MAIL transaction in progress"])
    c.close()
    # The refusal of who may is logged.
    c = RawSMTP(mx.port("smtp"), source=UNTRUSTED)
    ehlo(c)
    assert c.cmd("ETRN example.net") == (502, ["5.7.0 Error: ETRN not available"])
    c.close()
    wait_log(mx, "smtpd", 'stage=ETRN reply="502 5.7.0 Error: ETRN not available"')


def test_long_lines_only_for_auth(mx):
    c = RawSMTP(mx.port("smtp"))
    assert c.cmd("NOOP " + "x" * 600) == (500, ["5.5.2 Error: line too long"])
    ehlo(c)
    c.starttls()
    ehlo(c)
    # 600 octets of AUTH reach AUTH (which cannot decode them), not the length check.
    assert c.cmd("AUTH PLAIN " + "x" * 600) == (501, ["5.5.2 Error: cannot decode response"])
    c.close()
