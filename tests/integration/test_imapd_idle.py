"""IDLE (RFC 2177): a delivery through SMTP wakes an idling client within a second (inotify),
as do expunges and flag changes by another session; DONE ends it."""
import time

from conftest import wait_for
from imap_helpers import ALICE, idle_done, idle_start, idle_wait, imap, make_message, send  # noqa: F401


def test_idle_woken_by_smtp_delivery(imap):
    imap.start_mail()
    imap.deliver(make_message("warm-up"))          # the path is up and the mailbox exists
    c = imap.login(select="INBOX")
    tag = idle_start(c)
    t0 = time.monotonic()
    before = set(imap.files())
    send(imap.pm, [ALICE], make_message("wake up"))
    # the file's arrival is the start of the wait the client sees
    wait_for(lambda: set(imap.files()) - before, 10, interval=0.002, what="the delivery")
    arrived = time.monotonic()
    line = idle_wait(c, rb"^\* 2 EXISTS", timeout=5)
    latency = time.monotonic() - arrived
    print(f"IDLE wake-up {latency * 1000:.1f} ms after the file arrived, {(arrived - t0) * 1000:.1f} ms SMTP+queue")
    assert latency < 1.5, f"EXISTS {latency:.3f}s after the file arrived ({arrived - t0:.3f}s SMTP)"
    assert idle_done(c, tag).startswith(tag.encode() + b" OK")
    assert line == b"* 2 EXISTS"
    # the session goes on normally after DONE
    typ, data = c.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"wake up" in data[0][1]
    c.logout()


def test_idle_woken_by_file_written_into_new(imap):
    imap.put(make_message("one"))
    c = imap.login(select="INBOX")
    tag = idle_start(c)
    t0 = time.monotonic()
    imap.put(make_message("two"))
    idle_wait(c, rb"^\* 2 EXISTS", timeout=5)
    assert time.monotonic() - t0 < 1.5
    idle_done(c, tag)
    c.logout()


def test_idle_sees_expunge_and_flags_of_another_session(imap):
    for i in range(3):
        imap.put(make_message(f"x{i}"))
    other = imap.login(select="INBOX")
    c = imap.login(select="INBOX")
    tag = idle_start(c)
    other.store("1", "+FLAGS", r"(\Flagged)")
    line = idle_wait(c, rb"^\* 1 FETCH", timeout=5)
    assert b"\\Flagged" in line
    other.store("3", "+FLAGS", r"(\Deleted)")
    other.expunge()
    idle_wait(c, rb"^\* 3 EXPUNGE", timeout=5)
    assert idle_done(c, tag).startswith(tag.encode() + b" OK")
    typ, data = c.search(None, "ALL")
    assert data == [b"1 2"]
    c.logout()
    other.logout()


def test_idle_done_without_events_and_bad_continuation(imap):
    r = imap.raw(login=ALICE)
    r.cmd("SELECT INBOX")
    r.send(b"i1 IDLE\r\n")
    assert r.line().startswith(b"+")
    assert not r.readable(0.2)                      # nothing to say
    r.send(b"DONE\r\n")
    assert r.until("i1")[-1].startswith(b"i1 OK")
    r.send(b"i2 IDLE\r\n")
    assert r.line().startswith(b"+")
    r.send(b"NOT-DONE\r\n")                          # anything but DONE ends it with BAD
    assert r.until("i2")[-1].split()[1] in (b"BAD", b"NO")
    assert r.cmd("NOOP", tag="i3")[-1].startswith(b"i3 OK")


def test_idle_in_authenticated_state(imap):
    r = imap.raw(login=ALICE)                         # RFC 2177: allowed without a selection
    r.send(b"j1 IDLE\r\n")
    assert r.line().startswith(b"+")
    r.send(b"DONE\r\n")
    assert r.until("j1")[-1].startswith(b"j1 OK")


def test_many_idle_sessions_woken_by_one_delivery(imap):
    imap.start_mail()
    clients = [imap.login(select="INBOX") for _ in range(10)]
    tags = [idle_start(c) for c in clients]
    before = set(imap.files())
    send(imap.pm, [ALICE], make_message("everyone"))
    wait_for(lambda: set(imap.files()) - before, 10, interval=0.002, what="the delivery")
    arrived = time.monotonic()
    for c in clients:
        idle_wait(c, rb"^\* 1 EXISTS", timeout=5)
    assert time.monotonic() - arrived < 1.5
    for c, tag in zip(clients, tags):
        assert idle_done(c, tag).startswith(tag.encode() + b" OK")
        c.logout()


def test_idle_on_a_folder_woken_by_append_elsewhere(imap):
    c = imap.login(select="Sent")
    tag = idle_start(c)
    other = imap.login()
    t0 = time.monotonic()
    other.append("Sent", r"(\Seen)", None, make_message("sent copy"))
    idle_wait(c, rb"^\* 1 EXISTS", timeout=5)
    assert time.monotonic() - t0 < 1.5
    idle_done(c, tag)
    other.logout()
    c.logout()
