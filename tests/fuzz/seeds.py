#!/usr/bin/python3
"""Writes the text seed corpora in tests/fuzz/corpus/<fuzzer>/ (the binary ones, DNS packets and
BusMessages, come from gen_seeds.c). Run from the repository root; the files are kept in git,
so this only needs running again when a seed is added. Seeds are real traffic: SMTP and POP3
sessions as clients send them, addresses from RFC 5321/6531 and the unit tests, dot-stuffed
DATA, the users/aliases/config files of the tests and deploy/local/postmesh.conf."""
import os
import shutil
import socket
import struct
import subprocess
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # Debian 12's Python 3.11 still has it; it makes real {SHA512-CRYPT} lines

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(fuzzer, name, data):
    d = os.path.join(CORPUS, fuzzer)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crlf(lines):
    return "".join(l + "\r\n" for l in lines)


# ---------------------------------------------------------------- SMTP commands
SESSIONS = {
    "plain": ["EHLO client.example.test", "MAIL FROM:<alice@example.test> SIZE=1234 BODY=8BITMIME",
              "RCPT TO:<bob@example.test>", "RCPT TO:<carol@example.test>", "DATA", "QUIT"],
    "helo_old_client": ["HELO client", "MAIL FROM: <alice@example.test>", "RCPT TO: <bob@example.test>  ",
                        "DATA", "RSET", "NOOP", "QUIT"],
    "submission_auth": ["EHLO [192.0.2.10]", "STARTTLS", "EHLO [192.0.2.10]", "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
                        "MAIL FROM:<alice@example.test> AUTH=<>", "RCPT TO:<someone@remote.test>", "DATA", "QUIT"],
    "auth_login": ["EHLO c.example.test", "AUTH LOGIN", "YWxpY2VAZXhhbXBsZS50ZXN0", "c2VjcmV0", "QUIT"],
    "quoted_and_literals": ["EHLO [IPv6:2001:db8::10]", 'MAIL FROM:<"john doe"@example.test>',
                            'RCPT TO:<"a\\"b"@example.test>', "RCPT TO:<postmaster@[192.0.2.1]>",
                            "RCPT TO:<x@[IPv6:2001:db8::1]>", "RCPT TO:<Postmaster>", "QUIT"],
    "null_sender_dsn": ["EHLO mx.remote.test", "MAIL FROM:<>", "RCPT TO:<alice@example.test>", "DATA"],
    "source_route": ["EHLO a", "MAIL FROM:<@a.test,@b.test:joe@c.test>", "RCPT TO:<@example.test:user@remote.test>"],
    "smtputf8": ["EHLO u.example.test", "MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8",
                 "RCPT TO:<\u7528\u6237@\u4f8b\u5b50.\u6d4b\u8bd5>", "RCPT TO:<b\u00f6@example.test>"],
    "relay_tricks": ["EHLO evil.test", "MAIL FROM:<a@evil.test>", "RCPT TO:<user%remote.test@example.test>",
                     "RCPT TO:<remote.test!user@example.test>", 'RCPT TO:<"user@remote.test"@example.test>',
                     "RCPT TO:<bob@example.test> NOTIFY=NEVER", "VRFY bob", "EXPN staff", "HELP"],
    "bad_params": ["EHLO x", "MAIL FROM:<a@b.test> SIZE=1 SIZE=2", "MAIL FROM:<a@b.test> SIZE=99999999999999999999999999",
                   "MAIL FROM:<a@b.test> BODY=BINARYMIME", "MAIL FROM:<a@b.test>SIZE=1", "MAIL FROM:<a@b.test> RET=FULL",
                   "MAILFROM:<a@b>", "MaIl FROM:<a@b.test>", "BDAT 100 LAST"],
    "requiretls": ["EHLO c.example.test", "MAIL FROM:<a@b.test> REQUIRETLS", "STARTTLS", "EHLO c.example.test",
                   "MAIL FROM:<a@b.test> REQUIRETLS RET=HDRS ENVID=x", "MAIL FROM:<> REQUIRETLS",
                   "MAIL FROM:<a@b.test> REQUIRETLS=YES", "MAIL FROM:<a@b.test> REQUIRETLS REQUIRETLS", "HELO c",
                   "MAIL FROM:<a@b.test> REQUIRETLS"],
    "http_cross_protocol": ["GET / HTTP/1.1", "Host: mx.example.test", "", "POST /x HTTP/1.0", "CONNECT a:25 HTTP/1.1"],
    "log_injection": ['MAIL FROM:<"x id=0000000000000000 event=delivered to=ceo@example.test"@evil.test>',
                      "RCPT TO:<ceo@example.test>"],
}
for name, lines in SESSIONS.items():
    put("smtp_command", name, crlf(lines))
put("smtp_command", "bare_lf_and_nul", b"EHLO a\nMAIL FROM:<a@b.test>\nRCPT TO:<a@b>\x00<c@d>\r\nNOOP\rQUIT\r\n")
put("smtp_command", "long_line", "EHLO x\r\nMAIL FROM:<" + "a" * 600 + "@example.test>\r\nAUTH PLAIN " + "QUFB" * 1500 + "\r\nQUIT\r\n")

# ---------------------------------------------------------------- addresses (byte 0: flags)
NULL_OK, UTF8, STRICT, POSTMASTER = 1, 2, 4, 8
ADDRS = [
    "<alice@example.test>", "<first.last+tag@sub.example.test>", "<>", "<Postmaster>", "<postmaster@example.test>",
    '<"john doe"@example.test>', '<"a\\"b\\\\c"@example.test>', '<"user@remote.test"@example.test>',
    "<u@[192.0.2.1]>", "<u@[IPv6:2001:db8::1]>", "<u@[IPv6:::ffff:192.0.2.1]>", "<u@[tag:general]>",
    "<@a.test,@example.test:user@remote.test>", "<@a.test:>", "<user%remote.test@example.test>",
    "<remote.test!user@example.test>", "<j\u00f6rg@b\u00fccher.example>", "<\u7528\u6237@\u4f8b\u5b50.\u6d4b\u8bd5>",
    "<alice@example.test.>", "<a@b.test> SIZE=10", "<" + "v" * 200 + "=bounce@lists.example.test>",
    "<x@" + ".".join(["l" * 63] * 3) + ">", "<al..ice@example.test>", "<a\xc0\xaf@example.test>",
]
flag_sets = [NULL_OK, UTF8 | NULL_OK, STRICT | POSTMASTER, STRICT | POSTMASTER | UTF8, 0]
for i, a in enumerate(ADDRS):
    raw = a.encode("latin-1") if "\xc0" in a else a.encode()
    put("addr", "addr%02d" % i, bytes([flag_sets[i % len(flag_sets)]]) + raw)

# ---------------------------------------------------------------- DATA (byte 0: number of cut bytes)
MESSAGES = {
    "simple": crlf(["Received: from a ([192.0.2.1])", "\tby mx.example.test (Postmesh) with ESMTP;",
                    "\tMon, 13 Nov 2023 10:00:00 +0000", "From: Alice <alice@example.test>", "To: bob@example.test",
                    "Subject: hello", "", "Hi Bob.", ".", "QUIT"]),
    "dot_stuffed": crlf(["Subject: dots", "", "..leading dot", "...", "..", " .not stuffed", "end", "."]),
    "smuggling_bare_lf": "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\n.\r\n",
    "smuggling_bare_cr": "Subject: x\r\n\r\nbody\r.\r\nMAIL FROM:<evil@x>\r\n.\r\n",
    "long_line": "Subject: long\r\n\r\n" + "x" * 1100 + "\r\n.\r\n",
    "exactly_998": "Subject: limit\r\n\r\n" + "y" * 998 + "\r\n." + "z" * 997 + "\r\n.\r\n",
    "nul_octet": "Subject: nul\r\n\r\na\x00b\r\n.\r\n",
    "loop_hops": "".join("Received: from hop%d\r\n" % i for i in range(102)) + "\r\nbody\r\n.\r\n",
    "unfinished": "Subject: no end\r\n\r\nstill going",
    "empty": ".\r\n",
    "8bit_mime": "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ngr\u00fc\u00dfe\r\n.\r\n",
}
for i, (name, msg) in enumerate(MESSAGES.items()):
    cuts = bytes([3, 0, 7, 100]) if i % 2 else bytes([0])  # byte 0 low bits: how many cut sizes follow
    put("smtp_data", name, cuts + msg.encode("utf-8"))

# ---------------------------------------------------------------- POP3
POP3 = {
    "user_pass": ["CAPA", "USER alice@example.test", "PASS a good password", "STAT", "LIST", "LIST 1", "UIDL",
                  "UIDL 2", "RETR 1", "TOP 1 10", "DELE 1", "RSET", "NOOP", "QUIT"],
    "stls_auth": ["CAPA", "STLS", "AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=", "AUTH PLAIN", "AGJvYgBwdw==", "AUTH",
                  "STAT", "QUIT"],
    "apop_and_errors": ["APOP alice c4c9334bac560ecc979e58001b3e22fb", "RETR", "RETR 0", "RETR 4294967297",
                        "TOP 1", "TOP 1 -1", "DELE 1 2", "LIST 999999999", "XTND XLST", "user  alice", "quit "],
}
for name, lines in POP3.items():
    put("pop3_command", name, crlf(lines))
put("pop3_command", "controls", b"USER a\x00b\r\nPASS \r\nPASS  spaced pass \r\nNOOP\tx\r\n\r\n")

# ---------------------------------------------------------------- users files
y = crypt.crypt("a good password", "$6$rounds=5000$fuzzseedsalt$")  # fixed salt: the file stays the same
put("users", "sha512", "# users\nalice@example.test:{SHA512-CRYPT}%s\n" % y)
put("users", "mixed",
    "# managed by postmesh user\n"
    "alice@example.test:{YESCRYPT}$y$j9T$B0quwvrA/xBOeengk3ac..$YA6Jiuup2JGGa9o8RzxXEzqX.kiluUU5dhKb2ZhT8J6\n"
    "\n"
    "  Bob@Example.TEST:{sha512-crypt}$6$saltsalt$7N6vOEWAOtLSnqRmVUkmG9mFtzVPvvJ5.AjjV5d6Mg0B1nUiDRlNhzK5/aW2c84wd3cJ9k3CkzjTqrqVnmuyH1\r\n"
    "postmaster@example.test:{YESCRYPT}$y$j9T$abcdefghijklmnopqrstu.$0123456789abcdefghijklmnopqrstuvwxyzABCDE\n")
put("users", "errors", "alice@example.test:{MD5}$1$x$y\nbob:{YESCRYPT}$y$j9T$a$b\nc@d:{YESCRYPT}$6$a$b$c\n")
put("users", "duplicate", "a@example.test:{SHA512-CRYPT}$6$s$h\nA@EXAMPLE.TEST:{SHA512-CRYPT}$6$s$h\n")

# ---------------------------------------------------------------- aliases files
put("aliases", "reference",
    "# /etc/aliases style, full addresses\n"
    "team@example.test: alice@example.test, Bob@Remote.test\n"
    "postmaster: alice@example.test   # every local domain\n"
    "staff@example.test: team@example.test,\n"
    "    carol, dave@example.test\n"
    "keep@example.test: keep@example.test archive@example.test\n"
    "angle@example.test: <alice@example.test>\n"
    "hash#tag@example.test: alice@example.test\n")
put("aliases", "loop",
    "a@example.test: b@example.test\nb@example.test: c@example.test, ok@example.test\n"
    "c@example.test: a@example.test\nx@example.test: ok@example.test, a@example.test\n")
put("aliases", "diamonds", "".join(
    "d%d@example.test: l%d@example.test, r%d@example.test\nl%d@example.test: d%d@example.test\n"
    "r%d@example.test: d%d@example.test\n" % (i, i, i, i, i + 1, i, i + 1) for i in range(15)))
put("aliases", "refused",
    "a@example.test: |/bin/sh\nb@example.test: /var/mail/x\nc@example.test: :include:/etc/list\n"
    "   continuation\nx: @example.test\n")
put("aliases", "wide", "big@example.test: " + ", ".join("u%d@example.test" % i for i in range(300)) + "\n"
    "all@other.test: big@example.test, big@example.test\n")

# ---------------------------------------------------------------- config files
with open(os.path.join(ROOT, "deploy", "local", "postmesh.conf"), "rb") as f:
    put("config", "deploy_local", f.read())
put("config", "integration_style",
    'hostname = "mx.example.test";\nstate_dir = "/tmp/state";\ndomains = [ "example.test", "other.test" ];\n'
    'users_file = "/tmp/users";\naliases_file = "/tmp/aliases";\ntrusted_networks = [ "127.0.0.0/8", "::1/128" ];\n'
    'debug = true;\nqueue = {\n  endpoint = "tcp://127.0.0.1:40001";\n  control = "ipc:///tmp/control";\n'
    '  map_size_mb = 256;\n  retry_min = 1;\n  retry_max = 4;\n  max_lifetime = 3600;\n  delay_warning = 0;\n'
    '  job_lease = 10;\n};\nresolver = { endpoint = "tcp://127.0.0.1:40003"; nameservers = [ "127.0.0.1:1" ]; timeout = 2; };\n'
    'smtpd = {\n  listen = ( { address = "127.0.0.1:2525"; mode = "smtp"; }, { address = "[::1]:2587"; mode = "submission"; } );\n'
    '  submit_timeout = 5;\n  max_message_size = 2147483648L;\n};\nmta = { remote_port = 25; connect_timeout = 3; command_timeout = 10; };\n'
    'pop3d = { listen = ( { address = "127.0.0.1:2110"; mode = "pop3"; } ); };\n')
put("config", "dkim",
    'hostname = "mx.example.test";\ndkim = ( { domain = "example.test"; selector = "s2026"; key = "/k/a.pem"; },\n'
    '  { domain = "example.test"; selector = "s2025"; key = "/k/b.pem"; active = false; },\n'
    '  { domain = "Example.test"; selector = "S2026"; key = "/k/c.pem"; }, { selector = "x"; } );\n')
put("config", "errors",
    'hostname = "x";\nqueue = { retry_min = 4294967297; };\nsmtpd = { max_message_size = 1; unknown = 2; };\n'
    'pop3d = { listen = ( { address = "x"; mode = "smtp"; } ); };\n# comment\n// c++ comment\n/* block */\n')

# ---------------------------------------------------------------- mta: what servers answer
# Byte 0: recipients-1 (bits 0-1), STARTTLS allowed (4), 8-bit body (8), SMTPUTF8 needed (16),
# loop check (32), large body (64), null sender (128).
REPLIES = {
    "postfix_plain": (0x01, ["220 mx.remote.test ESMTP Postfix", "250-mx.remote.test", "250-SIZE 10240000",
                             "250-8BITMIME", "250 DSN", "250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 <b@remote.test>: Recipient address rejected",
                             "354 End data with <CR><LF>.<CR><LF>", "250 2.0.0 Ok: queued as 4Sxyz", "221 2.0.0 Bye"]),
    "pipelining_tls": (0x07, ["220 mx.remote.test ESMTP", "250-mx.remote.test", "250-PIPELINING", "250-STARTTLS",
                              "250 SMTPUTF8", "220 2.0.0 Ready to start TLS", "250-mx.remote.test", "250-PIPELINING",
                              "250 8BITMIME", "250 ok", "250 ok", "452 4.5.3 too many recipients", "250 ok", "250 ok",
                              "354 go", "451 4.3.0 try later"]),
    "ehlo_refused": (0x00, ["220 old.remote.test SMTP", "502 5.5.2 Error: command not recognized",
                            "250 old.remote.test", "250 Ok", "250 Ok", "354 go", "250 queued"]),
    "greeting_4xx": (0x00, ["421 4.3.2 Service not available, closing transmission channel"]),
    "loop_self": (0x20, ["220 mx.example.test ESMTP"]),
    "size_too_big": (0x40, ["220 a ESMTP", "250-a", "250 SIZE 1000"]),
    "multiline_enhanced": (0x02, ["220-first line", "220-second line", "220 mx ready", "250 mx", "250 2.1.0 sender ok",
                                  "550-5.7.1 Policy rejection line one", "550-5.7.1 line two", "550 5.7.1 line three",
                                  "250 2.1.5 ok", "250 2.1.5 ok", "354 ok", "554 5.6.0 content rejected"]),
    "crlf_lf_mix": (0x00, None),
}
for name, (opt, lines) in REPLIES.items():
    if lines is None:
        data = b"220 a\n250-a\r\n250 PIPELINING\n250 ok\r\n250 ok\n354 x\r\n250 done\r\n"
    else:
        data = crlf(lines).encode()
    put("mta_reply", name, bytes([opt]) + data)



# ---------------------------------------------------------------- what milters answer (byte 0: cuts)
def milter(code, data=b""):
    return struct.pack(">I", len(data) + 1) + code + data


OPTNEG = milter(b"O", struct.pack(">III", 6, 0x3F, 0x1FF))
put("milter", "continue_all", bytes([0]) + OPTNEG + milter(b"c") * 6)
put("milter", "eom_edits", bytes([2, 3, 9]) + OPTNEG + milter(b"h", b"X-Spam\0yes\0")
    + milter(b"m", struct.pack(">I", 2) + b"Subject\0new\0") + milter(b"m", struct.pack(">I", 1) + b"X-A\0\0")
    + milter(b"i", struct.pack(">I", 0) + b"X-Top\0a\n\tb\0") + milter(b"b", b"new body\n")
    + milter(b"q", b"held\0") + milter(b"p") + milter(b"c"))
put("milter", "rspamd_reject", bytes([0]) + OPTNEG + milter(b"y", b"554 5.7.1 Gtube pattern\0"))
put("milter", "multiline_reply", bytes([1, 4]) + milter(b"y", b"550-5.7.1 a\r\n550 5.7.1 b\0"))
put("milter", "oversize", bytes([0]) + struct.pack(">I", 2 * 1024 * 1024) + b"c")
put("milter", "garbage", bytes([1, 0]) + milter(b"Z") + milter(b"y", b"no nul") + milter(b"h", b"X:A\0b\0"))


# ---------------------------------------------------------------- MTA-STS (byte 0: host to match)
# A policy body, which is also read as NUL-separated _mta-sts TXT records.
STS = {
    "rfc_example": "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                   "mx: backupmx.example.com\r\nmax_age: 604800\r\n",
    "testing_lf": "version: STSv1\nmode: testing\nmx: mx.example.test\nmax_age: 86400\n",
    "none": "version: STSv1\nmode: none\nmax_age: 0\n",
    "order_and_ext": "mx: MX1.Example.NET.\n\nmax_age:31557601  \nx-ext.1: gr\u00fc\u00dfe\nmode: enforce\nversion: STSv1",
    "repeated": "version: STSv1\nmode: testing\nmode: enforce\nmax_age: 5\nmax_age: 9\nmx: a.test\nmx: *.b.test\n",
    "html": "<html><body>It works!</body></html>\n",
    "bad_mx": "version: STSv1\nmode: enforce\nmax_age: 1\nmx: *.*.a.test\nmx: a..test\n",
    "txt_one": "v=STSv1; id=20160831085700Z;",
    "txt_two": "v=STSv1; id=one\0v=STSv1; id=two",
    "txt_mixed": "v=spf1 -all\0v=STSv1 ;\tid=a1 ; ext_1=x:y ;\0V=STSv1; id=x",
    "txt_bad": "v=STSv1; id=a;;\0v=STSv1 id=x",
}
for i, (name, text) in enumerate(STS.items()):
    put("mta_sts_policy", name, bytes([i % 5]) + text.encode())

# ---------------------------------------------------------------- DNS answers captured from dnsmasq
def dns_query(name, qtype, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def capture_dnsmasq():
    """Real answers (name compression, authority sections) from the dnsmasq the integration
    tests use as nameserver, for the queries one MX lookup makes. Skipped without dnsmasq."""
    exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not os.path.exists(exe):
        print("dnsmasq not installed: no captured DNS seeds")
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    args = [exe, "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll", "--port=%d" % port,
            "--listen-address=127.0.0.1", "--bind-interfaces", "--local=/test/", "--local-ttl=300",
            "--cache-size=0", "--pid-file=", "--log-facility=/dev/null",
            "--mx-host=remote.test,mx1.remote.test,10", "--mx-host=remote.test,mx2.remote.test,20",
            "--host-record=mx1.remote.test,127.0.0.1,::1", "--host-record=mx2.remote.test,127.0.0.2",
            "--host-record=implicit.test,127.0.0.5", "--cname=alias.test,mx1.remote.test",
            "--ptr-record=1.2.0.192.in-addr.arpa,client.example.test"]
    if os.geteuid() == 0:
        args.append("--user=root")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(0.2)

        def ask(name, qtype):
            for attempt in range(50):  # dnsmasq may not be listening yet: bounded retries
                c.sendto(dns_query(name, qtype, 4242 + attempt), ("127.0.0.1", port))
                try:
                    return c.recv(65535)
                except socket.timeout:
                    if proc.poll() is not None:
                        raise RuntimeError("dnsmasq exited")
            raise RuntimeError("dnsmasq did not answer")

        def seed(name, opt, queries):
            data = bytes([opt])
            for qname, qtype in queries:
                wire = ask(qname, qtype)
                data += struct.pack(">H", len(wire)) + wire
            put("dns_answer", name, data)

        MX, A, AAAA, PTR = 15, 1, 28, 12
        seed("dnsmasq_mx", 0, [("remote.test", MX), ("mx1.remote.test", A), ("mx1.remote.test", AAAA),
                               ("mx2.remote.test", A), ("mx2.remote.test", AAAA)])
        seed("dnsmasq_nxdomain", 0, [("nowhere.test", MX)])
        seed("dnsmasq_implicit", 0, [("implicit.test", MX), ("implicit.test", A), ("implicit.test", AAAA)])
        seed("dnsmasq_cname", 1, [("alias.test", A), ("alias.test", AAAA)])
        seed("dnsmasq_ptr", 2, [("1.2.0.192.in-addr.arpa", PTR)])
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


capture_dnsmasq()
print("text seeds written under", CORPUS)
