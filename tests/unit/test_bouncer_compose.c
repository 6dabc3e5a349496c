/* DSN composition (RFC 3464): structure, fields, 7-bit and line-length guarantees, the
 * boundary's uniqueness and the handling of hostile text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bouncer/compose.h"
#include "bouncer/text.h"

#define NOW 1764242460ULL     /* Thu, 27 Nov 2025 11:21:00 +0000 */
#define ARRIVAL (NOW - 3600)  /* 10:21:00 */
#define LIFETIME 432000

static const char HEADERS[] = "Received: from client.example.test (127.0.0.1)\r\n"
                              "\tby mx.example.test; Thu, 27 Nov 2025 10:21:00 +0000\r\n"
                              "From: Alice <alice@example.test>\r\n"
                              "To: bob@remote.test\r\n"
                              "Subject: lunch\r\n"
                              "Message-ID: <m1@example.test>\r\n"
                              "\r\n"
                              "BODY-MUST-NOT-APPEAR\r\n";

static struct bouncer_rcpt failed_bob = {
    .address = "bob@remote.test",
    .original = "bob@remote.test",
    .status = "5.1.1",
    .action = "failed",
    .remote_mta = "mx.remote.test[127.0.0.1]",
    .diagnostic = "550 5.1.1 <bob@remote.test>: Recipient address rejected: User unknown",
    .last_attempt = NOW - 60,
};

static struct bouncer_dsn_in base_input(const struct bouncer_rcpt *rcpts, size_t n)
{
    return (struct bouncer_dsn_in){
        .hostname = "mx.example.test",
        .queue_id = "0123456789ABC001",
        .sender = "alice@example.test",
        .arrival_time = ARRIVAL,
        .now = NOW,
        .delay_warning = 14400,
        .max_lifetime = LIFETIME,
        .unique = "0123456789ABC001.A1B2C3",
        .rcpts = rcpts,
        .nrcpts = n,
        .headers = (const uint8_t *)HEADERS,
        .headers_len = sizeof HEADERS - 1,
    };
}

/* ------------------------------------------------------------------ helpers */

static int contains(const struct bouncer_dsn *d, const char *needle)
{
    return memmem(d->data, d->len, needle, strlen(needle)) != NULL;
}

#define assert_contains(d, s)                                                                                    \
    do {                                                                                                         \
        if (!contains((d), (s)))                                                                                 \
            fail_msg("DSN lacks \"%s\":\n%.*s", (s), (int)(d)->len, (d)->data);                                  \
    } while (0)
#define assert_lacks(d, s)                                                                                       \
    do {                                                                                                         \
        if (contains((d), (s)))                                                                                  \
            fail_msg("DSN must not contain \"%s\":\n%.*s", (s), (int)(d)->len, (d)->data);                       \
    } while (0)

/* Every line ends in CRLF (no bare CR or LF) and has at most 998 octets; no NUL. */
static void assert_wire_safe(const struct bouncer_dsn *d)
{
    size_t col = 0;
    assert_true(d->len >= 2);
    assert_memory_equal(d->data + d->len - 2, "\r\n", 2);
    for (size_t i = 0; i < d->len; i++) {
        char c = d->data[i];
        assert_true(c != '\0');
        if (c == '\r') {
            assert_true(i + 1 < d->len && d->data[i + 1] == '\n');
            i++;
            col = 0;
            continue;
        }
        assert_true(c != '\n');
        if (++col > 998)
            fail_msg("line longer than 998 octets at offset %zu", i);
    }
}

/* Bytes [from, to) are all 7-bit. */
static void assert_7bit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            fail_msg("8-bit byte 0x%02x at offset %zu", (unsigned char)p[i], i);
}

static const char *find(const struct bouncer_dsn *d, const char *needle)
{
    const char *p = memmem(d->data, d->len, needle, strlen(needle));
    if (!p)
        fail_msg("no \"%s\" in DSN", needle);
    return p;
}

/* The content of MIME part n (1-based): after its header block, up to the next delimiter. */
static char *part(const struct bouncer_dsn *d, int n)
{
    char delim[100];
    snprintf(delim, sizeof delim, "\r\n--%s", d->boundary);
    const char *p = d->data, *end = d->data + d->len;
    for (int i = 0; i < n; i++) {
        p = memmem(p, (size_t)(end - p), delim, strlen(delim));
        assert_non_null(p);
        p += strlen(delim);
    }
    const char *body = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    assert_non_null(body);
    body += 4;
    const char *stop = memmem(body - 2, (size_t)(end - body + 2), delim, strlen(delim));
    assert_non_null(stop);
    size_t len = stop >= body ? (size_t)(stop - body) : 0;
    char *s = malloc(len + 1);
    memcpy(s, body, len);
    s[len] = '\0';
    return s;
}

/* Header unfolding (RFC 5322 2.2.3): CRLF followed by WSP is removed. */
static char *unfold(const char *s)
{
    char *u = malloc(strlen(s) + 1), *o = u;
    for (; *s; s++) {
        if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t')) {
            s++;
            continue;
        }
        *o++ = *s;
    }
    *o = '\0';
    return u;
}

/* ------------------------------------------------------------------ tests */

static void test_failed_dsn_structure(void **state)
{
    (void)state;
    struct bouncer_dsn_in in = base_input(&failed_bob, 1);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_7bit(d.data, d.len);
    assert_false(d.eightbit);

    /* Top-level header section. */
    const char *end_of_headers = find(&d, "\r\n\r\n");
    assert_true(strncmp(d.data, "Date: Thu, 27 Nov 2025 11:21:00 +0000\r\n", 39) == 0);
    assert_contains(&d, "\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n");
    assert_contains(&d, "\r\nTo: <alice@example.test>\r\n");
    assert_contains(&d, "\r\nSubject: Undelivered Mail Returned to Sender\r\n");
    assert_contains(&d, "\r\nMessage-ID: <0123456789ABC001.A1B2C3@mx.example.test>\r\n");
    assert_contains(&d, "\r\nAuto-Submitted: auto-replied\r\n");
    assert_contains(&d, "\r\nMIME-Version: 1.0\r\n");
    char ct[200];
    snprintf(ct, sizeof ct, "\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
             d.boundary);
    assert_true(find(&d, ct) < end_of_headers);
    assert_true(find(&d, "Auto-Submitted") < end_of_headers);
    assert_true(strlen(d.boundary) > 0 && strlen(d.boundary) <= 70);

    /* Three parts in order, then the close delimiter. */
    const char *p1 = find(&d, "Content-Type: text/plain; charset=us-ascii\r\n");
    const char *p2 = find(&d, "Content-Type: message/delivery-status\r\n");
    const char *p3 = find(&d, "Content-Type: text/rfc822-headers\r\n");
    assert_true(end_of_headers < p1 && p1 < p2 && p2 < p3);
    char close[100];
    snprintf(close, sizeof close, "\r\n--%s--\r\n", d.boundary);
    assert_true(d.len > strlen(close));
    assert_memory_equal(d.data + d.len - strlen(close), close, strlen(close));

    /* Part 1: Postfix-like text naming the recipient and the remote reply. */
    char *human = part(&d, 1);
    assert_non_null(strstr(human, "This is the mail system at host mx.example.test."));
    assert_non_null(strstr(human, "could not\r\nbe delivered to one or more recipients."));
    assert_non_null(strstr(human, "<bob@remote.test>: host mx.remote.test[127.0.0.1] said: 550 5.1.1"));
    assert_non_null(strstr(human, "User unknown"));
    free(human);

    /* Part 2: per-message fields, a blank line, then the recipient's block. */
    char *report = part(&d, 2);
    const char *msgfields = "Reporting-MTA: dns; mx.example.test\r\n"
                            "X-Postmesh-Queue-ID: 0123456789ABC001\r\n"
                            "X-Postmesh-Sender: rfc822; alice@example.test\r\n"
                            "Arrival-Date: Thu, 27 Nov 2025 10:21:00 +0000\r\n"
                            "\r\n";
    assert_true(strncmp(report, msgfields, strlen(msgfields)) == 0);
    const char *block = report + strlen(msgfields);
    assert_true(strncmp(block, "Final-Recipient: rfc822; bob@remote.test\r\n"
                               "Action: failed\r\n"
                               "Status: 5.1.1\r\n"
                               "Remote-MTA: dns; mx.remote.test\r\n",
                        strlen("Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\n"
                               "Status: 5.1.1\r\nRemote-MTA: dns; mx.remote.test\r\n")) == 0);
    char *u = unfold(report);
    assert_non_null(strstr(u, "\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: Recipient address rejected: "
                              "User unknown\r\n"));
    assert_non_null(strstr(u, "\r\nLast-Attempt-Date: Thu, 27 Nov 2025 11:20:00 +0000\r\n"));
    assert_null(strstr(u, "Original-Recipient")); /* same as the final address */
    assert_null(strstr(u, "Will-Retry-Until"));   /* only for delays */
    free(u);
    /* No empty line after the last block: parsers would see an extra, empty block. */
    assert_true(strlen(report) > 4 && strcmp(report + strlen(report) - 4, "\r\n\r\n") != 0);
    free(report);

    /* Part 3: the original header section, and nothing of the body. */
    char *hdrs = part(&d, 3);
    assert_true(strncmp(hdrs, HEADERS, strlen(hdrs)) == 0);
    assert_int_equal(strlen(hdrs), strstr(HEADERS, "\r\n\r\n") + 2 - HEADERS);
    free(hdrs);
    assert_lacks(&d, "BODY-MUST-NOT-APPEAR");
    assert_contains(&d, "Content-Description: Undelivered Message Headers\r\n");
    bouncer_dsn_free(&d);
}

static void test_delay_notice(void **state)
{
    (void)state;
    struct bouncer_rcpt r = {
        .address = "carol@slow.test",
        .original = "team@example.test", /* expanded from an alias */
        .status = "4.4.1",
        .action = "delayed",
        .remote_mta = "",
        .diagnostic = "connect to mx.slow.test[192.0.2.1]:25: Connection refused",
        .last_attempt = NOW - 10,
    };
    struct bouncer_dsn_in in = base_input(&r, 1);
    in.delay_notice = 1;
    in.arrival_time = NOW - 4 * 3600 - 30;
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_contains(&d, "\r\nSubject: Delayed Mail (still being retried)\r\n");
    char *human = part(&d, 1);
    assert_non_null(strstr(human, "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #"));
    assert_non_null(strstr(human, "could not be delivered for more than 4 hour(s).\r\n"));
    assert_non_null(strstr(human, "It will be retried until it is 5 day(s) old.\r\n"));
    assert_non_null(strstr(human, "<carol@slow.test> (expanded from <team@example.test>): connect to"));
    free(human);
    char *raw = part(&d, 2);
    char *report = unfold(raw);
    free(raw);
    assert_non_null(strstr(report, "Final-Recipient: rfc822; carol@slow.test\r\n"
                                   "Original-Recipient: rfc822; team@example.test\r\n"
                                   "Action: delayed\r\n"
                                   "Status: 4.4.1\r\n"));
    /* Not an SMTP reply: a local reason gets its own diagnostic type. */
    assert_non_null(strstr(report, "Diagnostic-Code: X-Postmesh; connect to mx.slow.test[192.0.2.1]:25"));
    assert_null(strstr(report, "Remote-MTA"));
    char want[100];
    snprintf(want, sizeof want, "Will-Retry-Until: %s\r\n", "Tue, 2 Dec 2025 07:20:30 +0000");
    assert_non_null(strstr(report, want));
    free(report);
    bouncer_dsn_free(&d);
}

static void test_several_recipients_and_defaults(void **state)
{
    (void)state;
    struct bouncer_rcpt rs[2] = {
        failed_bob,
        {.address = "dave@remote.test", .status = "bogus", .action = "", .diagnostic = ""},
    };
    struct bouncer_dsn_in in = base_input(rs, 2);
    in.arrival_time = 0; /* unknown: no Arrival-Date */
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    char *report = part(&d, 2);
    assert_null(strstr(report, "Arrival-Date"));
    /* Blocks separated by an empty line; an invalid status and action fall back to the notice type. */
    assert_non_null(strstr(report, "\r\n\r\nFinal-Recipient: rfc822; dave@remote.test\r\nAction: failed\r\n"
                                   "Status: 5.0.0\r\n"));
    const char *dave = strstr(report, "dave@remote.test");
    assert_null(strstr(dave, "Diagnostic-Code")); /* nothing to say */
    assert_null(strstr(dave, "Last-Attempt-Date"));
    free(report);
    char *human = part(&d, 1);
    assert_non_null(strstr(human, "<bob@remote.test>: host"));
    assert_non_null(strstr(human, "<dave@remote.test>: no further details (status unknown)"));
    free(human);
    bouncer_dsn_free(&d);
}

static void test_long_diagnostics_are_folded(void **state)
{
    (void)state;
    /* 3000 characters with spaces, and one 2500-character word. */
    char words[3100], word[2600], diag[5800];
    size_t n = 0;
    while (n < 3000)
        n += (size_t)snprintf(words + n, sizeof words - n, "word%zu ", n);
    words[n - 1] = '\0';
    memset(word, 'x', 2500);
    word[2500] = '\0';
    snprintf(diag, sizeof diag, "550 %s %s", words, word);
    struct bouncer_rcpt r = failed_bob;
    r.diagnostic = diag;
    struct bouncer_dsn_in in = base_input(&r, 1);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d); /* every line <= 998 */
    /* Unfolded, the field carries the whole text; the hard-broken word gains only folds. */
    char *report = part(&d, 2);
    char *u = unfold(report);
    const char *dc = strstr(u, "Diagnostic-Code: smtp; 550 ");
    assert_non_null(dc);
    assert_non_null(strstr(dc, words));
    size_t xs = 0;
    for (const char *p = dc; *p && *p != '\r'; p++)
        xs += *p == 'x';
    assert_int_equal(xs, 2500);
    /* Folding prefers whitespace: the field's lines stay near 78 columns until the long word. */
    const char *field = strstr(report, "Diagnostic-Code:");
    const char *eol = strstr(field, "\r\n");
    assert_true(eol - field <= 78);
    free(u);
    free(report);
    char *human = part(&d, 1);
    assert_non_null(strstr(human, "\r\n    word"));  /* wrapped with an indent */
    free(human);
    bouncer_dsn_free(&d);
}

static void test_boundary_not_in_content(void **state)
{
    (void)state;
    /* Headers that contain the boundary the first attempt would use. */
    const char *hdrs = "Subject: --pm-dsn.U\r\nX-Trap: pm-dsn.U.1\r\n\r\n";
    struct bouncer_dsn_in in = base_input(&failed_bob, 1);
    in.unique = "U";
    in.headers = (const uint8_t *)hdrs;
    in.headers_len = strlen(hdrs);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_string_not_equal(d.boundary, "pm-dsn.U");
    assert_string_not_equal(d.boundary, "pm-dsn.U.1");
    for (int i = 1; i <= 3; i++) {
        char *p = part(&d, i);
        assert_null(strstr(p, d.boundary));
        free(p);
    }
    char *p3 = part(&d, 3);
    assert_string_equal(p3, "Subject: --pm-dsn.U\r\nX-Trap: pm-dsn.U.1\r\n");
    free(p3);
    bouncer_dsn_free(&d);
}

static void test_eight_bit_policy(void **state)
{
    (void)state;
    const char *hdrs = "Subject: caf\xc3\xa9\r\nFrom: j\xc3\xb6rg@example.test\r\n\r\n";
    struct bouncer_rcpt r = failed_bob;
    r.address = "j\xc3\xb6rg+x@b\xc3\xbc" "cher.test";
    r.original = "";
    r.diagnostic = "550 Benutzer unbekannt: \xc3\xbc\xff end";
    struct bouncer_dsn_in in = base_input(&r, 1);
    in.headers = (const uint8_t *)hdrs;
    in.headers_len = strlen(hdrs);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_true(d.eightbit);
    /* Everything before part 3's content is 7-bit; part 3 carries the original bytes. */
    const char *p3 = find(&d, "Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    assert_7bit(d.data, (size_t)(p3 - d.data));
    assert_contains(&d, "\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThis is a MIME");
    assert_contains(&d, "Subject: caf\xc3\xa9\r\n");
    /* RFC 6533 utf-8-addr-xtext for the address; '?' for non-ASCII diagnostics. */
    assert_contains(&d, "Final-Recipient: utf-8; j\\x{F6}rg\\x{2B}x@b\\x{FC}cher.test\r\n");
    assert_contains(&d, "Diagnostic-Code: smtp; 550 Benutzer unbekannt: ?? end\r\n");
    assert_contains(&d, "<j?rg+x@b?cher.test>: host");
    bouncer_dsn_free(&d);
}

static void test_hostile_text_cannot_inject(void **state)
{
    (void)state;
    struct bouncer_rcpt r = failed_bob;
    r.diagnostic = "550 no\r\nBcc: victim@example.test\r\n\r\n--pm-dsn.0123456789ABC001.A1B2C3--";
    r.remote_mta = "evil host\r\nX-Injected: 1";
    r.status = "5.1.1\r\nX-Injected: 2";
    struct bouncer_dsn_in in = base_input(&r, 1);
    in.sender = "alice@example.test>\r\nBcc: victim@example.test";
    in.hostname = "mx.example.test\r\nX-Injected: 3";
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_lacks(&d, "\r\nBcc:");
    assert_lacks(&d, "\r\nX-Injected");
    assert_true(d.to_undisclosed);
    assert_contains(&d, "\r\nTo: undisclosed-recipients:;\r\n");
    assert_contains(&d, "Status: 5.0.0\r\n");
    /* The boundary-looking diagnostic forced another boundary. */
    assert_string_not_equal(d.boundary, "pm-dsn.0123456789ABC001.A1B2C3");
    bouncer_dsn_free(&d);
}

static void test_header_section_normalised(void **state)
{
    (void)state;
    /* Bare LF and CR line ends, a NUL, a 2000-byte line, then the body after a bare LF LF. */
    static char hdrs[4000];
    size_t n = 0;
    n += (size_t)sprintf(hdrs + n, "Subject: one\nX-Two: a\rX-Three: b");
    hdrs[n++] = '\0';
    n += (size_t)sprintf(hdrs + n, "c\r\nX-Long: ");
    memset(hdrs + n, 'L', 2000);
    n += 2000;
    n += (size_t)sprintf(hdrs + n, "\n\nbody\n");
    struct bouncer_dsn_in in = base_input(&failed_bob, 1);
    in.headers = (const uint8_t *)hdrs;
    in.headers_len = n;
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    char *p3 = part(&d, 3);
    assert_true(strncmp(p3, "Subject: one\r\nX-Two: a\r\nX-Three: bc\r\nX-Long: LLL", 48) == 0);
    /* 2008 octets make three lines: two hard folds, each leaving one SP when unfolded. */
    char *u = unfold(p3);
    assert_int_equal(strlen(u), strlen("Subject: one\r\nX-Two: a\r\nX-Three: bc\r\nX-Long: ") + 2000 + 2 + 2);
    assert_null(strstr(p3, "body"));
    free(u);
    free(p3);
    bouncer_dsn_free(&d);

    /* A huge header section is cut at a line end, within the limit. */
    size_t big = (BOUNCER_MAX_HEADERS * 2 / 20) * 20;
    char *many = malloc(big);
    for (size_t i = 0; i < big; i += 20)
        memcpy(many + i, "X-Filler: 123456789\n", 20);
    in.headers = (const uint8_t *)many;
    in.headers_len = big;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    p3 = part(&d, 3);
    assert_true(strlen(p3) <= BOUNCER_MAX_HEADERS);
    assert_true(strlen(p3) > BOUNCER_MAX_HEADERS - 100);
    assert_memory_equal(p3 + strlen(p3) - 21, "X-Filler: 123456789\r\n", 21);
    free(p3);
    free(many);
    bouncer_dsn_free(&d);
}

static void test_no_headers_and_odd_inputs(void **state)
{
    (void)state;
    struct bouncer_dsn_in in = base_input(&failed_bob, 1);
    in.headers = NULL;
    in.headers_len = 0;
    in.unique = "!!";       /* nothing usable: a fixed token still yields a valid boundary */
    in.hostname = NULL;
    in.queue_id = NULL;
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_contains(&d, "MAILER-DAEMON@localhost>");
    assert_lacks(&d, "X-Postmesh-Queue-ID");
    char *p3 = part(&d, 3);
    assert_string_equal(p3, "");
    free(p3);
    bouncer_dsn_free(&d);
}

static void test_text_helpers(void **state)
{
    (void)state;
    char buf[64];
    bouncer_text_date(buf, sizeof buf, 0);
    assert_string_equal(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
    bouncer_text_date(buf, sizeof buf, 951782400);
    assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 +0000");
    bouncer_text_duration(buf, sizeof buf, 432000, 1);
    assert_string_equal(buf, "5 day(s)");
    bouncer_text_duration(buf, sizeof buf, 5400, 1);
    assert_string_equal(buf, "90 minute(s)");
    bouncer_text_duration(buf, sizeof buf, 5400, 0);
    assert_string_equal(buf, "1 hour(s)");
    bouncer_text_duration(buf, sizeof buf, 7, 1);
    assert_string_equal(buf, "7 second(s)");

    /* Text wrapping: breaks at spaces before column 78, continuation indented. */
    struct bouncer_buf b;
    bouncer_buf_init(&b);
    bouncer_text_fold(&b, 0, "aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd eeeeeeeee fffffffff ggggggggg hhhhhhhhh iii", "    ");
    assert_string_equal(b.data, "aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd eeeeeeeee fffffffff ggggggggg\r\n"
                                "    hhhhhhhhh iii");
    bouncer_buf_free(&b);
    /* Header folding keeps the whitespace at the start of the continuation line. */
    bouncer_text_field(&b, "X-Test", "aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd eeeeeeeee fffffffff ggggggggg hhhhhhhhh");
    assert_string_equal(b.data, "X-Test: aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd eeeeeeeee fffffffff ggggggggg\r\n"
                                " hhhhhhhhh\r\n");
    bouncer_buf_free(&b);
    /* Controls become spaces (no header injection), non-ASCII becomes '?'. */
    bouncer_text_field(&b, "X-Test", "a\r\nBcc: x \xc3\xa9\xff");
    assert_string_equal(b.data, "X-Test: a Bcc: x ??\r\n");
    bouncer_buf_free(&b);
}


/* ------------------------------------------------------------------ RFC 3461 parameters */

/* ENVID is Original-Envelope-Id, first of the per-message fields; ORCPT is Original-Recipient,
 * before Final-Recipient, in place of the RCPT address. */
static void test_envid_and_orcpt(void **state)
{
    (void)state;
    struct bouncer_rcpt r = failed_bob;
    r.original = "list@example.test";
    r.orcpt = "rfc822;Bob+Tag@Remote.test";
    struct bouncer_dsn_in in = base_input(&r, 1);
    in.envid = "QQ314159";
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    char *report = part(&d, 2);
    assert_memory_equal(report, "Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; mx.example.test\r\n", 66);
    assert_non_null(strstr(report, "\r\n\r\nOriginal-Recipient: rfc822; Bob+Tag@Remote.test\r\n"
                                   "Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\n"));
    assert_null(strstr(report, "list@example.test")); /* ORCPT wins over the RCPT address */
    free(report);
    bouncer_dsn_free(&d);

    /* Without them: neither field; the RCPT address when it differs, as before. */
    r.orcpt = "";
    in = base_input(&r, 1);
    assert_int_equal(bouncer_compose(&in, &d), 0);
    report = part(&d, 2);
    assert_null(strstr(report, "Original-Envelope-Id"));
    assert_non_null(strstr(report, "Final-Recipient: rfc822; bob@remote.test\r\n"
                                   "Original-Recipient: rfc822; list@example.test\r\n"));
    free(report);
    bouncer_dsn_free(&d);
}

/* RET=FULL: a failure returns the whole message as message/rfc822; otherwise (HDRS, unset)
 * the header section as text/rfc822-headers. */
static void test_ret_full_and_hdrs(void **state)
{
    (void)state;
    struct bouncer_dsn_in in = base_input(&failed_bob, 1);
    in.return_full = 1;
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_contains(&d, "Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n");
    assert_lacks(&d, "text/rfc822-headers");
    char *returned = part(&d, 3);
    assert_string_equal(returned, HEADERS);
    free(returned);
    bouncer_dsn_free(&d);

    in.return_full = 0;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_contains(&d, "Content-Type: text/rfc822-headers\r\n");
    assert_lacks(&d, "message/rfc822");
    assert_lacks(&d, "BODY-MUST-NOT-APPEAR");
    bouncer_dsn_free(&d);
}

/* NOTIFY=SUCCESS: "delivered" (here) and "relayed" (a next hop without DSN) make a success
 * report: its own subject and text, status 2.x.x, no failure wording. */
static void test_success_notice(void **state)
{
    (void)state;
    struct bouncer_rcpt rs[2] = {
        {.address = "carol@example.test", .original = "carol@example.test", .status = "2.0.0",
         .action = "delivered", .diagnostic = "250 2.0.0 delivered to mailbox"},
        {.address = "bob@remote.test", .original = "bob@remote.test", .status = "",
         .action = "relayed", .remote_mta = "mx.remote.test[127.0.0.2]", .diagnostic = "250 2.0.0 Ok"},
    };
    struct bouncer_dsn_in in = base_input(rs, 2);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_wire_safe(&d);
    assert_contains(&d, "\r\nSubject: Successful Mail Delivery Report\r\n");
    assert_lacks(&d, "Undelivered");
    char *human = part(&d, 1);
    assert_non_null(strstr(human, "successfully delivered"));
    assert_non_null(strstr(human, "<carol@example.test>: delivered to mailbox"));
    assert_non_null(strstr(human, "<bob@remote.test>: relayed to a system that does not send delivery notices"));
    assert_null(strstr(human, "sorry"));
    free(human);
    char *report = part(&d, 2);
    assert_non_null(strstr(report, "Final-Recipient: rfc822; carol@example.test\r\nAction: delivered\r\n"
                                   "Status: 2.0.0\r\n"));
    assert_non_null(strstr(report, "Final-Recipient: rfc822; bob@remote.test\r\nAction: relayed\r\n"
                                   "Status: 2.0.0\r\nRemote-MTA: dns; mx.remote.test\r\n"));
    free(report);
    assert_contains(&d, "Content-Type: text/rfc822-headers\r\n");
    bouncer_dsn_free(&d);

    /* A failure among them: the report is a bounce, with both blocks. */
    struct bouncer_rcpt mixed[2] = {rs[0], failed_bob};
    in = base_input(mixed, 2);
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_contains(&d, "\r\nSubject: Undelivered Mail Returned to Sender\r\n");
    assert_contains(&d, "Action: delivered\r\n");
    assert_contains(&d, "Action: failed\r\n");
    bouncer_dsn_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_helpers),
        cmocka_unit_test(test_failed_dsn_structure),
        cmocka_unit_test(test_delay_notice),
        cmocka_unit_test(test_several_recipients_and_defaults),
        cmocka_unit_test(test_long_diagnostics_are_folded),
        cmocka_unit_test(test_boundary_not_in_content),
        cmocka_unit_test(test_eight_bit_policy),
        cmocka_unit_test(test_hostile_text_cannot_inject),
        cmocka_unit_test(test_header_section_normalised),
        cmocka_unit_test(test_no_headers_and_odd_inputs),
        cmocka_unit_test(test_envid_and_orcpt),
        cmocka_unit_test(test_ret_full_and_hdrs),
        cmocka_unit_test(test_success_notice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
