/* SMTP reply parsing from a hostile server, and the body encoder (dot-stuffing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc_dotstuff.h"
#include "smtpc_reply.h"

static enum pm_smtpc_reply_status feed(struct pm_smtpc_reply *r, const char *line, const char **err)
{
    return pm_smtpc_reply_feed(r, line, strlen(line), err);
}

static void test_single_and_multi_line(void **state)
{
    (void)state;
    struct pm_smtpc_reply r;
    const char *err = NULL;
    pm_smtpc_reply_reset(&r);
    assert_int_equal(feed(&r, "250 2.1.0 Ok", &err), PM_SMTPC_REPLY_DONE);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.text, "2.1.0 Ok");

    pm_smtpc_reply_reset(&r);
    assert_int_equal(feed(&r, "250-mx.remote.test", &err), PM_SMTPC_REPLY_MORE);
    assert_int_equal(feed(&r, "250-PIPELINING", &err), PM_SMTPC_REPLY_MORE);
    assert_int_equal(feed(&r, "250 STARTTLS", &err), PM_SMTPC_REPLY_DONE);
    assert_int_equal(r.nlines, 3);
    assert_string_equal(r.text, "mx.remote.test\nPIPELINING\nSTARTTLS");

    pm_smtpc_reply_reset(&r);
    assert_int_equal(feed(&r, "354", &err), PM_SMTPC_REPLY_DONE); /* code alone is allowed */
    assert_int_equal(r.code, 354);
    assert_string_equal(r.text, "");
}

static void test_malformed_replies(void **state)
{
    (void)state;
    struct pm_smtpc_reply r;
    const char *err = NULL;
    const char *bad[] = {"", "25", "abc text", "250x", "2500 ok", "650 nope", "099 no", NULL};
    for (int i = 0; bad[i]; i++) {
        pm_smtpc_reply_reset(&r);
        err = NULL;
        assert_int_equal(feed(&r, bad[i], &err), PM_SMTPC_REPLY_ERROR);
        assert_non_null(err);
    }
    pm_smtpc_reply_reset(&r);
    assert_int_equal(feed(&r, "250-first", &err), PM_SMTPC_REPLY_MORE);
    assert_int_equal(feed(&r, "550 second", &err), PM_SMTPC_REPLY_ERROR); /* code changed mid-reply */
}

static void test_bounds(void **state)
{
    (void)state;
    struct pm_smtpc_reply r;
    const char *err = NULL;
    char *line = malloc(PM_SMTPC_REPLY_LINE_MAX + 2);
    memset(line, 'x', PM_SMTPC_REPLY_LINE_MAX + 1);
    memcpy(line, "250 ", 4);
    line[PM_SMTPC_REPLY_LINE_MAX + 1] = '\0';
    pm_smtpc_reply_reset(&r);
    assert_int_equal(feed(&r, line, &err), PM_SMTPC_REPLY_ERROR);
    line[PM_SMTPC_REPLY_LINE_MAX] = '\0'; /* exactly at the limit: accepted, text truncated to fit */
    pm_smtpc_reply_reset(&r);
    assert_int_equal(feed(&r, line, &err), PM_SMTPC_REPLY_DONE);
    assert_true(r.len < PM_SMTPC_REPLY_TEXT_MAX);
    free(line);

    pm_smtpc_reply_reset(&r);
    enum pm_smtpc_reply_status st = PM_SMTPC_REPLY_MORE;
    int i;
    for (i = 0; i < 1000 && st == PM_SMTPC_REPLY_MORE; i++)
        st = feed(&r, "250-again", &err);
    assert_int_equal(st, PM_SMTPC_REPLY_ERROR);
    assert_int_equal(i, PM_SMTPC_REPLY_MAX_LINES + 1);

    /* Many long lines: the kept text stays bounded. */
    pm_smtpc_reply_reset(&r);
    char big[1500];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "250-", 4);
    for (i = 0; i < 20; i++)
        assert_int_equal(feed(&r, big, &err), PM_SMTPC_REPLY_MORE);
    assert_true(r.len < PM_SMTPC_REPLY_TEXT_MAX);
}

static void test_controls_are_neutralized(void **state)
{
    (void)state;
    struct pm_smtpc_reply r;
    const char *err = NULL;
    pm_smtpc_reply_reset(&r);
    const char line[] = "550 bad\x01\x7f\xc3\xa9\tthing";
    assert_int_equal(pm_smtpc_reply_feed(&r, line, sizeof line - 1, &err), PM_SMTPC_REPLY_DONE);
    assert_string_equal(r.text, "bad???? thing");
    pm_smtpc_reply_reset(&r);
    const char nul[] = "550 a\0b";
    assert_int_equal(pm_smtpc_reply_feed(&r, nul, sizeof nul - 1, &err), PM_SMTPC_REPLY_DONE);
    assert_string_equal(r.text, "a?b");
}

static void test_enhanced_code_and_one_line(void **state)
{
    (void)state;
    struct pm_smtpc_reply r;
    const char *err = NULL;
    char enh[16], one[256];
    pm_smtpc_reply_reset(&r);
    feed(&r, "550-5.1.1 The account does not exist.", &err);
    feed(&r, "550 5.1.1 Please check the address.", &err);
    pm_smtpc_reply_enhanced(&r, enh, sizeof enh);
    assert_string_equal(enh, "5.1.1");
    pm_smtpc_reply_oneline(&r, one, sizeof one);
    assert_string_equal(one, "550 5.1.1 The account does not exist. Please check the address.");

    pm_smtpc_reply_reset(&r);
    feed(&r, "451 5.1.1 class does not match", &err); /* a 4xx cannot carry a 5.x.x code */
    pm_smtpc_reply_enhanced(&r, enh, sizeof enh);
    assert_string_equal(enh, "");
    pm_smtpc_reply_reset(&r);
    feed(&r, "250 2.0.0queued", &err);
    pm_smtpc_reply_enhanced(&r, enh, sizeof enh);
    assert_string_equal(enh, "");
    pm_smtpc_reply_reset(&r);
    feed(&r, "421", &err);
    pm_smtpc_reply_oneline(&r, one, sizeof one);
    assert_string_equal(one, "421");
    pm_smtpc_reply_oneline(&r, one, 3);
    assert_string_equal(one, "42");
}

/* ---------------------------------------------------------------- dot-stuffing */

static char *stuff(const char *body, size_t len, size_t slice)
{
    struct evbuffer *out = evbuffer_new();
    struct pm_smtpc_dotstuff d;
    pm_smtpc_dotstuff_init(&d, (const uint8_t *)body, len);
    int rounds = 0;
    while (!pm_smtpc_dotstuff_next(&d, out, slice))
        assert_true(++rounds < 1000000);
    size_t n = evbuffer_get_length(out);
    char *s = malloc(n + 1);
    evbuffer_remove(out, s, n);
    s[n] = '\0';
    evbuffer_free(out);
    return s;
}

static void test_dot_stuffing(void **state)
{
    (void)state;
    const char body[] = "Subject: x\r\n\r\n.\r\n..two\r\n. space\r\nmid.dle\r\n.";
    char *s = stuff(body, sizeof body - 1, 1 << 20);
    assert_string_equal(s, "Subject: x\r\n\r\n..\r\n...two\r\n.. space\r\nmid.dle\r\n..\r\n.\r\n");
    free(s);
}

static void test_line_ends_are_normalized(void **state)
{
    (void)state;
    /* Bare LF and bare CR end lines too: nothing reaches the wire that a receiver could
     * read as another end of data ("\n.\n", "\r.\r"). */
    const char body[] = "a\nb\rc\r\n.\n.\r.\r\nend";
    char *s = stuff(body, sizeof body - 1, 1 << 20);
    assert_string_equal(s, "a\r\nb\r\nc\r\n..\r\n..\r\n..\r\nend\r\n.\r\n");
    free(s);
    s = stuff("", 0, 100);
    assert_string_equal(s, ".\r\n");
    free(s);
}

static void test_slices_make_the_same_stream(void **state)
{
    (void)state;
    size_t len = 200000;
    char *body = malloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = "ab.\r\n.x\n"[(i * 7 + i / 13) % 8];
    char *whole = stuff(body, len, 1 << 30);
    char *sliced = stuff(body, len, 1);
    assert_string_equal(whole, sliced);
    free(whole);
    free(sliced);
    free(body);
    assert_int_equal(pm_smtpc_body_is_8bit((const uint8_t *)"plain", 5), 0);
    assert_int_equal(pm_smtpc_body_is_8bit((const uint8_t *)"caf\xc3\xa9", 5), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_and_multi_line),
        cmocka_unit_test(test_malformed_replies),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_controls_are_neutralized),
        cmocka_unit_test(test_enhanced_code_and_one_line),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_line_ends_are_normalized),
        cmocka_unit_test(test_slices_make_the_same_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
