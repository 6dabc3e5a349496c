/* The shared SMTP client state machine (common/smtpc.c) in its SMTP dialect, fed server
 * replies as strings; the commands it writes are read back from its output buffer. */
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

static struct fixture *setup(int nrcpts, int tls) { return fixture_new(&pm_smtpc_smtp, nrcpts, tls); }

static void test_plain_session_one_command_at_a_time(void **state)
{
    (void)state;
    struct fixture *f = setup(2, 1);
    assert_int_equal(reply(f, "220 mx.remote.test ESMTP"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    assert_int_equal(reply(f, "250-mx.remote.test\n250-SIZE 10000\n250 8BITMIME"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test> SIZE=1234\r\n");
    assert_int_equal(reply(f, "250 2.1.0 Ok"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "RCPT TO:<a@remote.test>\r\n");
    assert_int_equal(reply(f, "250 2.1.5 Ok"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "RCPT TO:<b@remote.test>\r\n");
    assert_int_equal(reply(f, "550 5.1.1 <b@remote.test>: unknown"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "DATA\r\n");
    assert_int_equal(reply(f, "354 go ahead"), PM_SMTPC_BODY);
    assert_string_equal(sent(f), "");
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 Ok: queued as 123"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    assert_string_equal(f->rcpts[0].dsn, "2.0.0");
    assert_string_equal(f->rcpts[0].text, "250 2.0.0 Ok: queued as 123");
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_string_equal(f->rcpts[1].dsn, "5.1.1");
    assert_string_equal(f->rcpts[1].stage, "RCPT TO");
    teardown(f);
}

static void test_pipelining_sends_the_envelope_at_once(void **state)
{
    (void)state;
    struct fixture *f = setup(3, 0);
    f->s.body_8bit = 1;
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-PIPELINING\n250-8BITMIME\n250 STARTTLS"), PM_SMTPC_WAIT);
    /* tls_allowed = 0: STARTTLS is not used even though offered. */
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test> BODY=8BITMIME\r\nRCPT TO:<a@remote.test>\r\n"
                                 "RCPT TO:<b@remote.test>\r\nRCPT TO:<c@remote.test>\r\nDATA\r\n");
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "452 4.5.3 too many recipients"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), ""); /* nothing more: the replies were already paid for */
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_BODY);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "451 4.3.0 try later"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_TEMPFAIL);
    assert_string_equal(f->rcpts[0].stage, "end of DATA");
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_TEMPFAIL);
    assert_string_equal(f->rcpts[1].dsn, "4.5.3");
    assert_int_equal(f->rcpts[2].state, PM_SMTPC_RCPT_TEMPFAIL);
    assert_true(f->s.dot_sent);
    teardown(f);
}

static void test_pipelined_mail_refused_consumes_the_rest(void **state)
{
    (void)state;
    struct fixture *f = setup(2, 0);
    reply(f, "220 hi");
    reply(f, "250-mx\n250 PIPELINING");
    sent(f);
    assert_int_equal(reply(f, "553 5.7.1 sender rejected"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "503 5.5.1 need MAIL"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "503 5.5.1 need MAIL"), PM_SMTPC_WAIT);
    /* A broken server says 354 anyway: end the empty message, then quit. */
    assert_int_equal(reply(f, "354 go"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), ".\r\n");
    assert_int_equal(reply(f, "554 no valid recipients"), PM_SMTPC_QUIT);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->rcpts[i].state, PM_SMTPC_RCPT_PERMFAIL);
        assert_string_equal(f->rcpts[i].dsn, "5.7.1");
        assert_string_equal(f->rcpts[i].text, "553 5.7.1 sender rejected");
        assert_string_equal(f->rcpts[i].stage, "MAIL FROM");
    }
    teardown(f);
}

static void test_no_recipient_accepted_means_no_data(void **state)
{
    (void)state;
    struct fixture *f = setup(1, 0);
    reply(f, "220 hi");
    reply(f, "250 mx");
    sent(f);
    reply(f, "250 ok");
    assert_string_equal(sent(f), "RCPT TO:<a@remote.test>\r\n");
    assert_int_equal(reply(f, "450 4.2.0 greylisted"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_TEMPFAIL);
    teardown(f);
}

static void test_starttls_then_ehlo_again(void **state)
{
    (void)state;
    struct fixture *f = setup(1, 1);
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-PIPELINING\n250 STARTTLS"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "STARTTLS\r\n");
    assert_int_equal(reply(f, "220 2.0.0 ready"), PM_SMTPC_STARTTLS);
    assert_int_equal(f->s.step, PM_SMTPC_STEP_TLS);
    /* Anything "said" before the handshake completes is a protocol violation. */
    struct fixture *g = setup(1, 1);
    reply(g, "220 hi");
    reply(g, "250-mx\n250 STARTTLS");
    reply(g, "220 go");
    assert_int_equal(reply(g, "250 injected"), PM_SMTPC_ABORT);
    teardown(g);

    pm_smtpc_tls_ready(&f->s, f->out);
    assert_true(f->s.tls_active);
    assert_false(f->s.ext.pipelining); /* forgotten with the plaintext session */
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    assert_int_equal(reply(f, "250-mx\n250 STARTTLS"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n"); /* no second STARTTLS */
    teardown(f);
}

static void test_starttls_refused_goes_on_in_the_clear(void **state)
{
    (void)state;
    struct fixture *f = setup(1, 1);
    reply(f, "220 hi");
    reply(f, "250-mx\n250 STARTTLS");
    sent(f);
    assert_int_equal(reply(f, "454 4.7.0 TLS not available"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n");
    teardown(f);
}

/* tls_required (the mta's policy says TLS is mandatory): nothing of the envelope goes out in
 * the clear, whatever the server offers or answers. */
static void test_tls_required_never_goes_on_in_the_clear(void **state)
{
    (void)state;
    /* STARTTLS not offered: QUIT with 4.7.4 naming the server. */
    struct fixture *f = setup(1, 0);
    f->s.tls_required = 1;
    f->s.server_name = "mx.remote.test";
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-PIPELINING\n250 8BITMIME"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->s.error_dsn, "4.7.4");
    assert_string_equal(f->s.error, "4.7.4 TLS is required, but was not offered by mx.remote.test");
    assert_false(f->s.error_perm);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PENDING);
    teardown(f);

    /* STARTTLS refused: 4.7.5 with the server's words, no MAIL. */
    f = setup(1, 0);
    f->s.tls_required = 1;
    reply(f, "220 hi");
    assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
    reply(f, "250-mx\n250 STARTTLS");
    assert_string_equal(sent(f), "STARTTLS\r\n"); /* tls_required implies allowed */
    assert_int_equal(reply(f, "454 4.7.0 TLS not available"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->s.error_dsn, "4.7.5");
    assert_non_null(strstr(f->s.error, "refused STARTTLS: 454 4.7.0 TLS not available"));
    teardown(f);

    /* EHLO refused: HELO has no STARTTLS, so no mail either. */
    f = setup(1, 1);
    f->s.tls_required = 1;
    reply(f, "220 hi");
    reply(f, "502 5.5.2 what?");
    assert_string_equal(sent(f), "EHLO mx.example.test\r\nHELO mx.example.test\r\n");
    assert_int_equal(reply(f, "250 hello"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_string_equal(f->s.error_dsn, "4.7.4");
    teardown(f);

    /* Offered and done: the session goes on inside TLS as usual. */
    f = setup(1, 1);
    f->s.tls_required = 1;
    reply(f, "220 hi");
    reply(f, "250-mx\n250 STARTTLS");
    sent(f);
    assert_int_equal(reply(f, "220 go"), PM_SMTPC_STARTTLS);
    pm_smtpc_tls_ready(&f->s, f->out);
    sent(f);
    assert_int_equal(reply(f, "250 mx"), PM_SMTPC_WAIT); /* no STARTTLS inside TLS: fine */
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n");
    assert_string_equal(f->s.error, "");
    teardown(f);
}

static void test_ehlo_refused_falls_back_to_helo(void **state)
{
    (void)state;
    struct fixture *f = setup(1, 1);
    reply(f, "220 old server");
    sent(f);
    assert_int_equal(reply(f, "502 5.5.2 what?"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "HELO mx.example.test\r\n");
    assert_int_equal(reply(f, "250 hello"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n");
    teardown(f);

    f = setup(1, 1);
    reply(f, "220 old server");
    reply(f, "500 no");
    assert_int_equal(reply(f, "550 5.7.1 go away"), PM_SMTPC_ABORT);
    assert_true(f->s.error_perm);
    assert_string_equal(f->s.error_dsn, "5.7.1");
    assert_non_null(strstr(f->s.error, "(in reply to HELO)"));
    teardown(f);
}

static void test_bad_greetings_give_up_the_server(void **state)
{
    (void)state;
    const char *greetings[] = {"421 4.3.2 busy", "554 5.7.1 no thanks", "300 what"};
    for (int i = 0; i < 3; i++) {
        struct fixture *f = setup(1, 1);
        assert_int_equal(reply(f, greetings[i]), PM_SMTPC_ABORT);
        assert_false(f->s.error_perm); /* a 5xx greeting skips the host, like Postfix */
        assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PENDING);
        assert_string_equal(sent(f), "");
        teardown(f);
    }
    struct fixture *f = setup(1, 1);
    reply(f, "220 hi");
    assert_int_equal(reply(f, "421 4.7.0 too many connections"), PM_SMTPC_ABORT);
    assert_string_equal(f->s.error_dsn, "4.7.0");
    teardown(f);
}

static void test_size_and_smtputf8_limits(void **state)
{
    (void)state;
    struct fixture *f = setup(2, 0);
    f->s.body_size = 20000;
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250 SIZE 10000"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_string_equal(f->rcpts[1].dsn, "5.3.4");
    teardown(f);

    f = setup(1, 0);
    f->s.need_smtputf8 = 1;
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250 mx"), PM_SMTPC_QUIT);
    assert_string_equal(f->rcpts[0].dsn, "5.6.7");
    teardown(f);

    f = setup(1, 0);
    f->s.need_smtputf8 = 1;
    reply(f, "220 hi");
    sent(f);
    reply(f, "250-mx\n250 SMTPUTF8");
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test> SMTPUTF8\r\n");
    teardown(f);
}

static void test_connection_failure_is_recorded(void **state)
{
    (void)state;
    struct fixture *f = setup(1, 0);
    reply(f, "220 hi");
    pm_smtpc_fail(&f->s, "4.4.2", "lost connection with %s", "mx[192.0.2.1]:25");
    assert_string_equal(f->s.error, "lost connection with mx[192.0.2.1]:25");
    assert_string_equal(f->s.error_dsn, "4.4.2");
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PENDING);
    assert_true(f->s.replied);
    teardown(f);
}

/* A server naming itself with our hostname in its greeting or its EHLO/HELO reply is us:
 * QUIT at once, nothing of the transaction sent, every recipient left for the caller. */
static void test_our_own_hostname_is_a_loop(void **state)
{
    (void)state;
    struct {
        const char *greeting, *ehlo, *helo; /* helo: EHLO refused, HELO answered */
    } cases[] = {
        {"220 mx.example.test ESMTP Postmesh", NULL, NULL},
        {"220-MX.Example.Test. ESMTP\n220 more", NULL, NULL},
        {"220 other.test ESMTP", "250-mx.example.test Hello\n250 PIPELINING", NULL},
        {"220 other.test ESMTP", "250 mx.example.test", NULL},
        {"220 other.test ESMTP", "502 5.5.2 no EHLO", "250 mx.example.test"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture *f = setup(2, 1);
        f->s.self_name = "mx.example.test";
        enum pm_smtpc_action act = reply(f, cases[i].greeting);
        if (cases[i].ehlo) {
            assert_int_equal(act, PM_SMTPC_WAIT);
            assert_string_equal(sent(f), "EHLO mx.example.test\r\n");
            act = reply(f, cases[i].ehlo);
        }
        if (cases[i].helo) {
            assert_int_equal(act, PM_SMTPC_WAIT);
            assert_string_equal(sent(f), "HELO mx.example.test\r\n");
            act = reply(f, cases[i].helo);
        }
        assert_int_equal(act, PM_SMTPC_QUIT);
        assert_true(f->s.loop);
        assert_string_equal(f->s.error_dsn, "5.4.6");
        assert_non_null(strstr(f->s.error, "our own hostname mx.example.test"));
        assert_string_equal(sent(f), "QUIT\r\n");
        assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PENDING);
        assert_int_equal(f->rcpts[1].state, PM_SMTPC_RCPT_PENDING);
        teardown(f);
    }
}

static void test_other_names_are_not_a_loop(void **state)
{
    (void)state;
    const char *greetings[] = {"220 mx.example.test.other ESMTP", "220 other.test mx.example.test",
                               "220 mx.example.tes"};
    for (size_t i = 0; i < sizeof greetings / sizeof greetings[0]; i++) {
        struct fixture *f = setup(1, 0);
        f->s.self_name = "mx.example.test";
        assert_int_equal(reply(f, greetings[i]), PM_SMTPC_WAIT);
        assert_int_equal(reply(f, "250-other.test greets mx.example.test\n250 8BITMIME"), PM_SMTPC_WAIT);
        assert_false(f->s.loop);
        sent(f);
        teardown(f);
    }
    struct fixture *f = setup(1, 0); /* no self_name: no check */
    assert_int_equal(reply(f, "220 mx.example.test"), PM_SMTPC_WAIT);
    assert_false(f->s.loop);
    teardown(f);
}

/* The server's name for TLS reports: the first word of its EHLO (or HELO) reply, the later
 * reply winning; a word that is not made of host-name characters is not kept. */
static void test_peer_helo_is_the_first_word_of_the_hello_reply(void **state)
{
    (void)state;
    const struct {
        const char *reply, *want;
    } cases[] = {
        {"250-mx1.remote.test Hello mx.example.test\n250 8BITMIME", "mx1.remote.test"},
        {"250 [192.0.2.7]", "[192.0.2.7]"},
        {"250-mx\"1\\x Hello\n250 8BITMIME", ""},
        {"250-mx1.remote.test{\n250 8BITMIME", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture *f = setup(1, 0);
        reply(f, "220 greeting.remote.test ESMTP");
        assert_string_equal(f->s.peer_helo, ""); /* the greeting's name is not the HELO's */
        assert_int_equal(reply(f, cases[i].reply), PM_SMTPC_WAIT);
        assert_string_equal(f->s.peer_helo, cases[i].want);
        teardown(f);
    }
    struct fixture *f = setup(1, 0); /* EHLO refused: HELO's reply names the server */
    reply(f, "220 old server");
    reply(f, "502 5.5.2 what?");
    assert_int_equal(reply(f, "250 old.remote.test"), PM_SMTPC_WAIT);
    assert_string_equal(f->s.peer_helo, "old.remote.test");
    teardown(f);
    char longname[400]; /* longer than any host name: not kept */
    memset(longname, 'a', sizeof longname);
    memcpy(longname, "250 ", 4);
    longname[sizeof longname - 1] = '\0';
    f = setup(1, 0);
    reply(f, "220 x");
    assert_int_equal(reply(f, longname), PM_SMTPC_WAIT);
    assert_string_equal(f->s.peer_helo, "");
    teardown(f);
}

/* CHUNKING (RFC 3030): BDAT with the body's size once the RCPT replies are in, no DATA in
 * the pipelined group; its reply is the final one. Without PIPELINING the same, one command
 * at a time; nobody accepted: QUIT, no BDAT; a body that is not all CRLF: DATA. */
static void test_bdat_when_the_server_offers_chunking(void **state)
{
    (void)state;
    struct fixture *f = setup(2, 0);
    f->s.body_crlf = 1;
    reply(f, "220 hi");
    sent(f);
    assert_int_equal(reply(f, "250-mx\n250-PIPELINING\n250 CHUNKING"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\nRCPT TO:<a@remote.test>\r\n"
                                 "RCPT TO:<b@remote.test>\r\n");
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_string_equal(sent(f), "");
    assert_int_equal(reply(f, "550 5.1.1 no"), PM_SMTPC_BODY);
    assert_string_equal(sent(f), "BDAT 1234 LAST\r\n");
    assert_true(f->s.bdat);
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "552 5.3.4 too big for us"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_PERMFAIL);
    assert_string_equal(f->rcpts[0].dsn, "5.3.4");
    assert_string_equal(f->rcpts[0].stage, "BDAT");
    assert_string_equal(f->rcpts[1].stage, "RCPT TO");
    teardown(f);

    f = setup(1, 0);
    f->s.body_crlf = 1;
    reply(f, "220 hi");
    sent(f);
    reply(f, "250-mx\n250 CHUNKING");
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\n");
    reply(f, "250 ok");
    assert_string_equal(sent(f), "RCPT TO:<a@remote.test>\r\n");
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_BODY);
    assert_string_equal(sent(f), "BDAT 1234 LAST\r\n");
    pm_smtpc_body_sent(&f->s);
    assert_int_equal(reply(f, "250 2.0.0 queued"), PM_SMTPC_QUIT);
    assert_int_equal(f->rcpts[0].state, PM_SMTPC_RCPT_DELIVERED);
    teardown(f);

    f = setup(1, 0);
    f->s.body_crlf = 1;
    reply(f, "220 hi");
    reply(f, "250-mx\n250-PIPELINING\n250 CHUNKING");
    sent(f);
    assert_int_equal(reply(f, "250 ok"), PM_SMTPC_WAIT);
    assert_int_equal(reply(f, "550 5.1.1 no"), PM_SMTPC_QUIT);
    assert_string_equal(sent(f), "QUIT\r\n");
    teardown(f);

    f = setup(1, 0); /* body_crlf unset: a bare LF somewhere */
    reply(f, "220 hi");
    sent(f);
    reply(f, "250-mx\n250-PIPELINING\n250 CHUNKING");
    assert_string_equal(sent(f), "MAIL FROM:<alice@example.test>\r\nRCPT TO:<a@remote.test>\r\nDATA\r\n");
    assert_false(f->s.bdat);
    teardown(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_session_one_command_at_a_time),
        cmocka_unit_test(test_pipelining_sends_the_envelope_at_once),
        cmocka_unit_test(test_pipelined_mail_refused_consumes_the_rest),
        cmocka_unit_test(test_no_recipient_accepted_means_no_data),
        cmocka_unit_test(test_starttls_then_ehlo_again),
        cmocka_unit_test(test_starttls_refused_goes_on_in_the_clear),
        cmocka_unit_test(test_tls_required_never_goes_on_in_the_clear),
        cmocka_unit_test(test_ehlo_refused_falls_back_to_helo),
        cmocka_unit_test(test_bad_greetings_give_up_the_server),
        cmocka_unit_test(test_size_and_smtputf8_limits),
        cmocka_unit_test(test_connection_failure_is_recorded),
        cmocka_unit_test(test_our_own_hostname_is_a_loop),
        cmocka_unit_test(test_other_names_are_not_a_loop),
        cmocka_unit_test(test_peer_helo_is_the_first_word_of_the_hello_reply),
        cmocka_unit_test(test_bdat_when_the_server_offers_chunking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
