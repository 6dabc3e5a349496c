"""Log injection: values a peer controls (envelope addresses, EHLO name, AUTH user name, the
replies they cause) must never read as keys of a log line. The reported attack:
`MAIL FROM:<"x id=0000000000000000 event=delivered to=ceo@example.test"@evil.test>` gave a
queue line that `grep id=0000000000000000` took for a delivery.

Every line of every service's log is parsed as logfmt (key=value, values bare or in double
quotes with \\" \\\\ \\xHH escapes); no line may carry the forged id, a second event, or the
forged to=, and a plain `grep " id=0000000000000000"` over all logs finds nothing. The same
for `postmesh queue list/show`, which print the stored addresses."""
import base64
import re
import smtplib

import pytest

from conftest import BIN, wait_for
from smtpd_helpers import RawSMTP, add_user, enable_tls

pytestmark = pytest.mark.skipif(
    not all((BIN / f"postmesh-{s}").exists() for s in ("queue", "smtpd", "delivery", "bouncer")),
    reason="needs postmesh-queue, -smtpd, -delivery and -bouncer")

FAKE_ID = "0000000000000000"
FORGED = f"x id={FAKE_ID} event=delivered to=ceo@example.test"
EVIL_SENDER = f'"{FORGED}"@evil.test'
ALICE = "alice@example.test"
SERVICES = ("queue", "delivery", "bouncer", "smtpd")

PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')


def unquote(v):
    if not v.startswith('"'):
        return v
    out, i, body = [], 0, v[1:-1]
    while i < len(body):
        if body[i] == "\\" and body[i + 1] == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def logfmt(line):
    """(pairs, stray): the key/value pairs of a line, and the text that is neither."""
    pairs, stray, pos = [], [], 0
    while pos < len(line):
        if line[pos] == " ":
            pos += 1
            continue
        m = PAIR.match(line, pos)
        if m:
            pairs.append((m.group(1), unquote(m.group(2))))
            pos = m.end()
        else:
            end = line.find(" ", pos)
            end = len(line) if end < 0 else end
            stray.append(line[pos:end])
            pos = end
    return pairs, stray


def forged_lines(text):
    """Lines where peer text reads as structure: the fake id as a key, a second event=, the
    forged to=, or tokens that are not key=value."""
    bad = []
    for line in text.splitlines():
        if not line.startswith("ts="):
            continue  # not one of ours (a library's message on stderr)
        pairs, stray = logfmt(line)
        keys = [k for k, _ in pairs]
        if (("id", FAKE_ID) in pairs or keys.count("event") > 1 or ("to", "ceo@example.test") in pairs
                or stray or f" id={FAKE_ID}" in line or "event=delivered to=ceo" in line):
            bad.append(line)
    return bad


@pytest.fixture
def attacked(pm):
    """A message from the forged sender to alice (delivered), to an alias loop (fails, so
    the bouncer writes a DSN to the forged sender) and to a remote address (stays queued:
    no mta runs), plus the same text as EHLO name, as an unknown recipient and as an AUTH
    user name."""
    add_user(pm, ALICE, "secret")
    (pm.root / "aliases").write_text("loop@example.test: loop2@example.test\nloop2@example.test: loop@example.test\n")
    enable_tls(pm)
    pm.configure(trusted_networks=["127.0.0.0/8"])
    pm.start(*SERVICES, timeout=20)
    c = RawSMTP(pm.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd(f"MAIL FROM:<{EVIL_SENDER}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{ALICE}>")[0] == 250
    assert c.cmd("RCPT TO:<loop@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<bob@remote.test>")[0] == 250
    assert c.cmd(f'RCPT TO:<"y id={FAKE_ID} event=delivered"@example.test>')[0] == 550
    assert c.cmd("DATA")[0] == 354
    code, lines = c.cmd(b"Subject: hello\r\n\r\nbody\r\n.")
    assert code == 250, lines
    qid = lines[-1].rsplit(" ", 1)[-1]
    c.cmd("QUIT")
    c.close()
    # The same text where smtpd logs other peer values.
    c = RawSMTP(pm.port("smtp"))
    c.cmd(f"EHLO {FORGED}")
    c.cmd(f"HELO {FORGED}")
    c.close()
    c = RawSMTP(pm.port("submission"))
    c.cmd("EHLO client.test")
    c.starttls()
    c.cmd("EHLO client.test")
    c.cmd("AUTH PLAIN " + base64.b64encode(f"\0{FORGED}\0wrong".encode()).decode())
    c.close()
    # Delivered to alice; the loop failed and the bouncer's DSN to the forged sender is queued.
    wait_for(lambda: f"event=delivered id={qid}" in pm.log("delivery"), 20, what="delivery to alice")
    wait_for(lambda: "event=received" in pm.log("queue") and "dsn_for=" in pm.log("queue"), 20,
             what="the DSN for the loop")
    wait_for(lambda: "event=auth" in pm.log("smtpd") and "result=fail" in pm.log("smtpd"), 20,
             what="the failed AUTH")
    return pm, qid


# The lines written by the code that escapes already (queue intake, smtpd's MAIL/RCPT
# refusals): they must be clean now, whatever the rest of the log still does.
OWN_EVENTS = ("event=received ", "event=alias_error ", "event=reject ")


def test_intake_lines_have_no_forged_keys(attacked):
    pm, qid = attacked
    lines = [l for svc in ("queue", "smtpd") for l in pm.log(svc).splitlines()
             if any(e in l for e in OWN_EVENTS) and ("stage=" not in l or re.search(r"stage=(MAIL|RCPT) ", l))]
    assert any(f"event=received id={qid} from=" in l for l in lines)
    assert any("event=reject" in l and "stage=RCPT" in l for l in lines)
    assert forged_lines("\n".join(lines)) == []


def test_cli_prints_the_forged_sender_escaped(attacked):
    pm, qid = attacked
    wait_for(lambda: any(r["id"] == qid for r in pm.queue_list()), 10, what="the message in the queue")
    listing = pm.cli("queue", "list").stdout
    show = pm.cli("queue", "show", qid).stdout
    for text in (listing, show):
        assert FAKE_ID not in text.replace(qid, "") or f"id\\x3d{FAKE_ID}" in text
        assert f"id={FAKE_ID}" not in text
        assert "event=delivered" not in text
    assert f'sender: "<\\"x id\\x3d{FAKE_ID} event\\x3ddelivered to\\x3dceo@example.test\\"@evil.test>"' in show
    row = next(line for line in listing.splitlines() if line.startswith(qid))
    assert len(row.split(" ")) == 6, row  # the sender is one column
    assert row.split(" ")[3].startswith('"\\"x\\x20id\\x3d')


def test_no_log_line_of_any_service_has_forged_keys(attacked):
    pm, qid = attacked
    combined = "\n".join(pm.log(svc) for svc in SERVICES)
    assert f"id={qid}" in combined
    assert f" id={FAKE_ID}" not in combined  # what an operator's grep would find
    assert forged_lines(combined) == []
