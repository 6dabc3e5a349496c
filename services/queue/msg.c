/* Messages in memory: arrival-ordered list, dirty tracking, reference counting by jobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "queue.h"

uint64_t queue_now(void) { return (uint64_t)time(NULL); }

void queue_new_id(char out[QUEUE_ID_LEN + 1])
{
    /* 13 hex digits of microseconds + 3 of a counter: unique and sorted by arrival. */
    static uint64_t last_us;
    static unsigned counter;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    if (us <= last_us) {
        if (++counter > 0xfff) {
            counter = 0;
            last_us++;
        }
        us = last_us;
    } else {
        counter = 0;
        last_us = us;
    }
    snprintf(out, QUEUE_ID_LEN + 1, "%013llX%03X", (unsigned long long)(us & 0xFFFFFFFFFFFFFull), counter);
}

struct qmsg *queue_msg_new(struct queue *q, Postmesh__StoredMessage *rec)
{
    struct qmsg *m = calloc(1, sizeof *m);
    m->rec = rec;
    m->inflight = calloc(rec->n_recipients + 1, 1);
    m->refs = 1; /* the arrival list's reference; jobs and the dirty list add theirs */
    m->prev = q->tail;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->nmsgs++;
    return m;
}

void queue_msg_mark_dirty(struct queue *q, struct qmsg *m)
{
    if (m->dirty)
        return;
    m->dirty = 1;
    m->refs++; /* the dirty list holds a reference until the commit wrote it */
    m->dirty_next = q->dirty;
    q->dirty = m;
    queue_schedule_commit(q);
}

struct qmsg *queue_msg_find(struct queue *q, const char *id)
{
    for (struct qmsg *m = q->head; m; m = m->next)
        if (strcmp(m->rec->queue_id, id) == 0)
            return m;
    return NULL;
}

void queue_msg_free(struct qmsg *m)
{
    if (m->rec)
        postmesh__stored_message__free_unpacked(m->rec, NULL);
    if (m->pending_submit)
        postmesh__bus_message__free_unpacked(m->pending_submit, NULL);
    free(m->inflight);
    free(m);
}

void queue_msg_remove(struct queue *q, struct qmsg *m)
{
    if (m->removed)
        return;
    m->removed = 1;
    if (m->prev)
        m->prev->next = m->next;
    else
        q->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        q->tail = m->prev;
    m->prev = m->next = NULL;
    q->nmsgs--;
    queue_msg_mark_dirty(q, m); /* the commit deletes it from the store */
    queue_msg_release(q, m);    /* the list's reference */
}

void queue_msg_release(struct queue *q, struct qmsg *m)
{
    (void)q;
    if (--m->refs == 0)
        queue_msg_free(m);
}

int queue_msg_finished(const struct qmsg *m)
{
    if (m->bounce_inflight)
        return 0;
    for (size_t i = 0; i < m->rec->n_recipients; i++) {
        Postmesh__StoredRecipient__State s = m->rec->recipients[i]->state;
        if (m->inflight[i] || (s != POSTMESH__STORED_RECIPIENT__STATE__DELIVERED &&
                               s != POSTMESH__STORED_RECIPIENT__STATE__BOUNCED))
            return 0;
    }
    return 1;
}

void queue_set_str(char **field, const char *value)
{
    /* Unset proto3 strings point at protobuf-c's shared empty string: never free that. */
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = strdup(value ? value : "");
}

void queue_free_memory(struct queue *q)
{
    for (struct job *j = q->jobs, *n; j; j = n) {
        n = j->next;
        queue_msg_release(q, j->msg); /* a message deleted while its job was out is on no list */
        free(j->rcpts);
        free(j);
    }
    q->jobs = NULL;
    for (struct qmsg *m = q->head, *n; m; m = n) {
        n = m->next;
        queue_msg_free(m);
    }
    q->head = q->tail = NULL;
    q->nmsgs = 0;
    free(q->workers);
    q->workers = NULL;
    q->nworkers = 0;
}
