/* Hostile DSN parameters at smtpd (RFC 3461 4): xtext that decodes to NUL, CR/LF or 8-bit
 * bytes (they would end up in a report's header fields), malformed hexchars, the length
 * limits at their edges, and NOTIFY lists with empty items. dsn_params.c is the only gate:
 * what it lets through is stored, passed on and printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/dsn_params.h"

static int decode(const char *in, char *out, size_t size) { return smtpd_xtext_decode(in, strlen(in), out, size); }

static void test_xtext_refuses_controls_8bit_and_bad_hexchars(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "+00", "a+00b", "+0D+0A", "x+0AX-Evil:+201", "+09", "+7F", "+80", "+C3+A9", "+FF",
        "+0d", "+0a", "+c3",  /* RFC 3461: hexchar digits are upper case */
        "+", "a+", "a+4", "+G0", "+4G", "++41",
        "a b", "a=b", "\x01", "\x7f", "\xc3\xa9", "\r\n",
    };
    char out[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (decode(bad[i], out, sizeof out) != -1)
            fail_msg("xtext \"%s\" was accepted as \"%s\"", bad[i], out);
    }
}

static void test_xtext_decodes_what_is_allowed(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(decode("+2B+3D+20", out, sizeof out), 3);
    assert_string_equal(out, "+= ");
    assert_int_equal(decode("+41+7E!~", out, sizeof out), 4);
    assert_string_equal(out, "A~!~");
    /* No room: refused, never truncated. */
    assert_int_equal(decode("abcd", out, 4), -1);
    assert_int_equal(decode("abc", out, 4), 3);
    assert_int_equal(decode("abc", out, 0), -1);
}

static int mail(struct smtpd_dsn_mail *m, const char *key, const char *val)
{
    char reply[128];
    return smtpd_dsn_mail_param(m, key, strlen(key), val, val ? strlen(val) : 0, reply, sizeof reply);
}

static int rcpt(struct smtpd_dsn_rcpt *r, const char *key, const char *val)
{
    char reply[128] = "";
    int rc = smtpd_dsn_rcpt_param(r, key, strlen(key), val, val ? strlen(val) : 0, reply, sizeof reply);
    if (rc < 0)
        assert_memory_equal(reply, "501 5.5.4 ", 10);
    return rc;
}

static void test_envid_limits_and_injection(void **state)
{
    (void)state;
    char v[400];
    struct smtpd_dsn_mail m;
    static const char *const bad[] = {"a+0D+0AX-Evil:+201", "+00", "+C3+A9", "", "+0a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&m, 0, sizeof m);
        assert_int_equal(mail(&m, "ENVID", bad[i]), -1);
        assert_int_equal(m.has_envid, 0);
    }
    memset(&m, 0, sizeof m);
    assert_int_equal(mail(&m, "ENVID", NULL), -1);
    /* 100 characters as sent: the limit, even when they decode to fewer. */
    memset(v, 0, sizeof v);
    for (int i = 0; i < 33; i++)
        memcpy(v + 3 * i, "+2B", 3);
    v[99] = 'x';
    memset(&m, 0, sizeof m);
    assert_int_equal(mail(&m, "envid", v), 1);
    assert_int_equal(strlen(m.envid), 34);
    v[100] = 'y';
    memset(&m, 0, sizeof m);
    assert_int_equal(mail(&m, "ENVID", v), -1);
}

static void test_orcpt_limits_and_injection(void **state)
{
    (void)state;
    struct smtpd_dsn_rcpt r;
    static const char *const bad[] = {
        "rfc822;a+0D+0Ab@x", "rfc822;+00", "rfc822;a+0A", "rfc822;\xc3\xa9@x", "rfc822;+C3+A9@x",
        "rfc822;", ";a@x", "rfc822", "rfc 822;a@x", "rfc822+3B;a@x", "rfc\x01;a@x", "rfc822;a@x+",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&r, 0, sizeof r);
        if (rcpt(&r, "ORCPT", bad[i]) != -1)
            fail_msg("ORCPT \"%s\" was accepted as \"%s\"", bad[i], r.orcpt);
        assert_int_equal(r.has_orcpt, 0);
    }
    /* Exactly 500 characters as sent (RFC 3461 4.2), each an encoded one: 7 + 164 * 3 + 1. */
    char v[600] = "rfc822;";
    for (int i = 0; i < 164; i++)
        strcat(v, "+2B");
    strcat(v, "a");
    assert_int_equal(strlen(v), 500);
    memset(&r, 0, sizeof r);
    assert_int_equal(rcpt(&r, "ORCPT", v), 1);
    assert_int_equal(strlen(r.orcpt), 7 + 165);
    strcat(v, "b");
    memset(&r, 0, sizeof r);
    assert_int_equal(rcpt(&r, "ORCPT", v), -1);
    /* A decoded ';' in the address is the address's own. */
    memset(&r, 0, sizeof r);
    assert_int_equal(rcpt(&r, "orcpt", "rfc822;a+3Bb@x"), 1);
    assert_string_equal(r.orcpt, "rfc822;a;b@x");
}

static void test_notify_lists(void **state)
{
    (void)state;
    static const char *const bad[] = {"",        ",SUCCESS", "SUCCESS,",  "SUCCESS,,FAILURE", "NEVER,NEVER",
                                      "DELAY,NEVER", "SUCCES",  "SUCCESS ", "FAILURE,SUCCESS,FAILURE"};
    struct smtpd_dsn_rcpt r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&r, 0, sizeof r);
        if (rcpt(&r, "NOTIFY", bad[i]) != -1)
            fail_msg("NOTIFY=%s was accepted as %u", bad[i], r.notify);
    }
    memset(&r, 0, sizeof r);
    assert_int_equal(rcpt(&r, "NOTIFY", NULL), -1);
    memset(&r, 0, sizeof r);
    assert_int_equal(rcpt(&r, "notify", "delay,Success,FAILURE"), 1);
    assert_int_equal(r.notify, SMTPD_NOTIFY_SUCCESS | SMTPD_NOTIFY_FAILURE | SMTPD_NOTIFY_DELAY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext_refuses_controls_8bit_and_bad_hexchars),
        cmocka_unit_test(test_xtext_decodes_what_is_allowed),
        cmocka_unit_test(test_envid_limits_and_injection),
        cmocka_unit_test(test_orcpt_limits_and_injection),
        cmocka_unit_test(test_notify_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
