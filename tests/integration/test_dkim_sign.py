"""DKIM signing end to end (docs/dkim.md): keys made by `postmesh dkim keygen`, mail
submitted with AUTH (and from trusted_networks) relayed by the mta to an aiosmtpd peer on
loopback (MX from dnsmasq), and the received message verified by an independent verifier,
dkimpy, with the TXT records keygen printed, for rsa-sha256 and ed25519-sha256 (libopendkim's
own verifier checks the same in tests/unit/test_queue_dkim_sign.c; opendkim-testmsg is not
used: see docs/dkim.md).
Mail from the internet and mail whose From: domain has no key are not signed; with two
selectors for one domain only the active one signs; the queue refuses bad keys with
file:line."""
import base64
import os
import re
import smtplib
import stat
import subprocess

import dkim
import pytest

from conftest import BIN, Postmesh, free_port, to_libconfig, traversable, wait_for
from remote_peers import AioSink, Dnsmasq
from smtpd_helpers import add_user, client_context, enable_tls

ALICE, PASSWORD = "alice@example.test", "secret"
TRUSTED = "127.0.0.3"   # in trusted_networks: may relay without AUTH, so its mail is signed
KEYS = [  # (domain, selector, ed25519, active)
    ("example.test", "r2026", False, True), ("example.test", "e2026", True, True),
    ("rot.test", "old", False, False), ("rot.test", "new", False, True),
]


def keygen(pm, domain, selector, ed25519, directory):
    args = ["dkim", "keygen", domain, selector, "--dir", str(directory)] + (["--ed25519"] if ed25519 else [])
    out = pm.cli(*args).stdout
    [path] = re.findall(r'key = "([^"]+)"', out)
    [txt_line] = [line for line in out.splitlines() if "IN TXT" in line]
    return path, txt_line


def parse_txt(line):
    """'sel._domainkey.dom. IN TXT ( "a" "b" )' -> (name, [strings])."""
    m = re.fullmatch(r'(\S+)\. IN TXT \( ((?:"[^"]*" ?)+)\)', line)
    assert m, line
    return m.group(1), re.findall(r'"([^"]*)"', m.group(2))


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    root = traversable(tmp_path_factory.mktemp("dkim"))
    pm = Postmesh(root)
    dns = Dnsmasq(root, ["--mx-host=remote.test,mx1.remote.test,10", "--host-record=mx1.remote.test,127.0.0.2"])
    sink = None
    try:
        port = free_port("127.0.0.2")
        sink = AioSink("127.0.0.2", port, root)
        add_user(pm, ALICE, PASSWORD)
        enable_tls(pm, auth_fail_delay_ms=0)
        pm.configure(trusted_networks=[f"{TRUSTED}/32"], resolver={"nameservers": [dns.nameserver]},
                     mta={"remote_port": port})
        txt, entries = {}, []
        for domain, selector, ed25519, active in KEYS:
            path, line = keygen(pm, domain, selector, ed25519, root / "dkim")
            name, strings = parse_txt(line)
            txt[name] = "".join(strings)
            entries.append({"domain": domain, "selector": selector, "key": path, "active": active})
        pm.configure(dkim=entries)
        pm.start("resolver", "queue", "mta", "smtpd", timeout=20)
        yield {"pm": pm, "sink": sink, "txt": txt, "root": root}
    finally:
        pm.stop_all()
        if sink:
            sink.stop()
        dns.stop()


def message(frm, subject, to="Bob <bob@remote.test>"):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 1 Dec 2026 22:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\nX-Unsigned: anything\r\n\r\n"
            f"Hello Bob,  \r\n.a dot line\r\n\r\ntrailing blank lines\r\n\r\n\r\n").encode()


def submit(pm, body, sender=ALICE, rcpts=("bob@remote.test",)):
    with smtplib.SMTP("127.0.0.1", pm.port("submission"), timeout=30) as s:
        s.starttls(context=client_context())
        s.login(ALICE, PASSWORD)
        s.sendmail(sender, list(rcpts), body)


def received(mx, subject):
    def find():
        hits = [m for m in mx["sink"].messages if f"Subject: {subject}\r\n".encode() in m["content"]]
        return hits[0]["content"] if hits else None
    wait_for(find, 30, what=f"'{subject}' at the peer")
    return find()


def dnsfunc(mx):
    def lookup(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        return mx["txt"].get(key.rstrip("."), "").encode() or None
    return lookup


def signatures(raw):
    return re.findall(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", raw, re.M | re.S)


def tags(sig):
    return {k.strip().decode(): re.sub(rb"\s+", b"", v).decode() for k, v in
            (t.split(b"=", 1) for t in sig.split(b";") if b"=" in t)}


def verify_all(mx, raw):
    """dkimpy's verdict on each signature, topmost first (a broken one raises: False)."""
    d, out = dkim.DKIM(raw), []
    for i in range(len(signatures(raw))):
        try:
            out.append(d.verify(idx=i, dnsfunc=dnsfunc(mx)))
        except dkim.DKIMException:
            out.append(False)
    return out


def test_submission_gets_rsa_and_ed25519_signatures_that_dkimpy_verifies(mx):
    submit(mx["pm"], message("Alice <alice@example.test>", "both algorithms"))
    raw = received(mx, "both algorithms")
    sigs = [tags(s) for s in signatures(raw)]
    assert sorted(s["a"] for s in sigs) == ["ed25519-sha256", "rsa-sha256"]
    assert {s["s"] for s in sigs} == {"r2026", "e2026"} and {s["d"] for s in sigs} == {"example.test"}
    for s in sigs:
        assert s["c"] == "relaxed/relaxed"
        h = s["h"].lower().split(":")
        assert h.count("from") == 2                      # From oversigned
        assert {"to", "subject", "date", "message-id"} <= set(h) and "x-unsigned" not in h
    assert verify_all(mx, raw) == [True, True]
    tampered = raw.replace(b"Hello Bob", b"Hello Bib")
    assert verify_all(mx, tampered) == [False, False]     # the check can fail
    log = mx["pm"].log("queue")
    assert re.search(r"event=dkim_signed queue_id=\w+ domain=example.test selector=r2026,e2026 "
                     r"algorithm=rsa-sha256,ed25519-sha256", log), log[-2000:]


def test_trusted_network_client_is_signed_internet_mail_is_not(mx):
    pm = mx["pm"]
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30, source_address=(TRUSTED, 0)) as s:
        s.sendmail(ALICE, ["bob@remote.test"], message("alice@example.test", "from trusted"))
    assert verify_all(mx, received(mx, "from trusted")) == [True, True]
    # From the internet (port 25, not authenticated, not trusted): only to a local user.
    with smtplib.SMTP("127.0.0.1", pm.port("smtp"), timeout=30) as s:
        s.ehlo("client.remote.test")
        s.sendmail("someone@remote.test", [ALICE], message("Alice <alice@example.test>", "from outside", ALICE))
    ids = re.findall(r"event=queued id=(\w+)", pm.log("smtpd"))
    wait_for(lambda: any(f"event=committed id={ids[-1]}" in pm.log("queue") for _ in [0]), 10, what="commit")
    shown = pm.cli("queue", "show", ids[-1]).stdout
    assert "Subject: from outside" in shown and "DKIM-Signature" not in shown
    assert f"queue_id={ids[-1]}" not in pm.log("queue")


def test_from_domain_without_a_key_is_not_signed(mx):
    submit(mx["pm"], message("Carol <carol@nokey.test>", "no key here"))
    raw = received(mx, "no key here")
    assert b"DKIM-Signature" not in raw
    assert re.search(r"event=dkim_not_signed queue_id=\w+ reason=no_key domain=nokey.test", mx["pm"].log("queue"))
    submit(mx["pm"], message("a@example.test, b@example.test", "two authors"))
    assert b"DKIM-Signature" not in received(mx, "two authors")
    assert "reason=several_addresses" in mx["pm"].log("queue")


def test_rotation_only_the_active_selector_signs(mx):
    submit(mx["pm"], message("Rita <rita@rot.test>", "rotated"))
    raw = received(mx, "rotated")
    [sig] = [tags(s) for s in signatures(raw)]
    assert sig["s"] == "new" and sig["d"] == "rot.test" and sig["a"] == "rsa-sha256"
    assert verify_all(mx, raw) == [True]
    # The old selector's public key does not verify it: the signature really is the new key's.
    swapped = dict(mx, txt={**mx["txt"], "new._domainkey.rot.test": mx["txt"]["old._domainkey.rot.test"]})
    assert verify_all(swapped, raw) == [False]


def test_keygen_permissions_refusal_and_txt_record(mx):
    pm, root = mx["pm"], mx["root"]
    d = root / "keygen"
    path, line = keygen(pm, "example.test", "k1", False, d)
    st = os.stat(path)
    assert not st.st_mode & stat.S_IROTH and not st.st_mode & stat.S_IWOTH and stat.S_IMODE(st.st_mode) in (0o600, 0o640)
    if os.geteuid() == 0:
        import pwd
        assert pwd.getpwuid(st.st_uid).pw_name == "postmesh-queue"
    before = open(path, "rb").read()
    r = pm.cli("dkim", "keygen", "example.test", "k1", "--dir", str(d), check=False)
    assert r.returncode == 1 and "never overwritten" in r.stderr and open(path, "rb").read() == before
    name, strings = parse_txt(line)
    assert name == "k1._domainkey.example.test" and all(len(s) <= 255 for s in strings) and len(strings) >= 2
    record = dict(t.strip().split("=", 1) for t in "".join(strings).split(";"))
    assert record["v"] == "DKIM1" and record["k"] == "rsa"
    from cryptography.hazmat.primitives import serialization
    pub = serialization.load_der_public_key(base64.b64decode(record["p"]))
    assert pub.key_size == 2048
    priv = serialization.load_pem_private_key(before, None)
    assert priv.public_key().public_numbers() == pub.public_numbers()
    path, line = keygen(pm, "example.test", "k2", True, d)
    record = dict(t.strip().split("=", 1) for t in "".join(parse_txt(line)[1]).split(";"))
    raw = base64.b64decode(record["p"])
    assert record["k"] == "ed25519" and len(raw) == 32
    priv = serialization.load_pem_private_key(open(path, "rb").read(), None)
    assert priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    r = pm.cli("dkim", "keygen", "example..test", "k3", "--dir", str(d), check=False)
    assert r.returncode == 2 and "empty label" in r.stderr


def queue_refuses(mx, entries, tmp_name):
    """Runs the queue with a config whose dkim list is entries: its exit status, its output,
    and the file:line of the last entry's group as the error must name it."""
    pm = mx["pm"]
    conf = mx["root"] / tmp_name
    settings = {**pm.settings, "dkim": entries}
    text = "".join(f"{k} = {to_libconfig(v)};\n" for k, v in settings.items())
    conf.write_text(text)
    r = subprocess.run([str(BIN / "postmesh-queue"), "-c", str(conf)], capture_output=True, text=True, timeout=10)
    lines = text.splitlines()
    last = max(i for i, line in enumerate(lines) if f'selector = "{entries[-1]["selector"]}"' in line)
    group = max(i for i in range(last + 1) if "{" in lines[i]) + 1   # libconfig: the line the group opens on
    return r.returncode, r.stdout + r.stderr, f"{conf}:{group}:"


def test_queue_refuses_bad_keys_with_file_and_line(mx):
    pm, root = mx["pm"], mx["root"]
    keys = {(e["domain"], e["selector"]): e["key"] for e in pm.settings["dkim"]}
    rsa, ed = keys[("example.test", "r2026")], keys[("example.test", "e2026")]
    rc, out, where = queue_refuses(mx, [{"domain": "example.test", "selector": "a", "key": rsa},
                                        {"domain": "example.test", "selector": "b", "key": keys[("rot.test", "old")]}],
                                   "two-active.conf")
    assert rc == 2 and where in out and "second active rsa-sha256 key for example.test" in out, out
    rc, out, where = queue_refuses(mx, [{"domain": "example.test", "selector": "a", "key": str(root / "missing.pem")}],
                                   "missing.conf")
    assert rc == 2 and where in out and "cannot read key" in out, out
    weak = root / "weak.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(weak), "1024"], check=True, capture_output=True)
    os.chmod(weak, 0o600)
    rc, out, where = queue_refuses(mx, [{"domain": "example.test", "selector": "a", "key": str(weak)}], "weak.conf")
    assert rc == 2 and where in out and "1024 bits" in out, out
    rc, out, _ = queue_refuses(mx, [{"domain": "example.test", "selector": "a", "key": ed, "active": True},
                                    {"domain": "example.test", "selector": "a", "key": rsa}], "twice.conf")
    assert rc == 2 and "configured twice" in out, out
