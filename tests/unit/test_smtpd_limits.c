/* smtpd bookkeeping that needs no network: the per-client table (common/clients.c, shared
 * with pop3d: per-IP limits, AUTH lockout, checks in flight, a bounded table that never
 * forgets a lockout), the Received: header, and the mapping of queue answers to SMTP
 * replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "clients.h"
#include "smtpd/received.h"
#include "smtpd/submit.h"

static void test_per_ip_connections(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 2, .rate_per_min = 0, .auth_failures = 3, .auth_lockout = 60};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    struct pm_client *a = pm_clients_connect(c, "192.0.2.1", 1000, &v);
    struct pm_client *b = pm_clients_connect(c, "192.0.2.1", 1000, &v);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_null(pm_clients_connect(c, "192.0.2.1", 1000, &v));
    assert_int_equal(v, PM_CLIENT_TOO_MANY);
    assert_non_null(pm_clients_connect(c, "192.0.2.2", 1000, &v)); /* another IP is unaffected */
    pm_clients_disconnect(c, a, 1001);
    assert_non_null(pm_clients_connect(c, "192.0.2.1", 1001, &v));
    pm_clients_free(c);
}

static void test_rate(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 100, .rate_per_min = 3, .auth_failures = 3, .auth_lockout = 60};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    for (int i = 0; i < 3; i++) {
        struct pm_client *e = pm_clients_connect(c, "2001:db8::1", 1000 + i, &v);
        assert_non_null(e);
        pm_clients_disconnect(c, e, 1000 + i);
    }
    assert_null(pm_clients_connect(c, "2001:db8::1", 1010, &v));
    assert_int_equal(v, PM_CLIENT_TOO_FAST);
    /* The window is remembered while idle, then forgotten after a minute. */
    assert_int_equal(pm_clients_sweep(c, 1030), 1);
    assert_int_equal(pm_clients_sweep(c, 1061), 0);
    assert_non_null(pm_clients_connect(c, "2001:db8::1", 1061, &v));
    pm_clients_free(c);
}

static void test_auth_lockout(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 100, .rate_per_min = 0, .auth_failures = 3, .auth_lockout = 60};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    struct pm_client *e = pm_clients_connect(c, "192.0.2.9", 1000, &v);
    assert_false(pm_clients_auth_failed(c, e, 1000));
    assert_false(pm_clients_auth_failed(c, e, 1001));
    assert_false(pm_clients_auth_locked(c, e, 1002));
    assert_true(pm_clients_auth_failed(c, e, 1002));
    assert_true(pm_clients_auth_locked(c, e, 1003));
    /* The lockout survives reconnecting... */
    pm_clients_disconnect(c, e, 1004);
    e = pm_clients_connect(c, "192.0.2.9", 1005, &v);
    assert_true(pm_clients_auth_locked(c, e, 1005));
    /* ...and ends after auth_lockout seconds. */
    assert_false(pm_clients_auth_locked(c, e, 1062));
    /* Failures spread wider than the window do not add up. */
    assert_false(pm_clients_auth_failed(c, e, 2000));
    assert_false(pm_clients_auth_failed(c, e, 2001));
    assert_false(pm_clients_auth_failed(c, e, 2100));
    assert_false(pm_clients_auth_locked(c, e, 2100));
    pm_clients_disconnect(c, e, 2101);
    pm_clients_free(c);
}

/* Failures from one address lock it out; different addresses do not add up (pop3d's rules
 * are the same table with its own limits). */
static void test_lockout_window(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 10, .auth_failures = 3, .auth_lockout = 100};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    struct pm_client *a = pm_clients_connect(c, "192.0.2.1", 1000, &v);
    struct pm_client *b = pm_clients_connect(c, "192.0.2.2", 1000, &v);
    assert_false(pm_clients_auth_failed(c, a, 1000));
    assert_false(pm_clients_auth_failed(c, a, 1001));
    assert_false(pm_clients_auth_failed(c, b, 1001));
    assert_true(pm_clients_auth_failed(c, a, 1002));
    assert_true(pm_clients_auth_locked(c, a, 1050));
    assert_false(pm_clients_auth_locked(c, b, 1050));
    assert_false(pm_clients_auth_locked(c, a, 1102)); /* lockout over */
    /* failures spread wider than the window never lock */
    for (int i = 0; i < 10; i++)
        assert_false(pm_clients_auth_failed(c, b, 2000 + i * 101));
    pm_clients_disconnect(c, a, 3000);
    pm_clients_disconnect(c, b, 3000);
    pm_clients_free(c);
}

/* Each address may have auth_in_flight password checks running; the others are not held up. */
static void test_auth_in_flight(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 10, .auth_failures = 3, .auth_lockout = 100, .auth_in_flight = 2};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    struct pm_client *a = pm_clients_connect(c, "192.0.2.1", 1000, &v);
    struct pm_client *b = pm_clients_connect(c, "192.0.2.2", 1000, &v);
    assert_true(pm_clients_auth_begin(c, a));
    assert_true(pm_clients_auth_begin(c, a));
    assert_false(pm_clients_auth_begin(c, a));
    assert_true(pm_clients_auth_begin(c, b));
    pm_clients_auth_end(c, a);
    assert_true(pm_clients_auth_begin(c, a));
    pm_clients_auth_end(c, a);
    pm_clients_auth_end(c, a);
    pm_clients_auth_end(c, b);
    pm_clients_disconnect(c, a, 1001);
    pm_clients_disconnect(c, b, 1001);
    pm_clients_free(c);
}

/* Locks out ip (connects, fails auth_failures times, leaves). */
static void lock_out(struct pm_clients *c, const char *ip, long failures, time_t now)
{
    enum pm_client_verdict v;
    struct pm_client *e = pm_clients_connect(c, ip, now, &v);
    assert_non_null(e);
    for (long i = 0; i < failures; i++)
        pm_clients_auth_failed(c, e, now);
    assert_true(pm_clients_auth_locked(c, e, now));
    pm_clients_disconnect(c, e, now);
}

/* A full table makes room by forgetting the address seen longest ago that is not locked out:
 * a flood of source addresses with counters to remember (here: their connection rate) never
 * resets a lockout. (It used to: past the cap every leaving client was freed, locked or not.) */
static void test_flood_keeps_lockouts(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 10, .rate_per_min = 5, .auth_failures = 3, .auth_lockout = 600,
                                   .max_entries = 64};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    lock_out(c, "198.51.100.1", 3, 1000);
    char ip[64];
    for (int i = 0; i < 10 * 64; i++) {
        snprintf(ip, sizeof ip, "2001:db8::%x", i);
        struct pm_client *e = pm_clients_connect(c, ip, 1001, &v);
        assert_non_null(e); /* room is made: the flood itself is not refused */
        pm_clients_disconnect(c, e, 1001);
    }
    assert_int_equal(pm_clients_sweep(c, 1002), 64); /* bounded: every entry has a rate window open */
    struct pm_client *back = pm_clients_connect(c, "198.51.100.1", 1003, &v);
    assert_non_null(back);
    assert_true(pm_clients_auth_locked(c, back, 1003)); /* the lockout survived */
    pm_clients_disconnect(c, back, 1003);
    /* The least recently used unlocked address went first: the newest flood address is kept
     * (its rate window is still counted), the oldest was forgotten (its count starts over). */
    for (int i = 0; i < 5; i++) {
        struct pm_client *e = pm_clients_connect(c, "2001:db8::27f", 1004, &v);
        if (i < 4) {
            assert_non_null(e);
            pm_clients_disconnect(c, e, 1004);
        } else {
            assert_null(e);
            assert_int_equal(v, PM_CLIENT_TOO_FAST);
        }
    }
    pm_clients_free(c);
}

/* The exact flood that used to reset a lockout: the table at its default size, over it by
 * one open connection, and the locked client comes back once. */
static void test_full_default_table_keeps_lockouts(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 10, .rate_per_min = 5, .auth_failures = 3, .auth_lockout = 600};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    lock_out(c, "198.51.100.1", 3, 1000);
    char ip[64];
    struct pm_client *open = NULL;
    for (int i = 0; i <= PM_CLIENTS_MAX_ENTRIES; i++) {
        snprintf(ip, sizeof ip, "2001:db8::%x", i);
        struct pm_client *e = pm_clients_connect(c, ip, 1001, &v);
        assert_non_null(e);
        if (i < PM_CLIENTS_MAX_ENTRIES)
            pm_clients_disconnect(c, e, 1001);
        else
            open = e;
    }
    for (int visit = 0; visit < 2; visit++) {
        struct pm_client *e = pm_clients_connect(c, "198.51.100.1", 1003 + visit, &v);
        assert_non_null(e);
        assert_true(pm_clients_auth_locked(c, e, 1003 + visit));
        pm_clients_disconnect(c, e, 1003 + visit);
    }
    pm_clients_disconnect(c, open, 1005);
    pm_clients_free(c);
}

/* When every remembered address is locked out (or connected), a new address is refused until
 * a lockout ends, rather than one being forgotten. */
static void test_table_of_lockouts_refuses_new_addresses(void **state)
{
    (void)state;
    struct pm_client_limits lim = {.max_per_ip = 10, .auth_failures = 2, .auth_lockout = 600, .max_entries = 16};
    struct pm_clients *c = pm_clients_new(&lim);
    enum pm_client_verdict v;
    char ip[64];
    for (int i = 0; i < 16; i++) {
        snprintf(ip, sizeof ip, "203.0.113.%d", i);
        lock_out(c, ip, 2, 1000 + i);
    }
    assert_null(pm_clients_connect(c, "192.0.2.200", 1100, &v));
    assert_int_equal(v, PM_CLIENT_TABLE_FULL);
    /* a locked address itself may still connect (and is still locked) */
    struct pm_client *e = pm_clients_connect(c, "203.0.113.3", 1100, &v);
    assert_non_null(e);
    assert_true(pm_clients_auth_locked(c, e, 1100));
    pm_clients_disconnect(c, e, 1100);
    for (int i = 0; i < 16; i++) {
        snprintf(ip, sizeof ip, "203.0.113.%d", i);
        e = pm_clients_connect(c, ip, 1200, &v);
        assert_non_null(e);
        assert_true(pm_clients_auth_locked(c, e, 1200));
        pm_clients_disconnect(c, e, 1200);
    }
    /* the first lockout has ended: its place is free for a newcomer */
    e = pm_clients_connect(c, "192.0.2.200", 1601, &v);
    assert_non_null(e);
    pm_clients_disconnect(c, e, 1601);
    snprintf(ip, sizeof ip, "203.0.113.%d", 15);
    e = pm_clients_connect(c, ip, 1601, &v);
    assert_true(pm_clients_auth_locked(c, e, 1601)); /* the others are all still remembered */
    pm_clients_disconnect(c, e, 1601);
    assert_int_equal(pm_clients_sweep(c, 3000), 0);
    pm_clients_free(c);
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
        cmocka_unit_test(test_lockout_window), cmocka_unit_test(test_auth_in_flight),
        cmocka_unit_test(test_flood_keeps_lockouts),
        cmocka_unit_test(test_full_default_table_keeps_lockouts), cmocka_unit_test(test_table_of_lockouts_refuses_new_addresses),
        cmocka_unit_test(test_received), cmocka_unit_test(test_queue_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
