/* The metrics exposition (Prometheus text format 0.0.4): HELP/TYPE lines, labels and their
 * escaping, cumulative histogram buckets, the bound on label sets, reply reasons. The
 * registry is one per process, so each test uses metrics the others leave alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "postmesh.pb-c.h"

static char *text(void)
{
    size_t len = 0;
    char *t = pm_metrics_text(&len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    return t;
}

static void has_line(const char *t, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = t; (p = strstr(p, line)) != NULL; p++)
        if ((p == t || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("no line \"%s\" in:\n%s", line, t);
}

static void test_counter_gauge_and_service_rows(void **state)
{
    (void)state;
    pm_metrics_set_service("queue");
    char *t = text();
    /* a plain counter of this service is 0 before its first event; other services' rows are absent */
    has_line(t, "# HELP postmesh_queue_commits_total Synced LMDB write transactions (group commits).");
    has_line(t, "# TYPE postmesh_queue_commits_total counter");
    has_line(t, "postmesh_queue_commits_total 0");
    assert_null(strstr(t, "postmesh_smtpd_connections_total"));
    free(t);

    pm_metric_inc(PM_M_QUEUE_COMMITS);
    pm_metric_inc(PM_M_QUEUE_COMMITS);
    pm_metric_set(PM_M_QUEUE_MESSAGES, 7, "deferred", NULL);
    pm_metric_set(PM_M_QUEUE_MESSAGES, 3, "deferred", NULL); /* set replaces */
    pm_metric_add(PM_M_QUEUE_MESSAGES, 2.5, "hold", NULL);
    t = text();
    has_line(t, "postmesh_queue_commits_total 2");
    has_line(t, "# TYPE postmesh_queue_messages gauge");
    has_line(t, "postmesh_queue_messages{state=\"deferred\"} 3");
    has_line(t, "postmesh_queue_messages{state=\"hold\"} 2.5");
    /* HELP comes right before TYPE, TYPE before the samples */
    const char *help = strstr(t, "# HELP postmesh_queue_messages ");
    const char *type = strstr(t, "# TYPE postmesh_queue_messages ");
    const char *sample = strstr(t, "\npostmesh_queue_messages{");
    assert_true(help && type && sample && help < type && type < sample);
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
}

static void test_histogram_buckets_cumulative(void **state)
{
    (void)state;
    pm_metrics_set_service("queue");
    pm_metric_observe(PM_M_QUEUE_COMMIT_BATCH, 1);
    pm_metric_observe(PM_M_QUEUE_COMMIT_BATCH, 3);
    pm_metric_observe(PM_M_QUEUE_COMMIT_BATCH, 3);
    pm_metric_observe(PM_M_QUEUE_COMMIT_BATCH, 5000);
    pm_metric_inc(PM_M_QUEUE_COMMIT_BATCH); /* not a counter: ignored */
    char *t = text();
    has_line(t, "# TYPE postmesh_queue_commit_batch_size histogram");
    has_line(t, "postmesh_queue_commit_batch_size_bucket{le=\"1\"} 1");
    has_line(t, "postmesh_queue_commit_batch_size_bucket{le=\"2\"} 1");
    has_line(t, "postmesh_queue_commit_batch_size_bucket{le=\"4\"} 3");
    has_line(t, "postmesh_queue_commit_batch_size_bucket{le=\"1024\"} 3");
    has_line(t, "postmesh_queue_commit_batch_size_bucket{le=\"+Inf\"} 4");
    has_line(t, "postmesh_queue_commit_batch_size_sum 5007");
    has_line(t, "postmesh_queue_commit_batch_size_count 4");
    /* fractional bounds and sums */
    pm_metric_observe(PM_M_QUEUE_COMMIT_SECONDS, 0.0007);
    free(t);
    t = text();
    has_line(t, "postmesh_queue_commit_seconds_bucket{le=\"0.0005\"} 0");
    has_line(t, "postmesh_queue_commit_seconds_bucket{le=\"0.001\"} 1");
    has_line(t, "postmesh_queue_commit_seconds_sum 0.0007");
    free(t);
}

static void test_label_escaping(void **state)
{
    (void)state;
    pm_metrics_set_service("smtpd");
    pm_metric_add(PM_M_SMTPD_ENVELOPE_REJECTS, 1, "a\"b\\c\nd", "5.1.1");
    char *t = text();
    has_line(t, "postmesh_smtpd_envelope_rejects_total{command=\"a\\\"b\\\\c\\nd\",reason=\"5.1.1\"} 1");
    free(t);
}

static void test_label_sets_bounded(void **state)
{
    (void)state;
    pm_metrics_set_service("resolver");
    char v[32];
    for (int i = 0; i < 200; i++) {
        snprintf(v, sizeof v, "k%d", i);
        pm_metric_add(PM_M_RESOLVER_QUERIES, 1, v, NULL);
    }
    char *t = text();
    int series = 0;
    double sum = 0;
    for (const char *p = t; (p = strstr(p, "\npostmesh_resolver_queries_total{")) != NULL; p++) {
        series++;
        sum += strtod(strchr(p, '}') + 1, NULL);
    }
    assert_true(series <= 32);
    assert_true(sum == 200);
    has_line(t, "postmesh_resolver_queries_total{kind=\"k0\"} 1");
    assert_non_null(strstr(t, "postmesh_resolver_queries_total{kind=\"other\"} "));
    free(t);
}

static void test_reason(void **state)
{
    (void)state;
    static const struct {
        const char *reply, *want;
    } cases[] = {
        {"550 5.1.1 <x@y>: Recipient address rejected", "5.1.1"},
        {"250 2.0.0 Ok: queued as ABC", "2.0.0"},
        {"451 4.3.0 Error: queue not available", "4.3.0"},
        {"4.3.1 queue store full, try again later", "4.3.1"}, /* the queue's own answers */
        {"554 Transaction failed", "554"},
        {"550 4.1.1 mismatched class", "550"},
        {"552", "552"},
        {"552-5.3.4 multi-line", "5.3.4"},
        {"hello", "other"},
        {"", "other"},
        {"5.1.1x", "other"},
        {"550 5.1.1234 too long a detail", "550"},
    };
    char out[16];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(pm_metric_reason(cases[i].reply, out, sizeof out), cases[i].want);
    assert_string_equal(pm_metric_reason(NULL, out, sizeof out), "other");
    assert_string_equal(pm_metric_enum(&postmesh__recipient_result__status__descriptor,
                                       POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL, out, sizeof out),
                        "permfail");
    assert_string_equal(pm_metric_enum(&postmesh__recipient_result__status__descriptor, 999, out, sizeof out),
                        "unknown");
}

/* Every metric of the catalog has a name, HELP and TYPE once touched; no hole in the table. */
static void test_catalog_complete(void **state)
{
    (void)state;
    pm_metrics_set_service("none");
    for (int id = 0; id < PM_M_COUNT; id++) {
        pm_metric_add((enum pm_metric_id)id, 1, "x", "y");
        pm_metric_observe((enum pm_metric_id)id, 1);
    }
    char *t = text();
    int types = 0, helps = 0;
    for (const char *p = t; (p = strstr(p, "# TYPE postmesh_")) != NULL; p++)
        types++;
    for (const char *p = t; (p = strstr(p, "# HELP postmesh_")) != NULL; p++)
        helps++;
    assert_int_equal(types, PM_M_COUNT);
    assert_int_equal(helps, PM_M_COUNT);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge_and_service_rows),
        cmocka_unit_test(test_histogram_buckets_cumulative),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_label_sets_bounded),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_catalog_complete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
