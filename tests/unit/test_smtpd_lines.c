/* smtpd line assembly and the DATA decoder: every split of the input gives the same result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd/data.h"
#include "smtpd/lines.h"

/* Feeds s to a fresh scanner in chunks of size step; returns the status of the first
 * complete line and its length in *linelen. */
static enum smtpd_line_status scan(const char *s, size_t n, size_t step, size_t max, size_t *linelen)
{
    struct smtpd_linescan st;
    smtpd_linescan_reset(&st);
    size_t off = 0;
    while (off < n) {
        size_t chunk = n - off < step ? n - off : step, used;
        enum smtpd_line_status r = smtpd_linescan_feed(&st, s + off, chunk, max, &used);
        assert_true(used <= chunk);
        off += used;
        if (r != SMTPD_LINE_MORE) {
            *linelen = st.seen;
            return r;
        }
        assert_int_equal(used, chunk);
    }
    *linelen = st.seen;
    return SMTPD_LINE_MORE;
}

static void test_lines_split_anywhere(void **state)
{
    (void)state;
    const char *s = "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n";
    for (size_t step = 1; step <= strlen(s); step++) {
        size_t len = 0;
        assert_int_equal(scan(s, strlen(s), step, 512, &len), SMTPD_LINE_DONE);
        assert_int_equal(len, 22);
    }
    size_t len;
    assert_int_equal(scan("NOOP", 4, 2, 512, &len), SMTPD_LINE_MORE);
    assert_int_equal(len, 4);
    assert_int_equal(smtpd_line_strip("NOOP\r\n", 6), 4);
    assert_int_equal(smtpd_line_strip("NOOP\n", 5), 4);
    assert_int_equal(smtpd_line_strip("NOOP", 4), 4);
}

static void test_lines_limit(void **state)
{
    (void)state;
    char buf[2000];
    /* 512 octets including CRLF is the longest acceptable command line. */
    memset(buf, 'a', 510);
    memcpy(buf + 510, "\r\n", 2);
    size_t len;
    assert_int_equal(scan(buf, 512, 7, 512, &len), SMTPD_LINE_DONE);
    memset(buf, 'a', 511);
    memcpy(buf + 511, "\r\n", 2);
    assert_int_equal(scan(buf, 513, 7, 512, &len), SMTPD_LINE_TOO_LONG);
    /* An endless line stays MORE with overflow set: the caller discards as it goes. */
    struct smtpd_linescan st;
    smtpd_linescan_reset(&st);
    size_t used;
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < 100; i++)
        assert_int_equal(smtpd_linescan_feed(&st, buf, sizeof buf, 512, &used), SMTPD_LINE_MORE);
    assert_true(st.overflow);
    assert_int_equal(smtpd_linescan_feed(&st, "x\r\nNOOP\r\n", 9, 512, &used), SMTPD_LINE_TOO_LONG);
    assert_int_equal(used, 3);
    smtpd_linescan_reset(&st);
    assert_int_equal(smtpd_linescan_feed(&st, "NOOP\r\n", 6, 512, &used), SMTPD_LINE_DONE);
}

struct decoded {
    enum smtpd_data_status st;
    char out[4096];
    size_t outlen, consumed;
    struct smtpd_data d;
};

/* Decodes in chunks of size step, as the session does with socket reads. */
static void decode(const char *in, size_t n, size_t step, struct decoded *r)
{
    smtpd_data_init(&r->d, 1000);
    r->outlen = r->consumed = 0;
    r->st = SMTPD_DATA_MORE;
    char tmp[4096 + 2];
    while (r->consumed < n && r->st == SMTPD_DATA_MORE) {
        size_t chunk = n - r->consumed < step ? n - r->consumed : step, o, used;
        r->st = smtpd_data_feed(&r->d, in + r->consumed, chunk, tmp, &o, &used);
        assert_true(o <= chunk + 2);
        memcpy(r->out + r->outlen, tmp, o);
        r->outlen += o;
        r->consumed += used;
    }
}

static void expect(const char *in, size_t n, enum smtpd_data_status st, const char *out, size_t consumed)
{
    for (size_t step = 1; step <= n; step++) {
        struct decoded r;
        decode(in, n, step, &r);
        if (r.st != st)
            fail_msg("step %zu: status %d, expected %d", step, r.st, st);
        if (out) {
            assert_int_equal(r.outlen, strlen(out));
            assert_memory_equal(r.out, out, r.outlen);
        }
        if (consumed)
            assert_int_equal(r.consumed, consumed);
    }
}

#define S(x) x, sizeof(x) - 1

static void test_data_unstuffing(void **state)
{
    (void)state;
    expect(S("Subject: x\r\n\r\nbody\r\n.\r\n"), SMTPD_DATA_END, "Subject: x\r\n\r\nbody\r\n", 0);
    expect(S(".\r\n"), SMTPD_DATA_END, "", 3);
    expect(S("..leading dot\r\n...\r\n.\r\nNEXT"), SMTPD_DATA_END, ".leading dot\r\n..\r\n", 23);
    /* ".x" without doubling: RFC 5321 4.5.2 deletes the first period anyway. */
    expect(S(".x\r\n.\r\n"), SMTPD_DATA_END, "x\r\n", 0);
    /* Not the end: a dot inside a line, or a line starting with ".." */
    expect(S("a.\r\n..\r\n"), SMTPD_DATA_MORE, "a.\r\n.\r\n", 0);
    /* 8-bit octets pass through untouched. */
    expect(S("\xc3\xa4\xff\r\n.\r\n"), SMTPD_DATA_END, "\xc3\xa4\xff\r\n", 0);
}

static void test_data_smuggling(void **state)
{
    (void)state;
    /* Only CRLF.CRLF ends a message: every other newline form is refused on sight. */
    expect(S("a\n.\nMAIL FROM:<x@y>\r\n.\r\n"), SMTPD_DATA_BARE_LF, NULL, 2);
    expect(S("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n"), SMTPD_DATA_BARE_LF, NULL, 5);
    expect(S("a\r\n.\rMAIL FROM:<x@y>\r\n"), SMTPD_DATA_BARE_CR, NULL, 6);
    expect(S("a\n.\r\n"), SMTPD_DATA_BARE_LF, NULL, 2);
    expect(S("a\r.\r\n"), SMTPD_DATA_BARE_CR, NULL, 0);
    expect(S("a\r\r\n.\r\n"), SMTPD_DATA_BARE_CR, NULL, 0);
    expect(S("\n"), SMTPD_DATA_BARE_LF, NULL, 1);
}

static void test_data_limits(void **state)
{
    (void)state;
    static char big[3000];
    /* A 1000-octet line (CRLF included) is fine, 1001 is flagged. */
    memset(big, 'x', 998);
    memcpy(big + 998, "\r\n.\r\n", 5);
    struct decoded r;
    decode(big, 1003, 97, &r);
    assert_int_equal(r.st, SMTPD_DATA_END);
    assert_false(r.d.long_line);
    memset(big, 'x', 999);
    memcpy(big + 999, "\r\n.\r\n", 5);
    decode(big, 1004, 97, &r);
    assert_int_equal(r.st, SMTPD_DATA_END);
    assert_true(r.d.long_line);
    /* NUL octets are remembered, the message still ends normally. */
    decode("a\0b\r\n.\r\n", 8, 3, &r);
    assert_int_equal(r.st, SMTPD_DATA_END);
    assert_true(r.d.nul);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_split_anywhere), cmocka_unit_test(test_lines_limit),
        cmocka_unit_test(test_data_unstuffing),      cmocka_unit_test(test_data_smuggling),
        cmocka_unit_test(test_data_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
