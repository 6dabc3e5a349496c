/* RFC 3461 MAIL/RCPT parameters: RET, ENVID, NOTIFY, ORCPT, xtext, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/dsn_params.h"
#include "smtpd/parser.h"

static char reply[256];

static int mail(const char *arg, struct smtpd_mail_params *p)
{
    struct pm_addr a;
    reply[0] = '\0';
    return smtpd_parse_mail(arg, strlen(arg), &a, p, reply, sizeof reply);
}

static int rcpt(const char *arg, struct smtpd_dsn_rcpt *d)
{
    struct pm_addr a;
    reply[0] = '\0';
    return smtpd_parse_rcpt_dsn(arg, strlen(arg), 0, &a, d, reply, sizeof reply);
}

static void test_xtext(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(smtpd_xtext_decode("abc", 3, out, sizeof out), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(smtpd_xtext_decode("a+2Bb+3Dc", 9, out, sizeof out), 5);
    assert_string_equal(out, "a+b=c");
    assert_int_equal(smtpd_xtext_decode("", 0, out, sizeof out), 0);
    assert_int_equal(smtpd_xtext_decode("a+2", 3, out, sizeof out), -1);   /* short hexchar */
    assert_int_equal(smtpd_xtext_decode("a+", 2, out, sizeof out), -1);
    assert_int_equal(smtpd_xtext_decode("+2b", 3, out, sizeof out), -1);   /* lower-case hex */
    assert_int_equal(smtpd_xtext_decode("+GG", 3, out, sizeof out), -1);
    assert_int_equal(smtpd_xtext_decode("a=b", 3, out, sizeof out), -1);   /* "=" must be encoded */
    assert_int_equal(smtpd_xtext_decode("a b", 3, out, sizeof out), -1);
    assert_int_equal(smtpd_xtext_decode("a\x80", 2, out, sizeof out), -1);
    assert_int_equal(smtpd_xtext_decode("+0D+0A", 6, out, sizeof out), -1); /* no CRLF into headers */
    assert_int_equal(smtpd_xtext_decode("+7F", 3, out, sizeof out), -1);
    assert_int_equal(smtpd_xtext_decode("+20", 3, out, sizeof out), 1);
    assert_int_equal(smtpd_xtext_decode("0123456789abcdef", 16, out, sizeof out), -1); /* no room */
    assert_int_equal(smtpd_xtext_decode("0123456789abcde", 15, out, sizeof out), 15);
}

static void test_mail_ret_envid(void **state)
{
    (void)state;
    struct smtpd_mail_params p;
    assert_int_equal(mail("FROM:<a@b.test>", &p), 0);
    assert_int_equal(p.dsn.ret, SMTPD_DSN_RET_UNSET);
    assert_int_equal(p.dsn.has_envid, 0);
    assert_int_equal(mail("FROM:<a@b.test> RET=FULL", &p), 0);
    assert_int_equal(p.dsn.ret, SMTPD_DSN_RET_FULL);
    assert_int_equal(mail("FROM:<a@b.test> ret=hdrs ENVID=QQ+2B123 SIZE=10", &p), 0);
    assert_int_equal(p.dsn.ret, SMTPD_DSN_RET_HDRS);
    assert_int_equal(p.dsn.has_envid, 1);
    assert_string_equal(p.dsn.envid, "QQ+123");
    assert_int_equal(p.size, 10);
    assert_int_equal(mail("FROM:<> RET=HDRS", &p), 0); /* a DSN's own MAIL may say it */

    assert_int_equal(mail("FROM:<a@b.test> RET=BODY", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Bad RET parameter (FULL or HDRS)");
    assert_int_equal(mail("FROM:<a@b.test> RET", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Bad RET parameter (FULL or HDRS)");
    assert_int_equal(mail("FROM:<a@b.test> RET=", &p), -1);
    assert_int_equal(mail("FROM:<a@b.test> RET=FULL RET=FULL", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Duplicate RET parameter");
    assert_int_equal(mail("FROM:<a@b.test> RET=FULL RET=HDRS", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Duplicate RET parameter");
    assert_int_equal(mail("FROM:<a@b.test> ENVID=x ENVID=y", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Duplicate ENVID parameter");
    assert_int_equal(mail("FROM:<a@b.test> ENVID=", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Bad ENVID parameter");
    assert_int_equal(mail("FROM:<a@b.test> ENVID", &p), -1);
    assert_int_equal(mail("FROM:<a@b.test> ENVID=a+0Ab", &p), -1);
    assert_string_equal(reply, "501 5.5.4 Bad ENVID parameter");
    assert_int_equal(mail("FROM:<a@b.test> ENVID=a=b", &p), -1);

    /* ENVID: at most 100 characters as sent (RFC 3461 4.4). */
    char arg[200];
    snprintf(arg, sizeof arg, "FROM:<a@b.test> ENVID=%0100d", 0);
    assert_int_equal(mail(arg, &p), 0);
    assert_int_equal(strlen(p.dsn.envid), 100);
    snprintf(arg, sizeof arg, "FROM:<a@b.test> ENVID=%0101d", 0);
    assert_int_equal(mail(arg, &p), -1);
    assert_string_equal(reply, "501 5.5.4 Bad ENVID parameter");
}

static void test_rcpt_notify(void **state)
{
    (void)state;
    struct smtpd_dsn_rcpt d;
    assert_int_equal(rcpt("TO:<bob@example.test>", &d), 0);
    assert_int_equal(d.notify, 0);
    assert_int_equal(d.has_orcpt, 0);
    assert_int_equal(rcpt("TO:<bob@example.test> NOTIFY=NEVER", &d), 0);
    assert_int_equal(d.notify, SMTPD_NOTIFY_NEVER);
    assert_int_equal(rcpt("TO:<bob@example.test> NOTIFY=SUCCESS", &d), 0);
    assert_int_equal(d.notify, SMTPD_NOTIFY_SUCCESS);
    assert_int_equal(rcpt("TO:<bob@example.test>  notify=delay,Failure,SUCCESS ", &d), 0);
    assert_int_equal(d.notify, SMTPD_NOTIFY_SUCCESS | SMTPD_NOTIFY_FAILURE | SMTPD_NOTIFY_DELAY);

    static const char *bad[] = {
        "TO:<bob@example.test> NOTIFY=", "TO:<bob@example.test> NOTIFY", "TO:<bob@example.test> NOTIFY=SOMETIMES",
        "TO:<bob@example.test> NOTIFY=NEVER,SUCCESS", "TO:<bob@example.test> NOTIFY=FAILURE,NEVER",
        "TO:<bob@example.test> NOTIFY=SUCCESS,SUCCESS", "TO:<bob@example.test> NOTIFY=SUCCESS,",
        "TO:<bob@example.test> NOTIFY=,SUCCESS", "TO:<bob@example.test> NOTIFY=SUCCESS,,DELAY",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rcpt(bad[i], &d), -1);
        assert_string_equal(reply, "501 5.5.4 Bad NOTIFY parameter (NEVER, or SUCCESS,FAILURE,DELAY)");
    }
    assert_int_equal(rcpt("TO:<bob@example.test> NOTIFY=SUCCESS NOTIFY=DELAY", &d), -1);
    assert_string_equal(reply, "501 5.5.4 Duplicate NOTIFY parameter");
    assert_int_equal(rcpt("TO:<bob@example.test> FOO=BAR", &d), -1);
    assert_string_equal(reply, "555 5.5.4 Unsupported RCPT parameter");
    assert_int_equal(rcpt("TO:<bob@example.test>NOTIFY=NEVER", &d), -1);
}

static void test_rcpt_orcpt(void **state)
{
    (void)state;
    struct smtpd_dsn_rcpt d;
    assert_int_equal(rcpt("TO:<bob@example.test> ORCPT=rfc822;Bob+2Bx@example.test NOTIFY=FAILURE", &d), 0);
    assert_int_equal(d.has_orcpt, 1);
    assert_string_equal(d.orcpt, "rfc822;Bob+x@example.test");
    assert_int_equal(d.notify, SMTPD_NOTIFY_FAILURE);
    static const char *bad[] = {
        "TO:<b@example.test> ORCPT=", "TO:<b@example.test> ORCPT", "TO:<b@example.test> ORCPT=rfc822",
        "TO:<b@example.test> ORCPT=;a@b.test", "TO:<b@example.test> ORCPT=rfc822;",
        "TO:<b@example.test> ORCPT=rfc 822;a@b.test", "TO:<b@example.test> ORCPT=rfc822;a+0D+0A@b.test",
        "TO:<b@example.test> ORCPT=rfc822;a+zz@b.test", "TO:<b@example.test> ORCPT=rf/c;a@b.test",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rcpt(bad[i], &d), -1);
        assert_string_equal(reply, "501 5.5.4 Bad ORCPT parameter");
    }
    assert_int_equal(rcpt("TO:<b@example.test> ORCPT=rfc822;a@b.test ORCPT=rfc822;a@b.test", &d), -1);
    assert_string_equal(reply, "501 5.5.4 Duplicate ORCPT parameter");

    /* ORCPT: at most 500 characters as sent (RFC 3461 4.2). */
    char arg[700], addr[600];
    memset(addr, 'a', 500 - 7);
    addr[500 - 7] = '\0';
    snprintf(arg, sizeof arg, "TO:<b@example.test> ORCPT=rfc822;%s", addr);
    assert_int_equal(rcpt(arg, &d), 0);
    assert_int_equal(strlen(d.orcpt), 500);
    snprintf(arg, sizeof arg, "TO:<b@example.test> ORCPT=rfc822;%sa", addr);
    assert_int_equal(rcpt(arg, &d), -1);
    assert_string_equal(reply, "501 5.5.4 Bad ORCPT parameter");
}

/* The pure entry points: not ours is 0, with nothing touched. */
static void test_not_ours(void **state)
{
    (void)state;
    struct smtpd_dsn_mail m = {0};
    struct smtpd_dsn_rcpt r = {0};
    assert_int_equal(smtpd_dsn_mail_param(&m, "NOTIFY", 6, "NEVER", 5, reply, sizeof reply), 0);
    assert_int_equal(smtpd_dsn_rcpt_param(&r, "RET", 3, "FULL", 4, reply, sizeof reply), 0);
    assert_int_equal(smtpd_dsn_mail_param(&m, "RETX", 4, "FULL", 4, reply, sizeof reply), 0);
    assert_int_equal(m.ret, 0);
    assert_int_equal(r.notify, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext),       cmocka_unit_test(test_mail_ret_envid), cmocka_unit_test(test_rcpt_notify),
        cmocka_unit_test(test_rcpt_orcpt),  cmocka_unit_test(test_not_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
