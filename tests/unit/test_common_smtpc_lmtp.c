/* The shared SMTP client's hooks for other transports, on the state machine alone: the LMTP
 * dialect (LHLO, no HELO fallback, one reply per accepted recipient after the final dot,
 * RFC 2033) and AUTH PLAIN before MAIL as a submission client (RFC 4954). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpc.h"
#include "smtpc_fixture.h"

static struct fixture *setup(const struct pm_smtpc_dialect *dialect, int nrcpts)
{
    return fixture_new(dialect, nrcpts, 1);
}

/* RFC 2033 4.2: after the final dot, one reply for each recipient that RCPT accepted, in
 * order; the one RCPT refused gets none. QUIT only after the last. */
static void test_lmtp_one_reply_per_accepted_recipient(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_lmtp, 3);
    assert_int_equal(reply(f, "220 lmtp.remote.test LMTP"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "LHLO mx.example.test\r\n");
    assert_int_equal(reply(f, "250-lmtp.remote.test\n250-PIPELINING\n250 ENHANCEDSTATUSCODES"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\nRCPT TO:<a@remote.test>\r\n"
                                 "RCPT TO:<b@remote.test>\r\nRCPT TO:<c@remote.test>\r\nDATA\r\n");
    reply(f, "250 2.1.0 ok");
    reply(f, "250 2.1.5 ok");
    reply(f, "550 5.1.1 <b@remote.test> no such user");
    reply(f, "250 2.1.5 ok");
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_BODY);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 <a@remote.test> delivered"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "");
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(f->rcpts[2].state, PM_SMTPC_RCPT_ACCEPTED); /* its reply is still to come */
    assert_int_equal(reply(f, "452 4.2.2 <c@remote.test> mailbox full"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->rcpts[0].text, "250 2.0.0 <a@remote.test> delivered");
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_string_equal(f->rcpts[1].stage, "RCPT TO");
    assert_int_equal(f->rcpts[2].state, PM_SMTPC_RCPT_TEMPFAIL);
    assert_string_equal(f->rcpts[2].dsn, "4.2.2");
    assert_string_equal(f->rcpts[2].stage, "end of DATA");
    teardown(f);
}

/* The same replies in the SMTP dialect: the first reply after the dot is everyone's. */
static void test_smtp_one_reply_for_all(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_smtp, 2);
    reply(f, "220 mx ESMTP");
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    reply(f, "250-mx\n250 PIPELINING");
    sent(f);
    reply(f, "250 ok");
    reply(f, "250 ok");
    reply(f, "250 ok");
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_BODY);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 queued"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_DELIVERED);
    teardown(f);
}

/* A connection lost between two LMTP replies: the one answered stands, the other is left
 * ACCEPTED after the dot (the caller's "maybe delivered"). */
static void test_lmtp_lost_between_replies(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_lmtp, 2);
    reply(f, "220 lmtp");
    reply(f, "250 lmtp"); /* no PIPELINING: one command at a time */
    assert_string_equal(sent(f), "LHLO mx.example.test\r\nMAIL FROM:<alice@example.test>\r\n");
    reply(f, "250 ok");
    reply(f, "250 ok");
    reply(f, "250 ok");
    assert_string_equal(sent(f), "RCPT TO:<a@remote.test>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\n");
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_BODY);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 done"), PM_SMTPC_WAIT);
    pm_smtpc_fail(&f->s, "4.4.2", "lost connection while waiting for the reply to %s", pm_smtpc_stage(&f->s));
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_ACCEPTED);
    assert_true(f->s.dot_sent);
    assert_string_equal(f->s.error, "lost connection while waiting for the reply to end of DATA");
    teardown(f);
}

/* LMTP has no HELO: a refused LHLO gives the server up, named as LHLO. */
static void test_lmtp_refused_lhlo_has_no_fallback(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_lmtp, 1);
    reply(f, "220 lmtp");
    sent(f);
    assert_int_equal(reply(f, "500 5.5.1 what?"), PM_SMTPC_ABORT);
    assert_string_equal(sent(f), "");
    assert_non_null(strstr(f->s.error, "(in reply to LHLO)"));
    teardown(f);
}

/* Pipelined DATA accepted with nobody accepted: LMTP owes no reply to the empty message. */
static void test_lmtp_empty_message_needs_no_reply(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_lmtp, 1);
    reply(f, "220 lmtp");
    reply(f, "250-lmtp\n250 PIPELINING");
    sent(f);
    reply(f, "250 ok");
    reply(f, "550 5.1.1 unknown");
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), ".\r\nQUIT\r\n");
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PERMFAIL);
    teardown(f);
}

/* Submission: AUTH PLAIN with the initial response after EHLO, MAIL after 235. */
static void test_auth_plain_before_mail(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_smtp, 1);
    f->s.tls_allowed = 0;
    f->s.auth_user = "alice";
    f->s.auth_pass = "secret";
    reply(f, "220 submit ESMTP");
    sent(f);
    assert_int_equal(reply(f, "250-submit\n250-AUTH LOGIN PLAIN\n250 SIZE 10000"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"); /* "\0alice\0secret" */
    assert_int_equal(f->s.step, PM_SMTPC_STEP_AUTH);
    assert_int_equal(reply(f, "235 2.7.0 ok"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test> SIZE=1234\r\n");
    teardown(f);

    /* the old "AUTH=" form says the same */
    f = setup(&pm_smtpc_smtp, 1);
    f->s.tls_allowed = 0;
    f->s.auth_user = "alice";
    f->s.auth_pass = "secret";
    reply(f, "220 submit ESMTP");
    sent(f);
    reply(f, "250-submit\n250 AUTH=PLAIN");
    assert_string_equal(sent(f), "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    teardown(f);
}

/* STARTTLS first, AUTH only inside TLS, after the second EHLO. */
static void test_auth_after_starttls(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_smtp, 1);
    f->s.auth_user = "alice";
    f->s.auth_pass = "secret";
    f->s.auth_needs_tls = 1;
    reply(f, "220 submit ESMTP");
    sent(f);
    assert_int_equal(reply(f, "250-submit\n250 STARTTLS"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "STARTTLS\r\n");
    assert_int_equal(reply(f, "220 go"), PM_SMTPC_STARTTLS);
    pm_smtpc_tls_ready(&f->s, f->out);
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    reply(f, "250-submit\n250 AUTH PLAIN");
    assert_string_equal(sent(f), "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    teardown(f);
}

/* Without what AUTH needs the server is left with a temporary error and no password sent;
 * a refused AUTH is temporary too (the credentials, not the message). */
static void test_auth_refusals_are_temporary(void **state)
{
    (void)state;
    const struct {
        const char *ehlo;
        int needs_tls;
        const char *why;
    } cases[] = {
        {"250-submit\n250 SIZE 10000", 0, "server does not offer AUTH PLAIN"},
        {"250-submit\n250 AUTH LOGIN CRAM-MD5", 0, "server does not offer AUTH PLAIN"},
        {"250-submit\n250 AUTH PLAIN", 1, "no TLS to protect AUTH"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture *f = setup(&pm_smtpc_smtp, 1);
        f->s.tls_allowed = 0;
        f->s.auth_user = "alice";
        f->s.auth_pass = "secret";
        f->s.auth_needs_tls = cases[i].needs_tls;
        reply(f, "220 submit ESMTP");
        sent(f);
        assert_int_equal(reply(f, cases[i].ehlo), PM_SMTPC_QUIT);
        assert_string_equal(sent(f), "QUIT\r\n");
        assert_string_equal(f->s.error_dsn, "4.7.0");
        assert_non_null(strstr(f->s.error, cases[i].why));
        assert_false(f->s.error_perm);
        assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PENDING);
        teardown(f);
    }
    struct fixture *f = setup(&pm_smtpc_smtp, 1);
    f->s.tls_allowed = 0;
    f->s.auth_user = "alice";
    f->s.auth_pass = "wrong";
    reply(f, "220 submit ESMTP");
    reply(f, "250-submit\n250 AUTH PLAIN");
    sent(f);
    assert_int_equal(reply(f, "535 5.7.8 authentication failed"), PM_SMTPC_ABORT);
    assert_false(f->s.error_perm);
    assert_string_equal(f->s.error_dsn, "4.0.0");
    assert_string_equal(f->s.error, "535 5.7.8 authentication failed (in reply to AUTH)");
    teardown(f);
}

/* Without credentials nothing changes: AUTH offered is not used. */
static void test_no_credentials_no_auth(void **state)
{
    (void)state;
    struct fixture *f = setup(&pm_smtpc_smtp, 1);
    reply(f, "220 mx ESMTP");
    sent(f);
    reply(f, "250-mx\n250 AUTH PLAIN LOGIN");
    assert_true(f->s.ext.auth && f->s.ext.auth_plain);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n");
    teardown(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lmtp_one_reply_per_accepted_recipient),
        cmocka_unit_test(test_smtp_one_reply_for_all),
        cmocka_unit_test(test_lmtp_lost_between_replies),
        cmocka_unit_test(test_lmtp_refused_lhlo_has_no_fallback),
        cmocka_unit_test(test_lmtp_empty_message_needs_no_reply),
        cmocka_unit_test(test_auth_plain_before_mail),
        cmocka_unit_test(test_auth_after_starttls),
        cmocka_unit_test(test_auth_refusals_are_temporary),
        cmocka_unit_test(test_no_credentials_no_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
