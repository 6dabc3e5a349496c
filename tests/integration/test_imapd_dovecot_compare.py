"""postmesh-imapd against a real Dovecot (dovecot_harness.py), each over its own copy of the same
Maildir: a fixed script of SELECT / FETCH / SEARCH / STORE commands over a varied set of
messages (plain, multipart/alternative, attachments, a nested message/rfc822, encoded words,
address groups, missing headers, deep nesting, raw 8-bit headers, a big one for partial
fetches) must report the same messages, flags, structures, sections and sizes.

Only formatting is normalised (imap_store.parse): quoted and literal strings are the same
Str; atoms are compared without case where RFC 9051 / RFC 2045 make them case-insensitive
(FETCH item names, flags, MIME type, subtype, parameter names, encodings, disposition types,
the charset value); FETCH items are a dict (their order is free) and one message's FETCH
responses within a command are merged; INTERNALDATE is compared as an instant. \\Recent is
left out (the flag, RECENT counts, SEARCH RECENT / NEW / OLD): it is not in the store but in a
server's history, which message it has seen before (Dovecot without an index of this copy:
every message; Postmesh: the files in new/), and IMAP4rev2 dropped it. Messages are
named by their Message-ID, not by number or UID (neither server promises which file gets
which UID), and the script names them the same way."""
import calendar
import csv
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, REPO
from imap_corpus import CORPUS, MSGID
from imap_store import Server, Str, Wire, own_store, parse, put, start_postmesh, tls_pair
from pop3_helpers import add_user

ALICE, PASSWORD = "alice@example.test", "compare-secret"

# SENTBEFORE of a message without a Date header is left open by RFC 9051 (Dovecot takes it as
# 1970, Postmesh as no date): the script asks it only of messages that have one.
# The script: {key} is that message's sequence number on the server it runs on, {uid:key}
# its UID, \u00abtext\u00bb a non-synchronizing literal (RFC 7888) of text in UTF-8. Every line is one
# command.
SECTIONS = "BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME]"
SCRIPT = [
    "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
    "FETCH 1:* BODYSTRUCTURE",
    "FETCH 1:* BODY",
    "FETCH 1:* FAST",
    "FETCH 1:* FULL",
    "FETCH 1:* (RFC822.HEADER)",
    *[f"FETCH {{{k}}} ({SECTIONS})" for k, _, _, _ in CORPUS],
    "FETCH {alt} (BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[1]<4.10>)",
    "FETCH {attach} (BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[3] BODY.PEEK[3.MIME])",
    "FETCH {nested} (BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2.2.MIME] "
    "BODY.PEEK[2.1]<5.10> BODY.PEEK[2.HEADER.FIELDS (SUBJECT FROM)])",
    "FETCH {deep} (BODY.PEEK[1.1.1] BODY.PEEK[1.1.2] BODY.PEEK[1.2] BODY.PEEK[1.2.MIME] BODY.PEEK[2] "
    "BODY.PEEK[1] BODY.PEEK[1.MIME])",
    "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From Subject X-Missing)])",
    "FETCH 1:* (BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path Delivered-To)])",
    "FETCH {big} (BODY.PEEK[]<0.100> BODY.PEEK[TEXT]<10.20> BODY.PEEK[]<100000.10> BODY.PEEK[TEXT]<21000.5000>)",
    "FETCH {plain}:{attach} (BODY.PEEK[]<0.50>)",
    "UID FETCH {uid:alt},{uid:groups} (FLAGS RFC822.SIZE)",
    *[f"SEARCH {keys}" for keys in [
        "ALL", "SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "ANSWERED", "DELETED", "UNDELETED", "DRAFT",
        "FROM bob", "FROM example.org", "TO alice", "CC john", "CC Team",
        "SUBJECT order", 'SUBJECT "group syntax"', "SUBJECT original", "BODY attached", "BODY coffee",
        "TEXT Newsletter", "TEXT coffee", "SINCE 14-Nov-2023", "BEFORE 15-Nov-2023", "ON 15-Nov-2023",
        "SENTSINCE 15-Nov-2023", 'SENTBEFORE 15-Nov-2023 HEADER Date ""', "SENTON 14-Nov-2023", "LARGER 1000",
        "SMALLER 500", "{alt}:{deep}", "*", "{plain},{nested}:*", "UID {uid:nested}:*", "NOT SEEN",
        "OR FLAGGED DRAFT", "OR (FROM bob) (SUBJECT order)", "NOT (OR SEEN FLAGGED)",
        'HEADER Message-ID "<alt@"', 'HEADER X-Nothing ""', "SEEN NOT DELETED FLAGGED",
        "CHARSET UTF-8 SUBJECT \u00abcaf\u00e9\u00bb", "CHARSET UTF-8 BODY \u00abcr\u00e8me\u00bb",
        "CHARSET UTF-8 FROM \u00abAndr\u00e9\u00bb", "CHARSET UTF-8 SUBJECT \u00abGr\u00fc\u00dfe\u00bb",
        "CHARSET UTF-8 TEXT \u00abSch\u00f6ne\u00bb", "CHARSET UTF-8 BODY \u00ab\u20ac\u00bb"]],
    "UID SEARCH ALL",
    "UID SEARCH FLAGGED",
    "STORE {plain} +FLAGS (\\Flagged)",
    "STORE {alt} -FLAGS (\\Flagged)",
    "STORE {bare} FLAGS (\\Seen \\Draft)",
    "STORE {attach} +FLAGS.SILENT (\\Answered)",
    "UID STORE {uid:raw8bit} +FLAGS (\\Deleted)",
    "FETCH {nested} BODY[2.1]",
    "FETCH {deep} (BODY[TEXT]<0.30>)",
    "FETCH 1:* (FLAGS)",
    "SEARCH UNSEEN",
    "SEARCH ANSWERED FLAGGED",
]

# Case-insensitive MIME atoms in a body structure, lower-cased for comparison.
def _lower(v):
    return Str(v.lower()) if isinstance(v, bytes) else v


def _params(p):
    """A parameter list (attr value ...): attribute names and a charset value without case."""
    if not isinstance(p, list):
        return p
    out = []
    for i in range(0, len(p) - 1, 2):
        attr = _lower(p[i])
        out += [attr, _lower(p[i + 1]) if attr == b"charset" else p[i + 1]]
    return out


def _disposition(d):
    return [_lower(d[0]), _params(d[1])] if isinstance(d, list) and len(d) == 2 else d


def norm_body(b):
    if not isinstance(b, list):
        return b
    if b and isinstance(b[0], list):            # multipart: parts, subtype, extensions
        i = 0
        while i < len(b) and isinstance(b[i], list):
            i += 1
        out = [norm_body(p) for p in b[:i]] + [_lower(b[i])]
        ext = b[i + 1:]
        if ext:
            ext = [_params(ext[0])] + ([_disposition(ext[1])] if len(ext) > 1 else []) + ext[2:]
        return out + ext
    out = [_lower(b[0]), _lower(b[1]), _params(b[2]), b[3], b[4], _lower(b[5]), b[6]]
    rest = b[7:]
    if out[0] == b"message" and out[1] == b"rfc822" and len(rest) >= 3:
        out += [rest[0], norm_body(rest[1]), rest[2]]
        rest = rest[3:]
    elif out[0] == b"text" and rest:
        out.append(rest[0])
        rest = rest[1:]
    if len(rest) >= 2:                           # md5, disposition, language, location
        rest = [rest[0], _disposition(rest[1])] + [_lower(x) if i == 0 else x for i, x in enumerate(rest[2:])]
    return out + rest


MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                      "Nov", "Dec"], 1)}


def instant(s: bytes):
    m = re.match(rb" ?(\d+)-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", s)
    d, mon, y, hh, mm, ss, sign, oh, om = m.groups()
    t = calendar.timegm((int(y), MONTHS[mon.decode()], int(d), int(hh), int(mm), int(ss)))
    return t - (1 if sign == b"+" else -1) * (int(oh) * 3600 + int(om) * 60)


class Session:
    """The script's connection to one server: sequence numbers and UIDs of the messages."""

    def __init__(self, srv):
        self.srv = srv
        self.wire = Wire(srv.port("imap"))
        self.ok(f'LOGIN "{ALICE}" "{PASSWORD}"')
        self.seq, self.uid, self.by_seq, self.by_uid = {}, {}, {}, {}
        status, selected = self.run("SELECT INBOX")
        untagged = self.ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        for line in untagged:
            v = parse(line)
            if len(v) > 2 and v[2] == "FETCH":
                items = dict(zip(v[3][::2], v[3][1::2]))
                header = next(val for key, val in items.items() if key.upper().startswith("BODY[HEADER.FIELDS"))
                mid = re.search(rb"<[^>]+>", header).group(0)
                key = next(k for k, m in MSGID.items() if m == mid)
                self.seq[key], self.uid[key] = v[1], items["UID"]
                self.by_seq[v[1]], self.by_uid[items["UID"]] = key, key
        selected["other"] = [(what, self.by_seq.get(n, n)) if what == "UNSEEN" else (what, n)
                             for what, n in selected["other"]]
        self.select = (status, selected)

    def ok(self, text):
        untagged, tagged = self.wire.command(text)
        assert tagged.startswith(b"OK"), (self.srv.name, text, untagged[-5:], tagged)
        return untagged

    def expand(self, command) -> bytes:
        text = re.sub(r"\{(uid:)?(\w+)\}", lambda m: str((self.uid if m.group(1) else self.seq)[m.group(2)]),
                      command)
        return re.sub("\u00ab([^\u00bb]*)\u00bb", lambda m: "{%d+}\r\n%s" % (len(m.group(1).encode()), m.group(1)),
                      text).encode()

    def run(self, command):
        """(status word, normalised result) of one script line."""
        untagged, tagged = self.wire.command(self.expand(command) + b"\r\n")
        status = tagged.split(b" ", 1)[0].decode()
        fetched, searched, other = {}, None, []
        for line in untagged:
            v = parse(line)
            if len(v) >= 4 and v[2] == "FETCH":
                key = self.by_seq.get(v[1], v[1])
                into = fetched.setdefault(key, {})
                for name, value in zip(v[3][::2], v[3][1::2]):
                    into[re.sub(r"\s+", " ", name.upper())] = self.norm_item(name.upper(), value)
            elif len(v) >= 2 and v[1] == "SEARCH":
                ids = self.by_uid if command.startswith("UID") else self.by_seq
                searched = sorted(ids.get(n, n) for n in v[2:])
            elif len(v) >= 3 and v[2] == "EXISTS":
                other.append((v[2], v[1]))
            elif len(v) >= 2 and v[1] == "FLAGS":
                other.append(("FLAGS", sorted(f.lower() for f in v[2])))
            elif line.startswith(b"* OK [UNSEEN "):
                other.append(("UNSEEN", self.by_seq.get(int(line.split()[3].rstrip(b"]")), line)))  # noqa
        return status, {"fetch": fetched, "search": searched, "other": other}

    def norm_item(self, name, value):
        if name == "FLAGS":
            return sorted(f.lower() for f in value if f.lower() != "\\recent")
        if name == "INTERNALDATE":
            return instant(value)
        if name in ("BODYSTRUCTURE", "BODY"):
            return norm_body(value)
        if name == "UID":
            return self.by_uid.get(value, value)
        return value


def copy_store(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    own_store(dst)


@pytest.fixture
def store(pm, tmp_path):
    """The corpus in pm's store; dovecot(name) starts a Dovecot on a fresh copy of it."""
    from dovecot_harness import Dovecot, available
    if not available():
        pytest.skip("dovecot-imapd is not installed")
    add_user(pm, ALICE, PASSWORD)
    mail = pm.state / "mail"
    for key, flags, when, content in CORPUS:
        put(mail, ALICE, content, flags=flags, mtime=when, name=f"{when}.M{key}P1.mx.example.test")
    cert, key = tls_pair(pm.root)
    started = []

    def dovecot(name):
        copy_store(mail, tmp_path / f"{name}-mail")
        dv = Dovecot(tmp_path / name, tmp_path / f"{name}-mail", pm.root / "users", cert=cert, key=key).start()
        started.append(dv)
        return Server(name, dict(dv.ports), cert, dv.stop)
    dovecot.cert, dovecot.key = cert, key
    yield dovecot
    for dv in started:
        dv.stop()


def run_both(ours, theirs):
    """Every script line on both; the differences, described."""
    a, b = Session(ours), Session(theirs)
    assert set(a.seq) == set(b.seq) == set(MSGID)
    differences = []
    for command, x, y in [("SELECT INBOX", a.select, b.select)] + [(c, a.run(c), b.run(c)) for c in SCRIPT]:
        if x != y:
            differences.append(describe(command, x, y, ours.name, theirs.name))
    return differences


def test_same_answers_as_dovecot(pm, store):
    dovecot = store("dovecot")
    postmesh = start_postmesh(pm, store.cert, store.key)
    differences = run_both(postmesh, dovecot)
    assert not differences, f"{len(differences)} of {len(SCRIPT) + 1} commands differ:\n\n" + "\n\n".join(differences)


def test_the_script_is_deterministic(store):
    """The comparison is only worth something if the script and its normalisation are: two
    Dovecots on two copies answer it alike, down to the last item."""
    differences = run_both(store("dovecot-a"), store("dovecot-b"))
    assert not differences, "\n\n".join(differences)


def first_difference(a, b, path=""):
    """(path like [1][2], a's part, b's part) of the first place two values differ."""
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            return f"{path}[{min(len(a), len(b))}:]", a[len(b):], b[len(a):]
    return path, a, b


def describe(command, ours, theirs, us="postmesh", them="dovecot"):
    """What differs, per message and item, so a report names the exact item."""
    lines = [f"{command}:"]
    if ours[0] != theirs[0]:
        lines.append(f"  status: {us} {ours[0]}, {them} {theirs[0]}")
    a, b = ours[1], theirs[1]
    for part in ("search", "other"):
        if a[part] != b[part]:
            lines.append(f"  {part}: {us} {a[part]}\n  {' ' * len(part)}  {them} {b[part]}")
    for key in sorted(set(a["fetch"]) | set(b["fetch"]), key=str):
        fa, fb = a["fetch"].get(key, {}), b["fetch"].get(key, {})
        for item in sorted(set(fa) | set(fb)):
            if fa.get(item) != fb.get(item):
                where, x, y = first_difference(fa.get(item, "(missing)"), fb.get(item, "(missing)"))
                if where:
                    lines.append(f"  {key} {item} at {where}: {us} {x!r}, {them} {y!r}")
                lines.append(f"  {key} {item}:\n    {us}: {fa.get(item, '(missing)')!r}\n"
                             f"    {them}: {fb.get(item, '(missing)')!r}")
    return "\n".join(lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="the IMAP bench runs Dovecot and the service users as root")
def test_bench_imap_smoke(tmp_path):
    """`make bench`'s IMAP part must not rot: its smoke run measures every figure for both
    servers, and leaves no Dovecot (nor imapd) of its own behind."""
    from dovecot_harness import available
    if not available():
        pytest.skip("dovecot-imapd is not installed")
    env = dict(os.environ, POSTMESH_BIN=str(BIN), BENCH_OUT=str(tmp_path / "out"))
    r = subprocess.run(["sh", str(REPO / "scripts" / "bench-imap"), "--smoke"], env=env, capture_output=True,
                       text=True, timeout=240)
    out = r.stdout + r.stderr[-4000:]
    values = {}
    for row in csv.DictReader(open(tmp_path / "out" / "imap-results.csv")):
        if row["value"] not in ("", "None"):
            values.setdefault((row["figure"], row["system"]), []).append(float(row["value"]))
    figures = ("imap_fetch_headers_first", "imap_fetch_headers", "imap_idle_p50", "imap_idle_p99")
    problems = [f"{fig}/{system}" for fig in figures for system in ("postmesh", "dovecot")
                if not values.get((fig, system)) or min(values[(fig, system)]) <= 0]
    assert not problems, f"figures missing or zero: {problems}\n{out}"
    assert r.returncode == 0, out
    assert "| IDLE wake-up" in (tmp_path / "out" / "imap-table.md").read_text()
    left = subprocess.run(["pgrep", "-f", "postmesh-bench-imap"], capture_output=True, text=True).stdout.split()
    assert not left, f"left running by the bench: {left}"
