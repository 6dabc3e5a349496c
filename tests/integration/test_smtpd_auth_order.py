"""AUTH refusals keep the order they had before the command table (TLS configured, TLS
active, greeted with EHLO, not authenticated yet, no transaction open): greeted with HELO
inside a transaction, or with HELO after logging in, a client hears "send EHLO first"."""
import base64

import pytest

from smtpd_helpers import RawSMTP, add_user, enable_tls

ALICE, PASSWORD = "alice@example.test", "secret"
GOOD = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
EHLO_FIRST = (503, ["5.5.1 Error: send EHLO first"])


@pytest.fixture
def mx(pm):
    add_user(pm, ALICE, PASSWORD)
    enable_tls(pm, auth_fail_delay_ms=0)
    pm.start("queue", "smtpd")
    return pm


def tls_session(pm):
    c = RawSMTP(pm.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    c.starttls()
    return c


def test_auth_after_helo_inside_a_transaction_wants_ehlo_first(mx):
    c = tls_session(mx)
    assert c.cmd("HELO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<bob@remote.test>") == (250, ["2.1.0 Ok"])
    assert c.cmd(f"AUTH PLAIN {GOOD}") == EHLO_FIRST
    # Greeted with EHLO, the open transaction is what is in the way.
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<bob@remote.test>")[0] == 250
    assert c.cmd(f"AUTH PLAIN {GOOD}") == (503, ["5.5.1 Error: MAIL transaction in progress"])
    assert c.cmd("QUIT")[0] == 221
    c.close()


def test_auth_again_after_helo_wants_ehlo_first(mx):
    c = tls_session(mx)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd(f"AUTH PLAIN {GOOD}") == (235, ["2.7.0 Authentication successful"])
    assert c.cmd(f"AUTH PLAIN {GOOD}") == (503, ["5.5.1 Error: already authenticated"])
    assert c.cmd("HELO client.test")[0] == 250
    assert c.cmd(f"AUTH PLAIN {GOOD}") == EHLO_FIRST
    assert c.cmd("QUIT")[0] == 221
    c.close()
