#include "worker.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "jobclient.h"
#include "log.h"


/* Leave the queue this long (at most a quarter of the lease) between our deadline and the
 * lease end, for the result to get there before the job is dispatched again. */
#define LEASE_MARGIN_MS 5000

struct mta_worker;

struct slot {
    struct slot *prev, *next;
    struct mta_worker *w;
    struct pm_job *job;          /* the job client's handle, answered once */
    Postmesh__BusMessage *msg;   /* while waiting in the backlog */
    struct mta_outbound *outbound; /* while running */
    char domain[256];
};

struct slist {
    struct slot *head, *tail;
    int n;
};

struct mta_worker {
    struct mta_env env;
    struct pm_job_client *jobs;
    struct event *reaper;
    struct event *tick; /* looks at the backlog now and then (jobs waiting for a domain) */
    struct event *grace; /* draining: the end of the wait for verdicts after the body */
    struct slist backlog, running, finished;
    char name[128];
    int shutting_down;
};

static void push(struct slist *l, struct slot *s)
{
    s->next = NULL;
    s->prev = l->tail;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->n++;
}

static void unlink_slot(struct slist *l, struct slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
    l->n--;
}

static int domain_running(const struct mta_worker *w, const char *domain)
{
    int n = 0;
    for (const struct slot *s = w->running.head; s; s = s->next)
        n += strcmp(s->domain, domain) == 0;
    return n;
}

static void on_outbound_done(struct mta_outbound *o, Postmesh__JobResult *res, void *arg);

/* A job that waited in the backlog until less than half its lease is left goes back to the
 * queue unattempted rather than start an outbound job that would be cut short and deferred:
 * local congestion must not become a retry delay for the mail. */
static int waited_too_long(const struct slot *s, uint64_t now)
{
    return s->job->deadline_ms < now + s->job->lease_ms / 2;
}

/* Starts waiting jobs while the global and per-domain limits allow, oldest first; a job for
 * a busy domain waits without holding up the jobs behind it. */
static void pump(struct mta_worker *w)
{
    uint64_t now = pm_mono_ms();
    for (struct slot *s = w->backlog.head, *next; s && !w->shutting_down; s = next) {
        next = s->next;
        if (waited_too_long(s, now)) {
            unlink_slot(&w->backlog, s);
            pm_job_return(s->job, "4.3.2 waited too long in the mta backlog");
            postmesh__bus_message__free_unpacked(s->msg, NULL);
            free(s);
            continue;
        }
        if (w->running.n >= w->env.cfg->mta.max_concurrency)
            continue;
        if (domain_running(w, s->domain) >= w->env.cfg->mta.max_per_domain)
            continue;
        unlink_slot(&w->backlog, s);
        push(&w->running, s);
        Postmesh__BusMessage *msg = s->msg;
        s->msg = NULL;
        char dom[PM_LOGV_SIZE];
        pm_log(PM_DEBUG, "event=job_start id=%s job=%llu domain=%s nrcpt=%zu", msg->job->queue_id,
               (unsigned long long)msg->job->job_id, PM_LOGV(dom, s->domain), msg->job->n_recipients);
        /* The deadline counts from the job's arrival, not from its start here. */
        uint64_t margin = s->job->lease_ms / 4 < LEASE_MARGIN_MS ? s->job->lease_ms / 4 : LEASE_MARGIN_MS;
        uint64_t deadline = s->job->deadline_ms - margin;
        s->outbound = mta_outbound_start(&w->env, msg, deadline, on_outbound_done, s);
    }
}

static void on_outbound_done(struct mta_outbound *o, Postmesh__JobResult *res, void *arg)
{
    (void)o;
    struct slot *s = arg;
    struct mta_worker *w = s->w;
    pm_job_finish_tls(s->job, res->results, res->n_results, res->tls_sessions, res->n_tls_sessions);
    s->job = NULL;
    unlink_slot(&w->running, s);
    push(&w->finished, s); /* freed by the reaper, outside the outbound job's own call stack */
    struct timeval tv = {0, 0};
    event_add(w->reaper, &tv);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_worker *w = arg;
    while (w->finished.head) {
        struct slot *s = w->finished.head;
        unlink_slot(&w->finished, s);
        mta_outbound_free(s->outbound);
        free(s);
    }
    pump(w);
    if (w->shutting_down && !w->running.head)
        event_base_loopbreak(w->env.base); /* the last verdict of the drain is in */
}

static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_worker *w = arg;
    event_base_loopbreak(w->env.base);
}

/* Validated at the edge (bus_rules.c): at least one recipient, strings set. */
static void on_job(struct pm_job *job, void *arg)
{
    struct mta_worker *w = arg;
    struct slot *s = calloc(1, sizeof *s);
    if (!s) {
        pm_job_return(job, "4.3.0 out of memory");
        return;
    }
    const Postmesh__Job *j = job->job;
    s->w = w;
    s->job = job;
    const char *dom = *j->domain ? j->domain : pm_addr_domain(j->recipients[0]->address);
    snprintf(s->domain, sizeof s->domain, "%s", dom);
    for (char *p = s->domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    char domv[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=job id=%s job=%llu domain=%s nrcpt=%zu size=%zu", j->queue_id,
           (unsigned long long)j->job_id, PM_LOGV(domv, s->domain), j->n_recipients, j->body.len);
    s->msg = pm_job_take_message(job);
    push(&w->backlog, s);
    pump(w);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

struct mta_worker *mta_worker_new(const struct mta_env *env)
{
    struct mta_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->env = *env;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(w->name, sizeof w->name, "mta-%s-%d", host, (int)getpid());
    struct pm_job_client_config jc = {
        .endpoint = env->cfg->queue.endpoint,
        .endpoints = (const char *const *)env->cfg->queue.endpoints.v,
        .nendpoints = env->cfg->queue.endpoints.n,
        .kind = POSTMESH__WORKER_KIND__WORKER_MTA,
        .name = w->name,
        .capacity = (int)env->cfg->mta.max_concurrency,
        .backlog = (int)env->cfg->mta.max_concurrency,
        .on_job = on_job,
        .arg = w,
    };
    w->jobs = pm_job_client_new(env->base, &jc);
    w->reaper = evtimer_new(env->base, on_reap, w);
    w->grace = evtimer_new(env->base, on_grace_over, w);
    w->tick = event_new(env->base, -1, EV_PERSIST, on_tick, w);
    struct timeval second = {1, 0};
    if (w->tick)
        event_add(w->tick, &second);
    if (!w->jobs || !w->reaper || !w->tick || !w->grace) {
        mta_worker_free(w);
        return NULL;
    }
    return w;
}

int mta_worker_shutdown(struct mta_worker *w, int grace)
{
    if (!w)
        return 0;
    if (!w->shutting_down) {
        w->shutting_down = 1;
        pm_job_client_drain(w->jobs); /* credit 0 everywhere; new jobs are handed back */
        while (w->backlog.head) {
            struct slot *s = w->backlog.head;
            unlink_slot(&w->backlog, s);
            pm_job_return(s->job, "4.3.2 mta shutting down");
            postmesh__bus_message__free_unpacked(s->msg, NULL);
            free(s);
        }
    }
    /* Undecided recipients are RETURNED (moves the slot to finished); what the server
     * already decided stands. */
    int left = 0;
    for (struct slot *s = w->running.head, *next; s; s = next) {
        next = s->next;
        if (grace && mta_outbound_awaiting_verdict(s->outbound))
            left++;
        else
            mta_outbound_abort(s->outbound);
    }
    if (left) {
        struct timeval tv = {MTA_DRAIN_GRACE_MS / 1000, (MTA_DRAIN_GRACE_MS % 1000) * 1000};
        evtimer_add(w->grace, &tv);
        pm_log(PM_INFO, "event=drain_wait deliveries=%d grace_ms=%d", left, MTA_DRAIN_GRACE_MS);
    }
    return left;
}

void mta_worker_free(struct mta_worker *w)
{
    if (!w)
        return;
    struct slist *lists[] = {&w->backlog, &w->running, &w->finished};
    for (int i = 0; i < 3; i++) {
        while (lists[i]->head) {
            struct slot *s = lists[i]->head;
            unlink_slot(lists[i], s);
            if (s->outbound)
                mta_outbound_free(s->outbound);
            else if (s->msg)
                postmesh__bus_message__free_unpacked(s->msg, NULL);
            free(s);
        }
    }
    if (w->reaper)
        event_free(w->reaper);
    if (w->tick)
        event_free(w->tick);
    if (w->grace)
        event_free(w->grace);
    /* Jobs still unanswered, and any the queue sent before it saw our credit 0, go back
     * now rather than after their lease. */
    if (w->shutting_down)
        pm_job_client_settle(w->jobs, w->env.base, PM_JOB_SETTLE_MS);
    pm_job_client_free(w->jobs);
    free(w);
}
