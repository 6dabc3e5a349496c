/* Inbound verification under attack, without a network: a sender who controls the DNS of
 * its own domain (SPF includes that loop or chain past RFC 7208's limits, void lookups,
 * macros over a hostile local part, huge TXT answers, DMARC records of junk), hostile
 * DKIM-Signature: fields (huge, many, duplicated tags, bad base64, l= past the body, h=
 * naming 1000 fields), From: fields built to hide the domain DMARC must judge, and values
 * meant to break out of our Authentication-Results:. Run under ASan+UBSan (`make unit`).
 * The fake resolver answers from a zone written here, one round of lookups at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "smtpd/authres_dns.h"
#include "smtpd/authres_header.h"
#include "smtpd/dkim_verify.h"
#include "smtpd/dmarc_check.h"
#include "smtpd/spf_check.h"

/* ---------------------------------------------------------------- the fake resolver */

#define ZONE_MAX_RECORDS 40

struct zone_rr {
    enum smtpd_dns_type type;
    const char *name;
    enum smtpd_dns_status status;
    const char *records[ZONE_MAX_RECORDS];
};

static const struct zone_rr *zone;
static size_t zone_n;

struct fake_query {
    enum smtpd_dns_type type;
    char name[300];
    smtpd_dns_done done;
    void *arg;
    int live;
};

static struct fake_query queries[1024];
static size_t nqueries, delivered_from;

struct smtpd_dns_query *smtpd_dns_lookup(struct smtpd_server *srv, enum smtpd_dns_type type, const char *name,
                                         long timeout_ms, smtpd_dns_done done, void *arg)
{
    (void)srv;
    assert_true(timeout_ms > 0);
    assert_true(nqueries < sizeof queries / sizeof queries[0]);
    struct fake_query *q = &queries[nqueries++];
    q->type = type;
    snprintf(q->name, sizeof q->name, "%s", name);
    q->done = done;
    q->arg = arg;
    q->live = 1;
    return (struct smtpd_dns_query *)q;
}

void smtpd_dns_cancel(struct smtpd_dns_query *q) { ((struct fake_query *)q)->live = 0; }

static void deliver(void)
{
    size_t end = nqueries;
    for (size_t i = delivered_from; i < end; i++) {
        struct fake_query *q = &queries[i];
        if (!q->live)
            continue;
        q->live = 0;
        struct smtpd_dns_answer a = {.status = SMTPD_DNS_NXDOMAIN};
        for (size_t z = 0; z < zone_n; z++) {
            if (zone[z].type == q->type && strcmp(zone[z].name, q->name) == 0) {
                a.status = zone[z].status;
                a.records = zone[z].records;
                while (a.n < ZONE_MAX_RECORDS && zone[z].records[a.n])
                    a.n++;
                break;
            }
        }
        q->done(q->arg, &a);
    }
    delivered_from = end;
}

static void use_zone(const struct zone_rr *z, size_t n)
{
    zone = z;
    zone_n = n;
    nqueries = delivered_from = 0;
}

static void on_fetched(void *arg) { (void)arg; }

static struct spf_check_outcome spf_eval(const char *ip, const char *helo, const char *sender, int *rounds)
{
    struct ar_dns d;
    struct spf_check_outcome o;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    *rounds = 0;
    while (!spf_check_run(&d, ip, helo, sender, &o)) {
        assert_true(++*rounds < 100);
        assert_true(ar_dns_fetch(&d, on_fetched, NULL) > 0);
        deliver();
    }
    ar_dns_free(&d);
    return o;
}

#define TXT(n, ...) {SMTPD_DNS_TXT, n, SMTPD_DNS_OK, {__VA_ARGS__}}
#define A(n, ...) {SMTPD_DNS_A, n, SMTPD_DNS_OK, {__VA_ARGS__}}
#define NODATA(t, n) {t, n, SMTPD_DNS_NODATA, {NULL}}

/* ---------------------------------------------------------------- SPF */

static const struct zone_rr spf_zone[] = {
    /* RFC 7208 4.6.4: more than two void lookups are a permerror, even if a later term matches. */
    TXT("void3.test", "v=spf1 a:v1.void3.test a:v2.void3.test mx:v3.void3.test ip4:192.0.2.1 -all"),
    NODATA(SMTPD_DNS_A, "v2.void3.test"),
    TXT("void2.test", "v=spf1 a:v1.void2.test a:v2.void2.test ip4:192.0.2.1 -all"),
    /* Includes that loop back to the start. */
    TXT("loopa.test", "v=spf1 include:loopb.test -all"),
    TXT("loopb.test", "v=spf1 include:loopa.test -all"),
    TXT("self.test", "v=spf1 redirect=self.test"),
    /* Eleven nested includes: eleven DNS terms in one evaluation (RFC 7208 4.6.4: at most 10). */
    TXT("deep.test", "v=spf1 include:d1.deep.test -all"),
    TXT("d1.deep.test", "v=spf1 include:d2.deep.test -all"),
    TXT("d2.deep.test", "v=spf1 include:d3.deep.test -all"),
    TXT("d3.deep.test", "v=spf1 include:d4.deep.test -all"),
    TXT("d4.deep.test", "v=spf1 include:d5.deep.test -all"),
    TXT("d5.deep.test", "v=spf1 include:d6.deep.test -all"),
    TXT("d6.deep.test", "v=spf1 include:d7.deep.test -all"),
    TXT("d7.deep.test", "v=spf1 include:d8.deep.test -all"),
    TXT("d8.deep.test", "v=spf1 include:d9.deep.test -all"),
    TXT("d9.deep.test", "v=spf1 include:d10.deep.test -all"),
    TXT("d10.deep.test", "v=spf1 include:d11.deep.test -all"),
    TXT("d11.deep.test", "v=spf1 ip4:192.0.2.1 -all"),
    /* Nine nested includes are within the limit. */
    TXT("nine.test", "v=spf1 include:d3.deep.test -all"),
    /* Redirect chains. */
    TXT("r1.test", "v=spf1 redirect=r2.test"),
    TXT("r2.test", "v=spf1 redirect=r3.test"),
    TXT("r3.test", "v=spf1 ip4:192.0.2.1 -all"),
    /* Macros over the sender's local part and the client's address. */
    TXT("macro.test", "v=spf1 exists:%{l}.%{d}.%{i}.%{ir}.%{v}.%{h}._spf.macro.test "
                      "exists:%{L}.%{S}.%{lr-}.%{l1r+}.%{d2}.%{o}.%{p}.%{c}.%{r}.%{t} -all exp=exp.macro.test"),
    TXT("exp.macro.test", "%{S} %{L} %{i} %{p} %{d} %{h} %{c} %{r} %{t} %{v} %% %_ %-"
                          " %{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}%{L}"),
    TXT("hugemacro.test", "v=spf1 exists:%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}.%{d}%{d}%{d}%{d}"
                          "%{d}%{d}%{d}%{d}%{d}%{d} -all"),
    TXT("badmacro.test", "v=spf1 exists:%{z}.x.test a:%{ -all"),
    TXT("ptr.test", "v=spf1 ptr -all"),
    {SMTPD_DNS_PTR, "192.0.2.1", SMTPD_DNS_OK,
     {"h1.ptr.test", "h2.ptr.test", "h3.ptr.test", "h4.ptr.test", "h5.ptr.test", "h6.ptr.test", "h7.ptr.test",
      "h8.ptr.test", "h9.ptr.test", "h10.ptr.test", "h11.ptr.test", "h12.ptr.test", "evil.test"}},
    A("h12.ptr.test", "192.0.2.1"),
    /* Ten mechanisms each asking DNS, eleven in all. */
    TXT("eleven.test", "v=spf1 a:1.x.test a:2.x.test a:3.x.test a:4.x.test a:5.x.test a:6.x.test "
                       "a:7.x.test a:8.x.test a:9.x.test a:10.x.test a:11.x.test ip4:192.0.2.1 -all"),
    A("1.x.test", "203.0.113.1"), A("2.x.test", "203.0.113.1"), A("3.x.test", "203.0.113.1"),
    A("4.x.test", "203.0.113.1"), A("5.x.test", "203.0.113.1"), A("6.x.test", "203.0.113.1"),
    A("7.x.test", "203.0.113.1"), A("8.x.test", "203.0.113.1"), A("9.x.test", "203.0.113.1"),
    A("10.x.test", "203.0.113.1"), A("11.x.test", "203.0.113.1"),
    /* Many TXT records, some of them "v=spf1" junk. */
    TXT("many.test", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
        "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "v=spf1 ip4:192.0.2.1 -all"),
    TXT("junk.test", "v=spf1 ip4:999.1.1.1/77 ip6:zz::/200 a/99 mx//999 include: exists: =x -all"),
    TXT("cname.test", "v=spf1 a:cname-target.test -all"),
    A("cname-target.test", "192.0.2.1"),
    /* The null sender's HELO identity. */
    TXT("helo.example", "v=spf1 ip4:192.0.2.7 -all"),
};

static void test_spf_void_lookups(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    /* v1 NXDOMAIN, v2 NODATA, v3 MX NXDOMAIN: three voids before the ip4 that matches. */
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@void3.test", &rounds).result, SPF_CHECK_PERMERROR);
    /* Two are allowed. */
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@void2.test", &rounds).result, SPF_CHECK_PASS);
}

static void test_spf_loops_and_chains(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@loopa.test", &rounds).result, SPF_CHECK_PERMERROR);
    assert_true(nqueries <= SPF_CHECK_MAX_QUESTIONS);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@self.test", &rounds).result, SPF_CHECK_PERMERROR);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@r1.test", &rounds).result, SPF_CHECK_PASS);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@nine.test", &rounds).result, SPF_CHECK_PASS);
    /* RFC 7208 4.6.4: eleven DNS terms in one evaluation (includes count) are a permerror. */
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@deep.test", &rounds).result, SPF_CHECK_PERMERROR);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@eleven.test", &rounds).result, SPF_CHECK_PERMERROR);
}

static void test_spf_macros(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    const char *locals[] = {
        "plain",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
        "%{l}%{l}%{l}%{l}", "semi;colon\"quote", "----++++====____....", "%%%%%%%%%%%%%%%%%%%%%%",
        "\xc3\xa9t\xc3\xa9", "a\\b", "0123456789012345678901234567890123456789012345678901234567890123",
    };
    for (size_t i = 0; i < sizeof locals / sizeof locals[0]; i++) {
        char sender[200];
        const char *doms[] = {"macro.test", "hugemacro.test", "badmacro.test"};
        for (size_t k = 0; k < 3; k++) {
            snprintf(sender, sizeof sender, "%s@%s", locals[i], doms[k]);
            struct spf_check_outcome o = spf_eval("192.0.2.1", "helo.x.test", sender, &rounds);
            assert_true(o.result == SPF_CHECK_FAIL || o.result == SPF_CHECK_PERMERROR || o.result == SPF_CHECK_NONE);
            o = spf_eval("2001:db8::1", "helo.x.test", sender, &rounds);
            assert_true(o.result == SPF_CHECK_FAIL || o.result == SPF_CHECK_PERMERROR || o.result == SPF_CHECK_NONE);
        }
    }
    /* Every name asked is one a resolver could be asked: never over 253 octets. */
    for (size_t i = 0; i < nqueries; i++)
        assert_true(strlen(queries[i].name) <= 253);
}

static void test_spf_ptr_and_junk(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    /* ptr: libspf2 checks at most 10 names of the PTR answer, so the one that matches (the
     * twelfth) is not reached; the mechanism is "SHOULD NOT be used" (RFC 7208 5.5). */
    struct spf_check_outcome o = spf_eval("192.0.2.1", "c.test", "a@ptr.test", &rounds);
    if (o.result != SPF_CHECK_FAIL && o.result != SPF_CHECK_PASS)
        fail_msg("ptr: %s", spf_check_result_name(o.result));
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@many.test", &rounds).result, SPF_CHECK_PASS);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@junk.test", &rounds).result, SPF_CHECK_PERMERROR);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@cname.test", &rounds).result, SPF_CHECK_PASS);
    /* Sender domains that are no names. */
    const char *odd[] = {"a@", "a@.", "a@..", "a@[192.0.2.1]", "a@x", "@", "a@b@c.test", "a@" "x;y.test",
                         "a@a\"b.test"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        o = spf_eval("192.0.2.1", "c.test", odd[i], &rounds);
        assert_true(o.result != SPF_CHECK_PASS);
    }
}

/* RFC 7208 2.4: the null sender is checked as postmaster@<HELO>. */
static void test_spf_null_sender(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    struct spf_check_outcome o = spf_eval("192.0.2.7", "helo.example", "", &rounds);
    assert_int_equal(o.result, SPF_CHECK_PASS);
    assert_true(o.helo_identity);
    o = spf_eval("192.0.2.8", "helo.example", "", &rounds);
    assert_int_equal(o.result, SPF_CHECK_FAIL);
    o = spf_eval("192.0.2.8", NULL, "", &rounds);
    assert_int_equal(o.result, SPF_CHECK_NONE);
}

/* A TXT answer of 40 records of 4000 octets each: bounded copies, no crash. */
static char big_txt[ZONE_MAX_RECORDS][4001];
static struct zone_rr big_zone[1];

static void test_spf_huge_txt(void **state)
{
    (void)state;
    for (int i = 0; i < ZONE_MAX_RECORDS; i++) {
        memset(big_txt[i], 'a' + i % 26, 4000);
        if (i == 7)
            memcpy(big_txt[i], "v=spf1 ", 7); /* a record of 4000 octets of one junk term */
    }
    big_zone[0] = (struct zone_rr){SMTPD_DNS_TXT, "big.test", SMTPD_DNS_OK, {NULL}};
    for (int i = 0; i < ZONE_MAX_RECORDS - 1; i++)
        big_zone[0].records[i] = big_txt[i];
    use_zone(big_zone, 1);
    int rounds;
    struct spf_check_outcome o = spf_eval("192.0.2.1", "c.test", "a@big.test", &rounds);
    assert_int_equal(o.result, SPF_CHECK_PERMERROR);
}

/* ---------------------------------------------------------------- DKIM */

static struct dkim_verify_sig sigs[DKIM_VERIFY_MAX_SIGS];

/* Runs one message through the verifier with the zone as DNS; returns the results' count. */
static size_t dkim_run(const char *hdr, size_t hlen, const char *body, size_t blen)
{
    struct evbuffer *msg = evbuffer_new();
    evbuffer_add(msg, hdr, hlen);
    evbuffer_add(msg, "\r\n", 2);
    evbuffer_add(msg, body, blen);
    struct ar_dns d;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    struct dkim_verify *v = dkim_verify_begin(hdr, hlen, msg, hlen + 2, &d);
    assert_non_null(v);
    assert_true(d.n <= DKIM_VERIFY_MAX_SIGS);
    if (ar_dns_fetch(&d, on_fetched, NULL))
        deliver();
    size_t n = 0;
    dkim_verify_finish(v, &d, sigs, DKIM_VERIFY_MAX_SIGS, &n);
    assert_true(n >= 1 && n <= DKIM_VERIFY_MAX_SIGS);
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(sigs[i].domain) < sizeof sigs[i].domain);
        assert_true(sigs[i].result != DKIM_VERIFY_PASS);
    }
    dkim_verify_free(v);
    ar_dns_free(&d);
    evbuffer_free(msg);
    return n;
}

static const struct zone_rr dkim_zone[] = {
    TXT("s._domainkey.junk.test", "v=DKIM1; k=rsa; p=!!!!not base64!!!!"),
    TXT("s._domainkey.empty.test", "v=DKIM1; p="), /* revoked */
    TXT("s._domainkey.weird.test", "v=DKIM2; k=frob; h=md5; p=AAAA; t=y:s:s:s:s; g=*"),
    TXT("s._domainkey.many.test", "v=DKIM1; p=AAAA", "v=DKIM1; p=BBBB", "x"),
};

static void test_dkim_hostile_signatures(void **state)
{
    (void)state;
    use_zone(dkim_zone, sizeof dkim_zone / sizeof dkim_zone[0]);
    const char *tails = "From: a@junk.test\r\nSubject: x\r\n";
    const char *cases[] = {
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; d=other.test; s=t; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; h=from; bh=!!!; b=@@@@====\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; l=99999999999999999999; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; l=1000000; h=from; "
        "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; l=-5; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=empty.test; s=s; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=weird.test; s=s; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=many.test; s=s; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=hmac-md5; c=foo/bar; q=dns/frob; d=junk.test; s=s; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; h=; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; i=@evil.test; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; t=99999999999999; x=1; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=j\"u;nk.test; s=s(x); h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=.; s=.; h=from; bh=AAAA; b=AAAA\r\n",
        "DKIM-Signature: =;=;=;==;;; ;\r\n",
        "DKIM-Signature:\r\n",
        "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; z=From:a|To:b|||||; h=from; bh=AAAA; b=AAAA\r\n",
    };
    char hdr[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(hdr, sizeof hdr, "%s%s", cases[i], tails);
        dkim_run(hdr, strlen(hdr), "body\r\n", 6);
    }
}

/* One field of 60 kB, h= naming From 1000 times, 500 signatures, a header section at the bound. */
static void test_dkim_huge(void **state)
{
    (void)state;
    use_zone(dkim_zone, sizeof dkim_zone / sizeof dkim_zone[0]);
    size_t cap = DKIM_VERIFY_MAX_HEADER + 200000;
    char *hdr = malloc(cap);
    assert_non_null(hdr);
    /* h= with 1000 entries */
    size_t o = (size_t)snprintf(hdr, cap, "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; h=");
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(hdr + o, cap - o, "%sfrom", i ? ":" : "");
    o += (size_t)snprintf(hdr + o, cap - o, "; bh=AAAA; b=AAAA\r\nFrom: a@junk.test\r\n");
    dkim_run(hdr, o, "body\r\n", 6);
    /* b= of 60 kB, folded every 70 octets */
    o = (size_t)snprintf(hdr, cap, "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; h=from; bh=AAAA; b=");
    for (int i = 0; i < 850; i++)
        o += (size_t)snprintf(hdr + o, cap - o, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\t");
    o += (size_t)snprintf(hdr + o, cap - o, "A\r\nFrom: a@junk.test\r\n");
    dkim_run(hdr, o, "body\r\n", 6);
    /* 500 signatures with different l= (each its own body hash if they were all kept) */
    o = 0;
    for (int i = 0; i < 500; i++)
        o += (size_t)snprintf(hdr + o, cap - o,
                              "DKIM-Signature: v=1; a=rsa-sha256; c=simple/%s; d=junk.test; s=s; l=%d; h=from; "
                              "bh=AAAA; b=AAAA\r\n", i % 2 ? "relaxed" : "simple", i);
    o += (size_t)snprintf(hdr + o, cap - o, "From: a@junk.test\r\n");
    dkim_run(hdr, o, "body\r\n", 6);
    /* 20000 fields of junk: a section close to the bound */
    o = (size_t)snprintf(hdr, cap, "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s; h=from; bh=AAAA; b=AAAA\r\n");
    while (o + 100 < DKIM_VERIFY_MAX_HEADER)
        o += (size_t)snprintf(hdr + o, cap - o, "X-Junk: %050zu\r\n", o);
    o += (size_t)snprintf(hdr + o, cap - o, "From: a@junk.test\r\n");
    dkim_run(hdr, o, "body\r\n", 6);
    /* Header bytes that are no text: NUL, 8-bit, bare CR and LF */
    static const char bin[] = "DKIM-Signature: v=1; a=rsa-sha256; d=junk.test; s=s\0; h=from; bh=AAAA; b=AAAA\r\n"
                              "From: a@junk.test\xff\xfe\r\nX-Bare: a\rb\nc\r\n\0\0\0: x\r\n";
    dkim_run(bin, sizeof bin - 1, "body\0\r\n", 7);
    free(hdr);
}

/* A body in many evbuffer chains is hashed whole: a real signature over 3000 lines, each
 * line its own chain, passes (only the first 16 chains used to be fed: "body hash did not
 * verify" for any message bigger than about 60 kB as smtpd reads it). */
static const struct zone_rr chain_zone[] = {
    TXT("k._domainkey.chains.test",
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDcNzhax75UHAIAPsqdtWwpqP6WEpfjp6rtZR8tUtAkhN8vnePJjOVl1ozFQ0"
        "DKlrvQenppgKoayiq6q01XuQT7cnVDigsW4VYBL0WxKwTFWwaUErZj8f+8YvLy5SvdQQ1cO/XVbg48Nq6tY9h5vJjzWYlRb8W+glKVbLxuZUxF7QIDAQAB"),
};
static char chain_lines[3000][32];

static void test_dkim_body_in_many_chains(void **state)
{
    (void)state;
    use_zone(chain_zone, 1);
    /* Made by dkimpy with the key above, over exactly this header and body. */
    char hdr[1024];
    int hlen = snprintf(hdr, sizeof hdr, "%s",
                        "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=chains.test;\r\n"
                        " i=@chains.test; q=dns/txt; s=k; t=1796168225; h=from;\r\n"
                        " bh=MS/lC7Qle3iysa13beKPwIXiImFZqnfOwTzqOO4MjiY=;\r\n"
                        " b=cE2bfL41WteIsCg+HAAxHzvYRz1mJUHw26+dswA9vrUeo3UB8NUdGbL8LrtYXNcikZRrQ\r\n"
                        " SVE96GtxRqgyp2tlgPOF8i9pheNQHPDAbGsDLmiUoVJNQjQf1E2MlVNQcOrZ6usDTjzZ14a\r\n"
                        " 1YCVVwPSMj7VZPZONq7ubBdwiWka83I=\r\n"
                        "From: a@chains.test\r\n");
    struct evbuffer *msg = evbuffer_new();
    evbuffer_add(msg, hdr, (size_t)hlen);
    evbuffer_add(msg, "\r\n", 2);
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(chain_lines[i], sizeof chain_lines[i], "chunk %04d of the body\r\n", i);
        evbuffer_add_reference(msg, chain_lines[i], (size_t)n, NULL, NULL); /* a chain each */
    }
    struct ar_dns d;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    struct dkim_verify *v = dkim_verify_begin(hdr, (size_t)hlen, msg, (size_t)hlen + 2, &d);
    assert_int_equal(ar_dns_fetch(&d, on_fetched, NULL), 1);
    deliver();
    size_t n = 0;
    dkim_verify_finish(v, &d, sigs, DKIM_VERIFY_MAX_SIGS, &n);
    assert_int_equal(n, 1);
    if (sigs[0].result != DKIM_VERIFY_PASS)
        fail_msg("the body was not hashed whole: %d %s", sigs[0].result, sigs[0].why);
    dkim_verify_free(v);
    ar_dns_free(&d);
    evbuffer_free(msg);
}

/* ---------------------------------------------------------------- DMARC */

static struct dmarc_check from_of(const char *hdr)
{
    struct dmarc_check c;
    dmarc_check_start(&c, hdr, strlen(hdr));
    return c;
}

/* The From: domain DMARC judges must be the one a reader sees, or no verdict be a pass. */
static void test_dmarc_from_tricks(void **state)
{
    (void)state;
    struct dmarc_check c = from_of("From: =?utf-8?q?boss=40victim.test?= <a@evil.test>\r\n");
    assert_int_equal(c.from_state, 0);
    assert_string_equal(c.from_domain, "evil.test");
    c = from_of("From: \"a@evil.test\" <boss@victim.test>\r\n");
    assert_string_equal(c.from_domain, "victim.test");
    c = from_of("From: boss@victim.test (a@evil.test)\r\n");
    assert_string_equal(c.from_domain, "victim.test");
    c = from_of("From: group: a@victim.test, b@evil.test;\r\n");
    assert_int_equal(c.from_state, -2);
    c = from_of("FROM: a@evil.test\r\nfrom : b@victim.test\r\n");
    assert_int_equal(c.from_state, -2);
    /* A display name longer than our copy of the value: the domain at its end must not be
     * lost (that turned DMARC off for any domain: dmarc=none, never a reject). */
    char big[6000];
    int n = snprintf(big, sizeof big, "From: \"");
    memset(big + n, 'x', 4000);
    snprintf(big + n + 4000, sizeof big - (size_t)n - 4000, "\" <boss@victim.test>\r\n");
    c = from_of(big);
    assert_int_equal(c.from_state, 0);
    assert_string_equal(c.from_domain, "victim.test");
    /* Folded so that the domain sits beyond the copy, on its own line. */
    n = snprintf(big, sizeof big, "From: (");
    memset(big + n, 'y', 3000);
    snprintf(big + n + 3000, sizeof big - (size_t)n - 3000, ")\r\n boss@victim.test\r\n");
    c = from_of(big);
    assert_int_equal(c.from_state, 0);
    assert_string_equal(c.from_domain, "victim.test");
    /* Longer than any From: we read: permerror, never a quiet none. */
    char *huge = malloc(20000);
    assert_non_null(huge);
    n = snprintf(huge, 20000, "From: \"");
    memset(huge + n, 'x', 18000);
    snprintf(huge + n + 18000, 20000 - (size_t)n - 18000, "\" <boss@victim.test>\r\n");
    c = from_of(huge);
    free(huge);
    assert_int_equal(c.from_state, -3);
    /* NUL and 8-bit inside the value */
    static const char nul[] = "From: a@evil.test\0, b@victim.test\r\n";
    dmarc_check_start(&c, nul, sizeof nul - 1);
    assert_true(c.from_state != 0 || strcmp(c.from_domain, "victim.test") == 0);
    c = from_of("From: a@vict\xc3\xadm.test\r\n");
    assert_true(c.from_state != 0 || strchr(c.from_domain, '\xc3') == NULL);
    c = from_of("From: a@[192.0.2.1]\r\n");
    assert_int_equal(c.from_state, -1);
}

struct dmarc_case {
    const char *record;
    const char *from;
    const char *spf_domain;
    enum spf_check_result spf;
    struct { const char *d; enum dkim_verify_result r; } dkim[3];
    enum dmarc_check_result want;
    enum dmarc_check_policy policy;
};

static void dmarc_eval(const struct dmarc_case *k, struct dmarc_check_outcome *out)
{
    struct dmarc_check c;
    char hdr[300];
    snprintf(hdr, sizeof hdr, "From: a@%s\r\n", k->from);
    dmarc_check_start(&c, hdr, strlen(hdr));
    assert_int_equal(c.from_state, 0);
    snprintf(c.record, sizeof c.record, "%s", k->record);
    dmarc_check_org_domain(c.from_domain, c.org_domain, sizeof c.org_domain);
    c.record_at_org = strcmp(c.org_domain, c.from_domain) != 0;
    c.stage = 3;
    struct spf_check_outcome spf = {.result = k->spf};
    snprintf(spf.domain, sizeof spf.domain, "%s", k->spf_domain ? k->spf_domain : "");
    struct dkim_verify_sig s[3];
    size_t n = 0;
    memset(s, 0, sizeof s);
    for (; n < 3 && k->dkim[n].d; n++) {
        snprintf(s[n].domain, sizeof s[n].domain, "%s", k->dkim[n].d);
        snprintf(s[n].selector, sizeof s[n].selector, "sel");
        s[n].result = k->dkim[n].r;
    }
    if (n == 0)
        s[n++].result = DKIM_VERIFY_NONE;
    dmarc_check_evaluate(&c, "192.0.2.1", &spf, s, n, out);
}

#define P DKIM_VERIFY_PASS
#define F DKIM_VERIFY_FAIL
#define T DKIM_VERIFY_TEMPERROR

static void test_dmarc_alignment_and_policy(void **state)
{
    (void)state;
    static const struct dmarc_case cases[] = {
        /* relaxed (the default): a subdomain aligns */
        {"v=DMARC1; p=reject", "x.test", "mail.x.test", SPF_CHECK_PASS, {{0}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "x.test", NULL, SPF_CHECK_NONE, {{"s.x.test", P}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        /* strict: it does not */
        {"v=DMARC1; p=reject; aspf=s", "x.test", "mail.x.test", SPF_CHECK_PASS, {{0}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject; adkim=s", "x.test", NULL, SPF_CHECK_NONE, {{"s.x.test", P}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject; adkim=s", "x.test", NULL, SPF_CHECK_NONE, {{"x.test", P}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        /* an unrelated pass does not align */
        {"v=DMARC1; p=reject", "x.test", "evil.test", SPF_CHECK_PASS, {{"evil.test", P}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        /* several signatures: one aligned pass is enough, in any order */
        {"v=DMARC1; p=reject", "x.test", NULL, SPF_CHECK_NONE, {{"evil.test", P}, {"x.test", F}, {"x.test", P}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "x.test", NULL, SPF_CHECK_NONE, {{"x.test", P}, {"x.test", F}, {"evil.test", P}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "x.test", NULL, SPF_CHECK_NONE, {{"x.test", F}, {"evil.test", P}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        /* sp= for a subdomain (the record found at the organizational domain) */
        {"v=DMARC1; p=none; sp=quarantine", "sub.x.test", NULL, SPF_CHECK_NONE, {{0}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_QUARANTINE},
        {"v=DMARC1; p=quarantine", "sub.x.test", NULL, SPF_CHECK_NONE, {{0}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_QUARANTINE},
        {"v=DMARC1; p=quarantine; sp=none", "sub.x.test", NULL, SPF_CHECK_NONE, {{0}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_NONE},
        /* unknown tags are ignored (RFC 7489 6.3); pct is not applied */
        {"v=DMARC1; p=reject; frob=1; x=; pct=0", "x.test", NULL, SPF_CHECK_NONE, {{0}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        /* real suffixes: libopendmarc 1.4.2 alone puts x.de and y.de in one organizational
         * domain ("de"), so y.de's pass passed DMARC for x.de */
        {"v=DMARC1; p=reject", "x.de", "y.de", SPF_CHECK_PASS, {{"y.de", P}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "a.com", "bounce.a.com", SPF_CHECK_PASS, {{0}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "a.com", NULL, SPF_CHECK_NONE, {{"b.com", P}, {"mail.a.com", P}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "shop.example.co.uk", "other.co.uk", SPF_CHECK_PASS, {{0}}, DMARC_CHECK_FAIL, DMARC_POLICY_ASKS_REJECT},
        {"v=DMARC1; p=reject", "shop.example.co.uk", "example.co.uk", SPF_CHECK_PASS, {{0}}, DMARC_CHECK_PASS, DMARC_POLICY_ASKS_REJECT},
    };
    char org[256];
    static const char *const orgs[][2] = {{"x.de", "x.de"}, {"mail.x.com", "x.com"}, {"a.com", "a.com"},
                                          {"co.uk", "co.uk"}, {"a.b.example.co.uk", "example.co.uk"},
                                          {"x.test", "x.test"}, {"a.b.x.test", "x.test"}, {"test", "test"}};
    for (size_t i = 0; i < sizeof orgs / sizeof orgs[0]; i++) {
        dmarc_check_org_domain(orgs[i][0], org, sizeof org);
        if (strcmp(org, orgs[i][1]) != 0)
            fail_msg("org domain of %s: %s, wanted %s", orgs[i][0], org, orgs[i][1]);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dmarc_check_outcome out;
        dmarc_eval(&cases[i], &out);
        if (out.result != cases[i].want || (out.result == DMARC_CHECK_FAIL && out.policy != cases[i].policy))
            fail_msg("case %zu (%s): result %d policy %d, wanted %d %d", i, cases[i].record, out.result, out.policy,
                     cases[i].want, cases[i].policy);
    }
}

/* A temporary error on the identifier that would have aligned is no fail: a temperror
 * never gets a message rejected. */
static void test_dmarc_temperror_never_fails(void **state)
{
    (void)state;
    static const struct dmarc_case cases[] = {
        {"v=DMARC1; p=reject", "x.test", "x.test", SPF_CHECK_TEMPERROR, {{0}}, DMARC_CHECK_TEMPERROR, 0},
        {"v=DMARC1; p=reject", "x.test", "evil.test", SPF_CHECK_PASS, {{"x.test", T}}, DMARC_CHECK_TEMPERROR, 0},
        {"v=DMARC1; p=reject", "x.test", "x.test", SPF_CHECK_TEMPERROR, {{"x.test", P}}, DMARC_CHECK_PASS, 0},
        {"v=DMARC1; p=reject", "x.test", "x.test", SPF_CHECK_FAIL, {{"x.test", T}}, DMARC_CHECK_TEMPERROR, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dmarc_check_outcome out;
        dmarc_eval(&cases[i], &out);
        if (out.result != cases[i].want)
            fail_msg("case %zu: result %d, wanted %d", i, out.result, cases[i].want);
    }
}

/* Records of junk: never a crash; a record without a valid p= is no fail. */
static void test_dmarc_garbage_records(void **state)
{
    (void)state;
    const char *records[] = {
        "v=DMARC1", "v=DMARC1;", "v=DMARC1; p=", "v=DMARC1; p=bogus", "v=DMARC1; p=reject; p=none",
        "v=DMARC1; p=reject; adkim=q; aspf=zz; pct=999; ri=-1; fo=x:y:z; rf=frob",
        "v=DMARC1; p=reject; rua=mailto:" "a@b.test,mailto:c@d.test!10m,,,,;ruf=:::",
        "v=DMARC1; ;;;;;;;;; p = reject ; sp = none",
        "v=DMARC1;p=reject;sp=reject;sp=none;adkim=s;adkim=r",
        "v=DMARC1; p=reject; \x01\x02\x7f=\xff",
    };
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
        struct dmarc_case k = {records[i], "x.test", NULL, SPF_CHECK_NONE, {{0}}, 0, 0};
        struct dmarc_check_outcome out;
        dmarc_eval(&k, &out);
        assert_true(out.result != DMARC_CHECK_PASS);
    }
    /* A long record (truncated to our copy) must not overflow anything. */
    char rec[5000];
    int n = snprintf(rec, sizeof rec, "v=DMARC1; p=reject; rua=");
    for (; n < 4900; n += 20)
        snprintf(rec + n, sizeof rec - (size_t)n, "mailto:a@bbbbbbb.test,");
    struct dmarc_case k = {rec, "x.test", NULL, SPF_CHECK_NONE, {{0}}, 0, 0};
    struct dmarc_check_outcome out;
    dmarc_eval(&k, &out);
    assert_true(out.result != DMARC_CHECK_PASS);
}

/* ---------------------------------------------------------------- the header */

/* Values that try to add results of their own, break the line or end the field. */
static void test_header_injection(void **state)
{
    (void)state;
    struct ar_result r[3];
    memset(r, 0, sizeof r);
    r[0].method = "spf";
    r[0].result = "fail";
    r[0].props[0].name = "smtp.mailfrom";
    r[0].props[0].value = "\"x;dkim=pass\"@evil.test";
    r[1].method = "dkim";
    r[1].result = "fail";
    r[1].comment = "a) dkim=pass (b\r\nX-Injected: 1";
    r[1].props[0].name = "header.d";
    r[1].props[0].value = "evil.test; dmarc=pass header.from=bank.test";
    r[1].props[1].name = "header.s";
    r[1].props[1].value = "s\r\n\r\nBody: yes";
    r[2].method = "dmarc";
    r[2].result = "fail";
    r[2].props[0].name = "header.from";
    r[2].props[0].value = "a\\\"b;c.test";
    char out[4096];
    size_t len = ar_header_format("mx.example.test", r, 3, out, sizeof out);
    assert_true(len > 0);
    /* Exactly three results: two separators, every one ours, at a line's start. */
    int semis = 0, quoted = 0, depth = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = out[i];
        if (quoted) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                quoted = 0;
            continue;
        }
        if (depth) {
            if (ch == '\\')
                i++;
            else if (ch == ')')
                depth--;
            else if (ch == '(')
                depth++;
            continue;
        }
        if (ch == '"')
            quoted = 1;
        else if (ch == '(')
            depth++;
        else if (ch == ';')
            semis++;
    }
    assert_int_equal(quoted, 0);
    assert_int_equal(depth, 0);
    assert_int_equal(semis, 3); /* after the authserv-id and between the three results */
    /* Line breaks only where we fold: CRLF TAB, and the final CRLF. */
    for (size_t i = 0; i + 2 < len; i++)
        if (out[i] == '\r' || out[i] == '\n')
            assert_true((out[i] == '\r' && out[i + 1] == '\n' && out[i + 2] == '\t') ||
                        (out[i] == '\n' && out[i + 1] == '\t'));
    assert_memory_equal(out + len - 2, "\r\n", 2);
    assert_null(strstr(out, "\nX-Injected")); /* as text in a comment it is harmless */
}

/* A forged header claiming us, in the ways a header can be written. */
static void test_forged_variants(void **state)
{
    (void)state;
    const char *hdr = "authentication-results: MX.Example.Test; dkim=pass\r\n"
                      "Authentication-Results :mx.example.test;spf=pass\r\n"
                      "Authentication-Results: (c (nested) \\) ) mx.example.test 1; dkim=pass\r\n"
                      "Authentication-Results:\r\n\tmx.example.test;\r\n\tdmarc=pass\r\n"
                      "Authentication-Results: \"mx.example.test\"; dkim=pass\r\n"
                      "Authentication-Results: mx.example.test.evil; dkim=pass\r\n"
                      "X-Authentication-Results: mx.example.test; dkim=pass\r\n"
                      "Subject: x\r\n";
    char buf[1024];
    size_t len = strlen(hdr);
    memcpy(buf, hdr, len);
    int removed = 0;
    size_t kept = ar_header_remove_ours(buf, len, "mx.example.test", &removed);
    buf[kept] = '\0';
    assert_int_equal(removed, 5);
    assert_string_equal(buf, "Authentication-Results: mx.example.test.evil; dkim=pass\r\n"
                             "X-Authentication-Results: mx.example.test; dkim=pass\r\n"
                             "Subject: x\r\n");
}

static int setup(void **state)
{
    (void)state;
    if (spf_check_init("mx.example.test") < 0 || dkim_verify_init() < 0)
        return -1;
    dmarc_check_init("/usr/share/publicsuffix/public_suffix_list.dat");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    spf_check_shutdown();
    dkim_verify_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spf_void_lookups),
        cmocka_unit_test(test_spf_loops_and_chains),
        cmocka_unit_test(test_spf_macros),
        cmocka_unit_test(test_spf_ptr_and_junk),
        cmocka_unit_test(test_spf_null_sender),
        cmocka_unit_test(test_spf_huge_txt),
        cmocka_unit_test(test_dkim_hostile_signatures),
        cmocka_unit_test(test_dkim_huge),
        cmocka_unit_test(test_dkim_body_in_many_chains),
        cmocka_unit_test(test_dmarc_from_tricks),
        cmocka_unit_test(test_dmarc_alignment_and_policy),
        cmocka_unit_test(test_dmarc_temperror_never_fails),
        cmocka_unit_test(test_dmarc_garbage_records),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_forged_variants),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
