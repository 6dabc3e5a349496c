/* The unprivileged delivery worker: forked by the parent (parent.h), already chrooted into
 * the mail store as vmail and under seccomp when this runs. Takes WORKER_DELIVERY jobs from
 * the queue, has the parent confirm each recipient is a user, writes each copy into its
 * Maildir and answers one result per recipient. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "parent.h"
#include "pool.h"
#include "privchan.h"
#include "usercheck.h"

#define HEARTBEAT_SECONDS 2
/* Results the queue could not take right now (not connected) are retried this long; after
 * that the lease has long expired and the repeated job finds the copy already delivered. */
#define RESULT_RETRY_SECONDS 60

struct pending_result {
    struct delivery_job *job;
    time_t since;
    struct pending_result *next;
};

struct delivery {
    const struct pm_config *cfg;
    const char *mail_root;
    struct event_base *base;
    struct pm_bus *bus;
    struct delivery_pool *pool;
    struct pm_priv_client *priv;
    struct delivery_checks *checks;
    struct event *heartbeat, *credit_retry, *sigterm, *sigint;
    struct pending_result *unsent;
    char worker_name[300];
};

/* Until the DEALER is connected every send fails (ZMQ_IMMEDIATE): retry the credit soon
 * instead of waiting for the next heartbeat, so a fresh worker gets jobs at once. */
static void schedule_credit_retry(struct delivery *d)
{
    struct timeval tv = {0, 100 * 1000};
    if (!evtimer_pending(d->credit_retry, NULL))
        evtimer_add(d->credit_retry, &tv);
}

static void send_credit(struct delivery *d)
{
    /* Jobs waiting for the users check hold a slot too. */
    long long free_slots =
        d->cfg->delivery.concurrency - delivery_pool_busy(d->pool) - delivery_checks_pending(d->checks);
    Postmesh__Credit credit = POSTMESH__CREDIT__INIT;
    credit.kind = POSTMESH__WORKER_KIND__WORKER_DELIVERY;
    credit.credits = free_slots > 0 ? (uint32_t)free_slots : 0;
    credit.worker_name = d->worker_name;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_CREDIT;
    msg.credit = &credit;
    if (pm_bus_send(d->bus, &msg) < 0)
        schedule_credit_retry(d);
}

static void on_credit_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_credit(arg);
}

static int send_result(struct delivery *d, struct delivery_job *job)
{
    Postmesh__JobResult res;
    Postmesh__RecipientResult *results = calloc(job->nrcpt + 1, sizeof *results);
    Postmesh__RecipientResult **ptrs = calloc(job->nrcpt + 1, sizeof *ptrs);
    int rc = -1;
    if (results && ptrs) {
        delivery_job_result(job, &res, results, ptrs);
        Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
        msg.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT;
        msg.job_result = &res;
        rc = pm_bus_send(d->bus, &msg);
    }
    free(results);
    free(ptrs);
    return rc;
}

static void log_results(const struct delivery_job *job)
{
    char qv[PM_LOGV_SIZE], tv[PM_LOGV_SIZE], mv[PM_LOGV_SIZE], xv[PM_LOGV_SIZE];
    for (size_t i = 0; i < job->nrcpt; i++) {
        const struct delivery_rcpt *r = &job->rcpts[i];
        PM_LV(qv, job->queue_id);
        PM_LV(tv, r->address);
        if (r->status == POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED)
            pm_log(PM_INFO, "event=delivered id=%s to=%s mailbox=%s%s", qv, tv, PM_LV(mv, r->maildir),
                   r->duplicate ? " duplicate=1" : "");
        else
            pm_log(r->status == POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL ? PM_INFO : PM_WARN,
                   "event=%s id=%s to=%s dsn=%s reason=%s",
                   r->status == POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL ? "failed" : "deferred", qv, tv, r->dsn,
                   PM_LV(xv, r->text));
    }
}

static void ignore_answer(int result, void *arg)
{
    (void)result;
    (void)arg;
}

/* A mailbox we may not write to was made by someone else (root, by hand): the parent hands
 * it to vmail, and the queue's retry finds it writable. */
static void ask_repairs(struct delivery *d, const struct delivery_job *job)
{
    for (size_t i = 0; i < job->nrcpt; i++)
        if (job->rcpts[i].error == EACCES || job->rcpts[i].error == EPERM)
            pm_priv_request(d->priv, PM_PRIV_MAILBOX_REPAIR, job->rcpts[i].address, NULL, ignore_answer, NULL);
}

static void job_done(struct delivery_job *job, void *arg)
{
    struct delivery *d = arg;
    log_results(job);
    ask_repairs(d, job);
    if (send_result(d, job) == 0) {
        delivery_job_free(job);
    } else {
        char qv[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=result_unsent id=%s job=%llu error=\"%s\"", PM_LV(qv, job->queue_id),
               (unsigned long long)job->job_id, zmq_strerror(errno));
        struct pending_result *p = calloc(1, sizeof *p);
        if (!p) {
            delivery_job_free(job);
        } else {
            p->job = job;
            p->since = time(NULL);
            p->next = d->unsent;
            d->unsent = p;
        }
    }
    if (d->bus)
        send_credit(d);
}

static void retry_unsent(struct delivery *d)
{
    time_t now = time(NULL);
    for (struct pending_result **pp = &d->unsent; *pp;) {
        struct pending_result *p = *pp;
        if (send_result(d, p->job) == 0 || now - p->since > RESULT_RETRY_SECONDS) {
            *pp = p->next;
            delivery_job_free(p->job);
            free(p);
        } else {
            pp = &p->next;
        }
    }
}

static void on_job(struct delivery *d, const Postmesh__Job *j)
{
    char qv[PM_LOGV_SIZE];
    if (j->kind != POSTMESH__WORKER_KIND__WORKER_DELIVERY) {
        pm_log(PM_WARN, "event=job_ignored id=%s kind=%d", PM_LV(qv, j->queue_id), (int)j->kind);
        return;
    }
    struct delivery_job *job = delivery_job_new(j, d->cfg->hostname);
    if (!job) {
        pm_log(PM_ERR, "event=job_dropped id=%s reason=out_of_memory", PM_LV(qv, j->queue_id));
        return; /* the lease expires and the queue dispatches it again */
    }
    pm_log(PM_DEBUG, "event=job id=%s job=%llu recipients=%zu size=%zu", PM_LV(qv, job->queue_id),
           (unsigned long long)job->job_id, job->nrcpt, job->body_len);
    delivery_checks_start(d->checks, job);
}

/* Every recipient's users answer is in: decide the paths and write on a pool thread. */
static void on_checked(struct delivery_job *job, void *arg)
{
    struct delivery *d = arg;
    delivery_job_locate(job, d->mail_root);
    delivery_pool_submit(d->pool, job);
}

static void on_bus(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)bus;
    (void)peer;
    (void)peerlen;
    if (msg->body_case == POSTMESH__BUS_MESSAGE__BODY_JOB)
        on_job(arg, msg->job);
    else
        pm_log(PM_DEBUG, "event=bus_ignored type=%d", (int)msg->body_case);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct delivery *d = arg;
    retry_unsent(d);
    send_credit(d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct delivery *d = arg;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    event_base_loopbreak(d->base);
}

int delivery_worker_main(int parent_fd, void *arg)
{
    struct delivery_parent *p = arg; /* this process's copy of the parent's state */
    struct delivery d = {.cfg = p->cfg, .mail_root = p->mail_root};
    signal(SIGHUP, SIG_IGN);
    pm_priv_helper_forget(p->helper);
    snprintf(d.worker_name, sizeof d.worker_name, "delivery@%s/%d", d.cfg->hostname, (int)getpid());
    d.base = event_base_new();
    d.priv = d.base ? pm_priv_client_new(d.base, parent_fd, NULL, NULL) : NULL;
    d.checks = d.priv ? delivery_checks_new(d.priv, on_checked, &d) : NULL;
    d.pool = d.checks ? delivery_pool_new(d.base, (int)d.cfg->delivery.concurrency, job_done, &d) : NULL;
    d.bus = d.pool ? pm_bus_connect(d.base, ZMQ_DEALER, d.cfg->queue.endpoint, on_bus, &d) : NULL;
    if (!d.bus) {
        pm_log(PM_ERR, "event=startup_failed reason=%s", d.pool ? "bus" : "resources");
        return 1;
    }
    struct timeval hb = {HEARTBEAT_SECONDS, 0};
    d.heartbeat = event_new(d.base, -1, EV_PERSIST, on_heartbeat, &d);
    event_add(d.heartbeat, &hb);
    d.credit_retry = evtimer_new(d.base, on_credit_retry, &d);
    d.sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
    d.sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
    event_add(d.sigterm, NULL);
    event_add(d.sigint, NULL);
    send_credit(&d); /* usually EAGAIN until connected: retried shortly */
    pm_log(PM_INFO, "event=started endpoint=%s concurrency=%lld", d.cfg->queue.endpoint, d.cfg->delivery.concurrency);

    event_base_dispatch(d.base);

    delivery_checks_free(d.checks); /* jobs still waiting for answers: the queue re-sends them */
    d.checks = NULL;
    delivery_pool_free(d.pool); /* running jobs finish; their results go out below */
    d.pool = NULL;
    while (d.unsent) {
        struct pending_result *p = d.unsent;
        d.unsent = p->next;
        delivery_job_free(p->job);
        free(p);
    }
    event_free(d.heartbeat);
    event_free(d.credit_retry);
    event_free(d.sigterm);
    event_free(d.sigint);
    pm_bus_close(d.bus);
    pm_bus_context_term();
    pm_priv_client_free(d.priv);
    event_base_free(d.base);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
