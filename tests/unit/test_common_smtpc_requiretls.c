/* The shared SMTP client's REQUIRETLS (RFC 8689): the MAIL FROM parameter only over TLS to a
 * server that offers it, a server that does not given up with 5.7.30 before any envelope
 * goes out, and the null sender's notice passed on with REQUIRETLS only where it can be. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtpc_fixture.h"

/* Greeting, EHLO offering STARTTLS, 220, the handshake: the client has sent EHLO again. */
static struct fixture *inside_tls(int requiretls)
{
    struct fixture *f = fixture_new(NULL, 2, 1);
    f->s.requiretls = requiretls;
    f->s.server_name = "mx.remote.test";
    reply(f, "220 mx.remote.test ESMTP");
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    reply(f, "250-mx.remote.test\n250-STARTTLS\n250 REQUIRETLS"); /* before TLS: means nothing */
    assert_string_equal(sent(f), "STARTTLS\r\n");
    assert_int_equal(reply(f, "220 2.0.0 go ahead"), PM_SMTPC_STARTTLS);
    pm_smtpc_tls_ready(&f->s, f->out);
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    return f;
}

static void test_offered_after_tls_goes_on_mail(void **state)
{
    (void)state;
    struct fixture *f = inside_tls(PM_SMTPC_REQUIRETLS_MUST);
    assert_int_equal(reply(f, "250-mx.remote.test\n250-PIPELINING\n250-SIZE 100000\n250 REQUIRETLS"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test> SIZE=1234 REQUIRETLS\r\n"
                                 "RCPT TO:<a@remote.test>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\n");
    assert_string_equal(f->s.error, "");
    teardown(f);

    /* Not asked for: never sent, even where offered. */
    f = inside_tls(PM_SMTPC_REQUIRETLS_NO);
    reply(f, "250-mx.remote.test\n250 REQUIRETLS");
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n");
    teardown(f);
}

/* RFC 8689 4.2.1: the TLS server does not offer REQUIRETLS: QUIT before MAIL, 5.7.30 (5.7.10
 * when there is no TLS at all, test_in_the_clear_never), and
 * error_perm clear (the next MX may offer it); the recipients have no verdict of their own. */
static void test_not_offered_is_5_7_30_before_mail(void **state)
{
    (void)state;
    struct fixture *f = inside_tls(PM_SMTPC_REQUIRETLS_MUST);
    assert_int_equal(reply(f, "250-mx.remote.test\n250-PIPELINING\n250 8BITMIME"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->s.error_dsn, "5.7.30");
    assert_string_equal(f->s.error, "5.7.30 REQUIRETLS support required, but mx.remote.test does not offer it");
    assert_false(f->s.error_perm);
    for (int i = 0; i < 2; i++)
        assert_int_equal(f->rcpts[i].state, PM_SMTPC_RCPT_PENDING);
    teardown(f);

    /* A keyword that only starts like it is not it. */
    f = inside_tls(PM_SMTPC_REQUIRETLS_MUST);
    assert_int_equal(reply(f, "250-mx.remote.test\n250 REQUIRETLSX"), PM_SMTPC_QUIT);
    assert_string_equal(f->s.error_dsn, "5.7.30");
    teardown(f);
}

/* Without TLS, REQUIRETLS advertised in the clear is worth nothing (RFC 8689 2): given up with
 * 5.7.10 ("unable to establish a TLS-protected session"), the parameter never in the clear. */
static void test_in_the_clear_never(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(NULL, 1, 0); /* no TLS allowed (no context) */
    f->s.requiretls = PM_SMTPC_REQUIRETLS_MUST;
    reply(f, "220 mx ESMTP");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-STARTTLS\n250 REQUIRETLS"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->s.error_dsn, "5.7.10");
    assert_non_null(strstr(f->s.error, "no TLS session with the server"));
    teardown(f);

    /* STARTTLS refused (a policy without tls_required): still no MAIL. */
    f = fixture_new(NULL, 1, 1);
    f->s.requiretls = PM_SMTPC_REQUIRETLS_MUST;
    reply(f, "220 mx ESMTP");
    sent(f);
    reply(f, "250-mx\n250-STARTTLS\n250 REQUIRETLS");
    assert_string_equal(sent(f), "STARTTLS\r\n");
    assert_int_equal(reply(f, "454 4.7.0 not now"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->s.error_dsn, "5.7.10");
    teardown(f);

    /* HELO only: no extensions at all. */
    f = fixture_new(NULL, 1, 1);
    f->s.requiretls = PM_SMTPC_REQUIRETLS_MUST;
    reply(f, "220 mx");
    sent(f);
    reply(f, "500 5.5.1 what");
    assert_string_equal(sent(f), "HELO mx.example.test\r\n");
    assert_int_equal(reply(f, "250 mx"), PM_SMTPC_QUIT);
    assert_string_equal(f->s.error_dsn, "5.7.10");
    teardown(f);
}

/* RFC 8689 5: a notice about a REQUIRETLS message (null sender) carries REQUIRETLS where it is
 * offered over TLS, and is not held back where it is not. */
static void test_null_sender_notice_if_offered(void **state)
{
    (void)state;
    struct fixture *f = inside_tls(PM_SMTPC_REQUIRETLS_IF_OFFERED);
    f->s.sender = "";
    reply(f, "250-mx.remote.test\n250 REQUIRETLS");
    assert_string_equal(sent(f), "MAIL FROM:<> REQUIRETLS\r\n");
    teardown(f);

    f = inside_tls(PM_SMTPC_REQUIRETLS_IF_OFFERED);
    f->s.sender = "";
    assert_int_equal(reply(f, "250 mx.remote.test"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<>\r\n");
    assert_string_equal(f->s.error, "");
    teardown(f);

    f = fixture_new(NULL, 1, 0);
    f->s.sender = "";
    f->s.requiretls = PM_SMTPC_REQUIRETLS_IF_OFFERED;
    reply(f, "220 mx");
    sent(f);
    reply(f, "250-mx\n250 REQUIRETLS"); /* in the clear: not sent */
    assert_string_equal(sent(f), "MAIL FROM:<>\r\n");
    teardown(f);
}

/* The permanent refusals of the message itself (SMTPUTF8, SIZE) come first: they are final
 * whatever any server offers. */
static void test_message_limits_come_first(void **state)
{
    (void)state;
    struct fixture *f = inside_tls(PM_SMTPC_REQUIRETLS_MUST);
    f->s.need_smtputf8 = 1;
    assert_int_equal(reply(f, "250 mx.remote.test"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_string_equal(f->rcpts[0].dsn, "5.6.7");
    assert_string_equal(f->s.error, "");
    teardown(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offered_after_tls_goes_on_mail),
        cmocka_unit_test(test_not_offered_is_5_7_30_before_mail),
        cmocka_unit_test(test_in_the_clear_never),
        cmocka_unit_test(test_null_sender_notice_if_offered),
        cmocka_unit_test(test_message_limits_come_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
