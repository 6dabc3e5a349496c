/* Messages in memory (the active set): a list in load order plus an id hash, dirty tracking,
 * reference counting by jobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"

uint64_t queue_now(void) { return (uint64_t)time(NULL); }

/* A queue id is 64 bits in 16 upper-case hex digits: the time in units of 64 us (46 bits,
 * good until 2112) and an 18-bit tag drawn at random when this process starts. The time
 * part never repeats within a run (an id taken in the same tick borrows the next one: up
 * to 15,625 ids a second before ids run ahead of the clock), so a shard's ids are unique
 * and sorted by arrival, which the store relies on, also across restarts.
 *
 * Several shards started from one config file have nothing that tells them apart, and
 * their ids must still differ: Maildir files are named by queue id (a second message with
 * the same id would look delivered already) and `postmesh queue show ID` finds the shard
 * by it. The tag does that: two shards' ids can meet only if they drew the same tag (one
 * chance in 262,144 per pair of runs) and then also the same tick. 64 bits leave no room
 * for a certainty without a per-shard setting; a restart draws a new tag. The old layout
 * (microseconds and a 12-bit counter) is the same number scaled, so ids from a store
 * written before still sort before the new ones. */
#define ID_TICK_US 64
#define ID_TAG_BITS 18

static uint32_t id_tag(void)
{
    static uint32_t tag;
    static int drawn;
    if (!drawn) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
            struct timeval tv;
            gettimeofday(&tv, NULL);
            r = (uint32_t)tv.tv_usec ^ ((uint32_t)getpid() << 12) ^ (uint32_t)tv.tv_sec;
        }
        tag = r & ((1u << ID_TAG_BITS) - 1);
        drawn = 1;
    }
    return tag;
}

static uint64_t id_compose(uint64_t tick, uint32_t tag)
{
    return (tick << ID_TAG_BITS) | (tag & ((1u << ID_TAG_BITS) - 1));
}

void queue_new_id(char out[QUEUE_ID_LEN + 1])
{
    static uint64_t last_tick;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    uint64_t tick = us / ID_TICK_US;
    if (tick <= last_tick)
        tick = last_tick + 1;
    last_tick = tick;
    snprintf(out, QUEUE_ID_LEN + 1, "%016llX", (unsigned long long)id_compose(tick, id_tag()));
}

struct qmsg *queue_msg_new(struct queue *q, Postmesh__StoredMessage *rec)
{
    struct qmsg *m = calloc(1, sizeof *m);
    if (m)
        m->inflight = calloc(rec->n_recipients + 1, 1);
    if (!m || !m->inflight || (!q->hcap && queue_hash_init(q, 0) < 0)) {
        /* Out of memory. Never in the list without being in the hash: a look-up by id would
         * load a second copy of it from the store (a duplicate delivery). */
        pm_log(PM_ERR, "event=out_of_memory id=%s what=message", rec->queue_id);
        postmesh__stored_message__free_unpacked(rec, NULL);
        if (m)
            free(m->inflight);
        free(m);
        return NULL;
    }
    m->rec = rec;
    m->refs = 1; /* the arrival list's reference; jobs and the dirty list add theirs */
    m->prev = q->tail;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->nmsgs++;
    queue_hash_add(q, m); /* the table exists (made above if need be) */
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
    struct qmsg *m = queue_hash_get(q, id);
    if (m || strlen(id) != QUEUE_ID_LEN)
        return m && !m->removed ? m : NULL;
    /* Not in the active set: the store has it if it is queued at all. */
    Postmesh__StoredMessage *rec = queue_store_record(q, NULL, id, NULL);
    if (!rec)
        return NULL;
    m = queue_msg_new(q, rec);
    if (!m)
        return NULL;
    m->committed = 1;
    m->indexed = 1;
    /* The entry the last commit put, computed alike (if the config changed the expiry since,
     * the old entry is left behind; the loader drops it when it finds it: index.c). */
    m->idx_due = queue_stored_due(q->cfg, rec);
    m->idx_state = queue_stored_state(rec);
    return m;
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

void queue_msg_unlink(struct queue *q, struct qmsg *m)
{
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
}

void queue_msg_remove(struct queue *q, struct qmsg *m)
{
    if (m->removed)
        return;
    m->removed = 1;
    queue_msg_unlink(q, m);
    /* It stays in the id hash until the commit deleted it from the store: until then a
     * look-up must not load the record again as a second, live copy (submit.c written()). */
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
        if (m->rec->recipients[i]->success_owed)
            return 0; /* a DSN success notice is still to go */
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
    queue_domjobs_free(q);
    for (struct qmsg *m = q->head, *n; m; m = n) {
        n = m->next;
        queue_msg_free(m);
    }
    q->head = q->tail = NULL;
    q->nmsgs = 0;
    free(q->htab);
    q->htab = NULL;
    q->hcap = 0;
    free(q->workers);
    q->workers = NULL;
    q->nworkers = 0;
}
