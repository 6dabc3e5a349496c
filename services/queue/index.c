/* The due index and the bounded active set (issue 12, "deep queues").
 *
 * Every stored message has one entry in the "due" sub-database: key = the time (seconds,
 * big-endian, so keys sort by time) at which its stored record next needs the queue, then
 * its queue id; value = one byte, its stored state (queued, deferred, hold). The entry is
 * written in the same transaction as the record (store.c), so it is never out of step with
 * it, also after a crash. Only a bounded set of messages is in memory (queue.active_limit,
 * like Postfix's active queue): those due now, in flight, or changed and not yet written. A
 * message that is not due leaves memory once its record is committed; the loader brings it
 * back when its time comes by reading the index from its first key up to now, so neither
 * dispatch nor start-up looks at messages that are not due.
 *
 * Why LMDB and not an in-memory timer heap: a heap would have to be built at start-up from
 * every record (decoding a million records takes minutes, and the heap alone is tens of MB),
 * and kept in step with a store it does not live in. The index costs one extra small put and
 * delete per commit, and start-up reads only its keys (the state byte gives the depth counters). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue.h"

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

void queue_due_key(uint8_t key[QUEUE_DUE_KEY_LEN], uint64_t due, const char *id)
{
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(due >> (56 - 8 * i));
    memcpy(key + 8, id, QUEUE_ID_LEN);
}

uint64_t queue_due_key_time(const uint8_t *key)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = (t << 8) | key[i];
    return t;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The one rule for when a message next needs the queue, for its stored entry and for the
 * dispatch walk alike. A pending recipient, a failed one waiting for its bounce (or its DSN
 * retry, in memory), or nothing left to do (to be removed) is due at once (at_once); a
 * deferred one at its next attempt, its message's expiry and delay warning. A held message
 * waits only for its expiry. A recipient in flight waits for its job's result. */
uint64_t queue_due_rule(const struct pm_config *cfg, const Postmesh__StoredMessage *rec, const uint8_t *inflight,
                        int bounce_inflight, uint64_t bounce_retry_at, uint64_t at_once)
{
    uint64_t due = QUEUE_DUE_NEVER;
    int deferred = 0, open = 0;
    for (size_t i = 0; i < rec->n_recipients; i++) {
        Postmesh__StoredRecipient__State s = rec->recipients[i]->state;
        if (inflight && inflight[i]) {
            open = 1;
            continue;
        }
        int owed = s == ST(DELIVERED) && rec->recipients[i]->success_owed; /* a success notice */
        open |= (s != ST(DELIVERED) && s != ST(BOUNCED)) || owed;
        if (s == ST(DEFERRED)) {
            deferred = 1;
            if (!rec->hold)
                due = min_u64(due, rec->recipients[i]->next_attempt);
        } else if (rec->hold) {
            continue;
        } else if (s == ST(PENDING)) {
            return at_once;
        } else if ((s == ST(FAILED) || owed) && !bounce_inflight) {
            if (!bounce_retry_at)
                return at_once;
            due = min_u64(due, bounce_retry_at);
        }
    }
    if (!open) /* nothing left to do: due to be removed (once a DSN job is answered) */
        return bounce_inflight ? QUEUE_DUE_NEVER : at_once;
    if (deferred) {
        due = min_u64(due, rec->arrival_time + (uint64_t)cfg->queue.max_lifetime);
        if (!rec->hold && !rec->delay_warned && cfg->queue.delay_warning > 0 && rec->sender[0] && !rec->is_dsn)
            due = min_u64(due, rec->arrival_time + (uint64_t)cfg->queue.delay_warning);
    }
    return due;
}

/* Stored: nothing in flight (after a restart a job is sent again), "at once" keyed by the
 * message's arrival (queue.h). */
uint64_t queue_stored_due(const struct pm_config *cfg, const Postmesh__StoredMessage *rec)
{
    return queue_due_rule(cfg, rec, NULL, 0, 0, rec->arrival_time);
}

uint8_t queue_stored_state(const Postmesh__StoredMessage *rec)
{
    if (rec->hold)
        return QSTATE_HOLD;
    for (size_t i = 0; i < rec->n_recipients; i++)
        if (rec->recipients[i]->state == ST(DEFERRED))
            return QSTATE_DEFERRED;
    return QSTATE_QUEUED;
}

/* ---- the id hash of the active set (chained, doubled at load factor 1) ---- */

static size_t id_hash(const char *id)
{
    size_t h = 1469598103934665603ull;
    for (int i = 0; i < QUEUE_ID_LEN && id[i]; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    return h;
}

static int hash_resize(struct queue *q, size_t cap)
{
    struct qmsg **t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < q->hcap; i++)
        for (struct qmsg *m = q->htab[i], *n; m; m = n) {
            n = m->hnext;
            size_t b = id_hash(m->rec->queue_id) & (cap - 1);
            m->hnext = t[b];
            t[b] = m;
        }
    free(q->htab);
    q->htab = t;
    q->hcap = cap;
    return 0;
}

int queue_hash_init(struct queue *q, size_t expected)
{
    size_t cap = 1024;
    while (cap < expected && cap < ((size_t)1 << 40))
        cap *= 2;
    return q->hcap >= cap ? 0 : hash_resize(q, cap);
}

void queue_hash_add(struct queue *q, struct qmsg *m)
{
    /* Sized at start for the active set (queue_hash_init, before any message); beyond it (a
     * burst of fresh submissions) the table doubles, and if that fails the chains just get
     * longer. */
    if (q->nmsgs > q->hcap)
        (void)hash_resize(q, q->hcap * 2);
    size_t b = id_hash(m->rec->queue_id) & (q->hcap - 1);
    m->hnext = q->htab[b];
    q->htab[b] = m;
}

void queue_hash_del(struct queue *q, struct qmsg *m)
{
    if (!q->hcap)
        return;
    for (struct qmsg **p = &q->htab[id_hash(m->rec->queue_id) & (q->hcap - 1)]; *p; p = &(*p)->hnext)
        if (*p == m) {
            *p = m->hnext;
            m->hnext = NULL;
            return;
        }
}

struct qmsg *queue_hash_get(const struct queue *q, const char *id)
{
    if (!q->hcap)
        return NULL;
    for (struct qmsg *m = q->htab[id_hash(id) & (q->hcap - 1)]; m; m = m->hnext)
        if (strcmp(m->rec->queue_id, id) == 0)
            return m;
    return NULL;
}

/* ---- the active set ---- */

static void dec(size_t *n) /* counts are never below 0, even after a duplicate entry */
{
    if (*n)
        (*n)--;
}

/* What one call of the loader found besides messages: entries to repair (store.c). */
struct load_fix {
    uint8_t drop[64][QUEUE_DUE_KEY_LEN], never[64][QUEUE_DUE_KEY_LEN];
    uint8_t drop_state[64];
    size_t ndrop, nnever;
};

void queue_due_key_after(uint8_t key[QUEUE_DUE_KEY_LEN])
{
    for (int i = QUEUE_DUE_KEY_LEN - 1; i >= 0 && ++key[i] == 0; i--)
        ;
}

/* One pass of the loader from q->load_from (all zero: the first key) over the entries due
 * by q->round_end. Returns 1 if it stopped for lack of room (the round goes on from there). */
static int load_pass(struct queue *q, struct queue_due_scan *sc, struct load_fix *fix, size_t *loaded)
{
    uint8_t key[QUEUE_DUE_KEY_LEN], state;
    char id[QUEUE_ID_LEN + 1];
    for (int rc = queue_store_scan_next(sc, q->load_from, key, &state); rc == 0;
         rc = queue_store_scan_next(sc, NULL, key, &state)) {
        uint64_t due = queue_due_key_time(key);
        if (due > q->round_end)
            break;
        memcpy(id, key + 8, QUEUE_ID_LEN);
        id[QUEUE_ID_LEN] = '\0';
        if (queue_hash_get(q, id))
            continue; /* in memory already (in flight, or waiting for credit) */
        if (q->nmsgs >= q->active_limit)
            return 1;
        int err;
        Postmesh__StoredMessage *rec = queue_store_record(sc->q, sc->txn, id, &err);
        if (!rec) {
            /* Only an entry whose record is really gone is an orphan (left behind by an older
             * binary or a config change); a read error or lack of memory is tried again, an
             * undecodable record keeps an entry that is never due. */
            if (err == MDB_NOTFOUND && fix->ndrop < 64) {
                fix->drop_state[fix->ndrop] = state;
                memcpy(fix->drop[fix->ndrop++], key, QUEUE_DUE_KEY_LEN);
            } else if (err == EBADMSG && fix->nnever < 64) {
                memcpy(fix->never[fix->nnever++], key, QUEUE_DUE_KEY_LEN);
            }
            continue;
        }
        struct qmsg *m = queue_msg_new(q, rec);
        if (!m)
            return 1; /* out of memory: the next call tries again from here */
        m->committed = 1;
        m->indexed = 1;
        m->idx_due = due;
        m->idx_state = state;
        memcpy(q->load_from, key, QUEUE_DUE_KEY_LEN);
        queue_due_key_after(q->load_from);
        (*loaded)++;
    }
    return 0;
}

/* Loads due messages from the store into the active set while there is room. It goes round
 * the due entries: each call resumes after the last one it loaded (so with a backlog it does
 * not pass the messages in memory again, and messages given back by queue_msg_evict_blocked
 * wait for the next round instead of being loaded again at once), and a round covers what
 * was due when it began. Entries that become due later sort after those (keys are due
 * times, new mail is keyed by its arrival: queue.h) and wait for the next round, so however
 * fast new mail comes in, every entry due is loaded within a round. */
void queue_load_due(struct queue *q)
{
    if (q->nmsgs >= q->active_limit)
        return;
    uint64_t now = queue_now();
    struct queue_due_scan sc;
    if (queue_store_scan_begin(q, &sc))
        return;
    static struct load_fix fix;
    fix.ndrop = fix.nnever = 0;
    size_t loaded = 0;
    static const uint8_t first[QUEUE_DUE_KEY_LEN];
    int from_first = memcmp(q->load_from, first, sizeof first) == 0;
    if (from_first || q->round_end > now)
        q->round_end = now; /* a round begins (or the clock went back) */
    int full = load_pass(q, &sc, &fix, &loaded);
    if (!full) {
        /* The round is over: the next begins from the first entry (in this call too, if this
         * one began half way). */
        memset(q->load_from, 0, sizeof q->load_from);
        q->round_end = now;
        if (!from_first)
            full = load_pass(q, &sc, &fix, &loaded);
    }
    queue_store_scan_end(&sc);
    q->backlog = full;
    if (queue_store_fix_entries(q, fix.drop, fix.ndrop, fix.never, fix.nnever) == 0)
        for (size_t i = 0; i < fix.ndrop; i++) {
            dec(&q->depth[fix.drop_state[i]]);
            dec(&q->nstored);
        }
    if (loaded)
        pm_log(PM_DEBUG, "event=active_load loaded=%zu active=%zu backlog=%d", loaded, q->nmsgs, full);
}

/* Whether only the active set refers to m: no job, no pending write, nothing in memory only. */
static int only_in_set(const struct qmsg *m)
{
    return !m->removed && m->committed && m->indexed && !m->dirty && m->refs == 1 && !m->bounce_inflight &&
           !m->pending_submit && !queue_msg_finished(m);
}

static void unlink_evicted(struct queue *q, struct qmsg *m)
{
    queue_msg_unlink(q, m);
    queue_hash_del(q, m);
    queue_msg_release(q, m);
}

int queue_msg_evict_blocked(struct queue *q, struct qmsg *m)
{
    if (!only_in_set(m))
        return 0;
    q->backlog = 1; /* it is due and in the store only now */
    unlink_evicted(q, m);
    return 1;
}

int queue_msg_maybe_evict(struct queue *q, struct qmsg *m, uint64_t now)
{
    if (!only_in_set(m))
        return 0;
    int over = q->nmsgs > q->active_limit;
    /* A message whose entry says "due" stays while there is room: its in-memory wait (a DSN
     * retry) is not in the index, and reloading it would lose that. */
    if (!over && m->idx_due <= now)
        return 0;
    if (over)
        q->backlog = 1;
    unlink_evicted(q, m);
    return 1;
}

void queue_index_written(struct queue *q, struct qmsg *m)
{
    if (m->removed) {
        if (m->indexed) {
            dec(&q->depth[m->idx_state]);
            dec(&q->nstored);
            m->indexed = 0;
        }
        return;
    }
    if (m->indexed)
        dec(&q->depth[m->idx_state]);
    else
        q->nstored++;
    q->depth[m->new_state]++;
    m->indexed = 1;
    m->idx_due = m->new_due;
    m->idx_state = m->new_state;
}
