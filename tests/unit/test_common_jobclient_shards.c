/* The job client (common/jobclient.c) against two queue shards: two real ZeroMQ ROUTERs in
 * this process's loop, the client given both endpoints. Every shard hears the worker's own
 * free slots (never capacity once per shard) and its own count of jobs received; a result
 * goes back to the shard its job came from and to no other; a burst from both shards beyond
 * capacity + backlog comes back RETURNED to whoever sent it; a shard that is away holds its
 * own results without delaying the other's, and gets them when it is back; drain offers
 * nothing to either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "fake_queue.h"
#include "jobclient.h"

#define MAX_JOBS 16
#define QID "0123456789ABC001"
#define EPOCH 0x9e3779b97f4a7c15ull

#define BODY(x) POSTMESH__BUS_MESSAGE__BODY_##x
#define RS(x) POSTMESH__RECIPIENT_RESULT__STATUS__##x
#define KIND(x) POSTMESH__WORKER_KIND__WORKER_##x

struct fixture {
    struct fake_queue a, b; /* b shares a's loop (the client has one) */
    struct pm_job_client *client;
    struct pm_job *jobs[MAX_JOBS];
    int njobs;
};

static struct fixture *current;

static void on_job(struct pm_job *job, void *arg)
{
    struct fixture *f = arg;
    assert_true(f->njobs < MAX_JOBS);
    f->jobs[f->njobs++] = job;
}

static void step(struct fixture *f) { fq_step(&f->a); }

static int wait_jobs(struct fixture *f, int n, int ms)
{
    uint64_t deadline = pm_mono_ms() + (uint64_t)ms;
    while (f->njobs < n && pm_mono_ms() < deadline)
        step(f);
    return f->njobs >= n;
}

static struct fixture *fixture_new(int capacity, int backlog)
{
    struct fixture *f = calloc(1, sizeof *f);
    current = f;
    fq_open(&f->a);
    f->b.base = f->a.base;
    f->b.router = pm_bus_bind(f->a.base, ZMQ_ROUTER, "tcp://127.0.0.1:*", &fq_policy, fq_on_router, &f->b);
    assert_non_null(f->b.router);
    size_t len = sizeof f->b.endpoint;
    assert_int_equal(zmq_getsockopt(pm_bus_socket(f->b.router), ZMQ_LAST_ENDPOINT, f->b.endpoint, &len), 0);
    f->b.port = atoi(strrchr(f->b.endpoint, ':') + 1);
    const char *eps[] = {f->a.endpoint, f->b.endpoint, f->a.endpoint}; /* a listed twice: one socket */
    struct pm_job_client_config cfg = {
        .endpoint = "tcp://127.0.0.1:1", /* ignored: the list wins */
        .endpoints = eps,
        .nendpoints = 3,
        .kind = KIND(DELIVERY),
        .name = "shards-test",
        .capacity = capacity,
        .backlog = backlog,
        .on_job = on_job,
        .arg = f,
    };
    f->client = pm_job_client_new(f->a.base, &cfg);
    assert_non_null(f->client);
    assert_true(fq_wait_count(&f->a, BODY(CREDIT), 1, 5000));
    assert_true(fq_wait_count(&f->b, BODY(CREDIT), 1, 5000));
    return f;
}

static void fixture_free(struct fixture *f)
{
    current = NULL;
    pm_job_client_free(f->client);
    pm_bus_close(f->b.router);
    for (int i = 0; i < f->b.n; i++)
        postmesh__bus_message__free_unpacked(f->b.rec[i].m, NULL);
    fq_close(&f->a);
    free(f);
}

static int teardown_test(void **state)
{
    (void)state;
    if (current)
        fixture_free(current);
    return 0;
}

static void send_job(struct fake_queue *q, uint64_t job_id)
{
    struct fq_record *peer = fq_last(q, BODY(CREDIT));
    assert_non_null(peer);
    Postmesh__JobRecipient jr = POSTMESH__JOB_RECIPIENT__INIT, *jrs[1] = {&jr};
    jr.index = 0;
    jr.address = "a@example.test";
    jr.original = "a@example.test";
    Postmesh__Job job = POSTMESH__JOB__INIT;
    job.job_id = job_id;
    job.epoch = EPOCH;
    job.queue_id = QID;
    job.kind = KIND(DELIVERY);
    job.sender = "alice@example.net";
    job.n_recipients = 1;
    job.recipients = jrs;
    job.lease_seconds = 60;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = BODY(JOB);
    msg.job = &job;
    assert_int_equal(pm_bus_send_to(q->router, peer->peer, peer->peerlen, &msg), 0);
}

static void finish(struct fixture *f, int k)
{
    struct pm_job *job = f->jobs[k];
    assert_non_null(job);
    Postmesh__RecipientResult rr = POSTMESH__RECIPIENT_RESULT__INIT, *rrs[1] = {&rr};
    rr.index = 0;
    rr.status = RS(DELIVERED);
    rr.dsn_status = "2.0.0";
    rr.text = "delivered";
    f->jobs[k] = NULL;
    pm_job_finish(job, rrs, 1);
}

/* The k-th job handed to the service, by id (which shard sent it is in the id). */
static int find_job(struct fixture *f, uint64_t id)
{
    for (int k = 0; k < f->njobs; k++)
        if (f->jobs[k] && f->jobs[k]->job->job_id == id)
            return k;
    return -1;
}

static int has_result(struct fake_queue *q, uint64_t id)
{
    for (int i = 0; i < q->n; i++)
        if (q->rec[i].m->body_case == BODY(JOB_RESULT) && q->rec[i].m->job_result->job_id == id)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ tests */

/* Both shards are offered the same free slots with their own jobs_received; a job from one
 * lowers what the other is offered at once; each result goes to its job's shard only. */
static void test_credit_and_results_per_shard(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 0);
    fq_run_for(&f->a, 300); /* a listed twice would have sent a second first credit by now */
    for (int i = 0; i < f->a.n; i++)
        assert_memory_equal(f->a.rec[i].peer, f->a.rec[0].peer, f->a.rec[0].peerlen);
    assert_int_equal(fq_nth(&f->a, BODY(CREDIT), 0)->m->credit->credits, 3);
    assert_int_equal(fq_nth(&f->b, BODY(CREDIT), 0)->m->credit->credits, 3);
    int mark_b = f->b.n;
    send_job(&f->a, 1);
    assert_true(wait_jobs(f, 1, 3000));
    fq_expect_credit(&f->b, mark_b, 1000, 2, 0); /* well before a heartbeat */
    send_job(&f->b, 101);
    assert_true(wait_jobs(f, 2, 3000));
    int mark_a = f->a.n;
    mark_b = f->b.n;
    finish(f, find_job(f, 101));
    assert_true(fq_wait_count(&f->b, BODY(JOB_RESULT), 1, 3000));
    assert_true(has_result(&f->b, 101));
    fq_expect_credit(&f->a, mark_a, 1000, 2, 1); /* job 1 still runs */
    fq_expect_credit(&f->b, mark_b, 1000, FQ_ANY, 1);
    finish(f, find_job(f, 1));
    assert_true(fq_wait_count(&f->a, BODY(JOB_RESULT), 1, 3000));
    assert_true(has_result(&f->a, 1));
    fq_run_for(&f->a, 100);
    assert_int_equal(fq_count(&f->a, BODY(JOB_RESULT)), 1);
    assert_int_equal(fq_count(&f->b, BODY(JOB_RESULT)), 1);
    assert_false(has_result(&f->a, 101));
    assert_false(has_result(&f->b, 1));
    fixture_free(f);
}

/* Both shards fill the same two slots: two jobs run, the other two go back RETURNED, each to
 * the shard that sent it; the worker never holds more than capacity + backlog. */
static void test_burst_from_both_shards(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0);
    send_job(&f->a, 1);
    send_job(&f->a, 2);
    send_job(&f->b, 101);
    send_job(&f->b, 102);
    uint64_t deadline = pm_mono_ms() + 3000;
    while (fq_count(&f->a, BODY(JOB_RESULT)) + fq_count(&f->b, BODY(JOB_RESULT)) < 2 && pm_mono_ms() < deadline)
        step(f);
    fq_run_for(&f->a, 100);
    assert_int_equal(f->njobs, 2);
    assert_int_equal(pm_job_client_outstanding(f->client), 2);
    int returned = 0;
    struct fake_queue *qs[2] = {&f->a, &f->b};
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < qs[s]->n; i++) {
            Postmesh__BusMessage *m = qs[s]->rec[i].m;
            if (m->body_case != BODY(JOB_RESULT))
                continue;
            assert_int_equal(m->job_result->results[0]->status, RS(RETURNED));
            assert_true(s == 0 ? m->job_result->job_id < 100 : m->job_result->job_id > 100);
            assert_int_equal(find_job(f, m->job_result->job_id), -1);
            returned++;
        }
    assert_int_equal(returned, 2);
    fixture_free(f);
}

/* Shard b is away: its result is held for it alone, a's jobs go on being answered at once,
 * and b gets its result (and nobody else a copy) when it is back. */
static void test_shard_away_holds_only_its_own(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(4, 0);
    send_job(&f->b, 101);
    assert_true(wait_jobs(f, 1, 3000));
    fq_go_away(&f->b);
    finish(f, find_job(f, 101));
    for (uint64_t id = 1; id <= 3; id++) {
        send_job(&f->a, id);
        assert_true(wait_jobs(f, f->njobs + 1, 3000));
        uint64_t t0 = pm_mono_ms();
        finish(f, find_job(f, id));
        assert_true(fq_wait_count(&f->a, BODY(JOB_RESULT), (int)id, 3000));
        assert_true(pm_mono_ms() - t0 < 500);
    }
    assert_false(has_result(&f->a, 101));
    fq_run_for(&f->a, 300); /* b's retries go on meanwhile, in vain */
    fq_come_back(&f->b);
    assert_true(fq_wait_count(&f->b, BODY(JOB_RESULT), 1, 5000));
    assert_true(has_result(&f->b, 101));
    fq_run_for(&f->a, 300);
    assert_int_equal(fq_count(&f->b, BODY(JOB_RESULT)), 1);
    assert_int_equal(fq_count(&f->a, BODY(JOB_RESULT)), 3);
    assert_false(has_result(&f->a, 101));
    fixture_free(f);
}

/* Drain: credit 0 to every shard; a job from either comes back RETURNED to its sender. */
static void test_drain_every_shard(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2);
    int mark_a = f->a.n, mark_b = f->b.n;
    pm_job_client_drain(f->client);
    fq_expect_credit(&f->a, mark_a, 1000, 0, FQ_ANY);
    fq_expect_credit(&f->b, mark_b, 1000, 0, FQ_ANY);
    send_job(&f->b, 101);
    assert_true(fq_wait_count(&f->b, BODY(JOB_RESULT), 1, 3000));
    assert_int_equal(fq_last(&f->b, BODY(JOB_RESULT))->m->job_result->results[0]->status, RS(RETURNED));
    assert_int_equal(fq_count(&f->a, BODY(JOB_RESULT)), 0);
    assert_int_equal(f->njobs, 0);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_credit_and_results_per_shard, teardown_test),
        cmocka_unit_test_teardown(test_burst_from_both_shards, teardown_test),
        cmocka_unit_test_teardown(test_shard_away_holds_only_its_own, teardown_test),
        cmocka_unit_test_teardown(test_drain_every_shard, teardown_test),
    };
    return cmocka_run_group_tests(tests, fq_setup_security, fq_teardown_context);
}
