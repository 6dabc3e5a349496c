/* The SSL object of one outbound session (mta/tls.c) as the decision asks: verification
 * mode, the names (MX host, match list, the domain and its subdomains, an address
 * literal's address), SNI, a row's own CA store, DANE records; and never a session built
 * differently from what was asked (NULL instead). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <string.h>

#include "config.h"
#include "mta/dane.h"
#include "mta/policy.h"
#include "mta/tls.h"

static struct mta_tls *context(struct pm_tls_policy *rows, int n)
{
    static struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.mta.ca_file = "/dev/null"; /* no certificates: a warning, not a failure */
    cfg.mta.ca_path = "";
    cfg.mta.tls_policy.v = rows;
    cfg.mta.tls_policy.n = n;
    struct mta_tls *t = mta_tls_new_context(&cfg);
    assert_non_null(t);
    return t;
}

static const char *sni(SSL *ssl) { return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name); }

static void test_unverified_modes(void **state)
{
    (void)state;
    struct mta_tls *t = context(NULL, 0);
    struct mta_policy_decision d = {.mode = MTA_TLS_MODE_MAY};
    SSL *ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL);
    assert_non_null(ssl);
    assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_NONE);
    assert_string_equal(sni(ssl), "mx.dest.test");
    SSL_free(ssl);
    d.mode = MTA_TLS_MODE_ENCRYPT;
    ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL);
    assert_int_equal(SSL_get_verify_mode(ssl), SSL_VERIFY_NONE);
    SSL_free(ssl);
    mta_tls_free(t);
    assert_null(mta_tls_session(NULL, "mx.dest.test", "dest.test", &d, NULL)); /* no context, no TLS */
}

static void test_verify_names(void **state)
{
    (void)state;
    struct mta_tls *t = context(NULL, 0);
    struct mta_policy_decision d = {.mode = MTA_TLS_MODE_VERIFY, .names = MTA_TLS_NAMES_MX};
    SSL *ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL);
    assert_true(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER);
    X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
    assert_string_equal(X509_VERIFY_PARAM_get0_host(p, 0), "mx.dest.test");
    assert_null(X509_VERIFY_PARAM_get0_host(p, 1));
    SSL_free(ssl);

    d.names = MTA_TLS_NAMES_DOMAIN; /* secure: the domain and any subdomain */
    ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL);
    p = SSL_get0_param(ssl);
    assert_string_equal(X509_VERIFY_PARAM_get0_host(p, 0), "dest.test");
    assert_string_equal(X509_VERIFY_PARAM_get0_host(p, 1), ".dest.test");
    SSL_free(ssl);

    char *names[] = {"mail.other.test", ".backup.test"};
    struct pm_strlist match = {.v = names, .n = 2};
    d.names = MTA_TLS_NAMES_MATCH;
    d.match = &match;
    ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL);
    p = SSL_get0_param(ssl);
    assert_string_equal(X509_VERIFY_PARAM_get0_host(p, 0), "mail.other.test");
    assert_string_equal(X509_VERIFY_PARAM_get0_host(p, 1), ".backup.test");
    SSL_free(ssl);

    /* An address literal: no SNI, the address is what the certificate must carry. */
    d.names = MTA_TLS_NAMES_MX;
    ssl = mta_tls_session(t, "[192.0.2.1]", "[192.0.2.1]", &d, NULL);
    assert_non_null(ssl);
    assert_null(sni(ssl));
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl));
    assert_string_equal(ip, "192.0.2.1");
    OPENSSL_free(ip);
    assert_null(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0));
    SSL_free(ssl);
    mta_tls_free(t);
}

static void test_a_rows_ca_file_or_nothing(void **state)
{
    (void)state;
    struct pm_tls_policy rows[] = {{.domain = "dest.test", .level = "verify", .ca_file = "/dev/null"}};
    struct mta_tls *t = context(rows, 1);
    struct mta_policy_decision d = {.mode = MTA_TLS_MODE_VERIFY, .ca_file = "/dev/null"};
    SSL *ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL);
    assert_non_null(ssl); /* the row's (empty) store: nothing will verify, as asked */
    SSL_free(ssl);
    d.ca_file = "/not/loaded.pem"; /* never the system's store instead */
    assert_null(mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL));
    mta_tls_free(t);
}

static void test_dane_session(void **state)
{
    (void)state;
    struct mta_tls *t = context(NULL, 0);
    struct mta_policy_decision d = {.mode = MTA_TLS_MODE_DANE, .dane = 1};
    assert_null(mta_tls_session(t, "mx.dest.test", "dest.test", &d, NULL)); /* DANE without records */
    uint8_t digest[32] = {1, 2, 3};
    struct mta_tlsa rec = {.usage = 3, .selector = 1, .mtype = 1, .len = 32, .data = digest};
    struct mta_tlsa_set set = {.n = 1, .total = 1, .v = &rec};
    SSL *ssl = mta_tls_session(t, "mx.dest.test", "dest.test", &d, &set);
    assert_non_null(ssl);
    assert_true(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER);
    assert_string_equal(sni(ssl), "mx.dest.test");
    assert_int_equal(mta_tls_dane_usage(ssl), -1); /* nothing matched yet */
    SSL_free(ssl);
    /* A record OpenSSL refuses (a SHA-256 of the wrong length slipped through): no session. */
    rec.len = 31;
    assert_null(mta_tls_session(t, "mx.dest.test", "dest.test", &d, &set));
    mta_tls_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unverified_modes),
        cmocka_unit_test(test_verify_names),
        cmocka_unit_test(test_a_rows_ca_file_or_nothing),
        cmocka_unit_test(test_dane_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
