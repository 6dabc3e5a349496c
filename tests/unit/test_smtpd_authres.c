/* Inbound verification without a network: our Authentication-Results: header (format,
 * quoting, folding), the removal of forged ones, the SPF prefetch loop (libspf2 answered
 * from the message's DNS table, the table filled by a fake smtpd_dns_lookup that answers
 * from a zone written here, one round of parallel lookups at a time), its bounds, DKIM's
 * bound on signatures and its handling of junk, and DMARC's From: domain. */
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

struct zone_rr {
    enum smtpd_dns_type type;
    const char *name;
    enum smtpd_dns_status status;
    const char *records[4];
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

static struct fake_query queries[512];
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

/* The event loop's turn: every query asked so far gets its answer. */
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
                while (a.n < 4 && zone[z].records[a.n])
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

static int fetch_done;
static void on_fetched(void *arg)
{
    (void)arg;
    fetch_done++;
}

/* The stage's loop for SPF alone: run, fetch what is wanted, answer, run again. */
static struct spf_check_outcome spf_eval(const char *ip, const char *helo, const char *sender, int *rounds)
{
    struct ar_dns d;
    struct spf_check_outcome o;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    *rounds = 0;
    while (!spf_check_run(&d, ip, helo, sender, &o)) {
        assert_true(++*rounds < 100);
        fetch_done = 0;
        size_t started = ar_dns_fetch(&d, on_fetched, NULL);
        assert_true(started > 0);
        assert_int_equal(fetch_done, 0); /* never from inside the fetch */
        deliver();
        assert_int_equal(fetch_done, 1);
    }
    ar_dns_free(&d);
    return o;
}

#define TXT(n, ...) {SMTPD_DNS_TXT, n, SMTPD_DNS_OK, {__VA_ARGS__}}
#define A(n, ...) {SMTPD_DNS_A, n, SMTPD_DNS_OK, {__VA_ARGS__}}
#define MX(n, ...) {SMTPD_DNS_MX, n, SMTPD_DNS_OK, {__VA_ARGS__}}

static const struct zone_rr spf_zone[] = {
    TXT("pass.test", "v=spf1 ip4:192.0.2.1 -all"),
    TXT("fail.test", "v=spf1 ip4:192.0.2.99 -all"),
    TXT("soft.test", "v=spf1 ~all"),
    TXT("neutral.test", "v=spf1 ?all"),
    TXT("nospf.test", "just some text"),
    TXT("two.test", "v=spf1 -all", "v=spf1 +all"),
    TXT("bad.test", "v=spf1 frobnicate:x.test -all"),
    {SMTPD_DNS_TXT, "slow.test", SMTPD_DNS_TEMPFAIL, {NULL}},
    TXT("chain.test", "v=spf1 include:inc1.chain.test mx:mx.chain.test -all"),
    TXT("inc1.chain.test", "v=spf1 include:inc2.chain.test -all"),
    TXT("inc2.chain.test", "v=spf1 a:host.chain.test -all"),
    A("host.chain.test", "198.51.100.7", "2001:db8::7"),
    MX("mx.chain.test", "mx1.chain.test", "mx2.chain.test", "mx3.chain.test"),
    A("mx1.chain.test", "198.51.100.1"),
    A("mx2.chain.test", "198.51.100.2"),
    A("mx3.chain.test", "198.51.100.3", "2001:db8::3"),
    TXT("helo.test", "v=spf1 a -all"),
    A("helo.test", "192.0.2.50"),
    TXT("loop.test", "v=spf1 ip4:192.0.2.1 -all"),
};

static void test_spf_results(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@pass.test", &rounds).result, SPF_CHECK_PASS);
    assert_int_equal(rounds, 1);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@fail.test", &rounds).result, SPF_CHECK_FAIL);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@soft.test", &rounds).result, SPF_CHECK_SOFTFAIL);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@neutral.test", &rounds).result, SPF_CHECK_NEUTRAL);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@nospf.test", &rounds).result, SPF_CHECK_NONE);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@nxdomain.test", &rounds).result, SPF_CHECK_NONE);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@two.test", &rounds).result, SPF_CHECK_PERMERROR);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@bad.test", &rounds).result, SPF_CHECK_PERMERROR);
    assert_int_equal(spf_eval("192.0.2.1", "c.test", "a@slow.test", &rounds).result, SPF_CHECK_TEMPERROR);
    /* A loopback client gets no free pass (libspf2's own entry point would give one). */
    assert_int_equal(spf_eval("127.0.0.5", "c.test", "a@loop.test", &rounds).result, SPF_CHECK_FAIL);
}

static void test_spf_null_sender_checks_helo(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    struct spf_check_outcome o = spf_eval("192.0.2.50", "helo.test", "", &rounds);
    assert_int_equal(o.result, SPF_CHECK_PASS);
    assert_true(o.helo_identity);
    assert_string_equal(o.domain, "helo.test");
    o = spf_eval("192.0.2.51", "helo.test", "", &rounds);
    assert_int_equal(o.result, SPF_CHECK_FAIL);
    o = spf_eval("192.0.2.51", "[192.0.2.51]", "", &rounds);
    assert_int_equal(o.result, SPF_CHECK_NONE); /* an address literal: nothing to look up */
    assert_int_equal(rounds, 0);
}

/* Includes are one round each; an MX answer brings its hosts' addresses in the same round. */
static void test_spf_prefetch_rounds(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    int rounds;
    struct spf_check_outcome o = spf_eval("198.51.100.3", "c.test", "x@chain.test", &rounds);
    assert_int_equal(o.result, SPF_CHECK_PASS);
    /* chain.test, inc1, inc2, host (fails the ip), then mx.chain.test: its three hosts are
     * fetched with it... one round for the MX, one for its hosts' addresses. */
    assert_true(rounds <= 6);
    size_t mx_hosts = 0;
    for (size_t i = 0; i < nqueries; i++)
        if (queries[i].type == SMTPD_DNS_A && strncmp(queries[i].name, "mx", 2) == 0)
            mx_hosts++;
    assert_int_equal(mx_hosts, 3); /* each asked once, together */
    o = spf_eval("2001:db8::7", "c.test", "x@chain.test", &rounds);
    assert_int_equal(o.result, SPF_CHECK_PASS); /* the AAAA half of the same A lookup */
}

/* Every include leads to another: the evaluation stops at the bound, as permerror, having
 * asked at most the bound's number of questions. */
static struct zone_rr endless[80];
static char endless_names[80][40], endless_text[80][80];

static void test_spf_lookup_bound(void **state)
{
    (void)state;
    for (int i = 0; i < 80; i++) {
        snprintf(endless_names[i], sizeof endless_names[i], "n%d.endless.test", i);
        snprintf(endless_text[i], sizeof endless_text[i], "v=spf1 include:n%d.endless.test -all", i + 1);
        endless[i] = (struct zone_rr){SMTPD_DNS_TXT, endless_names[i], SMTPD_DNS_OK, {endless_text[i]}};
    }
    use_zone(endless, 80);
    int rounds;
    struct spf_check_outcome o = spf_eval("192.0.2.1", "c.test", "x@n0.endless.test", &rounds);
    assert_int_equal(o.result, SPF_CHECK_PERMERROR);
    assert_true(nqueries <= SPF_CHECK_MAX_QUESTIONS);
    assert_true(rounds <= SPF_CHECK_MAX_QUESTIONS);
}

/* The deadline is over: nothing is asked, the answer is temperror at once. */
static void test_spf_deadline(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    struct ar_dns d;
    struct spf_check_outcome o;
    ar_dns_init(&d, NULL, pm_mono_ms() - 1);
    assert_int_equal(spf_check_run(&d, "192.0.2.1", "c.test", "a@pass.test", &o), 0);
    assert_int_equal(ar_dns_fetch(&d, on_fetched, NULL), 0);
    assert_int_equal(nqueries, 0);
    assert_int_equal(spf_check_run(&d, "192.0.2.1", "c.test", "a@pass.test", &o), 1);
    assert_int_equal(o.result, SPF_CHECK_TEMPERROR);
    ar_dns_free(&d);
}

/* Freeing the table with lookups in flight cancels them: no callback comes later. */
static void test_dns_cancel_on_free(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    struct ar_dns d;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    assert_int_equal(ar_dns_want(&d, SMTPD_DNS_TXT, "pass.test"), 0);
    assert_int_equal(ar_dns_want(&d, SMTPD_DNS_TXT, "PASS.test."), 0); /* the same name */
    assert_int_equal(d.n, 1);
    assert_int_equal(ar_dns_want(&d, SMTPD_DNS_TXT, "bad name.test"), -1);
    fetch_done = 0;
    assert_int_equal(ar_dns_fetch(&d, on_fetched, NULL), 1);
    ar_dns_free(&d);
    deliver();
    assert_int_equal(fetch_done, 0);
}

/* ---------------------------------------------------------------- the header */

static void test_header_format(void **state)
{
    (void)state;
    struct ar_result r[3] = {
        {.method = "spf", .result = "pass", .props = {{"smtp.mailfrom", "alice@example.org"}}},
        {.method = "dkim", .result = "fail", .comment = "body hash did not verify",
         .props = {{"header.d", "example.org"}, {"header.s", "s1"}, {"header.a", "rsa-sha256"}}},
        {.method = "dmarc", .result = "fail", .comment = "p=reject", .props = {{"header.from", "example.org"}}},
    };
    char buf[2048];
    size_t n = ar_header_format("mx.example.test", r, 3, buf, sizeof buf);
    assert_string_equal(buf, "Authentication-Results: mx.example.test;\r\n"
                             "\tspf=pass smtp.mailfrom=alice@example.org;\r\n"
                             "\tdkim=fail (body hash did not verify) header.d=example.org header.s=s1 header.a=rsa-sha256;\r\n"
                             "\tdmarc=fail (p=reject) header.from=example.org\r\n");
    assert_int_equal(n, strlen(buf));
    /* Folded: every line short, every continuation starts with a tab. */
    for (char *line = buf, *e; (e = strstr(line, "\r\n")); line = e + 2) {
        assert_true(e - line < 998);
        if (line != buf && *line)
            assert_int_equal(line[0], '\t');
    }
    assert_int_equal(ar_header_format("mx.example.test", r, 3, buf, 40), 0); /* too small */
    assert_int_equal(ar_header_format("mx.example.test", r, 0, buf, sizeof buf), strlen("Authentication-Results: mx.example.test; none\r\n"));
}

/* Hostile values cannot break out of the field: quoted, control characters replaced, cut. */
static void test_header_quoting(void **state)
{
    (void)state;
    char huge[600];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    struct ar_result r[2] = {
        {.method = "spf", .result = "pass", .props = {{"smtp.mailfrom", "\"odd; name\"@example.org"}}},
        {.method = "dkim", .result = "permerror", .comment = "bad) (\r\nX-Evil: 1",
         .props = {{"header.d", "a\r\nX-Injected: yes"}, {"header.s", huge}}},
    };
    char buf[4096];
    assert_true(ar_header_format("mx.example.test", r, 2, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "smtp.mailfrom=\"\\\"odd; name\\\"@example.org\""));
    assert_non_null(strstr(buf, "(bad\\) \\(??X-Evil: 1)"));
    assert_non_null(strstr(buf, "header.d=\"a??X-Injected: yes\""));
    assert_null(strstr(buf, "\r\nX-"));
    const char *s = strstr(buf, "header.s=");
    assert_non_null(s);
    assert_int_equal(strcspn(s + 9, "\r\n"), 255);
}

static void test_authserv_id(void **state)
{
    (void)state;
    char id[64];
    const char *v = " (comment (nested) here)\r\n\tMX.Example.Test 1; spf=pass";
    assert_int_equal(ar_header_authserv_id(v, strlen(v), id, sizeof id), 0);
    assert_string_equal(id, "MX.Example.Test");
    v = " \"mx.example.test\"; none";
    assert_int_equal(ar_header_authserv_id(v, strlen(v), id, sizeof id), 0);
    assert_string_equal(id, "mx.example.test");
    v = "mx.example.test;dkim=pass";
    assert_int_equal(ar_header_authserv_id(v, strlen(v), id, sizeof id), 0);
    assert_string_equal(id, "mx.example.test");
    v = "  (only a comment)";
    assert_int_equal(ar_header_authserv_id(v, strlen(v), id, sizeof id), -1);
}

static void test_remove_forged(void **state)
{
    (void)state;
    char hdr[] = "Received: from x\r\n\tby y\r\n"
                 "Authentication-Results: mx.example.test; spf=pass\r\n"
                 "authentication-results : (forged)\r\n\tMX.EXAMPLE.TEST;\r\n\tdkim=pass header.d=bank.test\r\n"
                 "Authentication-Results: other.example.net; spf=fail\r\n"
                 "Authentication-Results: mx.example.test.evil.test; spf=pass\r\n"
                 "Subject: hi\r\n";
    int removed = 0;
    size_t n = ar_header_remove_ours(hdr, strlen(hdr), "mx.example.test", &removed);
    hdr[n] = '\0';
    assert_int_equal(removed, 2);
    assert_string_equal(hdr, "Received: from x\r\n\tby y\r\n"
                             "Authentication-Results: other.example.net; spf=fail\r\n"
                             "Authentication-Results: mx.example.test.evil.test; spf=pass\r\n"
                             "Subject: hi\r\n");
}

static void test_header_length(void **state)
{
    (void)state;
    const char *m = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
    assert_int_equal(ar_header_length(m, strlen(m)), strlen("A: 1\r\nB: 2\r\n"));
    m = "A: 1\r\nno body";
    assert_int_equal(ar_header_length(m, strlen(m)), strlen(m));
}

/* ---------------------------------------------------------------- DKIM and DMARC */

static void test_dkim_signature_bound(void **state)
{
    (void)state;
    use_zone(spf_zone, sizeof spf_zone / sizeof spf_zone[0]);
    char hdr[8192] = "";
    for (int i = 0; i < 7; i++) {
        char sig[256];
        snprintf(sig, sizeof sig,
                 "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d%d.test; s=s%d;\r\n\th=from:subject; "
                 "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n", i, i);
        strcat(hdr, sig);
    }
    strcat(hdr, "DKIM-Signature: v=1; a=rsa-sha256; b=\r\n");           /* no d=, no s= */
    strcat(hdr, "DKIM-Signature: junk;;;=;=\r\n");                          /* no tags at all */
    strcat(hdr, "From: a@d0.test\r\nSubject: x\r\n");
    struct evbuffer *msg = evbuffer_new();
    evbuffer_add_printf(msg, "%s\r\nbody\r\n", hdr);
    struct ar_dns d;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    struct dkim_verify *v = dkim_verify_begin(hdr, strlen(hdr), msg, strlen(hdr) + 2, &d);
    assert_non_null(v);
    assert_true(d.n <= DKIM_VERIFY_MAX_SIGS);
    for (size_t i = 0; i < d.n; i++)
        assert_non_null(strstr(d.v[i]->name, "._domainkey.d"));
    if (ar_dns_fetch(&d, on_fetched, NULL))
        deliver();
    struct dkim_verify_sig sigs[DKIM_VERIFY_MAX_SIGS];
    size_t n = 0;
    dkim_verify_finish(v, &d, sigs, DKIM_VERIFY_MAX_SIGS, &n);
    assert_true(n >= 1 && n <= DKIM_VERIFY_MAX_SIGS);
    for (size_t i = 0; i < n; i++)
        assert_true(sigs[i].result != DKIM_VERIFY_PASS);
    dkim_verify_free(v);
    ar_dns_free(&d);
    evbuffer_free(msg);
}

static void test_dkim_none(void **state)
{
    (void)state;
    const char *hdr = "From: a@b.test\r\nSubject: x\r\n";
    struct evbuffer *msg = evbuffer_new();
    evbuffer_add_printf(msg, "%s\r\nbody\r\n", hdr);
    struct ar_dns d;
    ar_dns_init(&d, NULL, pm_mono_ms() + 5000);
    struct dkim_verify *v = dkim_verify_begin(hdr, strlen(hdr), msg, strlen(hdr) + 2, &d);
    struct dkim_verify_sig sigs[DKIM_VERIFY_MAX_SIGS];
    size_t n = 0;
    dkim_verify_finish(v, &d, sigs, DKIM_VERIFY_MAX_SIGS, &n);
    assert_int_equal(n, 1);
    assert_int_equal(sigs[0].result, DKIM_VERIFY_NONE);
    assert_int_equal(d.n, 0);
    dkim_verify_free(v);
    /* No From: and no empty line: all header, still nothing signed. */
    const char *bare = "Received: from x\r\nxxxxxxxx\r\nyyyyyyyy\r\n";
    v = dkim_verify_begin(bare, strlen(bare), msg, strlen(bare) + 2, &d);
    dkim_verify_finish(v, &d, sigs, DKIM_VERIFY_MAX_SIGS, &n);
    assert_int_equal(n, 1);
    assert_int_equal(sigs[0].result, DKIM_VERIFY_NONE);
    dkim_verify_free(v);
    ar_dns_free(&d);
    evbuffer_free(msg);
}

static void test_dmarc_from_domain(void **state)
{
    (void)state;
    struct dmarc_check c;
    const char *h = "Subject: x\r\nFrom: \"Alice, the <boss>\" <Alice@Sub.Example.ORG>\r\n";
    dmarc_check_start(&c, h, strlen(h));
    assert_int_equal(c.from_state, 0);
    assert_string_equal(c.from_domain, "sub.example.org");
    h = "From: a@x.test, b@y.test\r\n";
    dmarc_check_start(&c, h, strlen(h));
    assert_int_equal(c.from_state, -2);
    h = "From: a@x.test\r\nFrom: b@y.test\r\n";
    dmarc_check_start(&c, h, strlen(h));
    assert_int_equal(c.from_state, -2);
    h = "Subject: none\r\n";
    dmarc_check_start(&c, h, strlen(h));
    assert_int_equal(c.from_state, -1);
    h = "From: (comment)\r\n b@folded.test (more)\r\n";
    dmarc_check_start(&c, h, strlen(h));
    assert_int_equal(c.from_state, 0);
    assert_string_equal(c.from_domain, "folded.test");
    char org[256];
    dmarc_check_org_domain("a.b.example.co.uk", org, sizeof org);
    assert_string_equal(org, "example.co.uk");
    dmarc_check_org_domain("mail.sub.dmarc.test", org, sizeof org);
    assert_string_equal(org, "dmarc.test"); /* .test is in no list: the implicit rule */
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
        cmocka_unit_test(test_spf_results),
        cmocka_unit_test(test_spf_null_sender_checks_helo),
        cmocka_unit_test(test_spf_prefetch_rounds),
        cmocka_unit_test(test_spf_lookup_bound),
        cmocka_unit_test(test_spf_deadline),
        cmocka_unit_test(test_dns_cancel_on_free),
        cmocka_unit_test(test_header_format),
        cmocka_unit_test(test_header_quoting),
        cmocka_unit_test(test_authserv_id),
        cmocka_unit_test(test_remove_forged),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_dkim_signature_bound),
        cmocka_unit_test(test_dkim_none),
        cmocka_unit_test(test_dmarc_from_domain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
