/* The shared worker-side job client (common/jobclient.c) against a real ZeroMQ ROUTER standing
 * in for the queue in this process: credit (free slots, the service's own limit, jobs
 * received), the refusals (wrong kind, malformed at the bus's edge, beyond capacity + backlog),
 * results that echo the job's identity, results held while the queue is away and resent or
 * dropped at the job's lease deadline, drain and return_all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    struct fake_queue q;
    struct pm_job_client *client;
    struct pm_job *jobs[MAX_JOBS]; /* handed to on_job, not answered by the test yet */
    int njobs, on_job_calls;
    int limit; /* what the free_slots callback says; -1: no callback */
};

static void on_job(struct pm_job *job, void *arg)
{
    struct fixture *f = arg;
    f->on_job_calls++;
    assert_true(f->njobs < MAX_JOBS);
    f->jobs[f->njobs++] = job;
}

static int free_slots_cb(void *arg) { return ((struct fixture *)arg)->limit; }

static Postmesh__JobResult *result(struct fixture *f, int k)
{
    struct fq_record *r = fq_nth(&f->q, BODY(JOB_RESULT), k);
    assert_non_null(r);
    return r->m->job_result;
}

static int wait_jobs(struct fixture *f, int n, int timeout_ms)
{
    uint64_t deadline = pm_mono_ms() + (uint64_t)timeout_ms;
    while (f->on_job_calls < n && pm_mono_ms() < deadline)
        fq_step(&f->q);
    return f->on_job_calls >= n;
}

/* The fixture of the running test, freed by the per-test teardown if an assertion
 * failed midway: an unclosed socket would make zmq_ctx_term() wait forever. */
static struct fixture *current;

static struct fixture *fixture_open(void)
{
    struct fixture *f = calloc(1, sizeof *f);
    current = f;
    f->limit = -1;
    fq_open(&f->q);
    return f;
}

static void client_start(struct fixture *f, int capacity, int backlog)
{
    struct pm_job_client_config cfg = {
        .endpoint = f->q.endpoint,
        .kind = KIND(DELIVERY),
        .name = "jobclient-test",
        .capacity = capacity,
        .backlog = backlog,
        .free_slots = f->limit >= 0 ? free_slots_cb : NULL,
        .on_job = on_job,
        .arg = f,
    };
    f->client = pm_job_client_new(f->q.base, &cfg);
    assert_non_null(f->client);
}

/* A client of capacity/backlog, ready once the queue side heard its first credit. */
static struct fixture *fixture_new(int capacity, int backlog, int limit)
{
    struct fixture *f = fixture_open();
    f->limit = limit;
    client_start(f, capacity, backlog);
    assert_true(fq_wait_count(&f->q, BODY(CREDIT), 1, 5000));
    return f;
}

static void fixture_free(struct fixture *f)
{
    current = NULL;
    pm_job_client_free(f->client); /* unanswered jobs are dropped with it */
    fq_close(&f->q);
    free(f);
}

static int teardown_test(void **state)
{
    (void)state;
    if (current)
        fixture_free(current);
    return 0;
}

/* The peer (DEALER identity) of the latest credit: where jobs go. */
static struct fq_record *worker_peer(struct fixture *f)
{
    struct fq_record *r = fq_last(&f->q, BODY(CREDIT));
    assert_non_null(r);
    return r;
}

struct job_spec {
    uint64_t job_id;
    const char *queue_id;      /* NULL: none */
    Postmesh__WorkerKind kind;
    size_t nrcpt;              /* recipients with indexes 0, 2, 4, ... */
    uint32_t lease;
    uint64_t dispatch_time_ms; /* the queue's wall clock (unix ms) at sending; 0: not set */
};

static void send_job(struct fixture *f, struct job_spec s)
{
    struct fq_record *peer = worker_peer(f);
    Postmesh__JobRecipient jr[4], *jrs[4];
    static const char *addrs[4] = {"a@example.test", "b@example.test", "c@example.test", "d@example.test"};
    assert_true(s.nrcpt <= 4);
    for (size_t i = 0; i < s.nrcpt; i++) {
        postmesh__job_recipient__init(&jr[i]);
        jr[i].index = (uint32_t)(2 * i);
        jr[i].address = (char *)addrs[i];
        jr[i].original = (char *)addrs[i];
        jrs[i] = &jr[i];
    }
    Postmesh__Job job = POSTMESH__JOB__INIT;
    job.job_id = s.job_id;
    job.epoch = EPOCH;
    if (s.queue_id)
        job.queue_id = (char *)s.queue_id;
    job.kind = s.kind;
    job.sender = "alice@example.net";
    job.n_recipients = s.nrcpt;
    job.recipients = jrs;
    static const char body[] = "Subject: hi\r\n\r\nhello\r\n";
    job.body.data = (uint8_t *)body;
    job.body.len = sizeof body - 1;
    job.lease_seconds = s.lease;
    job.dispatch_time_ms = s.dispatch_time_ms;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = BODY(JOB);
    msg.job = &job;
    assert_int_equal(pm_bus_send_to(f->q.router, peer->peer, peer->peerlen, &msg), 0);
}

static struct job_spec ok_job(uint64_t id)
{
    return (struct job_spec){.job_id = id, .queue_id = QID, .kind = KIND(DELIVERY), .nrcpt = 2, .lease = 60};
}

/* Answers the k-th job handed to on_job: every recipient DELIVERED. */
static void finish_job(struct fixture *f, int k)
{
    struct pm_job *job = f->jobs[k];
    assert_non_null(job);
    Postmesh__RecipientResult rr[4], *rrs[4];
    size_t n = job->job->n_recipients;
    for (size_t i = 0; i < n; i++) {
        postmesh__recipient_result__init(&rr[i]);
        rr[i].index = job->job->recipients[i]->index;
        rr[i].status = RS(DELIVERED);
        rr[i].dsn_status = "2.0.0";
        rr[i].text = "delivered";
        rrs[i] = &rr[i];
    }
    f->jobs[k] = NULL;
    pm_job_finish(job, rrs, n);
}

/* Checks r answers job job_id of QID for recipient indexes 0 and 2 with status st. */
static void assert_answer(const Postmesh__JobResult *r, uint64_t job_id, Postmesh__WorkerKind kind,
                          Postmesh__RecipientResult__Status st)
{
    assert_int_equal(r->job_id, job_id);
    assert_true(r->epoch == EPOCH);
    assert_int_equal(r->kind, kind);
    assert_string_equal(r->queue_id, QID);
    assert_int_equal(r->n_results, 2);
    int seen0 = 0, seen2 = 0;
    for (size_t i = 0; i < r->n_results; i++) {
        assert_int_equal(r->results[i]->status, st);
        seen0 += r->results[i]->index == 0;
        seen2 += r->results[i]->index == 2;
    }
    assert_int_equal(seen0, 1);
    assert_int_equal(seen2, 1);
}

/* ------------------------------------------------------------------ tests */

static void test_credit_on_start(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 0, -1);
    Postmesh__Credit *c = fq_nth(&f->q, BODY(CREDIT), 0)->m->credit;
    assert_int_equal(c->kind, KIND(DELIVERY));
    assert_int_equal(c->credits, 3);
    assert_true(c->jobs_received == 0);
    assert_string_equal(c->worker_name, "jobclient-test");
    fixture_free(f);
}

/* A client started before its queue keeps trying; the queue hears it soon after it binds. */
static void test_credit_retried_until_the_queue_is_there(void **state)
{
    (void)state;
    struct fixture *f = fixture_open();
    pm_bus_close(f->q.router);
    f->q.router = NULL;
    client_start(f, 2, 0);
    fq_run_for(&f->q, 300);
    fq_come_back(&f->q);
    assert_true(fq_wait_count(&f->q, BODY(CREDIT), 1, 5000));
    assert_int_equal(fq_nth(&f->q, BODY(CREDIT), 0)->m->credit->credits, 2);
    fixture_free(f);
}

static void test_heartbeat(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 0, -1);
    uint64_t t0 = pm_mono_ms();
    Postmesh__Credit *c = fq_wait_credit_after(&f->q, f->q.n, 4000);
    assert_non_null(c);
    uint64_t took = pm_mono_ms() - t0;
    assert_true(took >= 1500 && took <= 3500);
    assert_int_equal(c->credits, 3);
    fixture_free(f);
}

/* Free slots are capacity minus jobs not yet answered; jobs_received counts every job. */
static void test_credit_after_an_answer(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 0, -1);
    send_job(f, ok_job(1));
    send_job(f, ok_job(2));
    assert_true(wait_jobs(f, 2, 3000));
    assert_int_equal(pm_job_client_outstanding(f->client), 2);
    int mark = f->q.n;
    finish_job(f, 0);
    fq_expect_credit(&f->q, mark, 3000, 2, 2); /* 3 - 1 still running */
    assert_int_equal(pm_job_client_outstanding(f->client), 1);
    /* The result goes before the credit that counts its slot free. */
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 1);
    mark = f->q.n;
    finish_job(f, 1);
    fq_expect_credit(&f->q, mark, 3000, 3, 2);
    fixture_free(f);
}

/* The service's own limit caps the credit; a negative one is 0. */
static void test_free_slots_callback_limits(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(5, 0, 2);
    assert_int_equal(fq_nth(&f->q, BODY(CREDIT), 0)->m->credit->credits, 2);
    int mark = f->q.n;
    f->limit = -3;
    pm_job_client_credit_soon(f->client);
    fq_expect_credit(&f->q, mark, 3000, 0, FQ_ANY);
    /* A limit above the free slots does not raise them. */
    send_job(f, ok_job(1));
    assert_true(wait_jobs(f, 1, 3000));
    f->limit = 100;
    mark = f->q.n;
    pm_job_client_credit_soon(f->client);
    fq_expect_credit(&f->q, mark, 3000, 4, 1);
    fixture_free(f);
}

/* The result echoes the job's identity: job id, epoch, kind and queue id. */
static void test_result_echoes_the_job(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0, -1);
    send_job(f, ok_job(77));
    assert_true(wait_jobs(f, 1, 3000));
    struct pm_job *job = f->jobs[0];
    assert_non_null(job->job);
    assert_int_equal(job->job->job_id, 77);
    assert_string_equal(job->job->queue_id, QID);
    assert_int_equal(job->job->n_recipients, 2);
    finish_job(f, 0);
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 1, 3000));
    assert_answer(result(f, 0), 77, KIND(DELIVERY), RS(DELIVERED));
    fixture_free(f);
}

/* The lease deadline counts from the job's arrival; no lease: the default (600 s). */
static void test_lease_deadline_from_arrival(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0, -1);
    uint64_t t0 = pm_mono_ms();
    send_job(f, ok_job(1));
    struct job_spec s = ok_job(2);
    s.lease = 0;
    send_job(f, s);
    assert_true(wait_jobs(f, 2, 3000));
    uint64_t t1 = pm_mono_ms();
    assert_true(f->jobs[0]->deadline_ms >= t0 + 60000 && f->jobs[0]->deadline_ms <= t1 + 60000);
    assert_true(f->jobs[1]->deadline_ms >= t0 + 600000 && f->jobs[1]->deadline_ms <= t1 + 600000);
    fixture_free(f);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The lease counts from the queue's dispatch time: a job 2 s on its way has 8 s of a 10 s
 * lease left; a dispatch time far in the past (a clock ahead of the queue's) takes at most a
 * quarter of the lease; one in the future (a clock behind) takes nothing; none: arrival + lease. */
static void test_lease_deadline_from_dispatch(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(4, 0, -1);
    uint64_t t0 = pm_mono_ms(), w0 = wall_ms();
    struct job_spec s = ok_job(1);
    s.lease = 10;
    s.dispatch_time_ms = w0 - 2000;
    send_job(f, s);
    s.job_id = 2;
    s.dispatch_time_ms = w0 - 60000;
    send_job(f, s);
    s.job_id = 3;
    s.dispatch_time_ms = 0;
    send_job(f, s);
    s.job_id = 4;
    s.dispatch_time_ms = w0 + 60000;
    send_job(f, s);
    assert_true(wait_jobs(f, 4, 3000));
    uint64_t t1 = pm_mono_ms(); /* below: 3 ms for the two clocks' rounding to ms */
    uint64_t want[4] = {8000, 7500, 10000, 10000};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(f->jobs[k]->job->job_id, k + 1);
        assert_true(f->jobs[k]->lease_ms == 10000);
        uint64_t d = f->jobs[k]->deadline_ms;
        if (d + 3 < t0 + want[k] || d > t1 + 3 + want[k])
            fail_msg("job %d: deadline %lld ms after the send, want %llu..%llu", k + 1,
                     (long long)(d - t0), (unsigned long long)want[k], (unsigned long long)(t1 - t0 + want[k]));
    }
    fixture_free(f);
}

/* A job of another kind never reaches the service: handed back once, RETURNED for every
 * recipient, named as the queue named it (else the queue cannot match the answer). */
static void test_wrong_kind_returned_once(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0, -1);
    struct job_spec s = ok_job(11);
    s.kind = KIND(MTA);
    send_job(f, s);
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 1, 3000));
    assert_answer(result(f, 0), 11, KIND(MTA), RS(RETURNED));
    assert_non_null(strstr(result(f, 0)->results[0]->text, "wrong kind"));
    assert_int_equal(f->on_job_calls, 0);
    assert_int_equal(pm_job_client_outstanding(f->client), 0);
    /* Once: a later job and its answer bring no second refusal. */
    send_job(f, ok_job(12));
    assert_true(wait_jobs(f, 1, 3000));
    int mark = f->q.n;
    finish_job(f, 0);
    fq_expect_credit(&f->q, mark, 3000, 2, 2);
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 2);
    assert_int_equal(result(f, 1)->job_id, 12);
    fixture_free(f);
}

/* Capacity 2 + backlog 1: the fourth job at once is handed back, the three others run. */
static void test_beyond_capacity_and_backlog_returned(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 1, -1);
    for (uint64_t id = 1; id <= 4; id++)
        send_job(f, ok_job(id));
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 1, 3000));
    fq_run_for(&f->q, 100);
    assert_int_equal(f->on_job_calls, 3);
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 1);
    assert_answer(result(f, 0), 4, KIND(DELIVERY), RS(RETURNED));
    assert_non_null(strstr(result(f, 0)->results[0]->text, "busy"));
    assert_int_equal(pm_job_client_outstanding(f->client), 3);
    /* Over capacity: no credit until two answers. */
    int mark = f->q.n;
    finish_job(f, 0);
    fq_expect_credit(&f->q, mark, 3000, 0, 4);
    fixture_free(f);
}

/* Nothing in a malformed job can be answered: refused where the bus decodes it
 * (common/bus_valid.c; the queue's lease brings it back), but counted as received so the
 * queue's count of jobs on the way stays right. */
static void test_malformed_jobs_dropped(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0, -1);
    struct job_spec s = ok_job(1);
    s.queue_id = NULL; /* on the wire: "" */
    send_job(f, s);
    s = ok_job(2);
    s.queue_id = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0"; /* 65 */
    send_job(f, s);
    s = ok_job(3);
    s.nrcpt = 0;
    send_job(f, s);
    send_job(f, ok_job(4));
    assert_true(wait_jobs(f, 1, 3000));
    assert_int_equal(f->jobs[0]->job->job_id, 4);
    int mark = f->q.n;
    finish_job(f, 0);
    fq_expect_credit(&f->q, mark, 3000, 2, 4);
    assert_int_equal(f->on_job_calls, 1);
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 1);
    assert_int_equal(result(f, 0)->job_id, 4);
    fixture_free(f);
}

/* A queue id is logged bare on every line about its job, so only the queue's own format is
 * admitted (16 upper-case hex digits, services/queue/msg.c): a compromised queue cannot put
 * ` event=` into a worker's log through it. */
static void test_queue_id_must_be_16_upper_hex_digits(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "x id=0000000000000000 event=delivered", /* the reported injection */
        "0123456789ABC00",                       /* 15 */
        "0123456789ABC0011",                     /* 17 */
        "0123456789abc001",                      /* lower case */
        "0123456789ABC00G",
        "0123456789ABC 01",
        "0123456789ABC\n01",
        "\"123456789ABC001",
    };
    const size_t nbad = sizeof bad / sizeof bad[0];
    struct fixture *f = fixture_new(2, 0, -1);
    for (size_t i = 0; i < nbad; i++) {
        struct job_spec s = ok_job(100 + i);
        s.queue_id = bad[i];
        send_job(f, s);
    }
    struct job_spec s = ok_job(200);
    s.queue_id = "FEDCBA9876543210";
    send_job(f, s);
    assert_true(wait_jobs(f, 1, 3000)); /* one pipe, in order: the bad ones came first */
    assert_int_equal(f->on_job_calls, 1);
    assert_int_equal(f->jobs[0]->job->job_id, 200);
    int mark = f->q.n;
    finish_job(f, 0);
    fq_expect_credit(&f->q, mark, 3000, FQ_ANY, nbad + 1);
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 1);
    assert_string_equal(result(f, 0)->queue_id, "FEDCBA9876543210");
    fixture_free(f);
}

/* Results the queue cannot take now are held, in order, and resent once it is back. */
static void test_result_held_and_resent(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 0, -1);
    send_job(f, ok_job(21));
    send_job(f, ok_job(22));
    assert_true(wait_jobs(f, 2, 3000));
    fq_go_away(&f->q);
    finish_job(f, 0);
    finish_job(f, 1);
    fq_run_for(&f->q, 300); /* retried meanwhile, in vain */
    int mark = f->q.n;
    fq_come_back(&f->q);
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 2, 5000));
    assert_answer(result(f, 0), 21, KIND(DELIVERY), RS(DELIVERED));
    assert_answer(result(f, 1), 22, KIND(DELIVERY), RS(DELIVERED));
    /* Sent once: the credit after them counts both slots free, and no copy follows (a result
     * still held would be retried every 100 ms). */
    fq_expect_credit(&f->q, mark, 3000, 3, FQ_ANY);
    fq_run_for(&f->q, 400);
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 2);
    fixture_free(f);
}

/* A held result dies with its job's lease: by then the queue has sent the job again. */
static void test_held_result_dropped_after_the_lease(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 0, -1);
    struct job_spec s = ok_job(31);
    s.lease = 1;
    send_job(f, s);
    assert_true(wait_jobs(f, 1, 3000));
    uint64_t deadline = f->jobs[0]->deadline_ms;
    fq_go_away(&f->q);
    finish_job(f, 0);
    assert_true(pm_mono_ms() < deadline); /* held while still within the lease */
    uint64_t end = deadline + 400;
    fq_run_for(&f->q, (int)(end - pm_mono_ms()));
    int mark = f->q.n;
    fq_come_back(&f->q);
    /* A held result goes out before the next credit; none comes. */
    Postmesh__Credit *c = fq_wait_credit_after(&f->q, mark, 5000);
    assert_non_null(c);
    fq_run_for(&f->q, 200);
    assert_int_equal(fq_count(&f->q, BODY(JOB_RESULT)), 0);
    assert_int_equal(c->credits, 2);
    fixture_free(f);
}

/* Draining: credit 0 at once, a new job is handed back, a running one is still answered. */
static void test_drain(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2, -1);
    send_job(f, ok_job(41));
    assert_true(wait_jobs(f, 1, 3000));
    int mark = f->q.n;
    pm_job_client_drain(f->client);
    fq_expect_credit(&f->q, mark, 3000, 0, FQ_ANY);
    send_job(f, ok_job(42));
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 1, 3000));
    assert_answer(result(f, 0), 42, KIND(DELIVERY), RS(RETURNED));
    assert_int_equal(f->on_job_calls, 1);
    mark = f->q.n;
    finish_job(f, 0);
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 2, 3000));
    assert_answer(result(f, 1), 41, KIND(DELIVERY), RS(DELIVERED));
    fq_expect_credit(&f->q, mark, 3000, 0, FQ_ANY); /* still draining: no slot is offered */
    fixture_free(f);
}

/* A job the queue sent before it saw our credit 0 is still on the way when the service's
 * loop ends: settle waits for the answer to the Ping that drain sent behind the credit (the
 * queue answers it after everything it sent before) and hands that job back, instead of
 * dropping it with the socket (the queue would wait out its lease). */
static void test_settle_returns_jobs_still_on_the_way(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2, -1);
    int mark = f->q.n;
    pm_job_client_drain(f->client);
    assert_true(fq_wait_count(&f->q, BODY(PING), 1, 3000));
    fq_expect_credit(&f->q, mark, 3000, 0, FQ_ANY);
    /* The queue dispatched before it read the credit: the job, then the Ping's answer. */
    send_job(f, ok_job(61));
    struct fq_record *peer = fq_last(&f->q, BODY(PING));
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    Postmesh__BusMessage pong = POSTMESH__BUS_MESSAGE__INIT;
    pong.body_case = BODY(PING);
    pong.ping = &ping;
    assert_int_equal(pm_bus_send_to(f->q.router, peer->peer, peer->peerlen, &pong), 0);
    uint64_t t0 = pm_mono_ms();
    pm_job_client_settle(f->client, f->q.base, 3000);
    assert_true(pm_mono_ms() - t0 < 2500); /* ended by the answer, not the timeout */
    pm_job_client_free(f->client); /* what the service does next; the socket lingers */
    f->client = NULL;
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 1, 3000));
    assert_answer(result(f, 0), 61, KIND(DELIVERY), RS(RETURNED));
    assert_int_equal(f->on_job_calls, 0);
    fixture_free(f);
}

/* return_all hands back every unanswered job, one taken by the service included, with the
 * recipient indexes of the job. */
static void test_return_all(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 0, -1);
    send_job(f, ok_job(51));
    send_job(f, ok_job(52));
    assert_true(wait_jobs(f, 2, 3000));
    Postmesh__BusMessage *taken = pm_job_take_message(f->jobs[1]);
    assert_non_null(taken);
    assert_null(f->jobs[1]->job);
    assert_int_equal(taken->job->job_id, 52);
    postmesh__bus_message__free_unpacked(taken, NULL);
    int mark = f->q.n;
    f->jobs[0] = f->jobs[1] = NULL;
    pm_job_client_return_all(f->client, "4.3.2 test stopping");
    assert_int_equal(pm_job_client_outstanding(f->client), 0);
    assert_true(fq_wait_count(&f->q, BODY(JOB_RESULT), 2, 3000));
    for (int k = 0; k < 2; k++) {
        Postmesh__JobResult *r = result(f, k);
        assert_true(r->job_id == 51 || r->job_id == 52);
        assert_answer(r, r->job_id, KIND(DELIVERY), RS(RETURNED));
        assert_string_equal(r->results[0]->text, "4.3.2 test stopping");
    }
    assert_true(result(f, 0)->job_id != result(f, 1)->job_id);
    fq_expect_credit(&f->q, mark, 3000, 3, FQ_ANY);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_credit_on_start, teardown_test),
        cmocka_unit_test_teardown(test_credit_retried_until_the_queue_is_there, teardown_test),
        cmocka_unit_test_teardown(test_heartbeat, teardown_test),
        cmocka_unit_test_teardown(test_credit_after_an_answer, teardown_test),
        cmocka_unit_test_teardown(test_free_slots_callback_limits, teardown_test),
        cmocka_unit_test_teardown(test_result_echoes_the_job, teardown_test),
        cmocka_unit_test_teardown(test_lease_deadline_from_arrival, teardown_test),
        cmocka_unit_test_teardown(test_lease_deadline_from_dispatch, teardown_test),
        cmocka_unit_test_teardown(test_wrong_kind_returned_once, teardown_test),
        cmocka_unit_test_teardown(test_beyond_capacity_and_backlog_returned, teardown_test),
        cmocka_unit_test_teardown(test_malformed_jobs_dropped, teardown_test),
        cmocka_unit_test_teardown(test_queue_id_must_be_16_upper_hex_digits, teardown_test),
        cmocka_unit_test_teardown(test_result_held_and_resent, teardown_test),
        cmocka_unit_test_teardown(test_held_result_dropped_after_the_lease, teardown_test),
        cmocka_unit_test_teardown(test_drain, teardown_test),
        cmocka_unit_test_teardown(test_settle_returns_jobs_still_on_the_way, teardown_test),
        cmocka_unit_test_teardown(test_return_all, teardown_test),
    };
    return cmocka_run_group_tests(tests, fq_setup_security, fq_teardown_context);
}
