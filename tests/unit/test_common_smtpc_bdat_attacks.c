/* The client's side of BDAT (common/smtpc.c) against a next hop that does not play by RFC
 * 3030: a reply while the chunk is still going out, CHUNKING offered only before STARTTLS
 * (the EHLO after TLS is what counts), LMTP's one reply per recipient to BDAT LAST, and
 * which bodies may go out as they are (pm_smtpc_body_is_crlf: every CR and LF a CRLF). */
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
#include "smtpc_dotstuff.h"
#include "smtpc_fixture.h"

static void test_a_reply_before_the_chunk_is_out_gives_the_server_up(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(&pm_smtpc_smtp, 1, 0);
    f->s.body_crlf = 1;
    reply(f, "220 hi");
    reply(f, "250-mx\n250-PIPELINING\n250 CHUNKING");
    reply(f, "250 ok");
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_BODY);
    const char *out = sent(f);
    assert_string_equal(out + strlen(out) - strlen("BDAT 1234 LAST\r\n"), "BDAT 1234 LAST\r\n");
    /* The body is not all out (no pm_smtpc_body_sent): a 250 now cannot be the chunk's. */
    assert_int_equal(reply(f, "250 2.0.0 thanks, early"), PM_SMTPC_ABORT);
    assert_non_null(strstr(f->s.error, "unexpected reply during BDAT"));
    assert_int_not_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_false(f->s.dot_sent);
    teardown(f);
}

static void test_chunking_before_starttls_only_means_data(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(&pm_smtpc_smtp, 1, 1);
    f->s.body_crlf = 1;
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-CHUNKING\n250 STARTTLS"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "STARTTLS\r\n");
    assert_int_equal(reply(f, "220 go"), PM_SMTPC_STARTTLS);
    pm_smtpc_tls_ready(&f->s, f->out);
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    assert_int_equal(reply(f, "250-mx\n250 PIPELINING"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\nRCPT TO:<a@remote.test>\r\nDATA\r\n");
    assert_false(f->s.bdat);
    teardown(f);
}

static void test_lmtp_bdat_last_is_answered_per_recipient(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(&pm_smtpc_lmtp, 2, 0);
    f->s.body_crlf = 1;
    reply(f, "220 hi");
    assert_string_equal(sent(f), "LHLO mx.example.test\r\n");
    reply(f, "250-mx\n250-PIPELINING\n250 CHUNKING");
    sent(f);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_BODY);
    assert_string_equal(sent(f), "BDAT 1234 LAST\r\n");
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 a delivered"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "452-4.2.2 b over quota\n452 4.2.2 try later"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_TEMPFAIL);
    assert_string_equal(f->rcpts[1].stage, "BDAT");
    teardown(f);
}

static int crlf(const char *body) { return pm_smtpc_body_is_crlf((const uint8_t *)body, strlen(body)); }

static void test_which_bodies_go_out_as_they_are(void **state)
{
    (void)state;
    assert_true(crlf(""));
    assert_true(crlf("a\r\n.\r\n..\r\nb\r\n"));   /* dots are nothing to BDAT */
    assert_true(crlf("no final line end"));       /* as it is: BDAT's count says where it ends */
    assert_false(crlf("a\nb\r\n"));               /* bare LF: DATA, whose stuffing makes it CRLF */
    assert_false(crlf("\n"));
    assert_false(crlf("a\rb\r\n"));               /* bare CR */
    assert_false(crlf("a\r"));                    /* a CR at the very end */
    assert_false(crlf("a\r\r\n"));
    assert_false(crlf("a\n\r"));
    const uint8_t nul[] = {'a', 0, '\r', '\n'};
    assert_true(pm_smtpc_body_is_crlf(nul, sizeof nul)); /* NUL is the content's business, as in DATA */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_reply_before_the_chunk_is_out_gives_the_server_up),
        cmocka_unit_test(test_chunking_before_starttls_only_means_data),
        cmocka_unit_test(test_lmtp_bdat_last_is_answered_per_recipient),
        cmocka_unit_test(test_which_bodies_go_out_as_they_are),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
