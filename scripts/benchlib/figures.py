"""One function per figure. Each takes the bench context and one system (the Postmesh or
the Postfix rig, both running for the whole bench), measures one run and records it in the
Results; nothing here starts or stops a system. Mailboxes are one per figure and run, so a
run counts only its own files and never waits on a bigger directory than it needs."""
import time

from . import clients
from .dovecot import retrieve_all
from .util import count_files

LOCAL = "example.test"
RELAY_RCPT = "sink@relay.test"
# relay_domains: d0.signed.test .. d<N-1>.signed.test, each with its own MX host (the
# Postmesh rig serves them from dnsmasq and, signed, from nsd; Postfix routes .signed.test)
DOMAINS_ZONE = "signed.test"
POP_USER, POP_PASSWORD = "popuser@example.test", "bench-pop-secret"


def mailbox(fig, run_no):
    return f"{fig.replace('_', '-')}-{run_no}@{LOCAL}"


def mailbox_count(rig, address):
    md = rig.maildir(address)
    return count_files(md / "new", md / "cur")


def wait_arrivals(count_fn, target, timeout, stall):
    """Polls count_fn until it reaches target, or stops moving for `stall` seconds, or the
    deadline. Returns (count, seconds from the call to the last increase)."""
    start = time.monotonic()
    last, last_change = count_fn(), time.monotonic()
    deadline = start + timeout
    while last < target and time.monotonic() < deadline and time.monotonic() - last_change < stall:
        time.sleep(0.01)
        n = count_fn()
        if n != last:
            last, last_change = n, time.monotonic()
    return last, last_change - start


def drain(rig, count_fn, timeout):
    """Waits until the system's queue is empty (bounded); returns the final count_fn()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not rig.queue_empty():
        time.sleep(0.1)
    return count_fn()


# ------------------------------------------------------------------ intake

def limit_sink(ctx, run_no):
    """The same smtp-source load as intake_smtp_source into smtp-sink (stores nothing)."""
    c = ctx.cfg
    before = ctx.sink.count()
    elapsed, _ = clients.smtp_source(ctx.sink.port, "x@sink.test", c.messages, c.sessions, c.size, c.timeout,
                                     host=ctx.sink.host)
    got, _ = wait_arrivals(ctx.sink.count, before + c.messages, 10, 2)
    ctx.results.add("limit_sink", "smtp-sink", run_no, (got - before) / elapsed, "msg/s")


def limit_postal(ctx, run_no):
    """postal's own ceiling: the same postal load into smtp-sink (postal spends a lot of CPU
    on its side; on 2 cores it is the limit of the postal figures)."""
    c = ctx.cfg
    before = ctx.sink.count()
    p = clients.Postal(ctx.root, ctx.sink.port, "x@sink.test", c.postal_threads, c.size // 1024, False,
                       f"sink-{run_no}", host=ctx.sink.host)
    try:
        time.sleep(c.postal_seconds)
    finally:
        failures, _ = p.stop()
    time.sleep(0.2)
    got = ctx.sink.count() - before
    ctx.results.add("limit_postal", "smtp-sink", run_no, got / c.postal_seconds if got else None, "msg/s",
                    f"{failures} postal errors" if failures else "")


def intake_smtp_source(ctx, rig, run_no):
    """smtp-source (HELO, a new connection per message) into the local mailbox, with delivery
    running; the same run gives local delivery end to end: from the first message sent to
    the last file in the Maildir."""
    c = ctx.cfg
    box = mailbox("smtp_source", run_no)
    t0 = time.monotonic()
    elapsed, _ = clients.smtp_source(rig.port, box, c.messages, c.sessions, c.size, c.timeout)
    got, _ = wait_arrivals(lambda: mailbox_count(rig, box), c.messages, c.timeout, 20)
    e2e = time.monotonic() - t0 if got >= c.messages else None
    ctx.results.add("intake_smtp_source", rig.name, run_no, got / elapsed, "msg/s",
                    "" if got >= c.messages else f"only {got} of {c.messages} arrived")
    ctx.results.add("local_e2e", rig.name, run_no, c.messages / e2e if e2e else None, "msg/s",
                    f"{e2e:.2f}s for {c.messages}" if e2e else f"{got} of {c.messages} arrived")


def _loadgen(ctx, rig, run_no, new_conn):
    c = ctx.cfg
    tag = "loadgen_newconn" if new_conn else "loadgen"
    box = mailbox(tag, run_no)
    out = clients.loadgen(ctx.loadgen, rig.port, box, c.messages, c.sessions, c.size, c.timeout, new_conn)
    ok = out.get("messages", 0)
    note = f"failed={int(out.get('failed', 0))}" if out.get("failed") else ""
    ctx.results.add(f"intake_{tag}", rig.name, run_no, out.get("msgs_per_s", 0.0) if ok else None, "msg/s", note)
    ctx.results.add(f"{tag}_p50", rig.name, run_no, out.get("p50_ms") if ok else None, "ms")
    ctx.results.add(f"{tag}_p99", rig.name, run_no, out.get("p99_ms") if ok else None, "ms")
    wait_arrivals(lambda: mailbox_count(rig, box), ok, c.timeout, 20)   # drained before the next figure


def intake_loadgen(ctx, rig, run_no):
    """loadgen: EHLO + PIPELINING, connections reused, end-of-DATA -> 250 per message."""
    _loadgen(ctx, rig, run_no, False)


def intake_loadgen_newconn(ctx, rig, run_no):
    """loadgen -n: the same with a new connection (and EHLO) per message."""
    _loadgen(ctx, rig, run_no, True)


def _postal(ctx, rig, run_no, tls):
    c = ctx.cfg
    fig = "intake_postal_tls" if tls else "intake_postal"
    box = mailbox(fig, run_no)
    p = clients.Postal(ctx.root, rig.port, box, c.postal_threads, c.size // 1024, tls, f"{rig.name}-{fig}-{run_no}")
    try:
        time.sleep(c.postal_seconds)
    finally:
        failures, samples = p.stop()
    time.sleep(0.2)   # postal's last sessions end
    got = drain(rig, lambda: mailbox_count(rig, box), c.timeout)
    note = f"{failures} postal errors, e.g. {samples[0][:80]!r}" if failures else ""
    ctx.results.add(fig, rig.name, run_no, got / c.postal_seconds if got else None, "msg/s", note)


def intake_postal(ctx, rig, run_no):
    """postal: -t THREADS, a new connection per message, counted in the mailbox."""
    _postal(ctx, rig, run_no, False)


def intake_postal_tls(ctx, rig, run_no):
    """postal -s 100: every connection STARTTLS (GnuTLS)."""
    _postal(ctx, rig, run_no, True)


# ------------------------------------------------------------------ end to end

def relay_e2e(ctx, rig, run_no):
    """smtp-source to relay.test; time from the first message sent until the sink counted
    the last one (Postmesh: resolver via dnsmasq + mta; Postfix: transport map, same port)."""
    c = ctx.cfg
    before, deferred = ctx.sink.count(), rig.deferred_count()
    t0 = time.monotonic()
    clients.smtp_source(rig.port, RELAY_RCPT, c.messages, c.sessions, c.size, c.timeout)
    got, _ = wait_arrivals(ctx.sink.count, before + c.messages, c.timeout, 20)
    e2e = time.monotonic() - t0
    ok = got - before >= c.messages
    deferred = rig.deferred_count() - deferred
    note = (f"{e2e:.2f}s" if ok else f"{got - before} of {c.messages} reached the sink") + \
        (f", {deferred} deferred" if deferred else "")
    ctx.results.add("relay_e2e", rig.name, run_no, c.messages / e2e if ok else None, "msg/s", note)


def relay_domains(ctx, rig, run_no):
    """loadgen (EHLO, PIPELINING) spreading the messages over cfg.relay_domains domains of
    signed.test into the sink. Postmesh: every domain's MX, addresses, TLS report and
    MTA-STS records looked up through the resolver, started afresh (an empty cache) on nsd,
    not validating; Postfix: a transport map entry for .signed.test, no DNS at all."""
    _relay_domains(ctx, rig, run_no, "relay_domains", dnssec=False)


def relay_domains_dnssec(ctx, rig, run_no):
    """relay_domains with the resolver validating every answer against signed.test's key
    (nsd serves the signed zone), and the mta asking for each MX host's TLSA records (a
    secure denial: the sink then gets opportunistic delivery, as it offers no STARTTLS).
    Postmesh only: Postfix cannot be given a resolver without /etc/resolv.conf."""
    if rig.name == "postmesh":
        _relay_domains(ctx, rig, run_no, "relay_domains_dnssec", dnssec=True)


def _relay_domains(ctx, rig, run_no, figure, dnssec):
    if rig.name == "postmesh":
        rig.use_signed_zone(validate=dnssec)
        try:
            _relay_domains_run(ctx, rig, run_no, figure)
        finally:
            rig.use_dnsmasq()
    else:
        _relay_domains_run(ctx, rig, run_no, figure)


def _relay_domains_run(ctx, rig, run_no, figure):
    c = ctx.cfg
    before, deferred = ctx.sink.count(), rig.deferred_count()
    t0 = time.monotonic()
    out = clients.loadgen(ctx.loadgen, rig.port, f"sink@{DOMAINS_ZONE}", c.messages, c.sessions, c.size,
                          c.timeout, domains=c.relay_domains)
    sent = int(out.get("messages", 0)) - int(out.get("failed", 0))
    got, _ = wait_arrivals(ctx.sink.count, before + c.messages, c.timeout, 20)
    e2e = time.monotonic() - t0
    ok = sent >= c.messages and got - before >= c.messages
    deferred = rig.deferred_count() - deferred
    note = (f"{e2e:.2f}s, {c.relay_domains} domains" if ok else
            f"{got - before} of {c.messages} reached the sink ({sent} accepted)") + \
        (f", {deferred} deferred" if deferred else "")
    ctx.results.add(figure, rig.name, run_no, c.messages / e2e if ok else None, "msg/s", note)


# ------------------------------------------------------------------ latency and memory

def connect_ehlo_quit(ctx, rig, run_no):
    c = ctx.cfg
    p50, p99, failures = clients.connect_latency(rig.port, c.latency_count, c.timeout)
    note = f"{failures} failed" if failures else ""
    ctx.results.add("ehlo_p50", rig.name, run_no, p50, "ms", note)
    ctx.results.add("ehlo_p99", rig.name, run_no, p99, "ms", note)


def idle_rss(ctx, rig, run_no):
    """RSS of every smtpd process together, holding N EHLO'd sessions (loadgen -I)."""
    c = ctx.cfg
    counts = c.idle_counts if rig.name == "postmesh" else [n for n in c.idle_counts if n <= c.postfix_idle]
    for n in counts:
        if rig.name == "postmesh":
            rig.restart_smtpd()
        try:
            held = clients.IdleSessions(ctx.loadgen, rig.port, n, max(60, c.timeout))
        except RuntimeError as e:
            ctx.results.add(f"idle_rss_{n}", rig.name, run_no, None, "MB", str(e)[:120])
            continue
        try:
            time.sleep(0.5)
            kb, pss, procs = rig.smtpd_rss_kb()
        finally:
            held.close()
        note = f"{procs} smtpd processes"
        ctx.results.add(f"idle_rss_{n}", rig.name, run_no, kb / 1024, "MB", note)
        ctx.results.add(f"idle_pss_{n}", rig.name, run_no, pss / 1024, "MB", note)


# ------------------------------------------------------------------ POP3

def pop3_retrieval(ctx, server, run_no):
    """LIST + RETR of the whole prepared mailbox (poplib), on a copy of the same Maildir."""
    c = ctx.cfg
    secs, n, _ = retrieve_all(server.pop3_port, POP_USER, POP_PASSWORD, c.pop3_messages, c.timeout)
    ok = n >= c.pop3_messages
    ctx.results.add("pop3_retr", server.name, run_no, n / secs if ok else None, "msg/s",
                    f"{secs:.2f}s" if ok else f"only {n} of {c.pop3_messages}")
