/* The SMTP client's DSN parameters (RFC 3461): RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT,
 * xtext-encoded, only to a server that offers DSN; and which server offered it, per verdict. */
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
#include "smtpc_dsn.h"
#include "smtpc_fixture.h"

static void test_xtext(void **state)
{
    (void)state;
    char x[32];
    assert_int_equal(pm_smtpc_xtext(x, sizeof x, "plain@x.test"), 12);
    assert_string_equal(x, "plain@x.test");
    assert_int_equal(pm_smtpc_xtext(x, sizeof x, "a+b=c d"), 13);
    assert_string_equal(x, "a+2Bb+3Dc+20d");
    assert_int_equal(pm_smtpc_xtext(x, 4, "abcd"), -1);
    assert_int_equal(pm_smtpc_xtext(x, 4, "a+"), -1);
    assert_int_equal(pm_smtpc_xtext(x, 5, "a+"), 4);
}

static struct fixture *dsn_fixture(void)
{
    struct fixture *f = fixture_new(&pm_smtpc_smtp, 3, 0);
    f->s.dsn_ret = 2; /* HDRS */
    f->s.dsn_envid = "Q+1";
    f->rcpts[0].dsn_notify = PM_SMTPC_NOTIFY_SUCCESS | PM_SMTPC_NOTIFY_FAILURE;
    f->rcpts[0].dsn_orcpt = "rfc822;Bob=x@remote.test";
    f->rcpts[1].dsn_notify = PM_SMTPC_NOTIFY_NEVER;
    return f;
}

static void test_passed_on_when_offered(void **state)
{
    (void)state;
    struct fixture *f = dsn_fixture();
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-PIPELINING\n250 DSN"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test> RET=HDRS ENVID=Q+2B1\r\n"
                                 "RCPT TO:<a@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+3Dx@remote.test\r\n"
                                 "RCPT TO:<b@remote.test> NOTIFY=NEVER\r\n"
                                 "RCPT TO:<c@remote.test>\r\nDATA\r\n");
    for (int i = 0; i < 4; i++)
        reply(f, "250 ok");
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_BODY);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 queued"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(f->rcpts[0].peer_dsn, 1);
    teardown(f);
}

static void test_not_sent_when_not_offered(void **state)
{
    (void)state;
    struct fixture *f = dsn_fixture();
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250 PIPELINING"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\nRCPT TO:<a@remote.test>\r\n"
                                 "RCPT TO:<b@remote.test>\r\nRCPT TO:<c@remote.test>\r\nDATA\r\n");
    for (int i = 0; i < 4; i++)
        reply(f, "250 ok");
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_BODY);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 queued"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(f->rcpts[0].peer_dsn, 0); /* the mta reports "relayed" for SUCCESS */
    teardown(f);
}

static void test_params_alone(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    pm_smtpc_dsn_mail(b, 1, "");
    pm_smtpc_dsn_rcpt(b, PM_SMTPC_NOTIFY_DELAY, "rfc822");       /* malformed ORCPT: left out */
    pm_smtpc_dsn_rcpt(b, 0, "utf-8;a@b.test");
    pm_smtpc_dsn_rcpt(b, 0, "rfc 822;a@b.test"); /* not an atom: left out */
    pm_smtpc_dsn_mail(b, 0, NULL);
    char out[200] = {0};
    evbuffer_remove(b, out, sizeof out - 1);
    assert_string_equal(out, " RET=FULL NOTIFY=DELAY ORCPT=utf-8;a@b.test");
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_passed_on_when_offered),
        cmocka_unit_test(test_not_sent_when_not_offered),
        cmocka_unit_test(test_params_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
