/* Test messages for test_imapd_mime.c and test_imapd_section.c, CRLF lines as delivery
 * stores them (msg_lf: bare LF). The expected ENVELOPE / BODYSTRUCTURE / section bytes in
 * those tests are what Dovecot 2.3.19 answered for the same files (dovecot-imapd in
 * preauth mode on a Maildir of these messages), except where a test says otherwise. */
#ifndef IMAPD_MIME_MSGS_H
#define IMAPD_MIME_MSGS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char msg_simple[] =
    "Return-Path: <a@example.org>\r\n"
    "Date: Tue, 1 Dec 2026 10:00:00 +0100\r\n"
    "From: Alice Example <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Cc: \"Carol, C.\" <carol@example.com>, dave@example.com\r\n"
    "Subject: Hello there\r\n"
    "Message-ID: <123@example.org>\r\n"
    "In-Reply-To: <abc@example.net>\r\n"
    "\r\n"
    "Hi Bob,\r\n"
    "how are you?\r\n";

static const char msg_alternative[] =
    "From: alice@example.org\r\n"
    "To: bob@example.net\r\n"
    "Subject: alt\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=C3=A9 time\r\n"
    "--b1\r\n"
    "Content-Type: text/html; charset=\"utf-8\"\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "<p>Cafe time</p>\r\n"
    "\r\n"
    "--b1--\r\n";

static const char msg_mixed[] =
    "From: alice@example.org\r\n"
    "To: bob@example.net\r\n"
    "Subject: report\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=XYZ\r\n"
    "\r\n"
    "--XYZ\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "See attached.\r\n"
    "--XYZ\r\n"
    "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
    "Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-ID: <part2@example.org>\r\n"
    "Content-Description: The report\r\n"
    "Content-Language: en, de\r\n"
    "Content-Location: http://example.org/r.pdf\r\n"
    "\r\n"
    "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n"
    "eJwzUDAwMFAwMTFRMDIwUTA0MlEwNDJRAAAqAwVnCmVuZHN0cmVhbQplbmRvYmoK\r\n"
    "--XYZ--\r\n";

static const char msg_nested[] =
    "From: alice@example.org\r\n"
    "To: bob@example.net\r\n"
    "Subject: Fwd: inner\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "Forwarded below.\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: Zed <zed@example.com>\r\n"
    "To: alice@example.org\r\n"
    "Subject: inner\r\n"
    "Date: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
    "Message-ID: <inner@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "inner text\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<b>inner</b>\r\n"
    "--inner--\r\n"
    "\r\n"
    "--outer--\r\n";

static const char msg_groups[] =
    "From: alice@example.org\r\n"
    "To: Team: \"Bob B\" <bob@example.net>, carol@example.com;, undisclosed-recipients:;\r\n"
    "Cc: Empty Group:;\r\n"
    "Bcc: <@route.example:dave@example.com>\r\n"
    "Subject: groups\r\n"
    "\r\n"
    "body\r\n";

static const char msg_encoded[] =
    "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n"
    "To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>\r\n"
    "Subject: =?UTF-8?B?SGVsbG8gV8O2cmxk?= and =?iso-8859-1?q?caf=E9?=\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=E9\r\n";

static const char msg_missing[] =
    "X-Only: header\r\n"
    "\r\n"
    "just a body\r\n"
    "without headers we know\r\n";

static const char msg_folded[] =
    "From: \"A very long name that goes on and on\" <long@example.org>\r\n"
    "To: first@example.org,\r\n"
    " second@example.org,\r\n"
    "\tthird@example.org\r\n"
    "Subject: This is a long subject line that has been folded\r\n"
    " onto a second line and\t a tab\r\n"
    "Date: Tue, 1 Dec 2026\r\n"
    " 10:00:00 +0100\r\n"
    "Message-ID:\r\n"
    " <folded@example.org>\r\n"
    "\r\n"
    "body\r\n";

static const char msg_lf[] =
    "From: lf@example.org\n"
    "Subject: bare lf\n"
    "Content-Type: multipart/mixed; boundary=L\n"
    "\n"
    "--L\n"
    "Content-Type: text/plain\n"
    "\n"
    "one\n"
    "two\n"
    "--L--\n";

static const char msg_upper[] =
    "From: x@example.org\r\n"
    "Subject: upper\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=UTF-8; Format=Flowed\r\n"
    "Content-Transfer-Encoding: QUOTED-PRINTABLE\r\n"
    "Content-Disposition: INLINE; filename*=utf-8''%E2%82%AC.txt\r\n"
    "\r\n"
    "x\r\n";

static const char msg_quotes[] =
    "From: \"Quote \\\"me\\\" \\\\ back\" <q@example.org>\r\n"
    "Sender: sender@example.org\r\n"
    "Reply-To: reply@example.org\r\n"
    "Subject: \"quoted\" \\ subject\r\n"
    "Message-ID: <q\"1@example.org>\r\n"
    "\r\n"
    "b\r\n";

static const char msg_nobody[] =
    "From: a@example.org\r\n"
    "Subject: no body";

static const char msg_emptymp[] =
    "From: a@example.org\r\n"
    "Content-Type: multipart/mixed; boundary=E\r\n"
    "\r\n"
    "--E--\r\n";

static const char msg_digest[] =
    "From: a@example.org\r\n"
    "Content-Type: multipart/digest; boundary=D\r\n"
    "\r\n"
    "--D\r\n"
    "\r\n"
    "From: d1@example.org\r\n"
    "Subject: d1\r\n"
    "\r\n"
    "one\r\n"
    "--D\r\n"
    "\r\n"
    "From: d2@example.org\r\n"
    "\r\n"
    "two\r\n"
    "--D--\r\n";

static const char msg_dupes[] =
    "Subject: first\r\n"
    "Subject: second\r\n"
    "From: a@example.org\r\n"
    "From: b@example.org\r\n"
    "Date: Tue, 1 Dec 2026 10:00:00 +0100   \r\n"
    "\r\n"
    "x\r\n";

static const char msg_truncmp[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed; boundary=T\r\n"
    "\r\n"
    "preamble\r\n"
    "--T\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "no close delimiter\r\n";

static const char msg_prefixb[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed; boundary=ab\r\n"
    "\r\n"
    "--ab\r\n"
    "Content-Type: multipart/alternative; boundary=abc\r\n"
    "\r\n"
    "--abc\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "one\r\n"
    "--abc--\r\n"
    "epilogue of abc\r\n"
    "--ab\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "--ab--\r\n"
    "outer epilogue\r\n";

static const char msg_lastnested[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed; boundary=o\r\n"
    "\r\n"
    "--o\r\n"
    "Content-Type: multipart/related; boundary=i\r\n"
    "\r\n"
    "--i\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<x>\r\n"
    "--i\r\n"
    "Content-Type: image/png\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--i--\r\n"
    "--o--\r\n";

static const char msg_lastmsg[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed; boundary=o\r\n"
    "\r\n"
    "--o\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "t\r\n"
    "--o\r\n"
    "Content-Type: message/rfc822\r\n"
    "Content-Disposition: attachment\r\n"
    "\r\n"
    "From: c@d\r\n"
    "Content-Type: multipart/alternative; boundary=in\r\n"
    "\r\n"
    "--in\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "a\r\n"
    "--in--\r\n"
    "--o--\r\n";

static const char msg_nomp[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed\r\n"
    "\r\n"
    "no boundary at all\r\n";

static const char msg_wsbound[] =
    "From: a@b\r\n"
    "Content-Type: multipart/mixed; boundary=\"w\"\r\n"
    "\r\n"
    "--w   \r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "x\r\n"
    "--w--   \r\n";

static const char msg_msgtop[] =
    "From: a@b\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: c@d\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "body\r\n";

static const char msg_8bit[] =
    "From: J\303\266rg <j@example.org>\r\n"
    "Subject: gr\303\274\303\237e\r\n"
    "\r\n"
    "x\r\n";

static const char msg_p2047[] =
    "From: a@b\r\n"
    "Content-Type: application/octet-stream; name=\"=?UTF-8?Q?caf=C3=A9.bin?=\"\r\n"
    "Content-Disposition: attachment; filename*0*=UTF-8''caf%C3%A9; filename*1=\".bin\"\r\n"
    "\r\n"
    "x\r\n";

static const char msg_apple[] =
    "From: \"Doe, Jane\" <jane@example.org>\r\n"
    "To: team@example.org\r\n"
    "Subject: Re: [list] meeting\r\n"
    "Date: Wed, 2 Dec 2026 09:15:00 -0800\r\n"
    "Message-Id: <A1B2@example.org>\r\n"
    "In-Reply-To: <prev@example.org>\r\n"
    "References: <a@x> <prev@example.org>\r\n"
    "Mime-Version: 1.0 (Mac OS X Mail 16.0)\r\n"
    "Content-Type: multipart/mixed;\r\n"
    "\tboundary=\"Apple-Mail=_1234\"\r\n"
    "\r\n"
    "--Apple-Mail=_1234\r\n"
    "Content-Type: multipart/alternative;\r\n"
    "\tboundary=\"Apple-Mail=_5678\"\r\n"
    "\r\n"
    "\r\n"
    "--Apple-Mail=_5678\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "Content-Type: text/plain;\r\n"
    "\tcharset=utf-8\r\n"
    "\r\n"
    "Hi=20all,\r\n"
    "see you.\r\n"
    "\r\n"
    "--Apple-Mail=_5678\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "Content-Type: text/html;\r\n"
    "\tcharset=us-ascii\r\n"
    "\r\n"
    "<html><body>Hi all</body></html>\r\n"
    "--Apple-Mail=_5678--\r\n"
    "\r\n"
    "--Apple-Mail=_1234\r\n"
    "Content-Disposition: inline;\r\n"
    "\tfilename=\"photo 1.jpg\"\r\n"
    "Content-Type: image/jpeg;\r\n"
    "\tx-unix-mode=0644;\r\n"
    "\tname=\"photo 1.jpg\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Id: <img1@example.org>\r\n"
    "\r\n"
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0a\r\n"
    "HBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAA\r\n"
    "--Apple-Mail=_1234--\r\n";

static const char msg_signed[] =
    "From: a@example.org\r\n"
    "To: b@example.org\r\n"
    "Subject: signed\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
    " protocol=\"application/pgp-signature\"; boundary=\"sig\"\r\n"
    "\r\n"
    "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
    "--sig\r\n"
    "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Signed text.\r\n"
    "--sig\r\n"
    "Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
    "Content-Description: OpenPGP digital signature\r\n"
    "Content-Disposition: attachment; filename=\"signature.asc\"\r\n"
    "\r\n"
    "-----BEGIN PGP SIGNATURE-----\r\n"
    "iQEzBAEBCAAdFiEE\r\n"
    "-----END PGP SIGNATURE-----\r\n"
    "\r\n"
    "--sig--\r\n";

static const char msg_related[] =
    "From: a@example.org\r\n"
    "Subject: related\r\n"
    "Content-Type: multipart/related; type=\"text/html\"; boundary=r; start=\"<m@x>\"\r\n"
    "Content-Language: en-US\r\n"
    "\r\n"
    "--r\r\n"
    "Content-Type: text/html; charset=ISO-8859-1\r\n"
    "Content-ID: <m@x>\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "<img src=\"cid:i@x\">\r\n"
    "--r\r\n"
    "Content-Type: image/png (a comment)\r\n"
    "Content-ID: <i@x>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: inline\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--r--";

static const char msg_noeol[] =
    "From: a@example.org\r\n"
    "Subject: no final newline\r\n"
    "\r\n"
    "line one\r\n"
    "line two";

static const char msg_calendar[] =
    "From: a@example.org\r\n"
    "Subject: invite\r\n"
    "Content-Type: text/calendar; method=REQUEST; charset=\"utf-8\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "QkVHSU46VkNBTEVOREFSDQpFTkQ6VkNBTEVOREFSDQo=\r\n";

static const char msg_quotedsemi[] =
    "From: a@example.org\r\n"
    "Subject: params\r\n"
    "Content-Type: application/octet-stream; name=\"a;b\\\"c.txt\"; x-empty=\"\"\r\n"
    "Content-Disposition: attachment; filename=\"a;b.txt\"; size=123\r\n"
    "\r\n"
    "x\r\n";

static const char msg_multiaddr[] =
    "From: \"A\" <a@example.org>, b@example.org\r\n"
    "To: undisclosed-recipients: ;\r\n"
    "Cc: =?utf-8?q?J=C3=B6rg?= <j@example.org>, \"=?utf-8?q?X?=\" <x@example.org>\r\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= =?utf-8?q?_aus?=\r\n"
    " Berlin\r\n"
    "Date: 2 Dec 2026 09:15 GMT\r\n"
    "\r\n"
    "x\r\n";

/* A file holding len bytes of data, opened for reading (the test's message). */
static inline int msg_fd(const char *data, size_t len)
{
    char path[] = "/tmp/test_imapd_mime.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    unlink(path);
    if (write(fd, data, len) != (ssize_t)len)
        abort();
    return fd;
}

#endif
