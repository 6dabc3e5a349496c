/* Worker side of the job protocol (jobclient.h): one DEALER per queue shard, credit and
 * heartbeat per shard, refusals (wrong kind, busy, draining), held results per shard. One
 * copy for mta, delivery and bouncer. A Job's fields were checked where it was decoded
 * (bus_valid.c: a queue id of the queue's form, 1 to PM_BUS_MAX_RCPTS recipients with
 * addresses, a known kind); a malformed one never reaches on_message. */
#include "jobclient.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus.h"
#include "bus_valid.h"
#include "clock.h"
#include "log.h"

#define HEARTBEAT_MS 2000
#define RETRY_MS 100          /* credit / held results while the queue is not connected */
#define DEFAULT_LEASE 600
#define QUEUE_ID_LEN PM_BUS_QUEUE_ID_LEN /* only that form is admitted (bus_valid.h) */
#define CLOSE_LINGER_MS 2000
#define MAX_SHARDS 64

struct shard;

struct job_entry {
    struct pm_job pub;
    struct pm_job_client *c;
    struct shard *s;           /* where it came from: the only place its answer may go */
    Postmesh__BusMessage *msg; /* NULL once taken by the service */
    uint64_t job_id, epoch;
    Postmesh__WorkerKind kind; /* the job's (a wrong one is echoed so the queue matches it) */
    char queue_id[QUEUE_ID_LEN + 1];
    uint32_t *indexes; /* recipient indexes, for a return after the message was taken */
    size_t nindexes;
    struct job_entry *prev, *next;
};

struct held_result {
    struct held_result *next;
    uint64_t expires_ms;
    uint64_t job_id;
    char queue_id[QUEUE_ID_LEN + 1];
    size_t len;
    uint8_t data[]; /* a packed BusMessage */
};

/* One queue shard: its own socket, count of jobs received (the queue's jobs_sent is per
 * connection), held results and heartbeat, so one shard away delays nothing of another. */
struct shard {
    struct pm_job_client *c;
    int index; /* in the configured list, for the logs */
    struct pm_bus *bus;
    struct event *heartbeat;
    uint64_t received;
    int settle_pending; /* draining: our Ping is out and its answer not in yet */
    struct held_result *held;
    int retrying; /* the heartbeat is armed for RETRY_MS: later failures leave it be */
};

struct pm_job_client {
    struct pm_job_client_config cfg;
    struct shard *shards;
    int nshards;
    struct event *soon;
    struct job_entry *jobs; /* received from any shard, not answered */
    int outstanding;
    int draining;
    char name[128];
};

static void arm_heartbeat(struct shard *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->heartbeat, &tv);
    s->retrying = ms == RETRY_MS;
}

/* A send to this shard failed: try again in RETRY_MS, without pushing back a retry already
 * armed (a busy worker fails a send to a shard that is down on every answer; re-arming each
 * time would put the retry off for as long as the others keep it busy). */
static void retry_soon(struct shard *s)
{
    if (!s->retrying || !evtimer_pending(s->heartbeat, NULL))
        arm_heartbeat(s, RETRY_MS);
}

static int free_slots(const struct pm_job_client *c)
{
    if (c->draining)
        return 0;
    int n = c->cfg.capacity - c->outstanding;
    if (c->cfg.free_slots) {
        int s = c->cfg.free_slots(c->cfg.arg);
        if (s < n)
            n = s;
    }
    return n < 0 ? 0 : n;
}

/* Every shard hears the same free slots: they are the worker's, not the shard's. */
static int send_credit(struct shard *s)
{
    struct pm_job_client *c = s->c;
    Postmesh__Credit credit = POSTMESH__CREDIT__INIT;
    credit.kind = c->cfg.kind;
    credit.credits = (uint32_t)free_slots(c);
    credit.worker_name = c->name;
    /* Jobs the bus refused as malformed arrived too: they are not on the way any more. */
    credit.jobs_received = s->received + pm_bus_refused(s->bus, POSTMESH__BUS_MESSAGE__BODY_JOB);
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_CREDIT;
    msg.credit = &credit;
    return pm_bus_send(s->bus, &msg);
}

/* Resends held results; drops those that still cannot go once their lease is over (the
 * queue has dispatched the job again; a late result could only settle a recipient that is
 * still waiting, so one that does get through is harmless). */
static void flush_held(struct shard *s)
{
    uint64_t now = pm_mono_ms();
    int blocked = 0; /* once one send fails, later ones wait too: results keep their order */
    for (struct held_result **pp = &s->held; *pp;) {
        struct held_result *h = *pp;
        int sent = 0;
        if (!blocked) {
            Postmesh__BusMessage *m = postmesh__bus_message__unpack(NULL, h->len, h->data);
            sent = m && pm_bus_send(s->bus, m) == 0;
            if (m)
                postmesh__bus_message__free_unpacked(m, NULL);
            blocked = !sent;
        }
        if (!sent && now < h->expires_ms) {
            pp = &h->next;
            continue;
        }
        if (sent)
            pm_log(PM_INFO, "event=result_resent id=%s job=%" PRIu64 " shard=%d", h->queue_id, h->job_id, s->index);
        else
            pm_log(PM_WARN, "event=result_dropped id=%s job=%" PRIu64 " shard=%d reason=lease_over", h->queue_id,
                   h->job_id, s->index);
        *pp = h->next;
        free(h);
    }
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct shard *s = arg;
    if (s->held)
        flush_held(s);
    int ok = send_credit(s) == 0;
    arm_heartbeat(s, ok && !s->held ? HEARTBEAT_MS : RETRY_MS);
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_job_client *c = arg;
    for (int i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        /* One with results held gets its credit after them, from its retry. */
        if (!s->held && send_credit(s) < 0)
            retry_soon(s);
    }
}

void pm_job_client_credit_soon(struct pm_job_client *c)
{
    /* Many answers in one loop turn make one Credit. */
    if (c && !evtimer_pending(c->soon, NULL)) {
        struct timeval tv = {0, 0};
        evtimer_add(c->soon, &tv);
    }
}

int pm_job_client_outstanding(const struct pm_job_client *c) { return c->outstanding; }

/* Sends (or holds) the JobResult of entry e, to the shard that sent the job. */
static void send_result(struct job_entry *e, Postmesh__RecipientResult **results, size_t n,
                        Postmesh__TlsSession **sessions, size_t nsessions)
{
    struct shard *s = e->s;
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    res.job_id = e->job_id;
    res.epoch = e->epoch;
    res.kind = e->kind;
    res.queue_id = e->queue_id;
    res.results = results;
    res.n_results = n;
    res.tls_sessions = sessions;
    res.n_tls_sessions = nsessions;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT;
    msg.job_result = &res;
    if (!s->held && pm_bus_send(s->bus, &msg) == 0)
        return;
    /* The shard is away (or older results for it wait: keep their order). Delivered verdicts
     * are worth keeping: they spare the recipient a second copy. */
    msg.version = PM_PROTOCOL_VERSION;
    size_t len = postmesh__bus_message__get_packed_size(&msg);
    struct held_result *h = malloc(sizeof *h + len);
    if (!h) {
        pm_log(PM_ERR, "event=result_dropped id=%s job=%" PRIu64 " reason=out_of_memory", e->queue_id, e->job_id);
        return;
    }
    postmesh__bus_message__pack(&msg, h->data);
    h->len = len;
    h->expires_ms = e->pub.deadline_ms;
    h->job_id = e->job_id;
    memcpy(h->queue_id, e->queue_id, sizeof h->queue_id);
    struct held_result **tail = &s->held;
    while (*tail)
        tail = &(*tail)->next;
    h->next = NULL;
    *tail = h;
    pm_log(PM_WARN, "event=result_held id=%s job=%" PRIu64 " shard=%d reason=queue_unreachable", e->queue_id,
           e->job_id, s->index);
    retry_soon(s);
}

static void entry_free(struct job_entry *e)
{
    if (e->msg)
        postmesh__bus_message__free_unpacked(e->msg, NULL);
    free(e->indexes);
    free(e);
}

static void entry_unlink(struct job_entry *e)
{
    struct pm_job_client *c = e->c;
    if (e->prev)
        e->prev->next = e->next;
    else
        c->jobs = e->next;
    if (e->next)
        e->next->prev = e->prev;
    c->outstanding--;
}

static void return_entry(struct job_entry *e, const char *why)
{
    Postmesh__RecipientResult *rr = calloc(e->nindexes + 1, sizeof *rr);
    Postmesh__RecipientResult **rp = calloc(e->nindexes + 1, sizeof *rp);
    if (rr && rp) {
        for (size_t i = 0; i < e->nindexes; i++) {
            postmesh__recipient_result__init(&rr[i]);
            rr[i].index = e->indexes[i];
            rr[i].status = POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED;
            rr[i].dsn_status = "4.3.2";
            rr[i].text = (char *)why;
            rp[i] = &rr[i];
        }
        send_result(e, rp, e->nindexes, NULL, 0);
    }
    free(rr);
    free(rp);
}

void pm_job_finish(struct pm_job *job, Postmesh__RecipientResult **results, size_t n)
{
    pm_job_finish_tls(job, results, n, NULL, 0);
}

void pm_job_finish_tls(struct pm_job *job, Postmesh__RecipientResult **results, size_t n,
                       Postmesh__TlsSession **sessions, size_t nsessions)
{
    struct job_entry *e = (struct job_entry *)job;
    entry_unlink(e);
    send_result(e, results, n, sessions, nsessions);
    pm_job_client_credit_soon(e->c);
    entry_free(e);
}

void pm_job_return(struct pm_job *job, const char *why)
{
    struct job_entry *e = (struct job_entry *)job;
    entry_unlink(e);
    char reason[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=job_returned id=%s job=%" PRIu64 " reason=%s", e->queue_id, e->job_id, PM_LOGV(reason, why));
    return_entry(e, why);
    pm_job_client_credit_soon(e->c);
    entry_free(e);
}

Postmesh__BusMessage *pm_job_take_message(struct pm_job *job)
{
    struct job_entry *e = (struct job_entry *)job;
    Postmesh__BusMessage *m = e->msg;
    e->msg = NULL;
    job->job = NULL;
    return m;
}

/* How long the job was on its way, by the queue's dispatch time against our wall clock.
 * The lease counts from dispatch; a job that sat in buffers has less of it left. A clock
 * behind the queue's reads as no time at all (the arrival bounds it); one ahead makes us end
 * early, so the correction is capped at a quarter of the lease: a skewed clock on another
 * host must not leave a delivery no time at all. */
static uint64_t in_transit_ms(const Postmesh__Job *j, uint64_t lease_ms)
{
    if (!j->dispatch_time_ms)
        return 0;
    uint64_t wall = pm_wall_ms();
    uint64_t transit = wall > j->dispatch_time_ms ? wall - j->dispatch_time_ms : 0;
    return transit < lease_ms / 4 ? transit : lease_ms / 4;
}

static void on_message(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)peer;
    (void)peerlen;
    struct shard *s = arg;
    struct pm_job_client *c = s->c;
    if (msg->body_case == POSTMESH__BUS_MESSAGE__BODY_PING) {
        s->settle_pending = 0; /* every job sent before our credit 0 has arrived */
        return;
    }
    if (msg->body_case != POSTMESH__BUS_MESSAGE__BODY_JOB) {
        pm_log(PM_WARN, "event=bus_drop reason=unexpected_message body=%d", (int)msg->body_case);
        return;
    }
    const Postmesh__Job *j = msg->job;
    s->received++;
    struct job_entry *e = calloc(1, sizeof *e);
    if (e)
        e->indexes = calloc(j->n_recipients, sizeof *e->indexes);
    if (!e || !e->indexes) {
        pm_log(PM_ERR, "event=job_dropped id=%s reason=out_of_memory", j->queue_id);
        free(e);
        return;
    }
    e->c = c;
    e->s = s;
    e->job_id = j->job_id;
    e->epoch = j->epoch;
    e->kind = j->kind;
    snprintf(e->queue_id, sizeof e->queue_id, "%s", j->queue_id);
    for (size_t i = 0; i < j->n_recipients; i++)
        e->indexes[i] = j->recipients[i]->index;
    e->nindexes = j->n_recipients;
    e->pub.lease_ms = 1000ull * (j->lease_seconds ? j->lease_seconds : DEFAULT_LEASE);
    e->pub.deadline_ms = pm_mono_ms() + e->pub.lease_ms - in_transit_ms(j, e->pub.lease_ms);
    e->next = c->jobs;
    if (c->jobs)
        c->jobs->prev = e;
    c->jobs = e;
    c->outstanding++;
    /* The other shards were offered the slot this job takes: tell them it is gone (the
     * sending shard counts its own jobs on the way, see Credit.jobs_received). */
    if (c->nshards > 1)
        pm_job_client_credit_soon(c);

    const char *why = NULL;
    if (j->kind != c->cfg.kind)
        why = "4.3.5 job sent to the wrong kind of worker";
    else if (c->draining)
        why = "4.3.2 worker shutting down";
    else if (c->outstanding > c->cfg.capacity + c->cfg.backlog)
        why = "4.3.2 worker busy";
    if (why) {
        char reason[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=job_refused id=%s job=%" PRIu64 " kind=%s reason=%s", e->queue_id, e->job_id,
               pm_worker_kind_name(j->kind), PM_LOGV(reason, why));
        pm_job_return(&e->pub, why);
        return;
    }
    pm_bus_steal(bus); /* the job keeps its message (and body) without a copy */
    e->msg = msg;
    e->pub.job = j;
    c->cfg.on_job(&e->pub, c->cfg.arg);
}

/* The shard endpoints of cfg, the same one listed twice only once (two DEALERs to one
 * queue would be two workers there, each offered the same slots). */
static int shard_endpoints(const struct pm_job_client_config *cfg, const char **out)
{
    if (cfg->nendpoints <= 0) {
        out[0] = cfg->endpoint;
        return out[0] ? 1 : 0;
    }
    int n = 0;
    for (int i = 0; i < cfg->nendpoints && n < MAX_SHARDS; i++) {
        const char *ep = cfg->endpoints[i];
        int dup = !ep || !*ep;
        for (int k = 0; k < n && !dup; k++)
            dup = strcmp(out[k], ep) == 0;
        if (!dup)
            out[n++] = ep;
    }
    if (cfg->nendpoints > MAX_SHARDS)
        pm_log(PM_WARN, "event=too_many_shards configured=%d used=%d", cfg->nendpoints, MAX_SHARDS);
    return n;
}

struct pm_job_client *pm_job_client_new(struct event_base *base, const struct pm_job_client_config *cfg)
{
    const char *eps[MAX_SHARDS];
    int n = shard_endpoints(cfg, eps);
    struct pm_job_client *c = n ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return NULL;
    c->cfg = *cfg;
    c->cfg.endpoints = NULL; /* the caller's; not kept */
    c->cfg.endpoint = NULL;
    if (c->cfg.capacity < 1)
        c->cfg.capacity = 1;
    if (c->cfg.backlog < 0)
        c->cfg.backlog = 0;
    snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : pm_worker_kind_name(cfg->kind));
    c->cfg.name = c->name;
    c->soon = evtimer_new(base, on_soon, c);
    c->shards = calloc((size_t)n, sizeof *c->shards);
    if (!c->soon || !c->shards) {
        pm_job_client_free(c);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        struct shard *s = &c->shards[i];
        s->c = c;
        s->index = i;
        s->bus = pm_bus_connect(base, ZMQ_DEALER, eps[i], on_message, s);
        s->heartbeat = evtimer_new(base, on_heartbeat, s);
        c->nshards++; /* freed with the client from here on */
        if (!s->bus || !s->heartbeat) {
            pm_job_client_free(c);
            return NULL;
        }
    }
    for (int i = 0; i < n; i++)
        on_heartbeat(-1, 0, &c->shards[i]); /* usually EAGAIN until connected: retried every RETRY_MS */
    return c;
}

void pm_job_client_drain(struct pm_job_client *c)
{
    if (!c || c->draining)
        return;
    c->draining = 1;
    int linger = CLOSE_LINGER_MS;
    for (int i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        /* Credit 0, then a Ping: the queue answers it after everything it sent us before,
         * so its answer says no job is still on the way (pm_job_client_settle). */
        s->settle_pending = send_credit(s) == 0 && pm_bus_send_ping(s->bus, 0) == 0;
        zmq_setsockopt(pm_bus_socket(s->bus), ZMQ_LINGER, &linger, sizeof linger);
    }
}

static int settling(const struct pm_job_client *c)
{
    for (int i = 0; i < c->nshards; i++)
        if (c->shards[i].settle_pending)
            return 1;
    return 0;
}

static void on_settle_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

void pm_job_client_settle(struct pm_job_client *c, struct event_base *base, int timeout_ms)
{
    if (!c || !c->draining || !settling(c))
        return;
    int expired = 0;
    struct event *deadline = evtimer_new(base, on_settle_deadline, &expired);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (!deadline)
        return;
    evtimer_add(deadline, &tv);
    /* Jobs that arrive meanwhile are handed back at once (draining). */
    while (settling(c) && !expired)
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            break;
    event_free(deadline);
    if (expired)
        pm_log(PM_WARN, "event=drain_unsettled reason=\"no answer to the drain ping\"");
    pm_job_client_return_all(c, "4.3.2 worker shutting down");
}

void pm_job_client_return_all(struct pm_job_client *c, const char *why)
{
    while (c && c->jobs)
        pm_job_return(&c->jobs->pub, why);
}

void pm_job_client_free(struct pm_job_client *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nshards; i++)
        if (c->shards[i].bus && c->shards[i].held)
            flush_held(&c->shards[i]);
    while (c->jobs) {
        struct job_entry *e = c->jobs;
        entry_unlink(e);
        entry_free(e);
    }
    for (int i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        while (s->held) {
            struct held_result *h = s->held;
            s->held = h->next;
            free(h);
        }
        if (s->heartbeat)
            event_free(s->heartbeat);
        pm_bus_close(s->bus);
    }
    free(c->shards);
    if (c->soon)
        event_free(c->soon);
    free(c);
}
