#include "usercheck.h"

#include <stdlib.h>

#include "privchan.h"

struct check;

struct rcpt_question {
    struct check *check;
    size_t index;
    uint32_t handle; /* 0 once answered */
};

struct check {
    struct delivery_checks *owner;
    struct delivery_job *job;
    size_t remaining; /* answers still to come, +1 while the questions are being sent */
    struct rcpt_question *q;
    struct check *prev, *next;
};

struct delivery_checks {
    struct pm_priv_client *priv;
    delivery_checked done;
    void *arg;
    struct check *list;
    int n;
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

static void on_answer(int result, void *arg)
{
    struct rcpt_question *q = arg;
    q->handle = 0;
    delivery_job_set_user(q->check->job, q->index, result);
    settle(q->check);
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
        q[i].handle = 1; /* a synchronous failure answers (and clears it) inside the call */
        uint32_t h = pm_priv_request(c->priv, PM_PRIV_RCPT_EXISTS, job->rcpts[i].address, NULL, on_answer, &q[i]);
        if (q[i].handle)
            q[i].handle = h;
    }
    settle(k);
}

int delivery_checks_pending(const struct delivery_checks *c) { return c ? c->n : 0; }

void delivery_checks_free(struct delivery_checks *c)
{
    if (!c)
        return;
    while (c->list) {
        struct check *k = c->list;
        for (size_t i = 0; i < k->job->nrcpt; i++)
            if (k->q[i].handle)
                pm_priv_cancel(c->priv, k->q[i].handle);
        unlink_check(k);
        delivery_job_free(k->job);
        free(k->q);
        free(k);
    }
    free(c);
}
