/* The outbound TLS decision (mta/policy.c): every level against DANE states, MTA-STS modes
 * and the message's REQUIRETLS / "TLS-Required: No"; the TLSA usability rules (mta/dane.c);
 * the per-domain rows (common/config_tls_policy.c); the header detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_tls_policy.h"
#include "mta/dane.h"
#include "mta/policy.h"
#include "mta/sts.h"

/* The MX pattern matching itself is sts_policy's (tested there); the decision only asks. A
 * fake that knows exact names keeps this table independent of it. */
int mta_sts_mx_matches(const struct mta_sts_policy *p, const char *mx_host)
{
    for (int i = 0; i < p->nmx; i++)
        if (strcmp(p->mx[i], mx_host) == 0)
            return 1;
    return 0;
}

static struct mta_sts_policy sts_policy(enum mta_sts_mode mode)
{
    struct mta_sts_policy p;
    memset(&p, 0, sizeof p);
    p.mode = mode;
    p.nmx = 1;
    snprintf(p.mx[0], sizeof p.mx[0], "mx.sts.test");
    return p;
}

static struct mta_policy_decision decide(enum mta_tls_level level, int secure, enum mta_tlsa_state tlsa,
                                         const struct mta_sts_policy *sts, const char *host)
{
    struct mta_policy_in in = {.domain = "dest.test", .level = level, .sts = sts};
    struct mta_policy_mx mx = {.host = host ? host : "mx.sts.test", .secure = secure, .tlsa = tlsa,
                               .tlsa_why = "DNSSEC validation failed: signature expired"};
    struct mta_policy_decision d;
    mta_policy_decide(&in, &mx, &d);
    return d;
}

static void test_level_names_and_default(void **state)
{
    (void)state;
    assert_int_equal(mta_tls_level_parse("", 0), MTA_TLS_LEVEL_DANE);
    assert_int_equal(mta_tls_level_parse("", 1), MTA_TLS_LEVEL_VERIFY); /* the old switch */
    assert_int_equal(mta_tls_level_parse("dane-only", 1), MTA_TLS_LEVEL_DANE_ONLY);
    assert_int_equal(mta_tls_level_parse("Dane", 0), -1);
    for (int l = MTA_TLS_LEVEL_NONE; l <= MTA_TLS_LEVEL_DANE_ONLY; l++)
        assert_int_equal(mta_tls_level_parse(mta_tls_level_name((enum mta_tls_level)l), 0), l);
    struct pm_tls_policy row = {.domain = "x.test", .level = "encrypt"};
    assert_int_equal(mta_policy_level(&row, "none", 0), MTA_TLS_LEVEL_ENCRYPT);
    assert_int_equal(mta_policy_level(NULL, "none", 0), MTA_TLS_LEVEL_NONE);
    assert_int_equal(mta_policy_level(NULL, "", 0), MTA_TLS_LEVEL_DANE);
}

static void test_local_levels(void **state)
{
    (void)state;
    struct mta_policy_decision d = decide(MTA_TLS_LEVEL_NONE, 1, MTA_TLSA_USABLE, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_NONE);
    d = decide(MTA_TLS_LEVEL_MAY, 0, MTA_TLSA_NOT_ASKED, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
    assert_true(d.plaintext_retry);
    assert_false(d.tls_required);
    d = decide(MTA_TLS_LEVEL_ENCRYPT, 0, MTA_TLSA_NOT_ASKED, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_ENCRYPT);
    assert_true(d.tls_required);
    assert_false(d.plaintext_retry);
    assert_false(d.authenticated);
    d = decide(MTA_TLS_LEVEL_VERIFY, 0, MTA_TLSA_NOT_ASKED, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    assert_int_equal(d.names, MTA_TLS_NAMES_MX);
    assert_true(d.tls_required && d.authenticated);
    d = decide(MTA_TLS_LEVEL_SECURE, 0, MTA_TLSA_NOT_ASKED, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    assert_int_equal(d.names, MTA_TLS_NAMES_DOMAIN);
    /* A row's match and ca_file. */
    char *names[] = {"mail.dest.test"};
    struct pm_tls_policy row = {.domain = "dest.test", .level = "secure", .ca_file = "/etc/ca.pem",
                                .match = {.v = names, .n = 1}};
    struct mta_policy_in in = {.domain = "dest.test", .level = MTA_TLS_LEVEL_SECURE, .row = &row};
    struct mta_policy_mx mx = {.host = "mx.dest.test"};
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.names, MTA_TLS_NAMES_MATCH);
    assert_ptr_equal(d.match, &row.match);
    assert_string_equal(d.ca_file, "/etc/ca.pem");
    /* Local levels never look at DANE or MTA-STS. */
    struct mta_sts_policy p = sts_policy(MTA_STS_MODE_ENFORCE);
    d = decide(MTA_TLS_LEVEL_ENCRYPT, 1, MTA_TLSA_USABLE, &p, "other.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_ENCRYPT);
    assert_false(d.dane);
    assert_int_equal(d.sts, MTA_STS_APPLIED_NO);
}

static void test_dane_level(void **state)
{
    (void)state;
    /* Usable TLSA of a secure MX: DANE, mandatory. */
    struct mta_policy_decision d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_USABLE, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
    assert_true(d.dane && d.tls_required && d.authenticated);
    assert_false(d.plaintext_retry);
    /* Only unusable records: mandatory TLS, unauthenticated (RFC 7672 3.1.3). */
    d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_UNUSABLE, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_ENCRYPT);
    assert_true(d.tls_required && d.tlsa_unusable);
    assert_false(d.dane || d.authenticated);
    /* No records (proven): opportunistic. */
    d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_NONE, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
    assert_true(d.plaintext_retry);
    /* Lookup failed or bogus: this MX is not used now, 4.7.5 with the reason. */
    d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_FAILED, NULL, "mx.dest.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
    assert_string_equal(d.dsn, "4.7.5");
    assert_string_equal(d.why, "4.7.5 TLSA lookup for mx.dest.test failed: DNSSEC validation failed: signature expired");
    assert_false(d.perm);
    /* An insecure MX: its TLSA state means nothing, whatever it says. */
    d = decide(MTA_TLS_LEVEL_DANE, 0, MTA_TLSA_USABLE, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
    assert_false(d.dane);
}

static void test_dane_only_level(void **state)
{
    (void)state;
    struct mta_policy_decision d = decide(MTA_TLS_LEVEL_DANE_ONLY, 1, MTA_TLSA_USABLE, NULL, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
    enum mta_tlsa_state no_dane[] = {MTA_TLSA_UNUSABLE, MTA_TLSA_NONE, MTA_TLSA_FAILED};
    for (size_t i = 0; i < sizeof no_dane / sizeof no_dane[0]; i++) {
        d = decide(MTA_TLS_LEVEL_DANE_ONLY, 1, no_dane[i], NULL, NULL);
        assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
        assert_string_equal(d.dsn, "4.7.5");
    }
    d = decide(MTA_TLS_LEVEL_DANE_ONLY, 0, MTA_TLSA_NOT_ASKED, NULL, "mx.dest.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
    assert_string_equal(d.result_type, "dane-required");
    /* dane-only never falls back to MTA-STS. */
    struct mta_sts_policy p = sts_policy(MTA_STS_MODE_ENFORCE);
    d = decide(MTA_TLS_LEVEL_DANE_ONLY, 0, MTA_TLSA_NOT_ASKED, &p, NULL);
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
}

static void test_mta_sts(void **state)
{
    (void)state;
    struct mta_sts_policy enforce = sts_policy(MTA_STS_MODE_ENFORCE), testing = sts_policy(MTA_STS_MODE_TESTING);
    /* enforce, MX in the policy: PKIX with the MX name, mandatory. */
    struct mta_policy_decision d = decide(MTA_TLS_LEVEL_DANE, 0, MTA_TLSA_NOT_ASKED, &enforce, "mx.sts.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    assert_int_equal(d.names, MTA_TLS_NAMES_MX);
    assert_int_equal(d.sts, MTA_STS_APPLIED_ENFORCE);
    assert_true(d.tls_required && d.authenticated);
    assert_null(d.ca_file);
    /* enforce, MX not in it: not tried. */
    d = decide(MTA_TLS_LEVEL_MAY, 0, MTA_TLSA_NOT_ASKED, &enforce, "evil.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
    assert_string_equal(d.dsn, "4.7.5");
    assert_string_equal(d.why, "4.7.5 MX host evil.test is not in the MTA-STS policy of dest.test");
    /* testing: as may, reported (as the failure enforce would have seen). */
    d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_NONE, &testing, "evil.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
    assert_int_equal(d.sts, MTA_STS_APPLIED_TESTING);
    assert_true(d.plaintext_retry);
    assert_string_equal(d.result_type, "validation-failure");
    d = decide(MTA_TLS_LEVEL_MAY, 0, MTA_TLSA_NOT_ASKED, &testing, "mx.sts.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
    assert_null(d.result_type);
    /* DANE wins where both exist (RFC 8461 2): a non-matching MX with usable TLSA is DANE. */
    d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_USABLE, &enforce, "evil.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
    assert_int_equal(d.sts, MTA_STS_APPLIED_NO);
    /* ... and unusable-only TLSA is still DANE's (encrypt), not MTA-STS's. */
    d = decide(MTA_TLS_LEVEL_DANE, 1, MTA_TLSA_UNUSABLE, &enforce, "evil.test");
    assert_int_equal(d.mode, MTA_TLS_MODE_ENCRYPT);
    /* Not under encrypt/verify/secure/none (local levels), as tested above. */
}

static void test_tls_required_no(void **state)
{
    (void)state;
    struct mta_sts_policy enforce = sts_policy(MTA_STS_MODE_ENFORCE);
    struct mta_policy_in in = {.domain = "dest.test", .level = MTA_TLS_LEVEL_DANE, .sts = &enforce,
                               .tls_required_no = 1};
    struct mta_policy_mx mx = {.host = "evil.test", .secure = 1, .tlsa = MTA_TLSA_USABLE};
    struct mta_policy_decision d;
    assert_false(mta_policy_wants_tlsa(&in, 1));
    assert_false(mta_policy_wants_sts(&in));
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY); /* DANE and MTA-STS ignored */
    assert_int_equal(d.level, MTA_TLS_LEVEL_MAY);
    assert_false(d.dane);
    in.level = MTA_TLS_LEVEL_DANE_ONLY;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
    /* Local levels still apply. */
    in.level = MTA_TLS_LEVEL_VERIFY;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    /* With REQUIRETLS the header does not count (RFC 8689 4.1). */
    in.level = MTA_TLS_LEVEL_DANE;
    in.requiretls = 1;
    assert_true(mta_policy_wants_tlsa(&in, 1));
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
}

static void test_requiretls(void **state)
{
    (void)state;
    struct mta_policy_in in = {.domain = "dest.test", .level = MTA_TLS_LEVEL_DANE, .requiretls = 1};
    struct mta_policy_mx mx = {.host = "mx.dest.test", .secure = 1, .tlsa = MTA_TLSA_USABLE};
    struct mta_policy_decision d;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
    /* No DANE, no MTA-STS, an insecure MX: not authenticated, so not this MX, for good unless
     * another takes it. */
    mx.tlsa = MTA_TLSA_NONE;
    mx.secure = 0;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
    assert_true(d.perm);
    assert_string_equal(d.dsn, MTA_REQUIRETLS_DSN);
    assert_non_null(strstr(d.why, "REQUIRETLS"));
    mx.tlsa = MTA_TLSA_UNUSABLE; /* encrypt is not authenticated either */
    mx.secure = 0;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
    /* A secure MX answer: PKIX with the MX name will do (RFC 8689 4.2.1). */
    mx.secure = 1;
    mx.tlsa = MTA_TLSA_NONE;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    assert_int_equal(d.names, MTA_TLS_NAMES_MX);
    assert_true(d.authenticated && d.tls_required);
    mx.tlsa = MTA_TLSA_UNUSABLE;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    mx.secure = 0;
    /* MTA-STS testing counts as enforce for a REQUIRETLS message. */
    struct mta_sts_policy testing = sts_policy(MTA_STS_MODE_TESTING);
    in.sts = &testing;
    mx.host = "mx.sts.test";
    mx.tlsa = MTA_TLSA_NONE;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    assert_int_equal(d.sts, MTA_STS_APPLIED_ENFORCE);
    /* Local verify/secure are authenticated. */
    in.sts = NULL;
    in.level = MTA_TLS_LEVEL_SECURE;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    in.level = MTA_TLS_LEVEL_MAY;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
}

/* REQUIRETLS and a domain whose MTA-STS policy could not be fetched (nothing cached): an
 * attacker blocking HTTPS must not turn that into a bounce. Deferred, 4.7.5. */
static void test_requiretls_sts_fetch_failed_defers(void **state)
{
    (void)state;
    struct mta_policy_in in = {.domain = "dest.test", .level = MTA_TLS_LEVEL_DANE, .requiretls = 1, .sts_failed = 1};
    struct mta_policy_mx mx = {.host = "mx.dest.test", .secure = 0, .tlsa = MTA_TLSA_NOT_ASKED};
    struct mta_policy_decision d;
    enum mta_tls_level levels[] = {MTA_TLS_LEVEL_MAY, MTA_TLS_LEVEL_DANE, MTA_TLS_LEVEL_ENCRYPT};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        in.level = levels[i];
        mta_policy_decide(&in, &mx, &d);
        assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
        assert_false(d.perm);
        assert_string_equal(d.dsn, "4.7.5");
        assert_non_null(strstr(d.why, "4.7.5 MTA-STS policy could not be fetched"));
    }
    /* Authenticated anyway (DANE of a secure MX): the failed fetch does not matter. */
    in.level = MTA_TLS_LEVEL_DANE;
    mx.secure = 1;
    mx.tlsa = MTA_TLSA_USABLE;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
    /* Without REQUIRETLS a failed fetch is delivery as without MTA-STS (RFC 8461 5.1). */
    in.requiretls = 0;
    mx.secure = 0;
    mx.tlsa = MTA_TLSA_NOT_ASKED;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_MAY);
}

/* REQUIRETLS at encrypt, verify or secure: DANE and MTA-STS are asked and apply on top. */
static void test_requiretls_local_levels_use_published(void **state)
{
    (void)state;
    struct mta_policy_in in = {.domain = "dest.test", .level = MTA_TLS_LEVEL_ENCRYPT, .requiretls = 1};
    for (enum mta_tls_level l = MTA_TLS_LEVEL_ENCRYPT; l <= MTA_TLS_LEVEL_SECURE; l++) {
        in.level = l;
        assert_true(mta_policy_wants_sts(&in));
        assert_true(mta_policy_wants_tlsa(&in, 1));
    }
    in.level = MTA_TLS_LEVEL_NONE;
    assert_false(mta_policy_wants_sts(&in));
    in.requiretls = 0; /* without it the local levels ask nothing, as before */
    in.level = MTA_TLS_LEVEL_ENCRYPT;
    assert_false(mta_policy_wants_sts(&in));
    assert_false(mta_policy_wants_tlsa(&in, 1));
    in.requiretls = 1;

    struct mta_sts_policy enforce = sts_policy(MTA_STS_MODE_ENFORCE);
    struct mta_policy_mx mx = {.host = "mx.sts.test", .secure = 0, .tlsa = MTA_TLSA_NOT_ASKED};
    struct mta_policy_decision d;
    /* encrypt + an insecure MX in the enforce policy: MTA-STS authenticates it. */
    in.sts = &enforce;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    assert_int_equal(d.names, MTA_TLS_NAMES_MX);
    assert_true(d.authenticated && d.tls_required);
    assert_false(d.plaintext_retry);
    assert_int_equal(d.sts, MTA_STS_APPLIED_ENFORCE);
    assert_int_equal(d.level, MTA_TLS_LEVEL_ENCRYPT);
    /* an MX the policy does not name: not tried, temporarily, at every local level */
    mx.host = "mx.evil.test";
    for (enum mta_tls_level l = MTA_TLS_LEVEL_ENCRYPT; l <= MTA_TLS_LEVEL_SECURE; l++) {
        in.level = l;
        mta_policy_decide(&in, &mx, &d);
        assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
        assert_string_equal(d.dsn, "4.7.5");
        assert_false(d.perm);
    }
    /* encrypt + DANE of a secure MX: DANE. */
    in.sts = NULL;
    in.level = MTA_TLS_LEVEL_ENCRYPT;
    mx.host = "mx.dest.test";
    mx.secure = 1;
    mx.tlsa = MTA_TLSA_USABLE;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_DANE);
    assert_true(d.dane && d.authenticated && d.tls_required);
    /* verify keeps its own PKIX check (authenticated already) */
    in.level = MTA_TLS_LEVEL_VERIFY;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_VERIFY);
    /* a TLSA lookup that failed: that MX not now, whatever the level */
    mx.tlsa = MTA_TLSA_FAILED;
    mx.tlsa_why = "DNSSEC validation failed: signature expired";
    for (enum mta_tls_level l = MTA_TLS_LEVEL_ENCRYPT; l <= MTA_TLS_LEVEL_SECURE; l++) {
        in.level = l;
        mta_policy_decide(&in, &mx, &d);
        assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
        assert_string_equal(d.dsn, "4.7.5");
    }
    /* encrypt, insecure MX, nothing published: still no authenticated TLS, 5.7.10 */
    in.level = MTA_TLS_LEVEL_ENCRYPT;
    mx.secure = 0;
    mx.tlsa = MTA_TLSA_NOT_ASKED;
    mta_policy_decide(&in, &mx, &d);
    assert_int_equal(d.mode, MTA_TLS_MODE_SKIP);
    assert_true(d.perm);
    assert_string_equal(d.dsn, MTA_REQUIRETLS_DSN);
}

static void test_tlsa_usable(void **state)
{
    (void)state;
    assert_true(mta_tlsa_usable(3, 1, 1, 32));
    assert_true(mta_tlsa_usable(2, 0, 1, 32));
    assert_true(mta_tlsa_usable(3, 1, 2, 64));
    assert_true(mta_tlsa_usable(3, 0, 0, 800));
    assert_false(mta_tlsa_usable(0, 1, 1, 32)); /* PKIX-TA */
    assert_false(mta_tlsa_usable(1, 1, 1, 32)); /* PKIX-EE */
    assert_false(mta_tlsa_usable(3, 2, 1, 32)); /* no selector 2 */
    assert_false(mta_tlsa_usable(3, 1, 3, 32)); /* no matching type 3 */
    assert_false(mta_tlsa_usable(3, 1, 1, 31)); /* SHA-256 is 32 octets */
    assert_false(mta_tlsa_usable(3, 1, 2, 32));
    assert_false(mta_tlsa_usable(3, 1, 0, 0));

    /* From a resolver answer: secure with usable, secure with unusable only, insecure, bogus. */
    uint8_t digest[32] = {0xab};
    Postmesh__TlsaRecord r1 = POSTMESH__TLSA_RECORD__INIT, r2 = POSTMESH__TLSA_RECORD__INIT;
    r1.usage = 3, r1.selector = 1, r1.matching_type = 1, r1.data.data = digest, r1.data.len = 32;
    r2.usage = 1, r2.selector = 1, r2.matching_type = 1, r2.data.data = digest, r2.data.len = 32;
    Postmesh__TlsaRecord *recs[] = {&r2, &r1};
    Postmesh__ResolveReply rep = POSTMESH__RESOLVE_REPLY__INIT;
    rep.status = POSTMESH__RESOLVE_REPLY__STATUS__OK;
    rep.dnssec = POSTMESH__DNSSEC__DNSSEC_SECURE;
    rep.tlsa = recs;
    rep.n_tlsa = 2;
    struct mta_tlsa_set set = {0};
    char why[128];
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_USABLE);
    assert_int_equal(set.n, 1);
    assert_int_equal(set.total, 2);
    assert_int_equal(set.v[0].usage, 3);
    assert_string_equal(set.text[1], "3 1 1 ab00000000000000000000000000000000000000000000000000000000000000");
    rep.n_tlsa = 1;
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_UNUSABLE);
    rep.n_tlsa = 0;
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_NONE);
    /* NXDOMAIN: a denial too (proven: no records; unproven: no DANE). */
    rep.status = POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL;
    rep.dsn_status = "5.1.2";
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_NONE);
    rep.dnssec = POSTMESH__DNSSEC__DNSSEC_INSECURE;
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_NOT_ASKED);
    rep.dsn_status = "5.1.3"; /* a name the resolver will not ask: a failure */
    rep.dnssec = POSTMESH__DNSSEC__DNSSEC_SECURE;
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_FAILED);
    rep.status = POSTMESH__RESOLVE_REPLY__STATUS__OK;
    rep.dsn_status = "";
    rep.n_tlsa = 2;
    rep.dnssec = POSTMESH__DNSSEC__DNSSEC_INSECURE;
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_NOT_ASKED);
    rep.status = POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL;
    rep.dnssec = POSTMESH__DNSSEC__DNSSEC_BOGUS;
    rep.text = "DNSSEC validation failed: no signature";
    assert_int_equal(mta_tlsa_from_reply(&rep, NULL, &set, why, sizeof why), MTA_TLSA_FAILED);
    assert_string_equal(why, "DNSSEC validation failed: no signature");
    assert_int_equal(mta_tlsa_from_reply(NULL, "timed out", &set, why, sizeof why), MTA_TLSA_FAILED);
    assert_string_equal(why, "timed out");
    mta_tlsa_set_free(&set);
}

static void test_policy_rows_lookup(void **state)
{
    (void)state;
    struct pm_tls_policy rows[] = {
        {.domain = "example.test", .level = "verify"},
        {.domain = ".example.test", .level = "encrypt"},
        {.domain = ".deep.example.test", .level = "secure"},
    };
    struct pm_tls_policy_list l = {.v = rows, .n = 3};
    assert_ptr_equal(pm_tls_policy_find(&l, "example.test"), &rows[0]);
    assert_ptr_equal(pm_tls_policy_find(&l, "a.example.test"), &rows[1]);
    assert_ptr_equal(pm_tls_policy_find(&l, "x.deep.example.test"), &rows[2]);
    assert_ptr_equal(pm_tls_policy_find(&l, "deep.example.test"), &rows[1]);
    assert_null(pm_tls_policy_find(&l, "badexample.test"));
    assert_null(pm_tls_policy_find(&l, "other.test"));
}

static void test_tls_required_header(void **state)
{
    (void)state;
#define HAS(s) mta_tls_required_no((const uint8_t *)(s), strlen(s))
    assert_true(HAS("From: a@b\r\nTLS-Required: No\r\n\r\nbody\r\n"));
    assert_true(HAS("tls-required:no\nSubject: x\n\nbody"));
    assert_true(HAS("Subject: x\r\nTLS-Required:\r\n  No\r\n\r\n"));   /* folded */
    assert_true(HAS("TLS-Required: NO   \r\n\r\n"));
    assert_false(HAS("From: a@b\r\n\r\nTLS-Required: No\r\n"));        /* in the body */
    assert_false(HAS("TLS-Required: Yes\r\n\r\n"));
    assert_false(HAS("TLS-Required: No thanks\r\n\r\n"));
    assert_false(HAS("X-TLS-Required: No\r\n\r\n"));
    assert_false(HAS("TLS-Requirement: No\r\n\r\n"));
    assert_false(HAS(""));
    assert_false(HAS("TLS-Required: N"));
    assert_true(HAS("TLS-Required: No"));                               /* header only, no CRLF */
#undef HAS
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_names_and_default),
        cmocka_unit_test(test_local_levels),
        cmocka_unit_test(test_dane_level),
        cmocka_unit_test(test_dane_only_level),
        cmocka_unit_test(test_mta_sts),
        cmocka_unit_test(test_tls_required_no),
        cmocka_unit_test(test_requiretls),
        cmocka_unit_test(test_requiretls_sts_fetch_failed_defers),
        cmocka_unit_test(test_requiretls_local_levels_use_published),
        cmocka_unit_test(test_tlsa_usable),
        cmocka_unit_test(test_policy_rows_lookup),
        cmocka_unit_test(test_tls_required_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
