/* The mta's TLSRPT half (services/mta/tlsrpt.h): one job's sessions put into its JobResult
 * as TlsSession messages — the domain's rua (mailto: only; none: nothing attached), the
 * policy, bounded counts and lengths, control characters replaced, everything freed by
 * mta_tlsrpt_release (as mta_result_free does). Run under ASan by `make unit`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mta/tlsrpt.h"

static void test_sessions_attached(void **state)
{
    (void)state;
    struct mta_tlsrpt *r = mta_tlsrpt_new("Rcpt.Example.");
    const char *txt[] = {"v=spf1 -all", "v=TLSRPTv1; rua=https://r.example/x,mailto:tlsrpt@rcpt.example"};
    mta_tlsrpt_set_record(r, txt, 2);
    const char *tlsa[] = {"3 1 1 abcd", "2 0 1 ef01"};
    mta_tlsrpt_set_policy(r, POSTMESH__TLS_SESSION__POLICY_TYPE__TLSA, tlsa, 2, NULL, 0);
    mta_tlsrpt_session(r, 1, NULL, "MX.rcpt.example.", "192.0.2.1", NULL, NULL, NULL);
    mta_tlsrpt_session(r, 0, "starttls-not-supported", "mx2.rcpt.example", "192.0.2.2", NULL, "helo\r\nx", "why");
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    mta_tlsrpt_attach(r, &res);
    assert_int_equal(res.n_tls_sessions, 2);
    Postmesh__TlsSession *a = res.tls_sessions[0], *b = res.tls_sessions[1];
    assert_string_equal(a->policy_domain, "rcpt.example");
    assert_int_equal(a->policy_type, POSTMESH__TLS_SESSION__POLICY_TYPE__TLSA);
    assert_int_equal(a->n_policy_strings, 2);
    assert_string_equal(a->policy_strings[1], "2 0 1 ef01");
    assert_true(a->success);
    assert_string_equal(a->result_type, "");
    assert_string_equal(a->receiving_mx_hostname, "mx.rcpt.example");
    assert_int_equal(a->n_rua, 1);
    assert_string_equal(a->rua[0], "mailto:tlsrpt@rcpt.example");
    assert_false(b->success);
    assert_string_equal(b->result_type, "starttls-not-supported");
    assert_string_equal(b->receiving_mx_helo, "helo??x"); /* no control characters reach the bus */
    assert_string_equal(b->failure_reason_code, "why"); /* RFC 8460 4.3: the text field */
    assert_string_equal(b->additional_info, ""); /* a URI, and we have none */
    /* the packed result decodes again (what the queue receives) */
    size_t len = postmesh__job_result__get_packed_size(&res);
    uint8_t buf[4096];
    assert_true(len < sizeof buf);
    postmesh__job_result__pack(&res, buf);
    Postmesh__JobResult *back = postmesh__job_result__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->n_tls_sessions, 2);
    postmesh__job_result__free_unpacked(back, NULL);
    mta_tlsrpt_release(&res);
    assert_int_equal(res.n_tls_sessions, 0);
    assert_null(res.tls_sessions);
    /* moved: a second attach has nothing */
    mta_tlsrpt_attach(r, &res);
    assert_int_equal(res.n_tls_sessions, 0);
    mta_tlsrpt_free(r);
}

static void test_nothing_without_rua(void **state)
{
    (void)state;
    const char *cases[][2] = {{"v=TLSRPTv1; rua=https://r.example/x", NULL},
                              {"v=TLSRPTv1; rua=mailto:a@x.example", "v=TLSRPTv1; rua=mailto:b@x.example"},
                              {"v=TLSRPTv2; rua=mailto:a@x.example", NULL}};
    for (size_t i = 0; i < 3; i++) {
        struct mta_tlsrpt *r = mta_tlsrpt_new("x.example");
        mta_tlsrpt_set_record(r, cases[i], cases[i][1] ? 2 : 1);
        mta_tlsrpt_session(r, 1, NULL, "mx.x.example", "192.0.2.1", NULL, NULL, NULL);
        Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
        mta_tlsrpt_attach(r, &res);
        assert_int_equal(res.n_tls_sessions, 0);
        mta_tlsrpt_release(&res);
        mta_tlsrpt_free(r);
    }
    /* no record looked up at all, and NULL everywhere (mta.tlsrpt = false) */
    struct mta_tlsrpt *r = mta_tlsrpt_new("x.example");
    mta_tlsrpt_session(r, 1, NULL, "mx.x.example", NULL, NULL, NULL, NULL);
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    mta_tlsrpt_attach(r, &res);
    assert_int_equal(res.n_tls_sessions, 0);
    mta_tlsrpt_free(r);
    mta_tlsrpt_set_record(NULL, NULL, 0);
    mta_tlsrpt_set_policy(NULL, 0, NULL, 0, NULL, 0);
    mta_tlsrpt_session(NULL, 1, NULL, NULL, NULL, NULL, NULL, NULL);
    mta_tlsrpt_attach(NULL, &res);
    mta_tlsrpt_free(NULL);
    mta_tlsrpt_release(&res);
}

static void test_bounded(void **state)
{
    (void)state;
    struct mta_tlsrpt *r = mta_tlsrpt_new("x.example");
    const char *txt[] = {"v=TLSRPTv1; rua=mailto:a@x.example"};
    mta_tlsrpt_set_record(r, txt, 1);
    static char big[5000];
    memset(big, 'a', sizeof big - 1);
    const char *strings[40];
    for (int i = 0; i < 40; i++)
        strings[i] = big;
    mta_tlsrpt_set_policy(r, POSTMESH__TLS_SESSION__POLICY_TYPE__STS, strings, 40, strings, 40);
    mta_tlsrpt_set_policy(r, POSTMESH__TLS_SESSION__POLICY_TYPE__STS, strings, 40, strings, 40); /* replaces */
    for (int i = 0; i < MTA_TLSRPT_MAX_SESSIONS + 5; i++)
        mta_tlsrpt_session(r, 0, big, big, big, big, big, big);
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    mta_tlsrpt_attach(r, &res);
    assert_int_equal(res.n_tls_sessions, MTA_TLSRPT_MAX_SESSIONS);
    Postmesh__TlsSession *s = res.tls_sessions[0];
    assert_int_equal(s->n_policy_strings, 32);
    assert_int_equal(s->n_mx_host, 32);
    assert_true(strlen(s->policy_strings[0]) <= 1024);
    assert_true(strlen(s->mx_host[0]) <= 255);
    assert_true(strlen(s->receiving_mx_hostname) <= 255);
    assert_true(strlen(s->receiving_ip) <= 63);
    assert_true(strlen(s->result_type) <= 64);
    assert_true(strlen(s->failure_reason_code) <= 255);
    mta_tlsrpt_release(&res);
    mta_tlsrpt_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions_attached),
        cmocka_unit_test(test_nothing_without_rua),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
