/* Recipient checks for delivery jobs (usercheck.h). The channel to the parent is a
 * non-blocking socket: a send that finds it full fails, and that failure used to read as
 * "users database unavailable" (a deferral). So at most MAX_INFLIGHT questions are out at
 * once; the others wait here in job order and go as answers come back. A burst of
 * recipients is queueing, never a retry delay. */
#include "usercheck.h"

#include <stdlib.h>

#include "privchan.h"

/* Far below what the socket buffer holds (each question is one small datagram), and enough
 * to keep the helper busy. */
#define MAX_INFLIGHT 64

struct check;

struct rcpt_question {
    struct check *check;
    size_t index;
    uint32_t handle; /* the pending question; 0 before it is sent and once answered */
};

struct check {
    struct delivery_checks *owner;
    struct delivery_job *job;
    size_t remaining; /* answers still to come, +1 while the questions are being queued */
    size_t sent;      /* questions handed to the channel so far */
    struct rcpt_question *q;
    struct check *prev, *next;  /* every check, for free */
    struct check *send_next;    /* in the send queue while questions are left to send */
};

struct delivery_checks {
    struct pm_priv_client *priv;
    delivery_checked done;
    void *arg;
    struct check *list;
    int n;
    struct check *send_head, *send_tail; /* checks with questions not sent yet, in order */
    int inflight;
    int sending; /* inside send_more: an answer given inside a send must not recurse */
};

struct delivery_checks *delivery_checks_new(struct pm_priv_client *priv, delivery_checked done, void *arg)
{
    struct delivery_checks *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->priv = priv;
    c->done = done;
    c->arg = arg;
    return c;
}

static void unlink_check(struct check *k)
{
    struct delivery_checks *c = k->owner;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->list = k->next;
    if (k->next)
        k->next->prev = k->prev;
    c->n--;
}

/* One answer (or the starter's share) less; the last one hands the job on. */
static void settle(struct check *k)
{
    if (--k->remaining)
        return;
    struct delivery_checks *c = k->owner;
    struct delivery_job *job = k->job;
    unlink_check(k);
    free(k->q);
    free(k);
    c->done(job, c->arg);
}

static void send_more(struct delivery_checks *c);

static void on_answer(int result, void *arg)
{
    struct rcpt_question *q = arg;
    struct delivery_checks *c = q->check->owner;
    q->handle = 0;
    c->inflight--;
    delivery_job_set_user(q->check->job, q->index, result);
    settle(q->check);
    send_more(c);
}

/* Sends queued questions, oldest job first, while fewer than MAX_INFLIGHT are out. A
 * question answered inside the send (the parent is gone: -1 at once) comes back through
 * on_answer, which finds the flag set and leaves the sending to this loop. */
static void send_more(struct delivery_checks *c)
{
    if (c->sending)
        return;
    c->sending = 1;
    while (c->send_head && c->inflight < MAX_INFLIGHT) {
        struct check *k = c->send_head;
        struct rcpt_question *q = &k->q[k->sent++];
        if (k->sent == k->job->nrcpt) {
            c->send_head = k->send_next;
            if (!c->send_head)
                c->send_tail = NULL;
        }
        c->inflight++;
        uint32_t h = pm_priv_request(c->priv, PM_PRIV_RCPT_EXISTS, k->job->rcpts[q->index].address, NULL, on_answer, q);
        /* 0: the send failed and on_answer already ran, which may have freed k (its last
         * answer): neither is touched again. Otherwise the answer comes from the loop. */
        if (h)
            q->handle = h;
    }
    c->sending = 0;
}

void delivery_checks_start(struct delivery_checks *c, struct delivery_job *job)
{
    struct check *k = calloc(1, sizeof *k);
    struct rcpt_question *q = calloc(job->nrcpt ? job->nrcpt : 1, sizeof *q);
    if (!k || !q) {
        free(k);
        free(q);
        for (size_t i = 0; i < job->nrcpt; i++)
            delivery_job_set_user(job, i, -1);
        c->done(job, c->arg);
        return;
    }
    k->owner = c;
    k->job = job;
    k->q = q;
    k->remaining = job->nrcpt + 1;
    k->next = c->list;
    if (k->next)
        k->next->prev = k;
    c->list = k;
    c->n++;
    for (size_t i = 0; i < job->nrcpt; i++) {
        q[i].check = k;
        q[i].index = i;
    }
    if (job->nrcpt) {
        if (c->send_tail)
            c->send_tail->send_next = k;
        else
            c->send_head = k;
        c->send_tail = k;
    }
    send_more(c);
    settle(k); /* the starter's share: done never runs before the job is queued */
}

int delivery_checks_pending(const struct delivery_checks *c) { return c ? c->n : 0; }

void delivery_checks_free(struct delivery_checks *c)
{
    if (!c)
        return;
    while (c->list) {
        struct check *k = c->list;
        for (size_t i = 0; i < k->sent; i++)
            if (k->q[i].handle)
                pm_priv_cancel(c->priv, k->q[i].handle);
        unlink_check(k);
        delivery_job_free(k->job);
        free(k->q);
        free(k);
    }
    free(c);
}
