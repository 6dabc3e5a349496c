/* The retry schedule and expiry: when a deferred recipient is tried again, and how one whose
 * message outlived queue.max_lifetime fails (the periodic pass that applies them is the full
 * dispatch walk in dispatch.c, run by queue_tick); what the metrics say about the queue's
 * contents (depth by state, recipient results applied). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "queue.h"

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

/* Like Postfix: retry_min after the first failure, doubling, capped at retry_max. */
uint64_t queue_retry_delay(uint64_t attempts, uint64_t retry_min, uint64_t retry_max)
{
    uint64_t d = retry_min ? retry_min : 1;
    for (uint64_t i = 1; i < attempts && d < retry_max; i++)
        d *= 2;
    return d < retry_max ? d : retry_max;
}

const char *queue_rcpt_state_name(Postmesh__StoredRecipient__State s)
{
    switch (s) {
    case ST(PENDING): return "pending";
    case ST(DEFERRED): return "deferred";
    case ST(DELIVERED): return "delivered";
    case ST(FAILED): return "failed";
    case ST(BOUNCED): return "bounced";
    default: return "unknown";
    }
}

/* A deferred recipient whose message outlived queue.max_lifetime fails now, keeping its
 * last error (and, like Postfix, its last temporary status with Action: failed). */
void queue_expire_rcpt(struct qmsg *m, Postmesh__StoredRecipient *r, uint64_t now)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "message expired after %llu seconds in the queue; last error: %s",
             (unsigned long long)(now - m->rec->arrival_time), r->last_error);
    queue_set_str(&r->last_error, buf);
    if (!r->dsn_status[0])
        queue_set_str(&r->dsn_status, "4.4.7");
    r->state = ST(FAILED);
    char to[PM_LOGV_SIZE], dsn[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=rcpt_expired id=%s to=%s dsn=%s", m->rec->queue_id, PM_LOGV(to, r->address),
           PM_LOGV(dsn, r->dsn_status));
}

void queue_expire_msg(struct queue *q, struct qmsg *m, uint64_t now)
{
    if (now < m->rec->arrival_time + (uint64_t)q->cfg->queue.max_lifetime)
        return;
    int changed = 0;
    for (size_t i = 0; i < m->rec->n_recipients; i++) {
        Postmesh__StoredRecipient *r = m->rec->recipients[i];
        if (!m->inflight[i] && r->state == ST(DEFERRED)) {
            queue_expire_rcpt(m, r, now);
            changed = 1;
        }
    }
    if (changed)
        queue_msg_mark_dirty(q, m);
}

/* Depth by state at scrape time without reading the store: the committed messages by stored
 * state are counted as the commits write them (index.c); those in memory are then shown as
 * they are now (with what is in flight: "active"), a walk over the active set only. */
static void collect_depth(void *arg)
{
    static const char *const states[] = {"queued", "deferred", "hold", "active"};
    struct queue *q = arg;
    double n[4] = {0};
    for (int k = 0; k < QSTATE_N; k++)
        n[k] = (double)q->depth[k];
    for (const struct qmsg *m = q->head; m; m = m->next) {
        if (!m->committed || m->removed || !m->indexed)
            continue;
        n[m->idx_state]--;
        if (queue_msg_finished(m))
            continue;
        const char *st = queue_msg_state(m);
        for (int k = 0; k < 4; k++)
            if (strcmp(st, states[k]) == 0)
                n[k]++;
    }
    for (int k = 0; k < 4; k++)
        pm_metric_set(PM_M_QUEUE_MESSAGES, n[k] > 0 ? n[k] : 0, states[k], NULL);
}

int queue_metrics_serve(struct queue *q)
{
    pm_metrics_on_collect(collect_depth, q);
    return pm_metrics_serve(q->base, NULL, NULL); /* ready: both ROUTERs are bound by now */
}

void queue_count_result(const char *kind, const Postmesh__RecipientResult *res)
{
    char result[32] = "missing";
    if (res)
        pm_metric_enum(&postmesh__recipient_result__status__descriptor, (int)res->status, result, sizeof result);
    pm_metric_add(PM_M_QUEUE_DELIVERIES, 1, kind, result);
}
