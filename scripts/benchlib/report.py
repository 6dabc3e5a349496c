"""The end of the bench: the table of medians (Postmesh, Postfix/Dovecot, ratio), printed
and written as markdown to build/bench/table.md, and the README's "Benchmark" section
replaced by it (only that section)."""
from pathlib import Path

from .util import median

# (figure, label, unit, which way is better, reference system, or "system:figure" for
# another figure of it); the idle rows come from the configured session counts (idle_rows).
ROWS = [
    ("limit_sink", "the limit: smtp-source into smtp-sink (stores nothing)", "msg/s", "high", None),
    ("intake_smtp_source", "intake, smtp-source (HELO, 1 msg/conn)", "msg/s", "high", "postfix"),
    ("intake_loadgen", "intake, loadgen (EHLO+PIPELINING, conns reused)", "msg/s", "high", "postfix"),
    ("loadgen_p50", "loadgen end-of-DATA -> 250, p50", "ms", "low", "postfix"),
    ("loadgen_p99", "loadgen end-of-DATA -> 250, p99", "ms", "low", "postfix"),
    ("intake_loadgen_newconn", "intake, loadgen -n (EHLO+PIPELINING, 1 msg/conn)", "msg/s", "high", "postfix"),
    ("loadgen_newconn_p50", "loadgen -n end-of-DATA -> 250, p50", "ms", "low", "postfix"),
    ("loadgen_newconn_p99", "loadgen -n end-of-DATA -> 250, p99", "ms", "low", "postfix"),
    ("limit_postal", "postal's own ceiling: postal into smtp-sink", "msg/s", "high", None),
    ("intake_postal", "intake, postal (EHLO, 1 msg/conn)", "msg/s", "high", "postfix"),
    ("intake_postal_tls", "intake, postal -s 100 (STARTTLS, GnuTLS)", "msg/s", "high", "postfix"),
    ("relay_e2e", "relay end to end into smtp-sink", "msg/s", "high", "postfix"),
    ("relay_domains", "relay to many domains, each looked up (Postfix: no DNS)", "msg/s", "high", "postfix"),
    ("relay_domains_dnssec", "the same, DNSSEC-validated with TLSA look-ups (Postfix: no DNS)", "msg/s", "high",
     "postfix:relay_domains"),
    ("local_e2e", "local delivery end to end into Maildir", "msg/s", "high", "postfix"),
    ("ehlo_p50", "connect+EHLO+QUIT (smtplib), p50", "ms", "low", "postfix"),
    ("ehlo_p99", "connect+EHLO+QUIT (smtplib), p99", "ms", "low", "postfix"),
    "idle",
    ("pop3_retr", "POP3 LIST+RETR of the whole mailbox (poplib)", "msg/s", "high", "dovecot"),
]


LIMIT_OF = {"limit_sink": "intake_smtp_source", "limit_postal": "intake_postal"}


def idle_rows(cfg):
    rows = []
    for n in cfg.idle_counts:
        rows.append((f"idle_rss_{n}", f"smtpd RSS (sum), {n:,} idle EHLO'd sessions", "MB", "low", "postfix"))
        rows.append((f"idle_pss_{n}", f"smtpd PSS (sum), {n:,} idle EHLO'd sessions", "MB", "low", "postfix"))
    return rows


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit in ("ms", "x"):
        return f"{v:.2f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def table(results, cfg, header):
    """Markdown lines and the figures that are missing or zero."""
    lines = [header, "",
             "| figure | Postmesh | Postfix / Dovecot | ratio (> 1: Postmesh better) |", "|---|---:|---:|---:|"]
    missing = []
    rows = []
    for row in ROWS:
        rows += idle_rows(cfg) if row == "idle" else [row]
    for fig, label, unit, better, ref in rows:
        if ref is None:   # a limit: compared with Postmesh's intake of the same load
            limit = results.median(fig, "smtp-sink")
            pm = results.median(LIMIT_OF[fig], "postmesh")
            ratio = f"Postmesh intake = {pm / limit:.0%} of it" if pm and limit else "n/a"
            if not limit:
                missing.append(fig)
            lines.append(f"| {label} ({unit}) | {fmt(limit, unit)} | | {ratio} |")
            continue
        ref, _, ref_fig = ref.partition(":")
        ours, theirs = results.median(fig, "postmesh"), results.median(ref_fig or fig, ref)
        shown = fmt(theirs, unit)
        if theirs is None and fig.startswith("idle_") and cfg.postfix_idle:
            # one Postfix smtpd per session: beyond postfix_idle sessions, scaled from it
            measured = [n for n in cfg.idle_counts if n <= cfg.postfix_idle]
            n = int(fig.rsplit("_", 1)[1])
            base = results.median(f"{fig.rsplit('_', 1)[0]}_{measured[-1]}", ref) if measured else None
            if base:
                theirs = base * n / measured[-1]
                shown = f"~{fmt(theirs, unit)} (scaled from {measured[-1]:,})"
        if not ours or not theirs:
            missing.append(fig)
        ratio = "n/a"
        if ours and theirs:
            ratio = f"{(ours / theirs if better == 'high' else theirs / ours):.2f}x"
        lines.append(f"| {label} ({unit}) | {fmt(ours, unit)} | {shown} | {ratio} |")
    return lines, missing


def targets_lines(results, cfg):
    """Issue 12's targets that these figures decide, each met / MISSED with its numbers
    (the deep-queue targets are deepqueue.py's own)."""
    m = results.median
    out = ["", "Targets (issue 12; ratios to Postfix in this run):", ""]

    def line(ok, text):
        out.append(f"- {'met' if ok else 'MISSED' if ok is not None else 'n/a'}: {text}")

    def ratio(fig, ref="postfix", high=True):
        a, b = m(fig, "postmesh"), m(fig, ref)
        if not a or not b:
            return None
        return a / b if high else b / a

    r50, r99 = ratio("ehlo_p50", high=False), ratio("ehlo_p99", high=False)
    line(None if r50 is None else r50 >= 1, f"connect+EHLO+QUIT no slower than Postfix (p50 {fmt(r50, 'x')}x, "
         f"p99 {fmt(r99, 'x')}x)")
    limit, ours = m("limit_sink", "smtp-sink"), m("intake_smtp_source", "postmesh")
    share = ours / limit if limit and ours else None
    line(None if share is None else share >= 0.7, f"intake >= 70% of the same smtp-source load into smtp-sink "
         f"({fmt(ours, 'msg/s')} of {fmt(limit, 'msg/s')} = {share or 0:.0%})")
    ehlo = {f: ratio(f) for f in ("intake_loadgen", "intake_loadgen_newconn", "intake_postal", "intake_postal_tls")}
    known = [v for v in ehlo.values() if v]
    line(bool(known) and min(known) >= 4 if known else None, "intake with EHLO clients >= 4x Postfix ("
         + ", ".join(f"{f.replace('intake_', '')} {fmt(v, 'x')}x" for f, v in ehlo.items())
         + f"; postal itself tops out at {fmt(m('limit_postal', 'smtp-sink'), 'msg/s')} msg/s into smtp-sink)")
    p99s = {f: m(f, "postmesh") for f in ("loadgen_p99", "loadgen_newconn_p99")}
    known = [v for v in p99s.values() if v]
    line(max(known) < 50 if known else None, "p99 end-of-DATA -> 250 under 50 ms ("
         + ", ".join(f"{f.replace('_p99', '')} {fmt(v, 'ms')} ms" for f, v in p99s.items()) + ")")
    rr = ratio("relay_e2e")
    deferred = [n for n in results.notes("relay_e2e", "postmesh") if "deferred" in n]
    line(None if rr is None else rr >= 3 and not deferred,
         f"relay end to end >= 3x Postfix with nothing deferred ({fmt(rr, 'x')}x"
         + (f"; {'; '.join(deferred)}" if deferred else "; none deferred") + ")")
    rl = ratio("local_e2e")
    line(None if rl is None else rl >= 3, f"local delivery end to end >= 3x Postfix ({fmt(rl, 'x')}x)")
    big = max(cfg.idle_counts)
    rss = m(f"idle_rss_{big}", "postmesh")
    line(None if rss is None or big < 10000 else rss < 200,
         f"{big:,} idle EHLO'd sessions in under 200 MB for all smtpd processes ({fmt(rss, 'MB')} MB RSS)")
    rp = ratio("pop3_retr", "dovecot")
    line(None if rp is None else rp >= 1, f"POP3 retrieval at least as fast as Dovecot ({fmt(rp, 'x')}x)")
    return out


def dnssec_lines(results):
    """What validation costs on the relay path: Postmesh's two many-domain relay figures."""
    plain, signed = results.median("relay_domains", "postmesh"), results.median("relay_domains_dnssec", "postmesh")
    if not plain or not signed:
        return []
    return ["", f"DNSSEC: relay to many domains with every answer validated and TLSA asked for runs at "
                f"{signed / plain:.0%} of the same without validation ({fmt(signed, 'msg/s')} against "
                f"{fmt(plain, 'msg/s')} msg/s)."]


def notes_lines(results):
    out = []
    seen = set()
    for r in results.rows:
        if r["note"] and (r["figure"], r["system"], r["note"]) not in seen and (
                r["value"] is None or "error" in r["note"] or "failed" in r["note"] or "deferred" in r["note"]):
            seen.add((r["figure"], r["system"], r["note"]))
            out.append(f"- {r['figure']} {r['system']} run {r['run']}: {r['note']}")
    return out


def deepqueue_lines(rows):
    """rows: the header and the rows of deepqueue.csv this run added."""
    if not rows or len(rows) < 2:
        return []
    out = ["", "Deep queue (scripts/deepqueue.py, build/bench/deepqueue.csv):", "",
           "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return out


README_INTRO = """\
`make bench` (scripts/bench.py, scripts/benchlib/, the load generator scripts/loadgen.c)
runs Postmesh and a private Postfix instance set up for the same jobs side by side, with
real clients: smtp-source (HELO), our loadgen (EHLO, PIPELINING, per-message end-of-DATA ->
250 latency), Debian's postal (plain and STARTTLS), smtplib, poplib against Dovecot's pop3.
Every figure is the median of three runs (raw runs in build/bench/results.csv, this table in
build/bench/table.md); `BENCH_QUICK=1 make bench` is the smoke run `make test` keeps
(tests/integration/test_bench_smoke.py). This VM's speed varies by about +-30% between runs,
and more when other work shares it: compare ratios within one run. Last run:
"""


def update_readme(readme: Path, md: str):
    """Replaces the README's '## Benchmark' section (the old '## Measured' one the first
    time; adds it before '## Layout' if there is neither)."""
    text = readme.read_text()
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.strip() == "## Benchmark"), None)
    if start is None:   # the section the old smtp-source-only bench wrote its figures in
        start = next((i for i, l in enumerate(lines) if l.strip() == "## Measured"
                      and "make bench" in "".join(lines[i + 1:i + 4])), None)
    body = "## Benchmark\n\n" + README_INTRO + "\n" + md.rstrip() + "\n\n"
    if start is None:
        at = next((i for i, l in enumerate(lines) if l.strip() == "## Layout"), len(lines))
        lines[at:at] = [body]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [body]
    readme.write_text("".join(lines))


__all__ = ["table", "dnssec_lines", "notes_lines", "deepqueue_lines", "update_readme", "median"]
