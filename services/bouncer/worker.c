#include "worker.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "compose.h"
#include "jobclient.h"
#include "log.h"
#include "queueset.h"

#define SUBMIT_RETRY_MS 100

/* One job from arrival to its JobResult. */
struct task {
    struct task *next, *prev;
    struct bouncer_worker *w;
    struct pm_job *handle;    /* answered in task_finish */
    uint64_t job_id;
    uint64_t request_id;      /* of the last Submit, 0 before one was sent */
    int shard;                /* where that Submit went; -1: not sent (yet, or again) */
    uint64_t sent_ms;         /* monotonic: when */
    uint32_t rcpt_index;
    char *queue_id;
    char *sender;             /* the DSN's recipient */
    const char *action;       /* "failed" or "delayed" (static) */
    int smtputf8;
    int requiretls;           /* the message's REQUIRETLS: so is the notice's (RFC 8689 5) */
    int timeout_ms;
    uint64_t deadline_ms;     /* monotonic: TEMPFAIL the job if no reply by then */
    char *dsn;                /* kept until answered when there is another shard to try */
    size_t dsn_len;
    struct event *timer;
};

struct task_list {
    struct task *head, *tail;
    int n;
};

struct bouncer_worker {
    struct event_base *base;
    struct bouncer_worker_config cfg;
    char hostname[256];
    char name[300];
    struct pm_job_client *jobs; /* Credit, Job, JobResult */
    struct pm_queueset *queues; /* Submit, SubmitReply: a DEALER per shard */
    struct task_list waiting, active;
    uint64_t next_request_id;
    struct event *drain_deadline; /* SIGTERM: stop waiting for replies after this */
    int draining;
};

static void list_push(struct task_list *l, struct task *t)
{
    t->next = NULL;
    t->prev = l->tail;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->n++;
}

static void list_remove(struct task_list *l, struct task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->next = t->prev = NULL;
    l->n--;
}

static void task_free(struct task *t)
{
    if (t->timer)
        event_free(t->timer);
    free(t->queue_id);
    free(t->sender);
    free(t->dsn);
    free(t);
}

/* ------------------------------------------------------------------ messages to the queue */

static void send_result(struct pm_job *handle, uint32_t index, Postmesh__RecipientResult__Status status,
                        const char *dsn_status, const char *text)
{
    Postmesh__RecipientResult rr = POSTMESH__RECIPIENT_RESULT__INIT;
    rr.index = index;
    rr.status = status;
    rr.dsn_status = (char *)dsn_status;
    rr.text = (char *)text;
    Postmesh__RecipientResult *rrs[1] = {&rr};
    pm_job_finish(handle, rrs, 1);
}

static void task_start(struct task *t);

/* Answers the job, frees the task and lets the next waiting one use the slot. */
static void task_finish(struct task *t, struct task_list *from, Postmesh__RecipientResult__Status status,
                        const char *dsn_status, const char *text)
{
    struct bouncer_worker *w = t->w;
    list_remove(from, t);
    send_result(t->handle, t->rcpt_index, status, dsn_status, text);
    task_free(t);
    while (w->waiting.head && w->active.n < w->cfg.slots) {
        struct task *next = w->waiting.head;
        list_remove(&w->waiting, next);
        task_start(next);
    }
    if (w->draining && !w->active.head)
        event_base_loopbreak(w->base);
}

static void arm(struct task *t, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t->timer, &tv);
}

/* How long one shard may take to commit a DSN before it goes to another (well under
 * submit_timeout, so the second shard still has time). */
static uint64_t shard_timeout_ms(const struct bouncer_worker *w)
{
    int t = w->cfg.submit_timeout_ms / 4;
    return t < 1000 ? 1000 : t > 5000 ? 5000 : (uint64_t)t;
}

/* Sends t's Submit to the first shard that takes it, never to avoid (-1: any). A DEALER
 * refuses (EAGAIN) while its shard is not connected, e.g. for a moment after start or
 * while the queue restarts: then the caller tries again every SUBMIT_RETRY_MS until the
 * deadline. 0 sent, -1 not now. */
static int try_submit(struct task *t, int avoid)
{
    struct bouncer_worker *w = t->w;
    char *rcpts[1] = {t->sender};
    Postmesh__Submit sub = POSTMESH__SUBMIT__INIT;
    sub.sender = "";
    sub.n_recipients = 1;
    sub.recipients = rcpts;
    sub.body.data = (uint8_t *)t->dsn;
    sub.body.len = t->dsn_len;
    sub.client_address = "local";
    sub.helo = w->hostname;
    sub.is_dsn = 1;
    sub.smtputf8 = t->smtputf8;
    /* RFC 8689 5: a notice about a REQUIRETLS message is protected like the message; from
     * the null sender, the mta passes it on with REQUIRETLS wherever that is offered. */
    sub.requiretls = t->requiretls;
    sub.origin_id = t->queue_id;
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    msg.submit = &sub;
    int order[PM_QUEUESET_MAX];
    int n = t->dsn ? pm_queueset_order(w->queues, avoid, order) : 0;
    for (int k = 0; k < n; k++) {
        /* A fresh id per send: an answer from a shard given up on matches nothing. */
        msg.request_id = ++w->next_request_id;
        if (pm_queueset_send_to(w->queues, order[k], &msg) < 0)
            continue;
        t->request_id = msg.request_id;
        t->shard = order[k];
        t->sent_ms = pm_mono_ms();
        if (pm_queueset_size(w->queues) == 1) {
            /* The queue holds a copy now, and there is no other shard to send it to. */
            free(t->dsn);
            t->dsn = NULL;
        }
        return 0;
    }
    return -1;
}

/* After a send: wake at the deadline, or when the shard has had its time to answer. */
static void arm_wait(struct task *t, uint64_t now)
{
    uint64_t wake = t->deadline_ms;
    if (t->dsn && t->sent_ms + shard_timeout_ms(t->w) < wake)
        wake = t->sent_ms + shard_timeout_ms(t->w);
    arm(t, wake > now ? wake - now : 1);
}

/* The shard of t's Submit did not answer in time or lost its connection: another shard.
 * If the first one did commit the DSN and only its answer is missing, the sender gets the
 * notice twice: at-least-once, never a lost one. 0 sent elsewhere. */
static int failover(struct task *t, const char *why)
{
    int from = t->shard;
    if (try_submit(t, from) < 0)
        return -1;
    pm_log(PM_WARN, "event=dsn_failover id=%s job=%" PRIu64 " from=%s to=%s reason=%s", t->queue_id, t->job_id,
           pm_queueset_endpoint(t->w->queues, from), pm_queueset_endpoint(t->w->queues, t->shard), why);
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct task *t = arg;
    struct bouncer_worker *w = t->w;
    uint64_t now = pm_mono_ms();
    if (now < t->deadline_ms) {
        if (t->shard < 0) {
            if (try_submit(t, -1) < 0) {
                arm(t, SUBMIT_RETRY_MS);
                return;
            }
        } else if (t->dsn && now >= t->sent_ms + shard_timeout_ms(w) && pm_queueset_other_up(w->queues, t->shard)) {
            pm_queueset_suspect(w->queues, t->shard, "submit_timeout");
            if (failover(t, "timeout") < 0)
                t->sent_ms = now; /* nowhere else: wait for this one another round */
        } else if (t->dsn && now >= t->sent_ms + shard_timeout_ms(w)) {
            t->sent_ms = now;
        }
        arm_wait(t, now);
        return;
    }
    int sent = t->shard >= 0;
    pm_log(PM_WARN, "event=dsn_timeout id=%s job=%" PRIu64 " request=%" PRIu64 " reason=%s", t->queue_id, t->job_id,
           t->request_id, sent ? "no_reply" : "queue_unreachable");
    task_finish(t, &t->w->active, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0",
                sent ? "4.3.0 queue did not commit the DSN in time" : "4.3.0 queue not reachable for the DSN");
}

/* Puts t into the active list and submits its DSN; the timer covers both a send that has
 * to wait for the connection and a reply that never comes. */
static void task_start(struct task *t)
{
    struct bouncer_worker *w = t->w;
    /* Answer before the lease ends, however long the task waited for a slot: otherwise the
     * queue sends the job again meanwhile and the sender gets two notices. With too little
     * lease left, hand it back unsubmitted. "Too little" is 2 s, or half the lease when the
     * lease itself is that short: otherwise every job of a short lease arrives with too
     * little left and goes back and forth without end. */
    uint64_t now = pm_mono_ms(), lease_end = t->handle->deadline_ms;
    uint64_t reserve = t->handle->lease_ms / 2 < 2000 ? t->handle->lease_ms / 2 : 2000;
    if (lease_end <= now + reserve) {
        pm_job_return(t->handle, "4.3.2 waited too long in the bouncer");
        task_free(t);
        return;
    }
    t->shard = -1;
    t->deadline_ms = now + (uint64_t)t->timeout_ms;
    if (t->deadline_ms > lease_end - reserve / 2) /* lease_end > now + reserve, see above */
        t->deadline_ms = lease_end - reserve / 2;
    t->timeout_ms = (int)(t->deadline_ms - now);
    list_push(&w->active, t);
    t->timer = evtimer_new(w->base, on_timer, t);
    if (!t->timer) {
        task_finish(t, &w->active, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0", "4.3.0 out of memory");
        return;
    }
    if (try_submit(t, -1) == 0)
        arm_wait(t, now);
    else
        arm(t, SUBMIT_RETRY_MS);
}

/* ------------------------------------------------------------------ jobs */

static void unique_token(char *dst, size_t size, const char *queue_id)
{
    uint8_t rnd[6] = {0};
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)dst;
        memcpy(rnd, &x, sizeof rnd);
    }
    snprintf(dst, size, "%.20s.%02X%02X%02X%02X%02X%02X", queue_id && *queue_id ? queue_id : "dsn", rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5]);
}

static int has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

#define RETURN_FULL_LIMIT 50000 /* Postfix's bounce_size_limit */

/* Composes the DSN for job into t. 0 or -1. */
static int compose_for_job(struct bouncer_worker *w, const Postmesh__Job *job, struct task *t)
{
    struct bouncer_rcpt *rcpts = calloc(job->n_report, sizeof *rcpts);
    int return_full = 0;
    if (!rcpts)
        return -1;
    for (size_t i = 0; i < job->n_report; i++) {
        const Postmesh__ReportRecipient *r = job->report[i];
        rcpts[i] = (struct bouncer_rcpt){r->address, r->original, r->status, r->action,
                                         r->remote_mta, r->diagnostic, r->last_attempt, r->dsn ? r->dsn->orcpt : NULL};
        return_full |= !job->delay_notice && strcmp(bouncer_rcpt_action(&rcpts[i], 0), "failed") == 0;
    }
    /* RET=FULL returns the whole message with a failure (the queue then sent all of it),
     * up to RETURN_FULL_LIMIT octets; a bigger one returns its headers, as Postfix does past
     * bounce_size_limit: a notice as big as the message would meet the same size limit
     * that may have refused it, and a notice to <> that is refused is lost. */
    return_full &= job->dsn_ret == POSTMESH__DSN_RET__DSN_RET_FULL && job->body.len <= RETURN_FULL_LIMIT;
    /* RFC 8689 5: a REQUIRETLS message is returned as if RET=HDRS (the queue sends only its
     * header section already; this holds even if it did not). */
    return_full &= !job->requiretls;
    char unique[64];
    unique_token(unique, sizeof unique, job->queue_id);
    struct bouncer_dsn_in in = {
        .hostname = w->hostname,
        .queue_id = job->queue_id,
        .sender = t->sender,
        .delay_notice = job->delay_notice,
        .arrival_time = job->arrival_time,
        .now = (uint64_t)time(NULL),
        .delay_warning = w->cfg.delay_warning,
        .max_lifetime = w->cfg.max_lifetime,
        .unique = unique,
        .rcpts = rcpts,
        .nrcpts = job->n_report,
        .headers = job->body.data,
        .headers_len = job->body.len,
        .envid = job->dsn_envid,
        .return_full = return_full,
        .requiretls = job->requiretls,
    };
    struct bouncer_dsn dsn;
    int rc = bouncer_compose(&in, &dsn);
    free(rcpts);
    if (rc < 0)
        return -1;
    t->dsn = dsn.data;
    t->dsn_len = dsn.len;
    return 0;
}

/* Validated at the edge (bus_rules.c): a queue id and at least one recipient. */
static void on_job(struct pm_job *handle, void *arg)
{
    struct bouncer_worker *w = arg;
    const Postmesh__Job *job = handle->job;
    const char *qid = job->queue_id;
    uint32_t index = job->recipients[0]->index;
    /* The DSN goes to the original envelope sender: recipient 0. */
    const char *sender = job->recipients[0]->address;
    char lv[PM_LOGV_SIZE], sv[PM_LOGV_SIZE];
    /* For the log: delayed, failed if any failed, else the first one's (delivered, relayed). */
    const char *action = job->delay_notice ? "delayed" : "failed";
    int any_failed = 0;
    for (size_t i = 0; !job->delay_notice && i < job->n_report; i++) {
        struct bouncer_rcpt r = {.action = job->report[i]->action};
        any_failed |= strcmp(bouncer_rcpt_action(&r, 0), "failed") == 0;
    }
    if (!job->delay_notice && !any_failed && job->n_report) {
        struct bouncer_rcpt r = {.action = job->report[0]->action};
        action = bouncer_rcpt_action(&r, 0);
    }

    if (!*sender) {
        /* A failed bounce: notifying nobody is the only way to avoid bounce loops. */
        pm_log(PM_WARN, "event=dsn_suppressed id=%s reason=null_sender action=%s recipients=%zu", qid, action,
               job->n_report);
        for (size_t i = 0; i < job->n_report; i++)
            pm_log(PM_WARN, "event=failed_bounce id=%s rcpt=%s status=%s", qid, PM_LV(lv, job->report[i]->address),
                   PM_LOGV(sv, job->report[i]->status));
        send_result(handle, index, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED, "2.0.0",
                    "2.0.0 null sender: not bounced, logged");
        return;
    }
    if (job->n_report == 0) {
        pm_log(PM_WARN, "event=dsn_suppressed id=%s reason=empty_report", qid);
        send_result(handle, index, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED, "2.0.0",
                    "2.0.0 nothing to report");
        return;
    }
    struct task *t = calloc(1, sizeof *t);
    if (t) {
        t->w = w;
        t->handle = handle;
        t->job_id = job->job_id;
        t->rcpt_index = index;
        t->queue_id = strdup(qid);
        t->sender = strdup(sender);
        t->action = action;
        t->smtputf8 = has_8bit(sender);
        t->requiretls = job->requiretls;
        t->timeout_ms = w->cfg.submit_timeout_ms; /* task_start bounds it by the lease */
    }
    if (!t || !t->queue_id || !t->sender || compose_for_job(w, job, t) < 0) {
        pm_log(PM_ERR, "event=dsn_compose_failed id=%s", qid);
        send_result(handle, index, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0",
                    "4.3.0 cannot compose the DSN");
        if (t)
            task_free(t);
        return;
    }
    pm_log(PM_DEBUG, "event=job id=%s job=%" PRIu64 " to=%s action=%s recipients=%zu size=%zu", qid, job->job_id,
           PM_LV(lv, sender), action, job->n_report, t->dsn_len);
    if (w->active.n < w->cfg.slots)
        task_start(t);
    else
        list_push(&w->waiting, t);
}

static void on_submit_reply(struct bouncer_worker *w, int shard, uint64_t request_id, const Postmesh__SubmitReply *r)
{
    struct task *t = w->active.head;
    while (t && t->request_id != request_id)
        t = t->next;
    /* Only the shard the DSN went to may say it committed it. */
    if (t && t->shard != shard) {
        pm_log(PM_WARN, "event=bus_drop reason=wrong_shard request=%" PRIu64 " endpoint=%s", request_id,
               pm_queueset_endpoint(w->queues, shard));
        return;
    }
    if (!t) {
        /* Its job was already answered TEMPFAIL: if this says COMMITTED the sender may get
         * the DSN twice (at-least-once), which beats never. */
        char id[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=late_submit_reply request=%" PRIu64 " status=%d dsn_id=%s", request_id,
               (int)r->status, PM_LOGV(id, r->queue_id));
        return;
    }
    char lv[PM_LOGV_SIZE], tv[PM_LOGV_SIZE];
    switch (r->status) {
    case POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED: {
        char text[128], id[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=dsn id=%s dsn_id=%s to=%s action=%s%s", t->queue_id, PM_LOGV(id, r->queue_id),
               PM_LV(lv, t->sender), t->action, t->requiretls ? " requiretls=yes" : "");
        snprintf(text, sizeof text, "2.0.0 DSN queued as %.40s", r->queue_id);
        task_finish(t, &w->active, POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED, "2.0.0", text);
        break;
    }
    case POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL:
        /* Submitting the same DSN again would be refused again: let the queue give up. */
        pm_log(PM_WARN, "event=dsn_rejected id=%s to=%s text=%s", t->queue_id, PM_LV(lv, t->sender),
               PM_LV(tv, r->text));
        task_finish(t, &w->active, POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL, "5.3.0",
                    *r->text ? r->text : "5.3.0 queue refused the DSN");
        break;
    default:
        pm_log(PM_WARN, "event=dsn_deferred id=%s to=%s text=%s", t->queue_id, PM_LV(lv, t->sender),
               PM_LV(tv, r->text));
        task_finish(t, &w->active, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0",
                    *r->text ? r->text : "4.3.0 queue could not commit the DSN");
        break;
    }
}

static void on_submit_message(int shard, Postmesh__BusMessage *msg, void *arg)
{
    if (msg->body_case == POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY) /* a body of its case: the edge */
        on_submit_reply(arg, shard, msg->request_id, msg->submit_reply);
    else
        pm_log(PM_WARN, "event=bus_unexpected socket=submit body=%d", (int)msg->body_case);
}

/* shard's connection went away, and with it the answers owed on it: DSNs still held go to
 * another shard (or wait for one); a DSN already let go (one shard) is a TEMPFAIL now, so
 * the queue tries the bounce again instead of the job waiting out submit_timeout. */
static void on_shard_lost(int shard, void *arg)
{
    struct bouncer_worker *w = arg;
    struct task *next;
    for (struct task *t = w->active.head; t; t = next) {
        next = t->next;
        if (t->shard != shard)
            continue;
        if (t->dsn) {
            if (failover(t, "connection_lost") == 0) {
                arm_wait(t, pm_mono_ms());
            } else {
                t->shard = -1; /* sent again by the timer, wherever a shard comes back */
                arm(t, SUBMIT_RETRY_MS);
            }
            continue;
        }
        pm_log(PM_WARN, "event=dsn_lost id=%s job=%" PRIu64 " request=%" PRIu64 " endpoint=%s", t->queue_id, t->job_id,
               t->request_id, pm_queueset_endpoint(w->queues, shard));
        task_finish(t, &w->active, POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL, "4.3.0",
                    "4.3.0 queue connection lost before the DSN was committed");
        next = w->active.head; /* task_finish may have started waiting tasks: look again */
    }
}

/* ------------------------------------------------------------------ lifetime */

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bouncer_worker *w = arg;
    pm_log(PM_WARN, "event=drain_timeout pending=%d", w->active.n);
    event_base_loopbreak(w->base);
}

void bouncer_worker_drain(struct bouncer_worker *w, int timeout_ms)
{
    if (w->draining)
        return;
    w->draining = 1;
    pm_job_client_drain(w->jobs);
    /* Not submitted yet: hand back. Submitted: the queue is committing the DSN now, so wait
     * for its reply (briefly) rather than have the job sent again and the notice twice. */
    while (w->waiting.head) {
        struct task *t = w->waiting.head;
        list_remove(&w->waiting, t);
        pm_job_return(t->handle, "4.3.2 bouncer stopping");
        task_free(t);
    }
    if (!w->active.head) {
        event_base_loopbreak(w->base);
        return;
    }
    w->drain_deadline = evtimer_new(w->base, on_drain_deadline, w);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (w->drain_deadline)
        evtimer_add(w->drain_deadline, &tv);
}

struct bouncer_worker *bouncer_worker_new(struct event_base *base, const struct bouncer_worker_config *cfg)
{
    struct bouncer_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->base = base;
    w->cfg = *cfg;
    if (w->cfg.slots < 1)
        w->cfg.slots = 1;
    if (w->cfg.submit_timeout_ms < 1)
        w->cfg.submit_timeout_ms = 1;
    snprintf(w->hostname, sizeof w->hostname, "%s", cfg->hostname ? cfg->hostname : "localhost");
    snprintf(w->name, sizeof w->name, "bouncer@%s/%d", w->hostname, (int)getpid());
    w->cfg.hostname = w->hostname;
    /* Request ids only need to be unique on this socket; a random start keeps replies meant
     * for a previous run of this process from matching. */
    if (getrandom(&w->next_request_id, sizeof w->next_request_id, GRND_NONBLOCK) != sizeof w->next_request_id)
        w->next_request_id = (uint64_t)time(NULL) << 20;
    w->next_request_id >>= 1;
    const char *one[1] = {cfg->endpoint};
    const char *const *eps = cfg->nendpoints > 0 ? cfg->endpoints : one;
    int neps = cfg->nendpoints > 0 ? cfg->nendpoints : 1;
    w->queues = pm_queueset_new(base, eps, neps, on_submit_message, on_shard_lost, w);
    struct pm_job_client_config jc = {
        .endpoint = cfg->endpoint,
        .endpoints = cfg->endpoints,
        .nendpoints = cfg->nendpoints,
        .kind = POSTMESH__WORKER_KIND__WORKER_BOUNCER,
        .name = w->name,
        .capacity = w->cfg.slots,
        .backlog = w->cfg.slots,
        .on_job = on_job,
        .arg = w,
    };
    w->jobs = w->queues ? pm_job_client_new(base, &jc) : NULL;
    if (!w->jobs) {
        bouncer_worker_free(w);
        return NULL;
    }
    return w;
}

void bouncer_worker_free(struct bouncer_worker *w)
{
    if (!w)
        return;
    struct task_list *lists[2] = {&w->waiting, &w->active};
    for (int i = 0; i < 2; i++)
        while (lists[i]->head) {
            struct task *t = lists[i]->head;
            list_remove(lists[i], t);
            task_free(t);
        }
    pm_job_client_return_all(w->jobs, "4.3.2 bouncer stopping");
    if (w->draining)
        pm_job_client_settle(w->jobs, w->base, PM_JOB_SETTLE_MS); /* jobs already on the way go back too */
    pm_job_client_free(w->jobs);
    if (w->drain_deadline)
        event_free(w->drain_deadline);
    pm_queueset_free(w->queues);
    free(w);
}
