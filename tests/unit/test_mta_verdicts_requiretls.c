/* The mta's verdicts for REQUIRETLS (RFC 8689 4.2.1): an MX given up for a REQUIRETLS reason
 * (no REQUIRETLS offered: 5.7.30; no authenticated TLS: 5.7.10) leaves the recipient to the
 * next MX; with none left the message is returned (PERMFAIL), unless another MX failed only
 * temporarily (then it waits for the queue's next try). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mta/verdicts.h"

#define PERMFAIL POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL
#define TEMPFAIL POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL
#define DELIVERED POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED

struct world {
    struct mta_rcpt rcpts[2];
    struct pm_smtpc_rcpt srcpts[2];
    int map[2];
    struct pm_smtpc sm;
    Postmesh__Job job;
};

static void world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    static const char *addrs[] = {"a@remote.test", "b@remote.test"};
    for (int i = 0; i < 2; i++) {
        w->rcpts[i].index = (uint32_t)i;
        w->rcpts[i].address = addrs[i];
        w->srcpts[i].address = addrs[i];
        w->map[i] = i;
    }
    postmesh__job__init(&w->job);
    w->job.queue_id = "0123456789ABC001";
    w->job.requiretls = 1;
}

/* One connection that ended the way error/dsn say, every recipient without a verdict of its
 * own (smtpc gave the server up before MAIL). */
static void connection(struct world *w, const char *dsn, const char *error)
{
    memset(&w->sm, 0, sizeof w->sm);
    w->sm.rcpts = w->srcpts;
    w->sm.nrcpts = 2;
    for (int i = 0; i < 2; i++)
        w->srcpts[i].state = PM_SMTPC_RCPT_PENDING;
    snprintf(w->sm.error_dsn, sizeof w->sm.error_dsn, "%s", dsn);
    snprintf(w->sm.error, sizeof w->sm.error, "%s", error);
    w->sm.replied = 1;
    mta_rcpts_fold(w->rcpts, w->map, &w->sm, "mx.remote.test", 1, "mx.remote.test[127.0.0.2]:25", "", "loop");
}

static void test_no_requiretls_anywhere_is_returned(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    connection(&w, "5.7.30", "5.7.30 REQUIRETLS support required, but mx1 does not offer it");
    assert_false(w.rcpts[0].final); /* the next MX may offer it */
    connection(&w, "5.7.30", "5.7.30 REQUIRETLS support required, but mx2 does not offer it");
    struct mta_result r;
    mta_result_build(&r, w.rcpts, 2, &w.job);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r.res.results[i]->status, PERMFAIL);
        assert_string_equal(r.res.results[i]->dsn_status, "5.7.30");
        assert_non_null(strstr(r.res.results[i]->text, "mx2 does not offer it"));
    }
    mta_result_free(&r);
}

static void test_policy_skip_is_returned(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    /* Every MX skipped by the policy: no authenticated TLS anywhere. */
    mta_rcpts_skip(w.rcpts, 2, "5.7.10", "5.7.10 REQUIRETLS: no authenticated TLS to mx1.remote.test");
    mta_rcpts_skip(w.rcpts, 2, "5.7.10", "5.7.10 REQUIRETLS: no authenticated TLS to mx2.remote.test");
    struct mta_result r;
    mta_result_build(&r, w.rcpts, 2, &w.job);
    assert_int_equal(r.res.results[0]->status, PERMFAIL);
    assert_string_equal(r.res.results[0]->dsn_status, "5.7.10");
    mta_result_free(&r);
}

/* One MX unreachable, the other without REQUIRETLS: the first may be back later. Either order. */
static void test_a_temporary_failure_elsewhere_defers(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        struct world w;
        world_init(&w);
        if (order == 0) {
            connection(&w, "4.4.1", "connect to mx1: Connection refused");
            connection(&w, "5.7.30", "5.7.30 REQUIRETLS support required, but mx2 does not offer it");
        } else {
            connection(&w, "5.7.30", "5.7.30 REQUIRETLS support required, but mx1 does not offer it");
            connection(&w, "4.4.1", "connect to mx2: Connection refused");
        }
        struct mta_result r;
        mta_result_build(&r, w.rcpts, 2, &w.job);
        assert_int_equal(r.res.results[0]->status, TEMPFAIL);
        assert_int_equal(r.res.results[0]->dsn_status[0], '4'); /* a deferral says 4.x.x */
        if (order == 0) /* ... and so does its text, when the text starts with the code */
            assert_string_equal(r.res.results[0]->text, "4.7.30 REQUIRETLS support required, but mx2 does not offer it");
        mta_result_free(&r);
    }
}

/* A later MX that takes it: delivered, the earlier refusal forgotten. */
static void test_a_later_mx_delivers(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    connection(&w, "5.7.30", "5.7.30 REQUIRETLS support required, but mx1 does not offer it");
    memset(&w.sm, 0, sizeof w.sm);
    w.sm.rcpts = w.srcpts;
    w.sm.nrcpts = 2;
    for (int i = 0; i < 2; i++) {
        w.srcpts[i].state = PM_SMTPC_RCPT_DELIVERED;
        snprintf(w.srcpts[i].dsn, sizeof w.srcpts[i].dsn, "2.0.0");
        snprintf(w.srcpts[i].text, sizeof w.srcpts[i].text, "250 2.0.0 Ok");
    }
    mta_rcpts_fold(w.rcpts, w.map, &w.sm, "mx2.remote.test", 0, "mx2.remote.test[127.0.0.3]:25", "", "loop");
    struct mta_result r;
    mta_result_build(&r, w.rcpts, 2, &w.job);
    assert_int_equal(r.res.results[0]->status, DELIVERED);
    assert_int_equal(r.res.results[1]->status, DELIVERED);
    mta_result_free(&r);
}

/* Nothing changes for ordinary mail: temporary reasons stay temporary. */
static void test_ordinary_deferral(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    w.job.requiretls = 0;
    connection(&w, "4.7.5", "4.7.5 TLS is required, but mx1 refused STARTTLS");
    struct mta_result r;
    mta_result_build(&r, w.rcpts, 2, &w.job);
    assert_int_equal(r.res.results[0]->status, TEMPFAIL);
    assert_string_equal(r.res.results[0]->dsn_status, "4.7.5");
    mta_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_requiretls_anywhere_is_returned),
        cmocka_unit_test(test_policy_skip_is_returned),
        cmocka_unit_test(test_a_temporary_failure_elsewhere_defers),
        cmocka_unit_test(test_a_later_mx_delivers),
        cmocka_unit_test(test_ordinary_deferral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
