/* smtpd bookkeeping that needs no network: per-IP limits and AUTH lockout, the Received:
 * header, and the mapping of queue answers to SMTP replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtpd/clients.h"
#include "smtpd/received.h"
#include "smtpd/submit.h"

static void test_per_ip_connections(void **state)
{
    (void)state;
    struct smtpd_client_limits lim = {.max_per_ip = 2, .rate_per_min = 0, .auth_failures = 3, .auth_lockout = 60};
    struct smtpd_clients *c = smtpd_clients_new(&lim);
    enum smtpd_client_verdict v;
    struct smtpd_client *a = smtpd_clients_connect(c, "192.0.2.1", 1000, &v);
    struct smtpd_client *b = smtpd_clients_connect(c, "192.0.2.1", 1000, &v);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_null(smtpd_clients_connect(c, "192.0.2.1", 1000, &v));
    assert_int_equal(v, SMTPD_CLIENT_TOO_MANY);
    assert_non_null(smtpd_clients_connect(c, "192.0.2.2", 1000, &v)); /* another IP is unaffected */
    smtpd_clients_disconnect(c, a, 1001);
    assert_non_null(smtpd_clients_connect(c, "192.0.2.1", 1001, &v));
    smtpd_clients_free(c);
}

static void test_rate(void **state)
{
    (void)state;
    struct smtpd_client_limits lim = {.max_per_ip = 100, .rate_per_min = 3, .auth_failures = 3, .auth_lockout = 60};
    struct smtpd_clients *c = smtpd_clients_new(&lim);
    enum smtpd_client_verdict v;
    for (int i = 0; i < 3; i++) {
        struct smtpd_client *e = smtpd_clients_connect(c, "2001:db8::1", 1000 + i, &v);
        assert_non_null(e);
        smtpd_clients_disconnect(c, e, 1000 + i);
    }
    assert_null(smtpd_clients_connect(c, "2001:db8::1", 1010, &v));
    assert_int_equal(v, SMTPD_CLIENT_TOO_FAST);
    /* The window is remembered while idle, then forgotten after a minute. */
    assert_int_equal(smtpd_clients_sweep(c, 1030), 1);
    assert_int_equal(smtpd_clients_sweep(c, 1061), 0);
    assert_non_null(smtpd_clients_connect(c, "2001:db8::1", 1061, &v));
    smtpd_clients_free(c);
}

static void test_auth_lockout(void **state)
{
    (void)state;
    struct smtpd_client_limits lim = {.max_per_ip = 100, .rate_per_min = 0, .auth_failures = 3, .auth_lockout = 60};
    struct smtpd_clients *c = smtpd_clients_new(&lim);
    enum smtpd_client_verdict v;
    struct smtpd_client *e = smtpd_clients_connect(c, "192.0.2.9", 1000, &v);
    assert_false(smtpd_clients_auth_failed(c, e, 1000));
    assert_false(smtpd_clients_auth_failed(c, e, 1001));
    assert_false(smtpd_clients_auth_locked(c, e, 1002));
    assert_true(smtpd_clients_auth_failed(c, e, 1002));
    assert_true(smtpd_clients_auth_locked(c, e, 1003));
    /* The lockout survives reconnecting... */
    smtpd_clients_disconnect(c, e, 1004);
    e = smtpd_clients_connect(c, "192.0.2.9", 1005, &v);
    assert_true(smtpd_clients_auth_locked(c, e, 1005));
    /* ...and ends after auth_lockout seconds. */
    assert_false(smtpd_clients_auth_locked(c, e, 1062));
    /* Failures spread wider than the window do not add up. */
    assert_false(smtpd_clients_auth_failed(c, e, 2000));
    assert_false(smtpd_clients_auth_failed(c, e, 2001));
    assert_false(smtpd_clients_auth_failed(c, e, 2100));
    assert_false(smtpd_clients_auth_locked(c, e, 2100));
    smtpd_clients_disconnect(c, e, 2101);
    smtpd_clients_free(c);
}

static void test_received(void **state)
{
    (void)state;
    char buf[1024];
    struct smtpd_received r = {.helo = "client(evil);x", .ip = "192.0.2.1", .hostname = "mx.example.test",
                               .esmtp = 1, .tls = 1, .auth = 1, .tls_version = "TLSv1.3",
                               .tls_cipher = "TLS_AES_256_GCM_SHA384", .rcpt = "u@example.test", .when = 0};
    size_t n = smtpd_received_format(&r, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "Received: from client_evil__x ([192.0.2.1])\r\n"
                             "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
                             "\tby mx.example.test (Postmesh) with ESMTPSA\r\n"
                             "\tfor <u@example.test>;\r\n"
                             "\tThu, 01 Jan 1970 00:00:00 +0000\r\n");
    struct smtpd_received p = {.helo = "h", .ip = "2001:db8::1", .hostname = "mx", .esmtp = 0, .when = 0};
    smtpd_received_format(&p, buf, sizeof buf);
    assert_string_equal(buf, "Received: from h ([IPv6:2001:db8::1])\r\n\tby mx (Postmesh) with SMTP;\r\n"
                             "\tThu, 01 Jan 1970 00:00:00 +0000\r\n");
    assert_string_equal(smtpd_received_protocol(1, 0, 0, 0), "ESMTP");
    assert_string_equal(smtpd_received_protocol(1, 1, 0, 0), "ESMTPS");
    assert_string_equal(smtpd_received_protocol(1, 0, 1, 0), "ESMTPA");
    assert_string_equal(smtpd_received_protocol(1, 1, 1, 1), "UTF8SMTPSA");
    assert_int_equal(smtpd_received_format(&r, buf, 20), 0);
}

static void test_queue_replies(void **state)
{
    (void)state;
    char buf[320];
    smtpd_submit_reply_text(POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED, "0123456789ABCDEF", "", buf, sizeof buf);
    assert_string_equal(buf, "250 2.0.0 Ok: queued as 0123456789ABCDEF");
    smtpd_submit_reply_text(POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL, "", "4.3.1 queue store full", buf, sizeof buf);
    assert_string_equal(buf, "452 4.3.1 queue store full");
    smtpd_submit_reply_text(POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL, "", "4.3.0 busy", buf, sizeof buf);
    assert_string_equal(buf, "451 4.3.0 busy");
    smtpd_submit_reply_text(POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL, "", "4.4.5 other", buf, sizeof buf);
    assert_string_equal(buf, "451 4.3.0 other"); /* every other temporary failure is 451 4.3.0 */
    smtpd_submit_reply_text(POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL, "", "5.4.6 mail loop\r\n250 ok", buf, sizeof buf);
    assert_string_equal(buf, "554 5.4.6 mail loop  250 ok"); /* no CRLF injection into our reply */
    smtpd_submit_reply_text(POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL, "", "no code", buf, sizeof buf);
    assert_string_equal(buf, "554 5.3.0 no code");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_ip_connections), cmocka_unit_test(test_rate), cmocka_unit_test(test_auth_lockout),
        cmocka_unit_test(test_received), cmocka_unit_test(test_queue_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
