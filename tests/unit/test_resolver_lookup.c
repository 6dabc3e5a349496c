/* How a lookup turns the security of its answers into ResolveReply.dnssec and MxHost.secure,
 * and TLSA answers into TlsaRecords: answers are put in the cache first, so every lookup is
 * answered from it (no transport). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/lookup.h"

/* A transport that fails every question it gets (cache misses), later, as the real one:
 * TEMPFAIL answers are never cached, so failures come through here. */
struct fake_q {
    resolver_transport_cb cb;
    void *arg;
    enum resolver_security sec;
};
static struct fake_q fake[16];
static int nfake;
static enum resolver_security fake_sec; /* what the next failures say: BOGUS or INSECURE (timeout) */

int resolver_transport_query(struct resolver_transport *t, const char *name, ldns_rr_type type,
                             resolver_transport_cb cb, void *arg)
{
    (void)t, (void)name, (void)type;
    if (nfake >= 16)
        return -1;
    fake[nfake++] = (struct fake_q){cb, arg, fake_sec};
    return 0;
}

static void fake_answer_all(void)
{
    for (int i = 0; i < nfake; i++)
        fake[i].cb(NULL, fake[i].sec, fake[i].sec == RESOLVER_BOGUS ? "DNSSEC validation failed: sig" : "timeout",
                   fake[i].arg);
    nfake = 0;
}

static struct resolver_cache *cache;
static struct resolver_queries *queries;
static Postmesh__ResolveReply *got;

static void put(const char *name, ldns_rr_type type, enum resolver_rcode rc, enum resolver_security sec,
                const char *text, uint16_t pref)
{
    struct resolver_answer a = {.rcode = rc, .ttl = 300, .security = sec};
    struct resolver_record r = {pref, (char *)text};
    if (text) {
        a.n = 1;
        a.rr = &r;
    }
    resolver_cache_put(cache, name, (uint16_t)type, &a, resolver_now());
}

static void done(Postmesh__ResolveReply *reply, void *arg)
{
    (void)arg;
    /* a copy that outlives the call: pack and unpack */
    size_t len = postmesh__resolve_reply__get_packed_size(reply);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    postmesh__resolve_reply__pack(reply, buf);
    got = postmesh__resolve_reply__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(got);
}

static Postmesh__ResolveReply *ask(Postmesh__ResolveRequest__Kind kind, const char *name)
{
    if (got)
        postmesh__resolve_reply__free_unpacked(got, NULL);
    got = NULL;
    Postmesh__ResolveRequest req = POSTMESH__RESOLVE_REQUEST__INIT;
    req.kind = kind;
    req.name = (char *)name;
    resolver_lookup_start(queries, &req, done, NULL);
    assert_non_null(got); /* everything was cached: answered at once */
    return got;
}

/* As ask(), for a lookup that waits for the fake transport. */
static Postmesh__ResolveReply *ask_failing(Postmesh__ResolveRequest__Kind kind, const char *name,
                                          enum resolver_security sec)
{
    if (got)
        postmesh__resolve_reply__free_unpacked(got, NULL);
    got = NULL;
    fake_sec = sec;
    Postmesh__ResolveRequest req = POSTMESH__RESOLVE_REQUEST__INIT;
    req.kind = kind;
    req.name = (char *)name;
    resolver_lookup_start(queries, &req, done, NULL);
    assert_null(got);
    assert_true(nfake > 0);
    fake_answer_all();
    assert_non_null(got);
    return got;
}

static int setup(void **state)
{
    (void)state;
    cache = resolver_cache_new(100);
    queries = resolver_queries_new(NULL, cache, 60);
    return cache && queries ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (got)
        postmesh__resolve_reply__free_unpacked(got, NULL);
    got = NULL;
    resolver_queries_free(queries);
    resolver_cache_free(cache);
    return 0;
}

#define MX POSTMESH__RESOLVE_REQUEST__KIND__MX
#define A POSTMESH__RESOLVE_REQUEST__KIND__A
#define TLSA POSTMESH__RESOLVE_REQUEST__KIND__TLSA
#define SECURE POSTMESH__DNSSEC__DNSSEC_SECURE
#define INSECURE POSTMESH__DNSSEC__DNSSEC_INSECURE

static void test_secure_mx_and_hosts(void **state)
{
    (void)state;
    put("sec.test", LDNS_RR_TYPE_MX, RESOLVER_OK, RESOLVER_SECURE, "mx.sec.test", 10);
    put("mx.sec.test", LDNS_RR_TYPE_A, RESOLVER_OK, RESOLVER_SECURE, "192.0.2.1", 0);
    put("mx.sec.test", LDNS_RR_TYPE_AAAA, RESOLVER_NODATA, RESOLVER_SECURE, NULL, 0);
    Postmesh__ResolveReply *r = ask(MX, "sec.test");
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__OK);
    assert_int_equal(r->dnssec, SECURE);
    assert_int_equal(r->n_hosts, 1);
    assert_true(r->hosts[0]->secure);
    r = ask(A, "mx.sec.test");
    assert_int_equal(r->dnssec, SECURE);
    assert_true(r->hosts[0]->secure);
}

static void test_one_insecure_family_makes_the_host_insecure(void **state)
{
    (void)state;
    put("mixed.test", LDNS_RR_TYPE_MX, RESOLVER_OK, RESOLVER_SECURE, "mx.mixed.test", 10);
    put("mx.mixed.test", LDNS_RR_TYPE_A, RESOLVER_OK, RESOLVER_SECURE, "192.0.2.2", 0);
    put("mx.mixed.test", LDNS_RR_TYPE_AAAA, RESOLVER_OK, RESOLVER_INSECURE, "2001:db8::2", 0);
    Postmesh__ResolveReply *r = ask(MX, "mixed.test");
    assert_int_equal(r->dnssec, SECURE); /* the MX answer itself was */
    assert_false(r->hosts[0]->secure);
    assert_int_equal(r->hosts[0]->n_addresses, 2);
    r = ask(A, "mx.mixed.test");
    assert_int_equal(r->dnssec, INSECURE);
}

static void test_insecure_mx_secure_host(void **state)
{
    (void)state;
    put("plain.test", LDNS_RR_TYPE_MX, RESOLVER_OK, RESOLVER_INSECURE, "mx.sec2.test", 10);
    put("mx.sec2.test", LDNS_RR_TYPE_A, RESOLVER_OK, RESOLVER_SECURE, "192.0.2.3", 0);
    put("mx.sec2.test", LDNS_RR_TYPE_AAAA, RESOLVER_NODATA, RESOLVER_SECURE, NULL, 0);
    Postmesh__ResolveReply *r = ask(MX, "plain.test");
    assert_int_equal(r->dnssec, INSECURE);
    assert_true(r->hosts[0]->secure);
}

static void test_secure_implicit_mx_and_nxdomain(void **state)
{
    (void)state;
    put("imp.test", LDNS_RR_TYPE_MX, RESOLVER_NODATA, RESOLVER_SECURE, NULL, 0);
    put("imp.test", LDNS_RR_TYPE_A, RESOLVER_OK, RESOLVER_SECURE, "192.0.2.4", 0);
    put("imp.test", LDNS_RR_TYPE_AAAA, RESOLVER_NODATA, RESOLVER_SECURE, NULL, 0);
    Postmesh__ResolveReply *r = ask(MX, "imp.test");
    assert_string_equal(r->text, "implicit MX");
    assert_int_equal(r->dnssec, SECURE);
    assert_true(r->hosts[0]->secure);
    put("gone.test", LDNS_RR_TYPE_MX, RESOLVER_NXDOMAIN, RESOLVER_SECURE, NULL, 0);
    r = ask(MX, "gone.test");
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL);
    assert_string_equal(r->dsn_status, "5.1.2");
    assert_int_equal(r->dnssec, SECURE);
}

static void test_tlsa_records(void **state)
{
    (void)state;
    put("_25._tcp.mx.sec.test", LDNS_RR_TYPE_TLSA, RESOLVER_OK, RESOLVER_SECURE, "3 1 1 00ff10", 0);
    Postmesh__ResolveReply *r = ask(TLSA, "_25._tcp.mx.sec.test");
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__OK);
    assert_int_equal(r->dnssec, SECURE);
    assert_int_equal(r->n_tlsa, 1);
    assert_int_equal(r->tlsa[0]->usage, 3);
    assert_int_equal(r->tlsa[0]->selector, 1);
    assert_int_equal(r->tlsa[0]->matching_type, 1);
    assert_int_equal(r->tlsa[0]->data.len, 3);
    assert_memory_equal(r->tlsa[0]->data.data, "\x00\xff\x10", 3);
    /* a text that is not a TLSA record (odd hex) is dropped, never half-parsed */
    put("_25._tcp.odd.test", LDNS_RR_TYPE_TLSA, RESOLVER_OK, RESOLVER_INSECURE, "3 1 1 abc", 0);
    r = ask(TLSA, "_25._tcp.odd.test");
    assert_int_equal(r->n_tlsa, 0);
    put("_25._tcp.none.test", LDNS_RR_TYPE_TLSA, RESOLVER_NODATA, RESOLVER_SECURE, NULL, 0);
    r = ask(TLSA, "_25._tcp.none.test");
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__OK);
    assert_int_equal(r->n_tlsa, 0);
    assert_int_equal(r->dnssec, SECURE);
}

/* A bogus AAAA answer must not leave the host in the reply through its (secure) A: it would
 * go out as an insecure host, i.e. without DANE. */
static void test_one_bogus_family_drops_the_host(void **state)
{
    (void)state;
    put("bog.test", LDNS_RR_TYPE_MX, RESOLVER_OK, RESOLVER_SECURE, "mx.bog.test", 10);
    put("mx.bog.test", LDNS_RR_TYPE_A, RESOLVER_OK, RESOLVER_SECURE, "192.0.2.5", 0);
    Postmesh__ResolveReply *r = ask_failing(MX, "bog.test", RESOLVER_BOGUS); /* its AAAA */
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL);
    assert_string_equal(r->dsn_status, "4.7.5");
    assert_int_equal(r->dnssec, POSTMESH__DNSSEC__DNSSEC_BOGUS);
    assert_int_equal(r->n_hosts, 0);
    r = ask_failing(A, "mx.bog.test", RESOLVER_BOGUS);
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL);
    assert_string_equal(r->dsn_status, "4.7.5");
}

/* A dropped AAAA question (timeout) must not make a host with secure A records insecure:
 * else dropping packets would be enough to turn DANE off. */
static void test_failed_family_keeps_the_host_secure(void **state)
{
    (void)state;
    put("drop.test", LDNS_RR_TYPE_MX, RESOLVER_OK, RESOLVER_SECURE, "mx.drop.test", 10);
    put("mx.drop.test", LDNS_RR_TYPE_A, RESOLVER_OK, RESOLVER_SECURE, "192.0.2.6", 0);
    Postmesh__ResolveReply *r = ask_failing(MX, "drop.test", RESOLVER_INSECURE); /* its AAAA: timeout */
    assert_int_equal(r->status, POSTMESH__RESOLVE_REPLY__STATUS__OK);
    assert_int_equal(r->n_hosts, 1);
    assert_true(r->hosts[0]->secure);
    r = ask_failing(A, "mx.drop.test", RESOLVER_INSECURE);
    assert_int_equal(r->dnssec, SECURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secure_mx_and_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_insecure_family_makes_the_host_insecure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insecure_mx_secure_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_implicit_mx_and_nxdomain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tlsa_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_bogus_family_drops_the_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_family_keeps_the_host_secure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
