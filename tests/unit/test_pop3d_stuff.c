/* RETR/TOP output: byte-stuffing, CRLF, TOP's header + n lines, chunk boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pop3d/stuff.h"

/* Runs the stuffer over msg in chunks of `chunk` bytes; returns the output (static). */
static const char *run(const char *msg, long lines, size_t chunk)
{
    static char out[8192];
    size_t len = strlen(msg), o = 0;
    struct pop3_stuffer s;
    pop3_stuff_init(&s, lines);
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        assert_true(o + POP3_STUFF_OUT_MAX(n) < sizeof out);
        o += pop3_stuff(&s, msg + i, n, out + o);
    }
    o += pop3_stuff_finish(&s, out + o);
    out[o] = '\0';
    return out;
}

static void test_plain_message(void **state)
{
    (void)state;
    assert_string_equal(run("Subject: x\r\n\r\nhello\r\n", -1, 1000), "Subject: x\r\n\r\nhello\r\n.\r\n");
}

static void test_dot_stuffing(void **state)
{
    (void)state;
    const char *msg = "A: b\r\n\r\n.\r\n..x\r\n.end\r\nmid.dle\r\n.";
    const char *want = "A: b\r\n\r\n..\r\n...x\r\n..end\r\nmid.dle\r\n..\r\n.\r\n";
    for (size_t chunk = 1; chunk <= 8; chunk++)
        assert_string_equal(run(msg, -1, chunk), want);
}

static void test_bare_lf_and_cr(void **state)
{
    (void)state;
    assert_string_equal(run("a\nb\n", -1, 1), "a\r\nb\r\n.\r\n");
    assert_string_equal(run("a\rb\r\n", -1, 1), "a\rb\r\n.\r\n");
    assert_string_equal(run("no newline at end", -1, 3), "no newline at end\r\n.\r\n");
    assert_string_equal(run("ends in cr\r", -1, 2), "ends in cr\r\r\n.\r\n");
    assert_string_equal(run("", -1, 1), ".\r\n");
}

static void test_top(void **state)
{
    (void)state;
    const char *msg = "H: 1\r\nH: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
    for (size_t chunk = 1; chunk <= 7; chunk++) {
        assert_string_equal(run(msg, 0, chunk), "H: 1\r\nH: 2\r\n\r\n.\r\n");
        assert_string_equal(run(msg, 2, chunk), "H: 1\r\nH: 2\r\n\r\nl1\r\n..l2\r\n.\r\n");
        assert_string_equal(run(msg, 99, chunk), "H: 1\r\nH: 2\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n");
    }
    /* no body at all: TOP sends the header */
    assert_string_equal(run("H: 1\r\n", 5, 2), "H: 1\r\n.\r\n");
}

static void test_long_and_8bit_lines(void **state)
{
    (void)state;
    static const char tail[] = "\r\n\xc3\xa9t\xe9\r\n"; /* 8-bit bytes pass untouched */
    char msg[1100], want[1200];
    memset(msg, 'x', 990);
    msg[0] = '.';
    memcpy(msg + 990, tail, sizeof tail); /* with its NUL */
    want[0] = '.';
    memcpy(want + 1, msg, 990 + sizeof tail - 1);
    strcpy(want + 1 + 990 + sizeof tail - 1, ".\r\n");
    assert_string_equal(run(msg, -1, 64), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_message), cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_bare_lf_and_cr), cmocka_unit_test(test_top),
        cmocka_unit_test(test_long_and_8bit_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
