/* DNS responses reduced to answers (CNAME chains, forged owners, TTLs, rcodes), name
 * validation, and the TTL cache. Packets are built with ldns as a server would send them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "resolver/answer.h"
#include "resolver/cache.h"
#include "resolver/names.h"

static ldns_pkt *response(ldns_pkt_rcode rc, const char *const *rrs)
{
    ldns_pkt *p = ldns_pkt_new();
    assert_non_null(p);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rcode(p, (uint8_t)rc);
    for (int i = 0; rrs && rrs[i]; i++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, rrs[i], 300, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    return p;
}

static void reduce(ldns_pkt_rcode rc, const char *const *rrs, const char *qname, ldns_rr_type type,
                   struct resolver_answer *a)
{
    ldns_pkt *p = response(rc, rrs);
    assert_int_equal(resolver_answer_from_pkt(p, qname, type, 60, a), 0);
    ldns_pkt_free(p);
}

/* TLSA (RFC 6698): "usage selector matching-type hex", malformed and oversized records
 * skipped; a fresh answer is INSECURE until a validator says otherwise. */
static void test_tlsa_records(void **state)
{
    (void)state;
    char big[2 * (RESOLVER_MAX_TLSA_DATA + 1) + 64];
    int n = snprintf(big, sizeof big, "_25._tcp.mx.test. 300 IN TLSA 3 1 1 ");
    for (int i = 0; i < RESOLVER_MAX_TLSA_DATA + 1; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "ab");
    const char *rrs[] = {"_25._tcp.mx.test. 300 IN TLSA 3 1 1 8D02536C887482BC34FF54E41D2BA659BF85B341A0A20AFADB5813DCFBCF286D",
                         "_25._tcp.mx.test. 300 IN TLSA 2 0 2 00ff", big, NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "_25._tcp.mx.test", LDNS_RR_TYPE_TLSA, &a);
    assert_int_equal(a.rcode, RESOLVER_OK);
    assert_int_equal(a.security, RESOLVER_INSECURE);
    assert_int_equal(a.n, 2); /* the 1025-octet one is skipped */
    assert_string_equal(a.rr[0].text, "3 1 1 8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d");
    assert_string_equal(a.rr[1].text, "2 0 2 00ff");
    resolver_answer_free(&a);
    assert_string_equal(resolver_security_name(RESOLVER_SECURE), "secure");
    assert_string_equal(resolver_security_name(RESOLVER_BOGUS), "bogus");
    assert_string_equal(resolver_security_name(RESOLVER_INSECURE), "insecure");
}

/* The cache keeps an answer's security with it. */
static void test_cache_keeps_security(void **state)
{
    (void)state;
    struct resolver_cache *c = resolver_cache_new(10);
    const char *rrs[] = {"sec.test. 300 IN MX 10 mx.sec.test.", NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "sec.test", LDNS_RR_TYPE_MX, &a);
    a.security = RESOLVER_SECURE;
    resolver_cache_put(c, "sec.test", LDNS_RR_TYPE_MX, &a, 100);
    const struct resolver_answer *hit = resolver_cache_get(c, "sec.test", LDNS_RR_TYPE_MX, 101);
    assert_non_null(hit);
    assert_int_equal(hit->security, RESOLVER_SECURE);
    resolver_answer_free(&a);
    struct resolver_answer bogus;
    resolver_answer_tempfail(&bogus, "DNSSEC validation failed: x");
    bogus.security = RESOLVER_BOGUS;
    resolver_cache_put(c, "bad.test", LDNS_RR_TYPE_MX, &bogus, 100); /* TEMPFAIL: never kept */
    assert_null(resolver_cache_get(c, "bad.test", LDNS_RR_TYPE_MX, 101));
    resolver_cache_free(c);
}

static void test_mx_records(void **state)
{
    (void)state;
    const char *rrs[] = {"Remote.TEST. 300 IN MX 20 MX2.remote.test.", "remote.test. 120 IN MX 10 mx1.remote.test.",
                         NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "remote.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.rcode, RESOLVER_OK);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.ttl, 120); /* the smallest TTL of what was used */
    assert_int_equal(a.rr[0].pref, 20);
    assert_string_equal(a.rr[0].text, "mx2.remote.test"); /* lower case, no trailing dot */
    assert_string_equal(a.rr[1].text, "mx1.remote.test");
    resolver_answer_free(&a);
}

static void test_null_mx_target_is_root(void **state)
{
    (void)state;
    const char *rrs[] = {"nullmx.test. 300 IN MX 0 .", NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "nullmx.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.rr[0].text, ".");
    assert_int_equal(a.rr[0].pref, 0);
    resolver_answer_free(&a);
}

static void test_cname_chain_and_forged_records(void **state)
{
    (void)state;
    const char *rrs[] = {"www.test. 500 IN CNAME alias.test.", "alias.test. 40 IN CNAME host.test.",
                         "host.test. 300 IN A 192.0.2.1", "evil.test. 300 IN A 6.6.6.6",
                         "www.test. 300 IN AAAA 2001:db8::1", NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "www.test", LDNS_RR_TYPE_A, &a);
    assert_int_equal(a.rcode, RESOLVER_OK);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.rr[0].text, "192.0.2.1");
    assert_int_equal(a.ttl, 40); /* the chain lives as long as its shortest link */
    resolver_answer_free(&a);
}

static void test_records_of_other_names_are_no_data(void **state)
{
    (void)state;
    const char *rrs[] = {"other.test. 300 IN MX 10 evil.test.", NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "asked.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.rcode, RESOLVER_NODATA);
    assert_int_equal(a.n, 0);
    assert_int_equal(a.ttl, 60);
}

static void test_rcodes(void **state)
{
    (void)state;
    struct resolver_answer a;
    reduce(LDNS_RCODE_NXDOMAIN, NULL, "gone.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.rcode, RESOLVER_NXDOMAIN);
    assert_int_equal(a.ttl, 60);
    reduce(LDNS_RCODE_SERVFAIL, NULL, "broken.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.rcode, RESOLVER_TEMPFAIL);
    assert_string_equal(a.why, "SERVFAIL");
    reduce(LDNS_RCODE_REFUSED, NULL, "broken.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.rcode, RESOLVER_TEMPFAIL);
}

static void test_unusable_names_are_skipped_and_counts_bounded(void **state)
{
    (void)state;
    static char bufs[100][80];
    const char *rrs[102];
    snprintf(bufs[0], sizeof bufs[0], "big.test. 300 IN MX 1 bad\\032name.test.");
    rrs[0] = bufs[0];
    for (int i = 1; i < 100; i++) {
        snprintf(bufs[i], sizeof bufs[i], "big.test. 300 IN MX %d mx%d.big.test.", i, i);
        rrs[i] = bufs[i];
    }
    rrs[100] = NULL;
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "big.test", LDNS_RR_TYPE_MX, &a);
    assert_int_equal(a.n, RESOLVER_MAX_RECORDS);
    for (int i = 0; i < a.n; i++)
        assert_null(strchr(a.rr[i].text, ' '));
    assert_string_equal(a.rr[0].text, "mx1.big.test");
    resolver_answer_free(&a);
}

static void test_name_normalization(void **state)
{
    (void)state;
    char out[RESOLVER_NAME_MAX];
    assert_int_equal(resolver_name_normalize("MX1.Example.TEST.", out, sizeof out), 0);
    assert_string_equal(out, "mx1.example.test");
    assert_int_equal(resolver_name_normalize(".", out, sizeof out), 0);
    assert_string_equal(out, ".");
    const char *bad[] = {"", "a..b", ".a", "a b.test", "x@y.test", "caf\xc3\xa9.test", "a/b", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(resolver_name_normalize(bad[i], out, sizeof out), -1);
    char label[80];
    memset(label, 'a', 64);
    strcpy(label + 64, ".test");
    assert_int_equal(resolver_name_normalize(label, out, sizeof out), -1); /* label > 63 */
    char longname[300];
    for (int i = 0; i < 255; i++)
        longname[i] = i % 2 ? '.' : 'a'; /* "a.a. ... a": 255 characters */
    longname[255] = '\0';
    assert_int_equal(resolver_name_normalize(longname, out, sizeof out), -1); /* > 253 */
}

static struct resolver_answer one_a(const char *addr, uint32_t ttl)
{
    static struct resolver_record rr;
    rr.pref = 0;
    rr.text = (char *)addr;
    struct resolver_answer a = {.rcode = RESOLVER_OK, .ttl = ttl, .n = 1, .rr = &rr};
    return a;
}

static void test_cache_ttl(void **state)
{
    (void)state;
    struct resolver_cache *c = resolver_cache_new(100);
    struct resolver_answer a = one_a("192.0.2.7", 30);
    resolver_cache_put(c, "h.test", LDNS_RR_TYPE_A, &a, 1000);
    const struct resolver_answer *got = resolver_cache_get(c, "h.test", LDNS_RR_TYPE_A, 1029);
    assert_non_null(got);
    assert_string_equal(got->rr[0].text, "192.0.2.7");
    assert_null(resolver_cache_get(c, "h.test", LDNS_RR_TYPE_AAAA, 1000)); /* other type */
    assert_null(resolver_cache_get(c, "h.test", LDNS_RR_TYPE_A, 1030));   /* expired */
    assert_int_equal(resolver_cache_count(c), 0);

    struct resolver_answer neg = {.rcode = RESOLVER_NXDOMAIN, .ttl = 5};
    resolver_cache_put(c, "gone.test", LDNS_RR_TYPE_MX, &neg, 1000);
    got = resolver_cache_get(c, "gone.test", LDNS_RR_TYPE_MX, 1004);
    assert_non_null(got);
    assert_int_equal(got->rcode, RESOLVER_NXDOMAIN);

    struct resolver_answer temp = {.rcode = RESOLVER_TEMPFAIL, .ttl = 300};
    resolver_cache_put(c, "flaky.test", LDNS_RR_TYPE_MX, &temp, 1000);
    assert_null(resolver_cache_get(c, "flaky.test", LDNS_RR_TYPE_MX, 1000));
    struct resolver_answer zero = one_a("192.0.2.8", 0);
    resolver_cache_put(c, "zero.test", LDNS_RR_TYPE_A, &zero, 1000);
    assert_null(resolver_cache_get(c, "zero.test", LDNS_RR_TYPE_A, 1000));

    /* A second put replaces the first. */
    struct resolver_answer b = one_a("192.0.2.9", 100);
    resolver_cache_put(c, "gone.test", LDNS_RR_TYPE_MX, &b, 1000);
    assert_int_equal(resolver_cache_get(c, "gone.test", LDNS_RR_TYPE_MX, 1050)->rcode, RESOLVER_OK);
    resolver_cache_free(c);
}

static void test_cache_is_bounded(void **state)
{
    (void)state;
    struct resolver_cache *c = resolver_cache_new(10);
    char name[32];
    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof name, "h%d.test", i);
        struct resolver_answer a = one_a("192.0.2.1", i < 5 ? 1 : 1000);
        resolver_cache_put(c, name, LDNS_RR_TYPE_A, &a, 100);
        assert_true(resolver_cache_count(c) <= 10);
    }
    /* The newest are kept, the oldest went first. */
    assert_non_null(resolver_cache_get(c, "h24.test", LDNS_RR_TYPE_A, 100));
    assert_null(resolver_cache_get(c, "h0.test", LDNS_RR_TYPE_A, 100));
    resolver_cache_free(c);
}

/* ---------------------------------------------------------------- TXT */

static void test_txt_strings_joined_per_record(void **state)
{
    (void)state;
    const char *rrs[] = {"_spf.x.test. 300 IN TXT \"v=spf1 ip4:192.0.2.0/24 \" \"include:_spf2.x.test\" \" -all\"",
                         "_spf.x.test. 100 IN TXT \"second record\"", "_spf.x.test. 300 IN TXT \"\"",
                         "other.test. 10 IN TXT \"not ours\"", "_spf.x.test. 300 IN A 192.0.2.1", NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "_spf.x.test", LDNS_RR_TYPE_TXT, &a);
    assert_int_equal(a.rcode, RESOLVER_OK);
    assert_int_equal(a.n, 3);
    assert_string_equal(a.rr[0].text, "v=spf1 ip4:192.0.2.0/24 include:_spf2.x.test -all");
    assert_string_equal(a.rr[1].text, "second record");
    assert_string_equal(a.rr[2].text, ""); /* an empty TXT is a record too */
    assert_int_equal(a.ttl, 100);
    resolver_answer_free(&a);
}

/* A 2048-bit DKIM key is ~400 octets: more than one 255-octet string. */
static void test_txt_dkim_key_sized(void **state)
{
    (void)state;
    char key[700], rr[1000];
    for (int i = 0; i < 600; i++)
        key[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
    key[600] = '\0';
    snprintf(rr, sizeof rr, "s._domainkey.x.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=%.200s\" \"%.255s\" \"%s\"", key,
             key + 200, key + 455);
    const char *rrs[] = {rr, NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "s._domainkey.x.test", LDNS_RR_TYPE_TXT, &a);
    assert_int_equal(a.n, 1);
    char want[800];
    snprintf(want, sizeof want, "v=DKIM1; k=rsa; p=%s", key);
    assert_string_equal(a.rr[0].text, want);
    resolver_answer_free(&a);
}

static void test_txt_hostile_bytes_and_size(void **state)
{
    (void)state;
    /* NUL, a control byte, non-ASCII: '?'; white space kept. */
    const char *rrs[] = {"h.test. 300 IN TXT \"a\\000b\\007c\\255d\\009e\"", NULL};
    struct resolver_answer a;
    reduce(LDNS_RCODE_NOERROR, rrs, "h.test", LDNS_RR_TYPE_TXT, &a);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.rr[0].text, "a?b?c?d\te");
    resolver_answer_free(&a);

    /* One record longer than the bus carries is skipped, a shorter one kept. */
    static char big[20000];
    size_t off = (size_t)snprintf(big, sizeof big, "big.test. 300 IN TXT");
    for (int i = 0; i < 17; i++) { /* 17 * 250 = 4250 > RESOLVER_MAX_TXT */
        off += (size_t)snprintf(big + off, sizeof big - off, " \"");
        memset(big + off, 'k', 250);
        off += 250;
        off += (size_t)snprintf(big + off, sizeof big - off, "\"");
    }
    const char *rrs2[] = {big, "big.test. 300 IN TXT \"small\"", NULL};
    reduce(LDNS_RCODE_NOERROR, rrs2, "big.test", LDNS_RR_TYPE_TXT, &a);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.rr[0].text, "small");
    resolver_answer_free(&a);
}

/* RFC 2308: the negative TTL is min(SOA TTL, SOA MINIMUM), at most negative_ttl (60 here). */
static void test_negative_ttl_from_soa(void **state)
{
    (void)state;
    const char *soas[] = {"test. 30 IN SOA ns.test. admin.test. 1 3600 600 86400 45",
                          "test. 3000 IN SOA ns.test. admin.test. 1 3600 600 86400 20",
                          "test. 3000 IN SOA ns.test. admin.test. 1 3600 600 86400 3000"};
    uint32_t want[] = {30, 20, 60};
    for (int i = 0; i < 3; i++) {
        for (int nx = 0; nx < 2; nx++) {
            ldns_pkt *p = response(nx ? LDNS_RCODE_NXDOMAIN : LDNS_RCODE_NOERROR, NULL);
            ldns_rr *rr = NULL;
            assert_int_equal(ldns_rr_new_frm_str(&rr, soas[i], 300, NULL, NULL), LDNS_STATUS_OK);
            ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
            struct resolver_answer a;
            assert_int_equal(resolver_answer_from_pkt(p, "_dmarc.gone.test", LDNS_RR_TYPE_TXT, 60, &a), 0);
            assert_int_equal(a.rcode, nx ? RESOLVER_NXDOMAIN : RESOLVER_NODATA);
            assert_int_equal(a.ttl, want[i]);
            ldns_pkt_free(p);
        }
    }
}

static void test_cache_bounded_in_bytes(void **state)
{
    (void)state;
    struct resolver_cache *c = resolver_cache_new(1000000);
    static char text[4001];
    memset(text, 't', 4000);
    struct resolver_record rr[64];
    for (int i = 0; i < 64; i++)
        rr[i] = (struct resolver_record){0, text};
    struct resolver_answer a = {.rcode = RESOLVER_OK, .ttl = 300, .n = 64, .rr = rr};
    char name[32];
    for (int i = 0; i < 400; i++) { /* 400 x 256 KB would be 100 MB */
        snprintf(name, sizeof name, "k%d.test", i);
        resolver_cache_put(c, name, LDNS_RR_TYPE_TXT, &a, 100);
        assert_true(resolver_cache_bytes(c) <= RESOLVER_CACHE_BYTES);
    }
    assert_non_null(resolver_cache_get(c, "k399.test", LDNS_RR_TYPE_TXT, 100));
    assert_null(resolver_cache_get(c, "k0.test", LDNS_RR_TYPE_TXT, 100));
    resolver_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mx_records),
        cmocka_unit_test(test_null_mx_target_is_root),
        cmocka_unit_test(test_cname_chain_and_forged_records),
        cmocka_unit_test(test_records_of_other_names_are_no_data),
        cmocka_unit_test(test_rcodes),
        cmocka_unit_test(test_unusable_names_are_skipped_and_counts_bounded),
        cmocka_unit_test(test_name_normalization),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_cache_is_bounded),
        cmocka_unit_test(test_txt_strings_joined_per_record),
        cmocka_unit_test(test_txt_dkim_key_sized),
        cmocka_unit_test(test_txt_hostile_bytes_and_size),
        cmocka_unit_test(test_negative_ttl_from_soa),
        cmocka_unit_test(test_cache_bounded_in_bytes),
        cmocka_unit_test(test_tlsa_records),
        cmocka_unit_test(test_cache_keeps_security),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
