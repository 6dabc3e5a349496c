/* The RFC 3461 values in a report, when what reaches the bouncer is hostile: smtpd refuses
 * CR/LF, NUL and 8-bit bytes in ENVID and ORCPT, but the bouncer takes them from a job and
 * must not trust that (header injection into the report, 8-bit fields). Also the sizes:
 * many recipients with a 500-character ORCPT each, and an addr-type longer than usual. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bouncer/compose.h"

static const char HEADERS[] = "From: Alice <alice@example.test>\r\nSubject: s\r\n\r\nbody\r\n";

static struct bouncer_dsn_in input(const struct bouncer_rcpt *r, size_t n)
{
    return (struct bouncer_dsn_in){
        .hostname = "mx.example.test",
        .queue_id = "0123456789ABC001",
        .sender = "alice@example.test",
        .arrival_time = 1764242460ULL - 60,
        .now = 1764242460ULL,
        .max_lifetime = 3600,
        .unique = "0123456789ABC001.X",
        .rcpts = r,
        .nrcpts = n,
        .headers = (const uint8_t *)HEADERS,
        .headers_len = sizeof HEADERS - 1,
    };
}

/* CRLF only, lines of at most 998 octets, 7-bit everywhere (nothing here is 8-bit). */
static void assert_clean(const struct bouncer_dsn *d)
{
    size_t col = 0;
    for (size_t i = 0; i < d->len; i++) {
        unsigned char c = (unsigned char)d->data[i];
        if (c == 0 || c >= 0x80)
            fail_msg("byte 0x%02x at %zu", c, i);
        if (c == '\r') {
            if (i + 1 >= d->len || d->data[i + 1] != '\n')
                fail_msg("bare CR at %zu", i);
            i++;
            col = 0;
            continue;
        }
        if (c == '\n')
            fail_msg("bare LF at %zu", i);
        if (++col > 998)
            fail_msg("line over 998 octets at %zu", i);
    }
}

/* A line of the report that starts with s (after CRLF): a header field of its own. */
static int has_line(const struct bouncer_dsn *d, const char *s)
{
    char needle[128];
    snprintf(needle, sizeof needle, "\r\n%s", s);
    return memmem(d->data, d->len, needle, strlen(needle)) != NULL;
}

static void test_crlf_in_envid_and_orcpt_is_no_header(void **state)
{
    (void)state;
    struct bouncer_rcpt r = {.address = "bob@example.test", .original = "bob@example.test", .status = "2.0.0",
                             .action = "delivered",
                             .orcpt = "rfc822;bob@x\r\nX-Injected-Orcpt: 1\r\n\r\n--b\r\nContent-Type: text/html"};
    struct bouncer_dsn_in in = input(&r, 1);
    in.envid = "id\r\nX-Injected-Envid: 1\n\rFinal-Recipient: rfc822; evil@x\0";
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_clean(&d);
    assert_false(has_line(&d, "X-Injected-Orcpt"));
    assert_false(has_line(&d, "X-Injected-Envid"));
    assert_false(has_line(&d, "Final-Recipient: rfc822; evil@x"));
    assert_false(has_line(&d, "Content-Type: text/html"));
    bouncer_dsn_free(&d);
}

static void test_8bit_envid_and_orcpt_are_made_7bit(void **state)
{
    (void)state;
    struct bouncer_rcpt r = {.address = "bob@example.test", .status = "5.1.1", .action = "failed",
                             .orcpt = "rfc822;b\xc3\xa9\x62@x\xff"};
    struct bouncer_dsn_in in = input(&r, 1);
    in.envid = "\xc3\xa9nv\x80";
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_clean(&d);
    assert_true(has_line(&d, "Original-Envelope-Id: ?nv?\r\n"));
    assert_true(has_line(&d, "Original-Recipient: rfc822; b?b@x?\r\n"));
    bouncer_dsn_free(&d);
}

/* The addr-type is reported as given, whatever its length (an atom; smtpd bounds the whole
 * ORCPT at 500 characters). */
static void test_long_addr_type_is_kept_whole(void **state)
{
    (void)state;
    char orcpt[200];
    snprintf(orcpt, sizeof orcpt, "%s;bob@x", "x-a-very-long-address-type-name-of-forty-chars");
    struct bouncer_rcpt r = {.address = "bob@example.test", .status = "5.1.1", .action = "failed", .orcpt = orcpt};
    struct bouncer_dsn_in in = input(&r, 1);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    if (!has_line(&d, "Original-Recipient: x-a-very-long-address-type-name-of-forty-chars; bob@x\r\n"))
        fail_msg("addr-type cut:\n%.*s", (int)d.len, d.data);
    bouncer_dsn_free(&d);
}

/* 1000 recipients, each with a 500-character ORCPT: one report, every block there. */
static void test_many_long_orcpts(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char orcpt[N][520], addr[N][64];
    static struct bouncer_rcpt r[N];
    for (int i = 0; i < N; i++) {
        snprintf(addr[i], sizeof addr[i], "rcpt%04d@example.test", i);
        int n = snprintf(orcpt[i], sizeof orcpt[i], "rfc822;%04d-", i);
        memset(orcpt[i] + n, 'a', 500 - (size_t)n - 2);
        memcpy(orcpt[i] + 498, "@x", 3);
        r[i] = (struct bouncer_rcpt){.address = addr[i], .status = "2.0.0", .action = "relayed", .orcpt = orcpt[i]};
    }
    struct bouncer_dsn_in in = input(r, N);
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_clean(&d);
    size_t blocks = 0;
    for (const char *p = d.data; (p = memmem(p, d.len - (size_t)(p - d.data), "\r\nAction: relayed\r\n", 19)); p++)
        blocks++;
    assert_int_equal(blocks, N);
    /* Folded before the long address (legal): unfolded, it is the ORCPT as given. */
    char *u = malloc(d.len + 1);
    size_t k = 0;
    for (size_t i = 0; i < d.len; i++) {
        if (d.data[i] == '\r' && i + 2 < d.len && d.data[i + 1] == '\n' && d.data[i + 2] == ' ')
            i++;
        else
            u[k++] = d.data[i];
    }
    u[k] = '\0';
    assert_non_null(strstr(u, "\r\nOriginal-Recipient: rfc822; 0999-aaaa"));
    assert_non_null(strstr(u, "aaaa@x\r\nFinal-Recipient: rfc822; rcpt0999@example.test\r\n"));
    free(u);
    assert_true(d.len < 2 * 1024 * 1024); /* about 600 bytes a recipient */
    bouncer_dsn_free(&d);
}

/* One report for a failure and an owed success notice (queue: one DSN per message): the
 * human part does not list the delivered recipient as undeliverable, and says what is
 * attached (RET=FULL: the message, not its headers). */
static void test_mixed_report_tells_people_the_truth(void **state)
{
    (void)state;
    struct bouncer_rcpt r[2] = {
        {.address = "gone@remote.test", .status = "5.1.1", .action = "failed", .remote_mta = "mx.remote.test",
         .diagnostic = "550 5.1.1 no such user"},
        {.address = "carol@example.test", .status = "2.0.0", .action = "delivered",
         .diagnostic = "2.0.0 delivered to maildir"},
    };
    struct bouncer_dsn_in in = input(r, 2);
    in.return_full = 1;
    struct bouncer_dsn d;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_clean(&d);
    assert_true(has_line(&d, "Subject: Undelivered Mail Returned to Sender\r\n"));
    assert_true(has_line(&d, "<gone@remote.test>: host mx.remote.test said: 550 5.1.1 no such user\r\n"));
    assert_true(has_line(&d, "<carol@example.test>: delivered to mailbox\r\n"));
    assert_false(has_line(&d, "<carol@example.test>: 2.0.0"));
    assert_non_null(memmem(d.data, d.len, "recipients. It is attached below.", 33));
    assert_true(has_line(&d, "Content-Type: message/rfc822\r\n"));
    bouncer_dsn_free(&d);
    in.return_full = 0;
    assert_int_equal(bouncer_compose(&in, &d), 0);
    assert_non_null(memmem(d.data, d.len, "recipients. Its headers are attached below.", 43));
    bouncer_dsn_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crlf_in_envid_and_orcpt_is_no_header),
        cmocka_unit_test(test_8bit_envid_and_orcpt_are_made_7bit),
        cmocka_unit_test(test_long_addr_type_is_kept_whole),
        cmocka_unit_test(test_many_long_orcpts),
        cmocka_unit_test(test_mixed_report_tells_people_the_truth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
