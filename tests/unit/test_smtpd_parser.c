/* smtpd command parser: verbs, arguments, MAIL/RCPT parameters and exact error replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/parser.h"

static struct smtpd_command parse(const char *s)
{
    struct smtpd_command c;
    smtpd_parse_command(s, strlen(s), &c);
    return c;
}

static void test_verbs(void **state)
{
    (void)state;
    struct smtpd_command c = parse("EHLO client.example");
    assert_int_equal(c.verb, SMTPD_CMD_EHLO);
    assert_int_equal(c.arglen, 14);
    assert_memory_equal(c.arg, "client.example", 14);
    assert_int_equal(parse("ehlo x").verb, SMTPD_CMD_EHLO);
    assert_int_equal(parse("MaIl FROM:<a@b.test>").verb, SMTPD_CMD_MAIL);
    assert_int_equal(parse("DATA").verb, SMTPD_CMD_DATA);
    c = parse("NOOP   ");
    assert_int_equal(c.verb, SMTPD_CMD_NOOP);
    assert_int_equal(c.arglen, 0);              /* ...and trailing blanks are trimmed */
    assert_int_equal(parse("STARTTLS").verb, SMTPD_CMD_STARTTLS);
    assert_int_equal(parse("AUTH PLAIN AGFsaWNlAHNlY3JldA==").verb, SMTPD_CMD_AUTH);
    assert_int_equal(parse("QUIT").verb, SMTPD_CMD_QUIT);
    assert_int_equal(parse("VRFY bob").verb, SMTPD_CMD_VRFY);
    assert_int_equal(parse("HELP").verb, SMTPD_CMD_HELP);
    assert_int_equal(parse("RSET").verb, SMTPD_CMD_RSET);
    assert_int_equal(parse("RCPT TO:<x@y.test>").verb, SMTPD_CMD_RCPT);
    assert_int_equal(parse("HELO x").verb, SMTPD_CMD_HELO);
    assert_int_equal(parse("ETRN @example.net").verb, SMTPD_CMD_ETRN);
}

static void test_unknown_and_hostile(void **state)
{
    (void)state;
    assert_int_equal(parse("").verb, SMTPD_CMD_UNKNOWN);
    assert_int_equal(parse("MAILFROM:<a@b>").verb, SMTPD_CMD_UNKNOWN);
    assert_int_equal(parse("EHL").verb, SMTPD_CMD_UNKNOWN);
    assert_int_equal(parse("XEXCH50 1 2").verb, SMTPD_CMD_UNKNOWN);
    assert_int_equal(parse("BDAT 100 LAST").verb, SMTPD_CMD_BDAT);
    assert_int_equal(parse("BDATX 100").verb, SMTPD_CMD_UNKNOWN);
    assert_int_equal(parse("GET / HTTP/1.0").verb, SMTPD_CMD_FORBIDDEN);
    assert_int_equal(parse("POST /x HTTP/1.1").verb, SMTPD_CMD_FORBIDDEN);
    assert_int_equal(parse("CONNECT a:25 HTTP/1.0").verb, SMTPD_CMD_FORBIDDEN);
    struct smtpd_command c;
    smtpd_parse_command("RCPT TO:<a@b>\0<c@d>", 20, &c);
    assert_int_equal(c.verb, SMTPD_CMD_BADCHAR);
    assert_int_equal(parse("RSET\rQUIT").verb, SMTPD_CMD_BADCHAR);
    assert_int_equal(parse("NOOP \x1b[2J").verb, SMTPD_CMD_BADCHAR);
}

static int mail(const char *arg, struct pm_addr *a, struct smtpd_mail_params *p, char *reply)
{
    return smtpd_parse_mail(arg, strlen(arg), a, p, reply, 256);
}

static void test_mail(void **state)
{
    (void)state;
    struct pm_addr a;
    struct smtpd_mail_params p;
    char reply[256];
    assert_int_equal(mail("FROM:<alice@example.test>", &a, &p, reply), 0);
    assert_string_equal(a.address, "alice@example.test");
    assert_false(p.has_size);
    assert_int_equal(mail("from: <alice@example.test>", &a, &p, reply), 0);
    assert_int_equal(mail("FROM:<>", &a, &p, reply), 0);
    assert_true(a.is_null);
    assert_int_equal(mail("FROM:<a@b.test> SIZE=12345 BODY=8BITMIME", &a, &p, reply), 0);
    assert_true(p.has_size);
    assert_int_equal(p.size, 12345);
    assert_true(p.body_8bit);
    assert_int_equal(mail("FROM:<a@b.test> SIZE=99999999999999999999999999", &a, &p, reply), 0);
    assert_int_equal(p.size, ~0ULL);
    assert_int_equal(mail("FROM:<a@b.test> BODY=7BIT AUTH=<>", &a, &p, reply), 0);
    assert_int_equal(mail("FROM:<j\xc3\xb6rg@b.test> SMTPUTF8", &a, &p, reply), 0);
    assert_true(p.smtputf8);
    assert_true(a.is_utf8);

    assert_int_equal(mail("FROM:<j\xc3\xb6rg@b.test>", &a, &p, reply), -1);
    assert_memory_equal(reply, "553 5.6.7 ", 10);
    assert_int_equal(mail("FROM:alice@example.test", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Syntax: MAIL FROM:<address>");
    assert_int_equal(mail("TO:<a@b.test>", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Syntax: MAIL FROM:<address>");
    assert_int_equal(mail("FROM:<a@b.test> SIZE=abc", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Bad SIZE parameter");
    assert_int_equal(mail("FROM:<a@b.test> SIZE=1 SIZE=2", &a, &p, reply), -1);
    assert_int_equal(mail("FROM:<a@b.test> BODY=BINARYMIME", &a, &p, reply), -1);
    assert_string_equal(reply, "555 5.5.4 BODY=BINARYMIME not supported"); /* not offered */
    assert_int_equal(mail("FROM:<a@b.test> BODY=9BIT", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Bad BODY parameter");
    assert_int_equal(mail("FROM:<a@b.test> XRET=FULL", &a, &p, reply), -1);
    assert_string_equal(reply, "555 5.5.4 Unsupported MAIL parameter");
    assert_int_equal(mail("FROM:<a@b.test>SIZE=1", &a, &p, reply), -1);
    assert_memory_equal(reply, "501 5.5.4", 9);
    assert_int_equal(mail("FROM:<a@b..test>", &a, &p, reply), -1);
    assert_memory_equal(reply, "501 5.1.7 ", 10);
}

/* RFC 8689 2: REQUIRETLS is a keyword with no value, given once; that the session is TLS is
 * the envelope's check (it knows the session). */
static void test_mail_requiretls(void **state)
{
    (void)state;
    struct pm_addr a;
    struct smtpd_mail_params p;
    char reply[256];
    assert_int_equal(mail("FROM:<a@b.test>", &a, &p, reply), 0);
    assert_false(p.requiretls);
    assert_int_equal(mail("FROM:<a@b.test> REQUIRETLS", &a, &p, reply), 0);
    assert_true(p.requiretls);
    assert_int_equal(mail("FROM:<a@b.test> requiretls", &a, &p, reply), 0);
    assert_true(p.requiretls);
    /* With the others, in any order; the null sender may ask for it too (RFC 8689 5). */
    assert_int_equal(mail("FROM:<> REQUIRETLS RET=HDRS", &a, &p, reply), 0);
    assert_true(p.requiretls && a.is_null);
    assert_int_equal(p.dsn.ret, SMTPD_DSN_RET_HDRS);
    assert_int_equal(mail("FROM:<a@b.test> SIZE=10 REQUIRETLS BODY=8BITMIME ENVID=x", &a, &p, reply), 0);
    assert_true(p.requiretls && p.body_8bit && p.has_size && p.dsn.has_envid);
    /* A value, a repeat, a look-alike. */
    assert_int_equal(mail("FROM:<a@b.test> REQUIRETLS=YES", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Bad REQUIRETLS parameter");
    assert_int_equal(mail("FROM:<a@b.test> REQUIRETLS=", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Bad REQUIRETLS parameter");
    assert_int_equal(mail("FROM:<a@b.test> REQUIRETLS REQUIRETLS", &a, &p, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Bad REQUIRETLS parameter");
    assert_int_equal(mail("FROM:<a@b.test> REQUIRETLSX", &a, &p, reply), -1);
    assert_string_equal(reply, "555 5.5.4 Unsupported MAIL parameter");
    assert_int_equal(mail("FROM:<a@b.test> REQUIRE", &a, &p, reply), -1);
    assert_string_equal(reply, "555 5.5.4 Unsupported MAIL parameter");
    /* The next MAIL starts from nothing. */
    assert_int_equal(mail("FROM:<a@b.test>", &a, &p, reply), 0);
    assert_false(p.requiretls);
}

static int rcpt(const char *arg, int utf8, struct pm_addr *a, char *reply)
{
    return smtpd_parse_rcpt(arg, strlen(arg), utf8, a, reply, 256);
}

static void test_rcpt(void **state)
{
    (void)state;
    struct pm_addr a;
    char reply[256];
    assert_int_equal(rcpt("TO:<bob@example.test>", 0, &a, reply), 0);
    assert_string_equal(a.domain, "example.test");
    assert_int_equal(rcpt("to: <bob@example.test>  ", 0, &a, reply), 0);
    assert_int_equal(rcpt("TO:<Postmaster>", 0, &a, reply), 0);
    assert_string_equal(a.domain, "");
    assert_int_equal(rcpt("TO:<>", 0, &a, reply), -1);
    assert_memory_equal(reply, "501 5.1.3 ", 10);
    assert_int_equal(rcpt("TO:<bob@example.test> XNOTIFY=NEVER", 0, &a, reply), -1);
    assert_string_equal(reply, "555 5.5.4 Unsupported RCPT parameter");
    assert_int_equal(rcpt("TO:<user%remote.test@example.test>", 0, &a, reply), -1);
    assert_memory_equal(reply, "553 5.7.1 ", 10);
    assert_int_equal(rcpt("TO:<@example.test:user@remote.test>", 0, &a, reply), -1);
    assert_memory_equal(reply, "553 5.7.1 ", 10);
    assert_int_equal(rcpt("TO:<b\xc3\xb6@example.test>", 0, &a, reply), -1);
    assert_memory_equal(reply, "553 5.6.7 ", 10);
    assert_int_equal(rcpt("TO:<b\xc3\xb6@example.test>", 1, &a, reply), 0);
    assert_int_equal(rcpt("FROM:<bob@example.test>", 0, &a, reply), -1);
    assert_string_equal(reply, "501 5.5.4 Syntax: RCPT TO:<address>");
}

static void test_helo(void **state)
{
    (void)state;
    assert_true(smtpd_helo_valid("client.example", 14));
    assert_true(smtpd_helo_valid("[192.0.2.1]", 11));
    assert_false(smtpd_helo_valid("", 0));
    assert_false(smtpd_helo_valid("two words", 9));
    char big[300];
    memset(big, 'a', sizeof big);
    assert_false(smtpd_helo_valid(big, sizeof big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs), cmocka_unit_test(test_unknown_and_hostile), cmocka_unit_test(test_mail),
        cmocka_unit_test(test_mail_requiretls),
        cmocka_unit_test(test_rcpt),  cmocka_unit_test(test_helo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
