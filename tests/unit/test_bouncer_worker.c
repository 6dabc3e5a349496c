/* The bouncer's work-dispatch contract, against a real ZeroMQ ROUTER standing in for the
 * queue's end of the bus in this process: credits, Submit of the DSN, JobResult per
 * SubmitReply, timeouts, slot limits and the null-sender rule. The job client itself
 * (heartbeat, held results, refusals) has its own test, test_common_jobclient.c. */
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

#include "bouncer/worker.h"
#include "bus.h"
#include "config.h"
#include "fake_queue.h"

struct fixture {
    struct fake_queue q;
    struct bouncer_worker *worker;
};

/* The fixture of the running test, freed by the per-test teardown if an assertion
 * failed midway: an unclosed socket would make zmq_ctx_term() wait forever. */
static struct fixture *current;

static struct fixture *fixture_new(int slots, int submit_timeout_ms)
{
    struct fixture *f = calloc(1, sizeof *f);
    current = f;
    fq_open(&f->q);
    struct bouncer_worker_config wc = {
        .endpoint = f->q.endpoint,
        .hostname = "mx.example.test",
        .slots = slots,
        .submit_timeout_ms = submit_timeout_ms,
        .delay_warning = 14400,
        .max_lifetime = 432000,
    };
    f->worker = bouncer_worker_new(f->q.base, &wc);
    assert_non_null(f->worker);
    /* Ready once the queue side heard the worker's first credit. */
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_CREDIT, 1, 5000));
    return f;
}

static void fixture_free(struct fixture *f)
{
    current = NULL;
    bouncer_worker_free(f->worker);
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

/* What a few tests set beyond send_job's arguments (NULL: nothing). */
struct job_extra {
    int requiretls;
    Postmesh__DsnRet dsn_ret;
    const char *body; /* the whole message (RET=FULL), instead of a header section */
};

/* Sends a bouncer Job to the peer that sent the credits. */
static void send_job_with(struct fixture *f, uint64_t job_id, const char *sender, int delay, uint32_t lease,
                          Postmesh__WorkerKind kind, const struct job_extra *x)
{
    struct fq_record *credit = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_CREDIT, 0);
    assert_non_null(credit);
    Postmesh__JobRecipient jr = POSTMESH__JOB_RECIPIENT__INIT;
    jr.index = 0;
    jr.address = (char *)sender;
    Postmesh__JobRecipient *jrs[1] = {&jr};
    Postmesh__ReportRecipient rr = POSTMESH__REPORT_RECIPIENT__INIT;
    rr.address = "bob@remote.test";
    rr.original = "bob@remote.test";
    rr.status = delay ? "4.4.1" : "5.1.1";
    rr.action = delay ? "delayed" : "failed";
    rr.remote_mta = "mx.remote.test";
    rr.diagnostic = "550 5.1.1 no such user";
    rr.last_attempt = 1764242400;
    Postmesh__ReportRecipient *rrs[1] = {&rr};
    Postmesh__Job job = POSTMESH__JOB__INIT;
    job.job_id = job_id;
    job.queue_id = "0123456789ABC001";
    job.kind = kind;
    job.sender = (char *)sender;
    job.n_recipients = 1;
    job.recipients = jrs;
    static const char hdrs[] = "From: alice@example.test\r\nSubject: hi\r\n\r\n";
    job.body.data = (uint8_t *)hdrs;
    job.body.len = sizeof hdrs - 1;
    job.lease_seconds = lease;
    job.n_report = 1;
    job.report = rrs;
    job.arrival_time = 1764240000;
    job.delay_notice = delay;
    if (x) {
        job.requiretls = x->requiretls;
        job.dsn_ret = x->dsn_ret;
        if (x->body) {
            job.body.data = (uint8_t *)x->body;
            job.body.len = strlen(x->body);
        }
    }
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB;
    msg.job = &job;
    assert_int_equal(pm_bus_send_to(f->q.router, credit->peer, credit->peerlen, &msg), 0);
}

static void send_job(struct fixture *f, uint64_t job_id, const char *sender, int delay, uint32_t lease,
                     Postmesh__WorkerKind kind)
{
    send_job_with(f, job_id, sender, delay, lease, kind, NULL);
}

static void reply_submit(struct fixture *f, struct fq_record *submit, Postmesh__SubmitReply__Status st, const char *qid,
                         const char *text)
{
    Postmesh__SubmitReply r = POSTMESH__SUBMIT_REPLY__INIT;
    r.status = st;
    r.queue_id = (char *)qid;
    r.text = (char *)text;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.request_id = submit->m->request_id;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY;
    msg.submit_reply = &r;
    assert_int_equal(pm_bus_send_to(f->q.router, submit->peer, submit->peerlen, &msg), 0);
}

/* ------------------------------------------------------------------ tests */

static void test_credit_on_start_and_after_a_job(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(3, 1000);
    Postmesh__Credit *c = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_CREDIT, 0)->m->credit;
    assert_int_equal(c->kind, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_int_equal(c->credits, 3);
    assert_true(c->jobs_received == 0);
    assert_non_null(strstr(c->worker_name, "bouncer"));
    /* A job answered at once (null sender): the credit after it has every slot free again
     * and counts the job received (the heartbeat is the job client's, every 2 s). */
    int mark = f->q.n;
    send_job(f, 3, "", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 3000));
    c = fq_wait_credit_after(&f->q, mark, 3000);
    assert_non_null(c);
    assert_int_equal(c->kind, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_int_equal(c->credits, 3);
    assert_true(c->jobs_received == 1);
    fixture_free(f);
}

static void test_job_submitted_then_delivered(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2000);
    send_job(f, 77, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 1, 3000));
    struct fq_record *s = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 0);
    Postmesh__Submit *sub = s->m->submit;
    assert_string_equal(sub->sender, "");
    assert_int_equal(sub->n_recipients, 1);
    assert_string_equal(sub->recipients[0], "alice@example.test");
    assert_true(sub->is_dsn);
    assert_string_equal(sub->origin_id, "0123456789ABC001");
    assert_string_equal(sub->client_address, "local");
    assert_string_equal(sub->helo, "mx.example.test");
    assert_true(s->m->request_id != 0);
    assert_non_null(memmem(sub->body.data, sub->body.len, "report-type=delivery-status", 27));
    assert_non_null(memmem(sub->body.data, sub->body.len, "Subject: hi\r\n", 13));
    assert_non_null(memmem(sub->body.data, sub->body.len, "550 5.1.1 no such user", 22));
    /* The slot is busy until the queue answers: no result yet. */
    fq_run_for(&f->q, 300);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 0);

    int mark = f->q.n;
    reply_submit(f, s, POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED, "00000000000D5001", "");
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 3000));
    struct fq_record *r = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 0);
    Postmesh__JobResult *jr = r->m->job_result;
    assert_int_equal(jr->job_id, 77);
    assert_string_equal(jr->queue_id, "0123456789ABC001");
    assert_int_equal(jr->n_results, 1);
    assert_int_equal(jr->results[0]->index, 0);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    assert_non_null(strstr(jr->results[0]->text, "00000000000D5001"));
    /* Jobs and submissions use different sockets: replies are matched by request id. */
    assert_false(r->peerlen == s->peerlen && memcmp(r->peer, s->peer, s->peerlen) == 0);
    /* A credit follows the result, with the slot free again. */
    fq_expect_credit(&f->q, mark, 3000, 2, 1);
    fixture_free(f);
}

/* RFC 8689 5: the notice about a REQUIRETLS message is submitted with REQUIRETLS, and RET=FULL
 * is disregarded (headers only, whatever the job carries). Without REQUIRETLS the same job
 * returns the whole message. */
static void test_requiretls_notice(void **state)
{
    (void)state;
    static const char whole[] = "From: alice@example.test\r\nSubject: hi\r\n\r\nthe SECRET body\r\n";
    struct fixture *f = fixture_new(2, 2000);
    struct job_extra x = {.requiretls = 1, .dsn_ret = POSTMESH__DSN_RET__DSN_RET_FULL, .body = whole};
    send_job_with(f, 81, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER, &x);
    x.requiretls = 0;
    send_job_with(f, 82, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER, &x);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 2, 3000));
    for (int i = 0; i < 2; i++) {
        const Postmesh__Submit *sub = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, i)->m->submit;
        int rt = memmem(sub->body.data, sub->body.len, "REQUIRETLS", 10) != NULL;
        const void *secret = memmem(sub->body.data, sub->body.len, "SECRET", 6);
        assert_string_equal(sub->sender, "");
        assert_true(sub->is_dsn);
        if (sub->requiretls) {
            assert_true(rt);
            assert_null(secret);
            assert_non_null(memmem(sub->body.data, sub->body.len, "text/rfc822-headers", 19));
            assert_non_null(memmem(sub->body.data, sub->body.len, "Subject: hi\r\n", 13));
        } else {
            assert_false(rt);
            assert_non_null(secret);
            assert_non_null(memmem(sub->body.data, sub->body.len, "message/rfc822", 14));
        }
    }
    assert_int_not_equal(fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 0)->m->submit->requiretls,
                         fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 1)->m->submit->requiretls);
    fixture_free(f);
}

static void test_null_sender_is_never_bounced(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2000);
    send_job(f, 5, "", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 3000));
    Postmesh__JobResult *jr = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 0)->m->job_result;
    assert_int_equal(jr->job_id, 5);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    fq_run_for(&f->q, 300);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT), 0);
    fixture_free(f);
}

static void test_queue_refusals(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2000);
    send_job(f, 1, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    send_job(f, 2, "alice@example.test", 1, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 2, 3000));
    struct fq_record *s1 = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 0);
    struct fq_record *s2 = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 1);
    assert_true(s1->m->request_id != s2->m->request_id);
    /* The delay warning's DSN says so. */
    assert_non_null(memmem(s2->m->submit->body.data, s2->m->submit->body.len, "Delayed Mail", 12));
    /* Answer in reverse order: matching is by request id, not arrival. */
    reply_submit(f, s2, POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL, "", "5.4.6 mail loop");
    reply_submit(f, s1, POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL, "", "4.3.1 queue store full");
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 2, 3000));
    for (int i = 0; i < 2; i++) {
        Postmesh__JobResult *jr = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, i)->m->job_result;
        if (jr->job_id == 1) {
            assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
            assert_string_equal(jr->results[0]->text, "4.3.1 queue store full");
        } else {
            assert_int_equal(jr->job_id, 2);
            assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL);
            assert_string_equal(jr->results[0]->text, "5.4.6 mail loop");
        }
    }
    fixture_free(f);
}

static void test_no_reply_times_out(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 500);
    uint64_t t0 = pm_mono_ms();
    send_job(f, 9, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 5000));
    uint64_t took = pm_mono_ms() - t0;
    assert_true(took >= 400);
    Postmesh__JobResult *jr = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 0)->m->job_result;
    assert_int_equal(jr->job_id, 9);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    /* A late reply is ignored: no second result. */
    reply_submit(f, fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 0), POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED,
                 "00000000000D5002", "");
    fq_run_for(&f->q, 300);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 1);
    fixture_free(f);
}

static void test_lease_shortens_the_wait(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 30000);
    uint64_t t0 = pm_mono_ms();
    send_job(f, 10, "alice@example.test", 0, 3, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    /* Answered within the 3 s lease although submit_timeout is 30 s. */
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 5000));
    assert_true(pm_mono_ms() - t0 < 2500); /* lease - 1 s, plus scheduling slack */
    assert_int_equal(fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 0)->m->job_result->results[0]->status,
                     POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    /* A lease of 2 s is short, not too short: the job is submitted and answered within it
     * (half a lease is kept back, not a fixed 2 s, or every job of such a lease would go back
     * to the queue at once, again and again). */
    uint64_t t1 = pm_mono_ms();
    send_job(f, 11, "alice@example.test", 0, 2, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 2, 1000));
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 2, 3000));
    assert_true(pm_mono_ms() - t1 < 2000);
    assert_int_equal(fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1)->m->job_result->results[0]->status,
                     POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    fixture_free(f);
}

static void test_slots_limit_submissions(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 5000);
    for (uint64_t j = 1; j <= 3; j++)
        send_job(f, j, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 2, 3000));
    fq_run_for(&f->q, 300);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT), 2);
    int mark = f->q.n;
    reply_submit(f, fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 0), POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED,
                 "00000000000D5003", "");
    /* The freed slot goes to the job that waited ... */
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 3, 3000));
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 1);
    /* ... so the credit after the answer offers nothing: two jobs still unanswered. */
    fq_expect_credit(&f->q, mark, 3000, 0, 3);
    fixture_free(f);
}

/* A job of another kind is handed back by the job client (RETURNED: the queue dispatches it
 * again without counting an attempt) and never becomes a DSN. */
static void test_wrong_kind_is_returned(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(2, 2000);
    send_job(f, 11, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_MTA);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 3000));
    Postmesh__JobResult *jr = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 0)->m->job_result;
    assert_int_equal(jr->job_id, 11);
    assert_string_equal(jr->queue_id, "0123456789ABC001");
    assert_int_equal(jr->n_results, 1);
    assert_int_equal(jr->results[0]->index, 0);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED);
    fq_run_for(&f->q, 300);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT), 0);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 1);
    fixture_free(f);
}

/* Runs the loop until the worker ends it (event_base_loopbreak) or timeout_ms passed. */
static int wait_break(struct fixture *f, int timeout_ms)
{
    uint64_t deadline = pm_mono_ms() + (uint64_t)timeout_ms;
    while (!f->q.breaks && pm_mono_ms() < deadline)
        fq_step(&f->q);
    return f->q.breaks > 0;
}

struct drain_call {
    struct fixture *f;
    int timeout_ms;
};

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct drain_call *d = arg;
    bouncer_worker_drain(d->f->worker, d->timeout_ms);
}

/* Drains as the SIGTERM handler does: from a callback inside the loop. */
static void drain_in_loop(struct fixture *f, int timeout_ms)
{
    static struct drain_call d;
    d = (struct drain_call){f, timeout_ms};
    struct timeval now = {0, 0};
    assert_int_equal(event_base_once(f->q.base, -1, EV_TIMEOUT, on_drain, &d, &now), 0);
}

/* The result for job_id among those received, or NULL. */
static Postmesh__JobResult *result_for(struct fixture *f, uint64_t job_id)
{
    for (int k = 0; k < fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT); k++) {
        Postmesh__JobResult *jr = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, k)->m->job_result;
        if (jr->job_id == job_id)
            return jr;
    }
    return NULL;
}

/* SIGTERM: a job still waiting for a slot is handed back at once (RETURNED, never submitted),
 * the one whose DSN the queue is committing gets its answer from the SubmitReply, and only
 * then does the loop end; no credit is offered meanwhile. */
static void test_drain_answers_submitted_returns_waiting(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(1, 30000);
    send_job(f, 61, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 1, 3000));
    send_job(f, 62, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    /* The second job has arrived (and waits for the slot) once a credit counts it. */
    uint64_t deadline = pm_mono_ms() + 3000;
    for (;;) {
        struct fq_record *c = NULL;
        for (int i = 0; i < f->q.n; i++)
            if (f->q.rec[i].m && f->q.rec[i].m->body_case == POSTMESH__BUS_MESSAGE__BODY_CREDIT)
                c = &f->q.rec[i];
        if (c && c->m->credit->jobs_received == 2)
            break;
        assert_true(pm_mono_ms() < deadline);
        fq_step(&f->q);
    }
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT), 1);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 0);

    int mark = f->q.n;
    uint64_t t0 = pm_mono_ms();
    drain_in_loop(f, 5000);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 1, 3000));
    Postmesh__JobResult *jr = fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 0)->m->job_result;
    assert_int_equal(jr->job_id, 62);
    assert_int_equal(jr->n_results, 1);
    assert_int_equal(jr->results[0]->index, 0);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED);
    assert_true(pm_mono_ms() - t0 < 1000); /* at once, not after a timeout */
    /* The submitted one is still waited for: no result, no break, and no slot offered. */
    fq_run_for(&f->q, 300);
    assert_int_equal(f->q.breaks, 0);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 1);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT), 1);
    for (int i = mark; i < f->q.n; i++)
        if (f->q.rec[i].m->body_case == POSTMESH__BUS_MESSAGE__BODY_CREDIT)
            assert_int_equal(f->q.rec[i].m->credit->credits, 0);
    assert_int_equal(fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_CREDIT, fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_CREDIT) - 1)
                         ->m->credit->credits,
                     0);

    reply_submit(f, fq_nth(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 0), POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED,
                 "00000000000D5061", "");
    assert_true(wait_break(f, 3000));
    /* The result was sent before the loop ended; the ROUTER may see it a moment later. */
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 2, 3000));
    jr = result_for(f, 61);
    assert_non_null(jr);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED);
    assert_non_null(strstr(jr->results[0]->text, "00000000000D5061"));
    assert_true(pm_mono_ms() - t0 < 4000); /* by the reply, not by the drain timeout */
    fixture_free(f);
}

/* A SubmitReply that never comes does not hold the stop up beyond the drain timeout. */
static void test_drain_times_out(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(1, 30000);
    send_job(f, 63, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_SUBMIT, 1, 3000));
    uint64_t t0 = pm_mono_ms();
    drain_in_loop(f, 400);
    assert_true(wait_break(f, 5000));
    uint64_t took = pm_mono_ms() - t0;
    if (took < 350 || took > 2000)
        fail_msg("loop ended %llu ms after the drain, want about 400", (unsigned long long)took);
    assert_int_equal(fq_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT), 0);
    fixture_free(f);
}

/* A job that waited for a slot still answers before its lease ends: the wait of its DSN is
 * capped by the lease deadline (minus 1 s), not counted from when it got the slot. */
static void test_waiting_job_answered_within_its_lease(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(1, 2500);
    uint64_t t0 = pm_mono_ms();
    send_job(f, 71, "alice@example.test", 0, 60, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    send_job(f, 72, "alice@example.test", 0, 5, POSTMESH__WORKER_KIND__WORKER_BOUNCER);
    /* 71 holds the only slot until its 2.5 s run out; 72 then gets until its lease end
     * (5 s) - 1 s = 4 s, not a fresh 2.5 s that ends at 5 s, as the queue sends it again. */
    assert_true(fq_wait_count(&f->q, POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, 2, 8000));
    uint64_t took = pm_mono_ms() - t0;
    Postmesh__JobResult *jr = result_for(f, 72);
    assert_non_null(jr);
    assert_int_equal(jr->results[0]->status, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL);
    if (took < 3700 || took > 4600)
        fail_msg("job 72 answered %llu ms after it was sent, want about 4000 (lease 5000)", (unsigned long long)took);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_credit_on_start_and_after_a_job, teardown_test),
        cmocka_unit_test_teardown(test_job_submitted_then_delivered, teardown_test),
        cmocka_unit_test_teardown(test_requiretls_notice, teardown_test),
        cmocka_unit_test_teardown(test_null_sender_is_never_bounced, teardown_test),
        cmocka_unit_test_teardown(test_queue_refusals, teardown_test),
        cmocka_unit_test_teardown(test_no_reply_times_out, teardown_test),
        cmocka_unit_test_teardown(test_lease_shortens_the_wait, teardown_test),
        cmocka_unit_test_teardown(test_slots_limit_submissions, teardown_test),
        cmocka_unit_test_teardown(test_wrong_kind_is_returned, teardown_test),
        cmocka_unit_test_teardown(test_drain_answers_submitted_returns_waiting, teardown_test),
        cmocka_unit_test_teardown(test_drain_times_out, teardown_test),
        cmocka_unit_test_teardown(test_waiting_job_answered_within_its_lease, teardown_test),
    };
    return cmocka_run_group_tests(tests, fq_setup_security, fq_teardown_context);
}
