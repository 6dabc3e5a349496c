/* The retry schedule and the periodic pass: expiry of old deferred mail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
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

/* Deferred recipients of messages older than max_lifetime fail now, with the last error. */
void queue_schedule_pass(struct queue *q, uint64_t now)
{
    uint64_t life = (uint64_t)q->cfg->queue.max_lifetime;
    for (struct qmsg *m = q->head; m; m = m->next) {
        if (!m->committed || now < m->rec->arrival_time + life)
            continue;
        int changed = 0;
        for (size_t i = 0; i < m->rec->n_recipients; i++) {
            Postmesh__StoredRecipient *r = m->rec->recipients[i];
            if (m->inflight[i] || r->state != ST(DEFERRED))
                continue;
            char buf[1024];
            snprintf(buf, sizeof buf, "message expired after %llu seconds in the queue; last error: %s",
                     (unsigned long long)(now - m->rec->arrival_time), r->last_error);
            queue_set_str(&r->last_error, buf);
            /* Like Postfix: Action failed, the Status keeps the last temporary code. */
            if (!r->dsn_status[0])
                queue_set_str(&r->dsn_status, "4.4.7");
            r->state = ST(FAILED);
            changed = 1;
            pm_log(PM_INFO, "event=rcpt_expired id=%s to=%s dsn=%s", m->rec->queue_id, r->address, r->dsn_status);
        }
        if (changed) {
            queue_msg_mark_dirty(q, m);
            m->next_due = 0;
        }
    }
}
