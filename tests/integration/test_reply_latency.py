"""Replies leave whole and at once, seen from real clients. smtplib's connect + EHLO + QUIT
took 44 ms against Postfix's 0.4 ms: the multi-line EHLO reply left a line per write and its
tail waited behind Nagle for the client's delayed ACK (~40 ms). A client that pipelines
(MAIL, RCPT and DATA in one write) paid the same for every reply after the first. The
threshold is far below that stall and far above what the machine needs (about 1 ms)."""
import poplib
import smtplib
import socket
import statistics
import time

from smtpd_helpers import RawSMTP

STALL_MS = 20  # the stall is ~40 ms; a whole reply takes about 1 ms here


def median_ms(fn, n=15):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def test_ehlo_reply_leaves_whole(pm):
    pm.start("queue", "smtpd")
    port = pm.port("smtp")

    def session():
        s = smtplib.SMTP("127.0.0.1", port, timeout=10)
        s.ehlo("client.test")
        s.quit()
    session()  # warm up
    ms = median_ms(session)
    assert ms < STALL_MS, f"connect + EHLO + QUIT took {ms:.1f} ms (median)"


def test_pipelined_replies_do_not_wait(pm):
    pm.add_user("alice@example.test")
    pm.start("queue", "smtpd")
    c = RawSMTP(pm.port("smtp"))
    assert c.cmd("EHLO client.test")[0] == 250

    def pipelined():
        c.send(b"MAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRSET\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    pipelined()
    ms = median_ms(pipelined)
    c.close()
    assert ms < STALL_MS, f"three pipelined replies took {ms:.1f} ms (median)"


def test_pop3_multiline_response_leaves_whole(pm):
    pm.start("pop3d")
    port = pm.port("pop3")

    def session():
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.capa()
        p.quit()
    session()
    ms = median_ms(session)
    assert ms < STALL_MS, f"connect + CAPA + QUIT took {ms:.1f} ms (median)"
