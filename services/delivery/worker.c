/* The delivery job worker, unprivileged: forked by the parent (parent.h), already chrooted into
 * the mail store as postmesh-delivery (group vmail) and under seccomp when this runs. Takes
 * WORKER_DELIVERY jobs from the queue, has the parent confirm each recipient is a user,
 * writes each copy into its Maildir and answers one result per recipient. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "jobclient.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "parent.h"
#include "pool.h"
#include "privchan.h"
#include "usercheck.h"

struct delivery {
    const struct pm_config *cfg;
    const char *mail_root;
    struct event_base *base;
    struct pm_job_client *jobs;
    struct delivery_pool *pool;
    struct pm_priv_client *priv;
    struct delivery_checks *checks;
    struct event *sigterm, *sigint;
    char worker_name[300];
};

static void send_result(struct delivery_job *job)
{
    Postmesh__JobResult res;
    Postmesh__RecipientResult *results = calloc(job->nrcpt + 1, sizeof *results);
    Postmesh__RecipientResult **ptrs = calloc(job->nrcpt + 1, sizeof *ptrs);
    if (results && ptrs) {
        delivery_job_result(job, &res, results, ptrs);
        pm_job_finish(job->handle, res.results, res.n_results);
    } else {
        pm_job_return(job->handle, "4.3.0 out of memory");
    }
    job->handle = NULL;
    free(results);
    free(ptrs);
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
 * it to the store group, and the queue's retry finds it writable. */
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
    send_result(job);
    delivery_job_free(job);
}

static void on_job(struct pm_job *handle, void *arg)
{
    struct delivery *d = arg;
    char qv[PM_LOGV_SIZE];
    struct delivery_job *job = delivery_job_new(handle->job, d->cfg->hostname);
    if (!job) {
        pm_log(PM_ERR, "event=job_dropped id=%s reason=out_of_memory", PM_LV(qv, handle->job->queue_id));
        pm_job_return(handle, "4.3.0 out of memory");
        return;
    }
    job->handle = handle;
    /* delivery_job_new copied what it needs: drop the bus message (and its body) now. */
    postmesh__bus_message__free_unpacked(pm_job_take_message(handle), NULL);
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

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct delivery *d = arg;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    pm_metrics_set_unready("draining");
    pm_job_client_drain(d->jobs);
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
    struct pm_job_client_config jc = {
        .endpoint = d.cfg->queue.endpoint,
        .endpoints = (const char *const *)d.cfg->queue.endpoints.v,
        .nendpoints = d.cfg->queue.endpoints.n,
        .kind = POSTMESH__WORKER_KIND__WORKER_DELIVERY,
        .name = d.worker_name,
        .capacity = (int)d.cfg->delivery.concurrency,
        .backlog = (int)d.cfg->delivery.concurrency,
        .on_job = on_job,
        .arg = &d,
    };
    d.jobs = d.pool ? pm_job_client_new(d.base, &jc) : NULL;
    if (!d.jobs) {
        pm_log(PM_ERR, "event=startup_failed reason=%s", d.pool ? "bus" : "resources");
        return 1;
    }
    d.sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
    d.sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
    event_add(d.sigterm, NULL);
    event_add(d.sigint, NULL);
    pm_metrics_serve(d.base, NULL, NULL);
    pm_log(PM_INFO, "event=started endpoint=%s shards=%d concurrency=%lld", d.cfg->queue.endpoint,
           d.cfg->queue.endpoints.n, d.cfg->delivery.concurrency);

    event_base_dispatch(d.base);

    delivery_checks_free(d.checks); /* jobs waiting for the users check are handed back below */
    d.checks = NULL;
    delivery_pool_free(d.pool); /* running jobs finish and answer; unstarted ones are handed back */
    d.pool = NULL;
    pm_job_client_return_all(d.jobs, "4.3.2 delivery stopping");
    /* and any job the queue sent before it saw our credit 0 (one dispatched a few ms before
     * SIGTERM would otherwise wait out its lease) */
    pm_job_client_settle(d.jobs, d.base, PM_JOB_SETTLE_MS);
    event_free(d.sigterm);
    event_free(d.sigint);
    pm_job_client_free(d.jobs);
    pm_bus_context_term();
    pm_priv_client_free(d.priv);
    event_base_free(d.base);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
