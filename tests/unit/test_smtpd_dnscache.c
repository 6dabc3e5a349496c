/* smtpd's DNS answers (services/smtpd/dnscache.c): the resolver's replies mapped to the
 * statuses of dns.h (NXDOMAIN vs NODATA), question keys, the bounded TTL cache and the
 * table of questions in flight that identical questions share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "smtpd/dnscache.h"

static Postmesh__ResolveReply reply(Postmesh__ResolveReply__Status st, const char *dsn, uint32_t ttl)
{
    Postmesh__ResolveReply r = POSTMESH__RESOLVE_REPLY__INIT;
    r.status = st;
    r.dsn_status = (char *)dsn;
    r.text = "";
    r.ttl = ttl;
    return r;
}

static void test_a_answers(void **state)
{
    (void)state;
    char *addrs[] = {"127.0.0.2", "::1"};
    Postmesh__MxHost host = POSTMESH__MX_HOST__INIT, *hosts[] = {&host};
    host.name = "2.0.0.127.zen.test";
    host.addresses = addrs;
    host.n_addresses = 2;
    Postmesh__ResolveReply r = reply(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", 300);
    r.hosts = hosts;
    r.n_hosts = 1;
    struct smtpd_dns_result *res = smtpd_dns_result_from_reply(SMTPD_DNS_A, &r);
    assert_int_equal(res->status, SMTPD_DNS_OK);
    assert_int_equal(res->n, 2);
    assert_string_equal(res->records[0], "127.0.0.2");
    assert_string_equal(res->records[1], "::1");
    assert_int_equal(res->ttl, 300);
    smtpd_dns_result_unref(res);

    /* NODATA: OK without hosts; NXDOMAIN: PERMFAIL 5.1.2; both with their negative TTL. */
    r = reply(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", 45);
    res = smtpd_dns_result_from_reply(SMTPD_DNS_A, &r);
    assert_int_equal(res->status, SMTPD_DNS_NODATA);
    assert_int_equal(res->ttl, 45);
    smtpd_dns_result_unref(res);
    r = reply(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.2", 30);
    res = smtpd_dns_result_from_reply(SMTPD_DNS_A, &r);
    assert_int_equal(res->status, SMTPD_DNS_NXDOMAIN);
    assert_int_equal(res->ttl, 30);
    assert_int_equal(res->n, 0);
    smtpd_dns_result_unref(res);
}

static void test_other_answers(void **state)
{
    (void)state;
    assert_int_equal(smtpd_dns_result_from_reply(SMTPD_DNS_TXT, NULL)->status, SMTPD_DNS_TEMPFAIL);
    Postmesh__ResolveReply r = reply(POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL, "4.4.3", 0);
    assert_int_equal(smtpd_dns_result_from_reply(SMTPD_DNS_TXT, &r)->status, SMTPD_DNS_TEMPFAIL);
    r = reply(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.3", 0); /* a name it will not ask */
    assert_int_equal(smtpd_dns_result_from_reply(SMTPD_DNS_TXT, &r)->status, SMTPD_DNS_PERMFAIL);

    char *texts[] = {"v=spf1 -all", "second"};
    r = reply(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", 60);
    r.texts = texts;
    r.n_texts = 2;
    struct smtpd_dns_result *res = smtpd_dns_result_from_reply(SMTPD_DNS_TXT, &r);
    assert_int_equal(res->status, SMTPD_DNS_OK);
    assert_int_equal(res->n, 2);
    assert_string_equal(res->records[1], "second");
    smtpd_dns_result_unref(res);

    r = reply(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.10", 60); /* null MX */
    res = smtpd_dns_result_from_reply(SMTPD_DNS_MX, &r);
    assert_int_equal(res->status, SMTPD_DNS_OK);
    assert_string_equal(res->records[0], ".");
    smtpd_dns_result_unref(res);

    Postmesh__MxHost host = POSTMESH__MX_HOST__INIT, *hosts[] = {&host};
    host.name = "x.test";
    r = reply(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", 60);
    r.text = "implicit MX";
    r.hosts = hosts;
    r.n_hosts = 1;
    res = smtpd_dns_result_from_reply(SMTPD_DNS_MX, &r);
    assert_int_equal(res->status, SMTPD_DNS_NODATA); /* no MX record */
    smtpd_dns_result_unref(res);
    r.text = "";
    res = smtpd_dns_result_from_reply(SMTPD_DNS_MX, &r);
    assert_int_equal(res->status, SMTPD_DNS_OK);
    assert_string_equal(res->records[0], "x.test");
    smtpd_dns_result_unref(res);
}

static void test_keys(void **state)
{
    (void)state;
    char k[SMTPD_DNS_NAME_MAX + 1];
    assert_int_equal(smtpd_dns_key("_DMARC.Example.TEST.", k, sizeof k), 0);
    assert_string_equal(k, "_dmarc.example.test");
    assert_int_equal(smtpd_dns_key("2.0.0.127.zen.test", k, sizeof k), 0);
    const char *bad[] = {"", "a b", "a\nb", "caf\xc3\xa9", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(smtpd_dns_key(bad[i], k, sizeof k), -1);
    char longname[300];
    memset(longname, 'a', 254);
    longname[254] = '\0';
    assert_int_equal(smtpd_dns_key(longname, k, sizeof k), -1);
}

static struct smtpd_dns_result *one(const char *text, uint32_t ttl)
{
    const char *recs[] = {text};
    return smtpd_dns_result_new(SMTPD_DNS_OK, ttl, recs, 1);
}

static void test_cache_ttl_and_kinds(void **state)
{
    (void)state;
    struct smtpd_dns_cache *c = smtpd_dns_cache_new(100, 1 << 20);
    struct smtpd_dns_result *r = one("127.0.0.2", 30);
    smtpd_dns_cache_put(c, SMTPD_DNS_A, "2.0.0.127.zen.test", r, 1000);
    smtpd_dns_result_unref(r); /* the cache keeps its own reference */
    struct smtpd_dns_result *got = smtpd_dns_cache_get(c, SMTPD_DNS_A, "2.0.0.127.zen.test", 30999);
    assert_non_null(got);
    assert_string_equal(got->records[0], "127.0.0.2");
    smtpd_dns_result_unref(got);
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_TXT, "2.0.0.127.zen.test", 1000)); /* other type */
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_A, "2.0.0.127.zen.test", 31000));  /* expired */
    assert_int_equal(smtpd_dns_cache_count(c), 0);

    /* Negative answers are kept; failures and TTL 0 are not. */
    r = smtpd_dns_result_new(SMTPD_DNS_NXDOMAIN, 5, NULL, 0);
    smtpd_dns_cache_put(c, SMTPD_DNS_A, "gone.test", r, 0);
    smtpd_dns_result_unref(r);
    got = smtpd_dns_cache_get(c, SMTPD_DNS_A, "gone.test", 4000);
    assert_int_equal(got->status, SMTPD_DNS_NXDOMAIN);
    smtpd_dns_result_unref(got);
    smtpd_dns_cache_put(c, SMTPD_DNS_A, "t.test", smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL), 0);
    r = one("x", 0);
    smtpd_dns_cache_put(c, SMTPD_DNS_A, "zero.test", r, 0);
    smtpd_dns_result_unref(r);
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_A, "t.test", 0));
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_A, "zero.test", 0));

    /* A day's TTL is kept at most SMTPD_DNS_MAX_TTL. */
    r = one("long", 86400);
    smtpd_dns_cache_put(c, SMTPD_DNS_TXT, "long.test", r, 0);
    smtpd_dns_result_unref(r);
    got = smtpd_dns_cache_get(c, SMTPD_DNS_TXT, "long.test", SMTPD_DNS_MAX_TTL * 1000ull - 1);
    assert_non_null(got);
    smtpd_dns_result_unref(got);
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_TXT, "long.test", SMTPD_DNS_MAX_TTL * 1000ull));
    smtpd_dns_cache_free(c);
}

static void test_cache_bounded(void **state)
{
    (void)state;
    struct smtpd_dns_cache *c = smtpd_dns_cache_new(10, 1 << 20);
    char name[32];
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "h%d.test", i);
        struct smtpd_dns_result *r = one("127.0.0.2", 1000);
        smtpd_dns_cache_put(c, SMTPD_DNS_A, name, r, 0);
        smtpd_dns_result_unref(r);
        assert_true(smtpd_dns_cache_count(c) <= 10);
    }
    struct smtpd_dns_result *got = smtpd_dns_cache_get(c, SMTPD_DNS_A, "h24.test", 0);
    assert_non_null(got);
    smtpd_dns_result_unref(got);
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_A, "h0.test", 0));
    smtpd_dns_cache_free(c);

    /* In bytes: big TXT answers push out the oldest; one over a quarter is not kept. */
    c = smtpd_dns_cache_new(1000, 64 * 1024);
    static char text[4001];
    memset(text, 't', 4000);
    const char *recs[5] = {text, text, text, text, text};
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "k%d.test", i);
        struct smtpd_dns_result *r = smtpd_dns_result_new(SMTPD_DNS_OK, 100, recs, i == 19 ? 5 : 1);
        smtpd_dns_cache_put(c, SMTPD_DNS_TXT, name, r, 0);
        smtpd_dns_result_unref(r);
    }
    assert_true(smtpd_dns_cache_count(c) < 16);
    assert_null(smtpd_dns_cache_get(c, SMTPD_DNS_TXT, "k19.test", 0)); /* 20 KB of 64 */
    got = smtpd_dns_cache_get(c, SMTPD_DNS_TXT, "k18.test", 0);
    assert_non_null(got);
    smtpd_dns_result_unref(got);
    smtpd_dns_cache_free(c);
}

static void test_records_bounded(void **state)
{
    (void)state;
    const char *recs[100];
    for (int i = 0; i < 100; i++)
        recs[i] = "127.0.0.1";
    struct smtpd_dns_result *r = smtpd_dns_result_new(SMTPD_DNS_OK, 1, recs, 100);
    assert_int_equal(r->n, SMTPD_DNS_MAX_RECORDS);
    assert_null(r->records[r->n]);
    smtpd_dns_result_unref(r);
}

static void test_flights(void **state)
{
    (void)state;
    struct smtpd_dns_flights *t = smtpd_dns_flights_new();
    struct smtpd_dns_flight *a = (struct smtpd_dns_flight *)0x1, *b = (struct smtpd_dns_flight *)0x2;
    assert_int_equal(smtpd_dns_flights_add(t, SMTPD_DNS_A, "x.test", a), 0);
    assert_int_equal(smtpd_dns_flights_add(t, SMTPD_DNS_TXT, "x.test", b), 0);
    assert_int_equal(smtpd_dns_flights_add(t, SMTPD_DNS_A, "x.test", b), -1); /* one per question */
    assert_ptr_equal(smtpd_dns_flights_find(t, SMTPD_DNS_A, "x.test"), a);
    assert_ptr_equal(smtpd_dns_flights_find(t, SMTPD_DNS_TXT, "x.test"), b);
    assert_null(smtpd_dns_flights_find(t, SMTPD_DNS_MX, "x.test"));
    assert_int_equal(smtpd_dns_flights_count(t), 2);
    smtpd_dns_flights_remove(t, SMTPD_DNS_A, "x.test");
    assert_null(smtpd_dns_flights_find(t, SMTPD_DNS_A, "x.test"));
    assert_int_equal(smtpd_dns_flights_count(t), 1);
    smtpd_dns_flights_free(t, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_answers),         cmocka_unit_test(test_other_answers),
        cmocka_unit_test(test_keys),              cmocka_unit_test(test_cache_ttl_and_kinds),
        cmocka_unit_test(test_cache_bounded),     cmocka_unit_test(test_records_bounded),
        cmocka_unit_test(test_flights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
