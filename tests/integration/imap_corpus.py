"""A varied set of messages for the IMAP comparison with Dovecot (test_imapd_dovecot_compare.py):
plain text with quoted names and a backslash in the subject, multipart/alternative with
quoted-printable UTF-8, attachments (base64, disposition, Content-ID, description), a
forwarded message/rfc822 holding a multipart/alternative in Latin-1, RFC 2047 encoded words
(in headers and, as clients do, in parameters) and RFC 2231 parameters (continuations, a
charset), address groups (empty and not), a message without From / To / Subject / Date, a
folded subject over three levels of nesting with Content-Language and Content-Location, raw
8-bit UTF-8 headers, and a big one for partial fetches.

CORPUS: (key, flags (None: in new/), INTERNALDATE, message bytes with CRLF line ends);
MSGID: key -> its Message-ID (how the comparison names a message on either server)."""
import re

B64 = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl\nY29kZT4+CnN0cmVhbQp4nDPQM1Qo5ypUMFAw0DMwslAwtTTVMzI3VzCxNNczMjBVSC1KVEhKLcpM\n"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\n"
DATE = "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"

# (key, flags (None: in new/), INTERNALDATE, message with \n line ends made CRLF)
CORPUS = [
    ("plain", ["\\Seen", "\\Answered"], 1_699_990_000, b"""\
Return-Path: <bob@example.org>
Delivered-To: alice@example.test
Received: from mx.example.org by mx.example.test; Tue, 14 Nov 2023 22:13:20 +0000
From: Bob Example <bob@example.org>
To: Alice <alice@example.test>, carol@example.test
Cc: "Doe, John" <john@example.net>
Subject: Plain text, with "quotes" and \\backslash
""" + DATE.encode() + b"""\
Message-ID: <plain@example.org>
In-Reply-To: <earlier@example.org>

Hello Alice,
this is a plain message about coffee.
"""),
    ("alt", ["\\Flagged"], 1_700_000_000, b"""\
From: shop@example.com
To: alice@example.test
Subject: Your order
""" + DATE.encode() + b"""\
Message-ID: <alt@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-b"

This is a multi-part message in MIME format.
--alt-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait, 2 =E2=82=AC
--alt-b
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Caf=C3=A9 au lait, 2 =E2=82=AC</p></body></html>
--alt-b--
"""),
    ("attach", ["\\Seen"], 1_700_010_000, b"""\
From: "Reports" <reports@example.net>
To: alice@example.test
Subject: Quarterly report attached
Date: Wed, 15 Nov 2023 09:00:00 +0100
Message-ID: <attach@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=mixed1

--mixed1
Content-Type: text/plain; charset=us-ascii; format=flowed
Content-Transfer-Encoding: 7bit

See the attached report.
--mixed1
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.pdf"; size=120
Content-ID: <part2@example.net>
Content-Description: Quarterly report

""" + B64.encode() + b"""\
--mixed1
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Disposition: inline

""" + PNG.encode() + b"""\
--mixed1--
"""),
    ("nested", None, 1_700_020_000, b"""\
From: Bob Example <bob@example.org>
To: alice@example.test
Subject: Fwd: The original
""" + DATE.encode() + b"""\
Message-ID: <nested@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain

Forwarding this one.
--outer
Content-Type: message/rfc822
Content-Disposition: inline

From: Original Sender <orig@example.org>
To: Bob <bob@example.org>
Subject: The original
Date: Mon, 13 Nov 2023 08:00:00 -0500
Message-ID: <orig@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

Gr\xfc\xdfe aus K\xf6ln
--inner
Content-Type: text/html; charset=iso-8859-1

<p>Gr&uuml;&szlig;e</p>
--inner--

--outer--
"""),
    ("encoded", ["\\Seen", "\\Draft"], 1_700_030_000, b"""\
From: =?ISO-8859-1?Q?Andr=E9_Pirard?= <andre@example.org>
To: =?UTF-8?B?w4FsdmFybw==?= <alvaro@example.test>
Subject: =?UTF-8?B?Q2Fmw6kgY3LDqG1l?= =?UTF-8?Q?_br=C3=BBl=C3=A9e?=
""" + DATE.encode() + b"""\
Message-ID: <encoded@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=enc

--enc
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

Q3LDqG1lIGJyw7tsw6llIHBvdXIgdG91cy4K
--enc
Content-Type: application/octet-stream; name="=?UTF-8?Q?r=C3=A9sum=C3=A9.txt?="
Content-Disposition: attachment; filename="=?UTF-8?Q?r=C3=A9sum=C3=A9.txt?="
Content-Transfer-Encoding: base64

aGVsbG8K
--enc
Content-Type: text/plain; charset=us-ascii; name*0="a-rather-long-"; name*1="file-name.txt"
Content-Disposition: attachment; filename*=utf-8''%C3%BCbersicht.txt

RFC 2231 parameters.
--enc--
"""),
    ("groups", ["\\Seen", "\\Deleted"], 1_700_040_000, b"""\
From: Newsletter <news@example.com>
Sender: bounce@example.com
Reply-To: replies@example.com
To: undisclosed-recipients:;
Cc: Team: ann@example.test, "Ben B." <ben@example.test>;, outsider@example.org
Subject: group syntax
""" + DATE.encode() + b"""\
Message-ID: <groups@example.com>

Addresses in groups.
"""),
    ("bare", [], 1_700_050_000, b"""\
X-Nothing: here
Message-ID: <bare@example.test>

A message without From, To, Subject or Date.
"""),
    ("deep", None, 1_700_060_000, b"""\
From: Deep Nest <deep@example.org>
To: alice@example.test
Subject: A subject that is long enough that it had to be
 folded onto a second line by the sender's client
""" + DATE.encode() + b"""\
Message-ID: <deep@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="L1"

--L1
Content-Type: multipart/related; boundary="L2"; type="multipart/alternative"

--L2
Content-Type: multipart/alternative; boundary="L3"

--L3
Content-Type: text/plain; charset=us-ascii
Content-Language: en

deep plain
--L3
Content-Type: text/html; charset=us-ascii
Content-Location: http://example.org/deep.html

<p>deep <img src="cid:img@deep"></p>
--L3--
--L2
Content-Type: image/png
Content-ID: <img@deep>
Content-Transfer-Encoding: base64

""" + PNG.encode() + b"""\
--L2--
--L1
Content-Type: text/calendar; method=REQUEST; charset=utf-8
Content-Disposition: attachment; filename=invite.ics

BEGIN:VCALENDAR
END:VCALENDAR
--L1--
"""),
    ("raw8bit", ["\\Seen"], 1_700_070_000, b"""\
From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.de>
To: alice@example.test
Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln
""" + DATE.encode() + b"""\
Message-ID: <raw8bit@example.de>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9fe.
"""),
    ("big", ["\\Flagged", "\\Seen"], 1_700_080_000, b"""\
From: logs@example.org
To: alice@example.test
Subject: big log
""" + DATE.encode() + b"""\
Message-ID: <big@example.org>

""" + b"".join(b"line %04d of the log, padding padding padding padding\n" % i for i in range(400))),
]
CORPUS = [(k, f, t, m.replace(b"\n", b"\r\n")) for k, f, t, m in CORPUS]
MSGID = {k: re.search(rb"Message-ID: (<[^>]+>)", m).group(1) for k, _, _, m in CORPUS}
