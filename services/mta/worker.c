#include "worker.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "log.h"

#define HEARTBEAT_SECONDS 2
#define BACKLOG_EXTRA 100 /* jobs beyond the credit we keep (the race in the contract) */
#define CLOSE_LINGER_MS 2000

struct mta_worker;

struct slot {
    struct slot *prev, *next;
    struct mta_worker *w;
    Postmesh__BusMessage *msg;   /* while waiting in the backlog */
    struct mta_delivery *d;      /* while running */
    uint32_t lease;              /* how long the queue waits for the result */
    char domain[256];
};

struct slist {
    struct slot *head, *tail;
    int n;
};

struct outbox {
    struct outbox *next;
    time_t expires;
    size_t len;
    uint8_t data[]; /* a packed BusMessage */
};

struct mta_worker {
    struct mta_env env;
    struct pm_bus *bus;
    struct event *heartbeat, *reaper, *hello;
    struct slist backlog, running, finished;
    struct outbox *outbox;
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

int mta_worker_free_slots(const struct mta_worker *w)
{
    long long n = w->env.cfg->mta.max_concurrency - w->running.n - w->backlog.n;
    return w->shutting_down || n < 0 ? 0 : (int)n;
}

static int send_credit(struct mta_worker *w)
{
    Postmesh__Credit c = POSTMESH__CREDIT__INIT;
    c.kind = POSTMESH__WORKER_KIND__WORKER_MTA;
    c.credits = (uint32_t)mta_worker_free_slots(w);
    c.worker_name = w->name;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_CREDIT;
    m.credit = &c;
    return pm_bus_send(w->bus, &m); /* not connected yet: the heartbeat says it again */
}

static void send_result(struct mta_worker *w, Postmesh__JobResult *res, uint32_t lease)
{
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT;
    m.job_result = res;
    if (pm_bus_send(w->bus, &m) == 0)
        return;
    /* The queue is away: keep the verdicts (a delivered recipient must not be sent twice
     * if we can help it) and resend with the heartbeat while the lease lasts. */
    m.version = PM_PROTOCOL_VERSION;
    size_t len = postmesh__bus_message__get_packed_size(&m);
    struct outbox *o = malloc(sizeof *o + len);
    if (!o)
        return;
    postmesh__bus_message__pack(&m, o->data);
    o->len = len;
    o->expires = time(NULL) + (lease ? lease : 600);
    o->next = w->outbox;
    w->outbox = o;
    pm_log(PM_WARN, "event=result_held id=%s job=%llu reason=queue_unreachable", res->queue_id,
           (unsigned long long)res->job_id);
}

static void flush_outbox(struct mta_worker *w)
{
    time_t now = time(NULL);
    for (struct outbox **pp = &w->outbox; *pp;) {
        struct outbox *o = *pp;
        Postmesh__BusMessage *m = postmesh__bus_message__unpack(NULL, o->len, o->data);
        int sent = m && pm_bus_send(w->bus, m) == 0;
        if (m && !sent && now >= o->expires)
            pm_log(PM_WARN, "event=result_dropped id=%s job=%llu reason=lease_over", m->job_result->queue_id,
                   (unsigned long long)m->job_result->job_id);
        if (m)
            postmesh__bus_message__free_unpacked(m, NULL);
        if (sent || !m || now >= o->expires) {
            *pp = o->next;
            free(o);
        } else {
            pp = &o->next;
        }
    }
}

static int domain_running(const struct mta_worker *w, const char *domain)
{
    int n = 0;
    for (const struct slot *s = w->running.head; s; s = s->next)
        n += strcmp(s->domain, domain) == 0;
    return n;
}

static void on_delivery_done(struct mta_delivery *d, Postmesh__JobResult *res, void *arg);

/* Starts waiting jobs while the global and per-domain limits allow, oldest first; a job for
 * a busy domain waits without holding up the jobs behind it. */
static void pump(struct mta_worker *w)
{
    for (struct slot *s = w->backlog.head, *next; s && !w->shutting_down; s = next) {
        next = s->next;
        if (w->running.n >= w->env.cfg->mta.max_concurrency)
            break;
        if (domain_running(w, s->domain) >= w->env.cfg->mta.max_per_domain)
            continue;
        unlink_slot(&w->backlog, s);
        push(&w->running, s);
        Postmesh__BusMessage *msg = s->msg;
        s->msg = NULL;
        pm_log(PM_DEBUG, "event=job_start id=%s job=%llu domain=%s nrcpt=%zu", msg->job->queue_id,
               (unsigned long long)msg->job->job_id, s->domain, msg->job->n_recipients);
        s->d = mta_delivery_start(&w->env, msg, on_delivery_done, s);
    }
}

static void on_delivery_done(struct mta_delivery *d, Postmesh__JobResult *res, void *arg)
{
    (void)d;
    struct slot *s = arg;
    struct mta_worker *w = s->w;
    send_result(w, res, s->lease);
    unlink_slot(&w->running, s);
    push(&w->finished, s); /* freed by the reaper, outside the delivery's own call stack */
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
        mta_delivery_free(s->d);
        free(s);
    }
    pump(w);
    send_credit(w);
}

/* A result for a job we will not run: every recipient TEMPFAIL with text. */
static void refuse_job(struct mta_worker *w, const Postmesh__Job *job, const char *dsn, const char *text)
{
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    res.job_id = job->job_id;
    res.queue_id = job->queue_id;
    Postmesh__RecipientResult *rr = calloc(job->n_recipients + 1, sizeof *rr);
    Postmesh__RecipientResult **rp = calloc(job->n_recipients + 1, sizeof *rp);
    if (!rr || !rp)
        abort();
    for (size_t i = 0; i < job->n_recipients; i++) {
        postmesh__recipient_result__init(&rr[i]);
        rr[i].index = job->recipients[i]->index;
        rr[i].status = POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL;
        rr[i].dsn_status = (char *)dsn;
        rr[i].text = (char *)text;
        rp[i] = &rr[i];
    }
    res.results = rp;
    res.n_results = job->n_recipients;
    pm_log(PM_WARN, "event=job_refused id=%s job=%llu reason=\"%s\"", job->queue_id,
           (unsigned long long)job->job_id, text);
    send_result(w, &res, job->lease_seconds);
    free(rr);
    free(rp);
}

static void on_message(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)peer;
    (void)peerlen;
    struct mta_worker *w = arg;
    if (msg->body_case != POSTMESH__BUS_MESSAGE__BODY_JOB || !msg->job) {
        pm_log(PM_WARN, "event=bus_drop reason=unexpected_message body=%d", (int)msg->body_case);
        return;
    }
    const Postmesh__Job *job = msg->job;
    if (job->kind != POSTMESH__WORKER_KIND__WORKER_MTA) {
        refuse_job(w, job, "4.3.5", "4.3.5 job sent to the wrong kind of worker");
        return;
    }
    if (w->shutting_down) {
        refuse_job(w, job, "4.3.2", "4.3.2 mta shutting down");
        return;
    }
    if (w->backlog.n >= w->env.cfg->mta.max_concurrency + BACKLOG_EXTRA) {
        refuse_job(w, job, "4.3.2", "4.3.2 mta overloaded");
        return;
    }
    struct slot *s = calloc(1, sizeof *s);
    if (!s)
        return;
    pm_bus_steal(bus); /* keep the job (and its body) without copying */
    s->w = w;
    s->msg = msg;
    s->lease = job->lease_seconds;
    const char *dom = job->domain;
    if (!dom || !*dom) {
        const char *at = job->n_recipients ? strrchr(job->recipients[0]->address, '@') : NULL;
        dom = at ? at + 1 : "";
    }
    snprintf(s->domain, sizeof s->domain, "%s", dom);
    for (char *p = s->domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    pm_log(PM_INFO, "event=job id=%s job=%llu domain=%s nrcpt=%zu size=%zu", job->queue_id,
           (unsigned long long)job->job_id, s->domain, job->n_recipients, job->body.len);
    push(&w->backlog, s);
    pump(w);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_worker *w = arg;
    flush_outbox(w);
    send_credit(w);
}

/* Until the queue heard us once, say hello often instead of every heartbeat. */
static void on_hello(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_worker *w = arg;
    if (send_credit(w) == 0)
        event_del(w->hello);
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
    w->bus = pm_bus_connect(env->base, ZMQ_DEALER, env->cfg->queue.endpoint, on_message, w);
    w->heartbeat = event_new(env->base, -1, EV_PERSIST, on_heartbeat, w);
    w->reaper = evtimer_new(env->base, on_reap, w);
    w->hello = event_new(env->base, -1, EV_PERSIST, on_hello, w);
    if (!w->bus || !w->heartbeat || !w->reaper || !w->hello) {
        mta_worker_free(w);
        return NULL;
    }
    struct timeval tv = {HEARTBEAT_SECONDS, 0};
    event_add(w->heartbeat, &tv);
    struct timeval fast = {0, 100 * 1000};
    if (send_credit(w) < 0)
        event_add(w->hello, &fast);
    return w;
}

void mta_worker_shutdown(struct mta_worker *w)
{
    if (!w || w->shutting_down)
        return;
    w->shutting_down = 1;
    send_credit(w); /* 0: send nothing more */
    while (w->running.head)
        mta_delivery_abort(w->running.head->d); /* moves it to finished */
    while (w->backlog.head) {
        struct slot *s = w->backlog.head;
        unlink_slot(&w->backlog, s);
        refuse_job(w, s->msg->job, "4.3.2", "4.3.2 mta shutting down");
        postmesh__bus_message__free_unpacked(s->msg, NULL);
        free(s);
    }
    flush_outbox(w);
    int linger = CLOSE_LINGER_MS;
    zmq_setsockopt(pm_bus_socket(w->bus), ZMQ_LINGER, &linger, sizeof linger);
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
            if (s->d)
                mta_delivery_free(s->d);
            else if (s->msg)
                postmesh__bus_message__free_unpacked(s->msg, NULL);
            free(s);
        }
    }
    while (w->outbox) {
        struct outbox *o = w->outbox;
        w->outbox = o->next;
        free(o);
    }
    if (w->heartbeat)
        event_free(w->heartbeat);
    if (w->reaper)
        event_free(w->reaper);
    if (w->hello)
        event_free(w->hello);
    pm_bus_close(w->bus);
    free(w);
}
