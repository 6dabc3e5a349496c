"""DNS lists at connect (services/smtpd/dnsbl.c): a real smtpd asking a real resolver, which
asks a dnsmasq on loopback holding the lists. Clients connect from 127.0.0.x (every loopback
address is ours), so the reversed address names the list entry: 127.0.0.2 is
2.0.0.127.bl.test. Two installations share the dnsmasq: one with quick lists, one with a list
whose server never answers (slow.test)."""
import re
import socket
import time

import pytest

from conftest import Postmesh, free_udp_port, traversable, wait_for
from remote_peers import Dnsmasq

BL_REASON = "Listed by bl.test: see https://bl.test/lookup?ip=127.0.0.2"
LISTS = [
    # 127.0.0.2: on bl.test (weight 2, at the threshold), with a TXT reason
    "--host-record=2.0.0.127.bl.test,127.0.0.2", f"--txt-record=2.0.0.127.bl.test,{BL_REASON}",
    # 127.0.0.5: on bl.test, but also on the allowlist wl.test (-5)
    "--host-record=5.0.0.127.bl.test,127.0.0.2", "--host-record=5.0.0.127.wl.test,127.0.10.3",
    # 127.0.0.6: only on two.test (weight 1, below the threshold of 2)
    "--host-record=6.0.0.127.two.test,127.0.0.2",
    # 127.0.0.7: on two.test and on match.test with the answer it counts (1 + 1 = 2)
    "--host-record=7.0.0.127.two.test,127.0.0.2", "--host-record=7.0.0.127.match.test,127.0.0.3",
    "--txt-record=7.0.0.127.two.test,two,says no",
    # 127.0.0.8: on two.test, and on match.test with an answer it does not count
    "--host-record=8.0.0.127.two.test,127.0.0.2", "--host-record=8.0.0.127.match.test,127.0.0.4",
    # 127.0.0.12: on bl.test but in trusted_networks
    "--host-record=12.0.0.127.bl.test,127.0.0.2",
    # 127.0.0.13: on bl.test without a TXT reason
    "--host-record=13.0.0.127.bl.test,127.0.0.2",
    # 127.0.0.14: on bl.test, first asked after the resolver restarted
    "--host-record=14.0.0.127.bl.test,127.0.0.2", "--txt-record=14.0.0.127.bl.test,after the restart",
]
TIMEOUT_MS = 800
PAUSE_MS = 300


@pytest.fixture(scope="module")
def dns(tmp_path_factory):
    root = tmp_path_factory.mktemp("dns")
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # held, never answered: slow.test
    dead.bind(("127.0.0.1", free_udp_port()))
    server = Dnsmasq(root, LISTS + ["--log-queries", f"--server=/slow.test/127.0.0.1#{dead.getsockname()[1]}"])
    yield server
    server.stop()
    dead.close()


def install(tmp_path_factory, dns, name, dnsbl, **smtpd):
    pm = Postmesh(traversable(tmp_path_factory.mktemp(name)))
    pm.configure(trusted_networks=["127.0.0.12/32"],
                 resolver={"nameservers": [dns.nameserver], "timeout": 3})
    pm.configure(smtpd={"sandboxes": 1, "dnsbl": dnsbl, "dnsbl_threshold": 2, **smtpd})
    pm.start("resolver", "smtpd")
    return pm


@pytest.fixture(scope="module")
def mx(tmp_path_factory, dns):
    pm = install(tmp_path_factory, dns, "mx", [
        {"zone": "bl.test", "weight": 2}, {"zone": "two.test"}, {"zone": "wl.test", "weight": -5},
        {"zone": "match.test", "match": "127.0.0.3"}])
    yield pm
    pm.stop_all()


@pytest.fixture(scope="module")
def slow(tmp_path_factory, dns):
    """A list that never answers, and a greet pause shorter than the lists' timeout."""
    pm = install(tmp_path_factory, dns, "slow", [{"zone": "bl.test", "weight": 2}, {"zone": "slow.test"}],
                 dnsbl_timeout=TIMEOUT_MS, greet_pause_ms=PAUSE_MS)
    yield pm
    pm.stop_all()


class Client:
    """A raw SMTP client from a chosen loopback address (smtplib hides the greeting's code)."""

    def __init__(self, port, source, timeout=10):
        self.start = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed, got {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def reply(self):
        """The last line of a (possibly multi-line) reply."""
        while True:
            line = self.line()
            if line[3:4] != "-":
                return line

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


def greeting(port, source):
    c = Client(port, source)
    try:
        return c.reply(), time.monotonic() - c.start
    finally:
        c.close()


def verdicts(pm, ip):
    return re.findall(rf"event=dnsbl client={re.escape(ip)} .*", pm.log("smtpd"))


def test_listed_client_gets_554_with_the_reason_then_503_until_quit(mx):
    c = Client(mx.port("smtp"), "127.0.0.2")
    try:
        assert c.reply() == f"554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test: {BL_REASON}"
        assert c.cmd("EHLO client.test").startswith("503 5.5.0")
        assert c.cmd("MAIL FROM:<a@b.test>").startswith("503 5.5.0")
        assert c.cmd("QUIT").startswith("221")
    finally:
        c.close()
    line = wait_for(lambda: verdicts(mx, "127.0.0.2"), 5, what="the dnsbl log line")[0]
    assert "zone=bl.test weight=2 score=2" in line and "listed=yes" in line, line


def test_unlisted_client_is_greeted(mx):
    reply, _ = greeting(mx.port("smtp"), "127.0.0.9")
    assert reply.startswith("220 "), reply
    line = wait_for(lambda: verdicts(mx, "127.0.0.9"), 5, what="the dnsbl log line")[0]
    assert "zone=- weight=- score=0" in line and "listed=no" in line, line


def test_allowlist_subtracts_below_the_threshold(mx):
    assert greeting(mx.port("smtp"), "127.0.0.5")[0].startswith("220 ")
    line = wait_for(lambda: verdicts(mx, "127.0.0.5"), 5, what="the dnsbl log line")[0]
    assert "zone=bl.test,wl.test weight=2,-5 score=-3" in line and "listed=no" in line, line


def test_threshold_two_needs_two_lists_and_match_counts_only_its_answer(mx):
    assert greeting(mx.port("smtp"), "127.0.0.6")[0].startswith("220 ")    # two.test alone: 1
    assert greeting(mx.port("smtp"), "127.0.0.8")[0].startswith("220 ")    # match.test's 127.0.0.4: no
    reply, _ = greeting(mx.port("smtp"), "127.0.0.7")                      # 1 + 1
    assert reply == "554 5.7.1 Service unavailable; client [127.0.0.7] blocked using two.test: twosays no", reply
    line = wait_for(lambda: verdicts(mx, "127.0.0.7"), 5, what="the dnsbl log line")[0]
    assert "zone=two.test,match.test weight=1,1 score=2" in line, line


def test_reason_missing_and_exempt_clients(mx):
    reply, _ = greeting(mx.port("smtp"), "127.0.0.13")
    assert reply == "554 5.7.1 Service unavailable; client [127.0.0.13] blocked using bl.test", reply
    # trusted_networks and the submission port are not asked about (postscreen's convention).
    assert greeting(mx.port("smtp"), "127.0.0.12")[0].startswith("220 ")
    assert greeting(mx.port("submission"), "127.0.0.2")[0].startswith("220 ")
    assert not verdicts(mx, "127.0.0.12")


def test_second_connection_is_answered_from_the_cache(mx):
    """The sandbox keeps answers for their TTL: the same client again asks the resolver
    nothing (its log has one question per name)."""
    def asked():
        return len(re.findall(r"event=resolved kind=A name=3\.0\.0\.127\.bl\.test ", mx.log("resolver")))
    assert greeting(mx.port("smtp"), "127.0.0.3")[0].startswith("220 ")
    wait_for(lambda: asked() == 1, 5, what="the resolver's answer")
    assert greeting(mx.port("smtp"), "127.0.0.3")[0].startswith("220 ")
    wait_for(lambda: len(verdicts(mx, "127.0.0.3")) == 2, 5, what="the second verdict")
    assert asked() == 1


def test_a_list_that_never_answers_holds_nobody_past_the_timeout(slow):
    reply, took = greeting(slow.port("smtp"), "127.0.0.9")
    assert reply.startswith("220 "), reply
    assert TIMEOUT_MS / 1000 - 0.1 <= took < TIMEOUT_MS / 1000 + 0.7, took
    # The score is what answered: bl.test alone blocks.
    reply, took = greeting(slow.port("smtp"), "127.0.0.2")
    assert reply.startswith("554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test"), reply
    assert took < TIMEOUT_MS / 1000 + 1.2, took
    line = wait_for(lambda: verdicts(slow, "127.0.0.2"), 5, what="the dnsbl log line")[0]
    assert "unanswered=slow.test" in line and "score=2" in line, line


def test_the_lists_run_during_the_greet_pause_and_talking_first_is_still_refused(slow):
    """The pause is not added to the lists' wait (the greeting comes at the later of the two),
    and a client talking during the pause gets the early-talker 554 as before."""
    c = Client(slow.port("smtp"), "127.0.0.9")
    try:
        c.sock.sendall(b"EHLO early.test\r\n")
        assert c.reply().startswith("554 5.5.1"), "an early talker must be refused"
    finally:
        c.close()


def test_the_lists_still_answer_after_the_resolver_restarted(tmp_path_factory, dns):
    """smtpd keeps one connection to the resolver: a resolver that restarts (a container
    does, at any moment) must be asked again on the new connection, not left waited for."""
    pm = install(tmp_path_factory, dns, "restart", [{"zone": "bl.test", "weight": 2}])
    try:
        assert greeting(pm.port("smtp"), "127.0.0.2")[0].startswith("554 5.7.1 ")
        pm.stop("resolver")
        pm.start("resolver")
        reply, _ = greeting(pm.port("smtp"), "127.0.0.14")  # not in smtpd's cache
        assert reply == "554 5.7.1 Service unavailable; client [127.0.0.14] blocked using bl.test: after the restart", \
            pm.log("smtpd")[-2000:]
    finally:
        pm.stop_all()
