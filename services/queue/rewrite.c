/* The store's records visited in queue-id order a bounded chunk at a time, and changed in
 * place: a record and its due-index entry are rewritten in the chunk's one transaction, as
 * every commit writes them (store.c put_due), so they never disagree. A walk keeps only the
 * last id it visited: ids never change and new mail sorts after every id there is, so each
 * message is visited exactly once, wherever it is at that moment. A message in memory is
 * handed over as it is there (memory is what counts; the next commit writes it), one only
 * in the store is decoded and changed here. Used by ETRN (etrn.c), which must not hold the
 * event loop for a scan of a million records. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "queue.h"

#define ID_LEN QUEUE_ID_LEN

/* Moves the cursor to the first record after w->after (the first of all for a new walk). */
static int first_after(MDB_cursor *cur, const struct queue_rewrite *w, MDB_val *k, MDB_val *v)
{
    if (!w->started)
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    *k = (MDB_val){ID_LEN, (void *)w->after};
    int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == ID_LEN && memcmp(k->mv_data, w->after, ID_LEN) == 0)
        rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    return rc;
}

/* Writes rec back with its entry: the entry its old due time keyed is replaced. */
static int put_back(struct queue *q, MDB_txn *txn, const char *id, const Postmesh__StoredMessage *rec,
                    uint64_t old_due)
{
    uint8_t key[QUEUE_DUE_KEY_LEN], state = queue_stored_state(rec);
    uint64_t due = queue_stored_due(q->cfg, rec);
    int rc = 0;
    if (due != old_due) {
        queue_due_key(key, old_due, id);
        MDB_val dk = {sizeof key, key};
        rc = mdb_del(txn, q->db_due, &dk, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0; /* as put_due: the new entry is the one that counts */
    }
    queue_due_key(key, due, id);
    MDB_val dk = {sizeof key, key}, dv = {1, &state};
    if (!rc)
        rc = mdb_put(txn, q->db_due, &dk, &dv, 0);
    size_t len = postmesh__stored_message__get_packed_size(rec);
    MDB_val mk = {ID_LEN, (void *)id}, mv = {len, NULL};
    if (!rc)
        rc = mdb_put(txn, q->db_meta, &mk, &mv, MDB_RESERVE);
    if (!rc)
        postmesh__stored_message__pack(rec, mv.mv_data);
    return rc;
}

int queue_store_rewrite(struct queue *q, struct queue_rewrite *w, const struct queue_rewrite_limits *lim,
                        const struct queue_rewrite_ops *ops, void *arg)
{
    uint64_t deadline = pm_mono_ms() + lim->ms;
    size_t max = lim->decode;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = queue_store_txn(q, 0, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, q->db_meta, &cur)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* Ids first: the records are rewritten once the cursor is closed. */
    char (*ids)[ID_LEN + 1] = malloc((max + 1) * sizeof *ids);
    uint8_t *changed = calloc(max + 1, 1);
    size_t n = 0, seen = 0;
    MDB_val k, v;
    if (!ids || !changed)
        rc = ENOMEM;
    else
        rc = first_after(cur, w, &k, &v);
    for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (++seen > lim->visit || (seen % 256 == 0 && pm_mono_ms() >= deadline))
            break;
        if (k.mv_size != ID_LEN)
            continue; /* "~index" and the like: not a record */
        memcpy(w->after, k.mv_data, ID_LEN);
        w->started = 1;
        w->visited++;
        if (ops->wanted && !ops->wanted(v.mv_data, v.mv_size, arg))
            continue;
        memcpy(ids[n], k.mv_data, ID_LEN);
        ids[n][ID_LEN] = '\0';
        struct qmsg *m = queue_hash_get(q, ids[n]);
        if (m) {
            if (!m->removed)
                ops->in_memory(q, m, arg); /* touches memory only: this transaction is open */
            continue;
        }
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) { /* past the last record */
        w->done = 1;
        rc = 0;
    }
    int wrote = 0;
    long long delta[QSTATE_N] = {0};
    for (size_t i = 0; i < n && !rc; i++) {
        int err;
        Postmesh__StoredMessage *rec = queue_store_record(q, txn, ids[i], &err);
        if (!rec) {
            if (err != MDB_NOTFOUND && err != EBADMSG)
                rc = err; /* a read error or no memory: this chunk again later */
            continue;     /* gone, or undecodable (its entry is never due: store.c) */
        }
        uint64_t old_due = queue_stored_due(q->cfg, rec);
        uint8_t old_state = queue_stored_state(rec);
        if (ops->stored(q, rec, arg)) {
            rc = put_back(q, txn, ids[i], rec, old_due);
            if (!rc) {
                changed[i] = 1;
                wrote = 1;
                delta[old_state]--;
                delta[queue_stored_state(rec)]++;
            }
        }
        postmesh__stored_message__free_unpacked(rec, NULL);
    }
    if (rc || !wrote)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn); /* synced: the records are due now, also after a crash */
    if (!rc && wrote) {
        for (int s = 0; s < QSTATE_N; s++) {
            long long d = (long long)q->depth[s] + delta[s];
            q->depth[s] = d > 0 ? (size_t)d : 0;
        }
        for (size_t i = 0; i < n; i++)
            if (changed[i]) {
                w->written++;
                if (ops->written)
                    ops->written(q, ids[i], arg);
            }
    }
    free(ids);
    free(changed);
    return rc;
}
