/* The LMDB store: "meta" maps queue id -> StoredMessage, "body" maps queue id -> message.
 * LMDB's default commit is synchronous (fdatasync), which is what a 250 promises; many
 * submissions share one commit (see submit.c). A full store (map full, ENOSPC, or a short
 * write LMDB calls EIO) is reported as full; room freed by the last commit is made usable
 * (advance()); after a failed meta-page write the store is reopened (reopen()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "privsep.h"
#include "queue.h"

/* Where the store lives, to reopen it: the configured path before the chroot, "/" inside it
 * (the same directory, recognised by device and inode). */
static char store_dir[4096];
static dev_t store_dev;
static ino_t store_ino;

static int env_open(struct queue *q, const char *dir)
{
    int rc = mdb_env_create(&q->env);
    if (!rc)
        rc = mdb_env_set_mapsize(q->env, (size_t)q->cfg->queue.map_size_mb << 20);
    if (!rc)
        rc = mdb_env_set_maxdbs(q->env, 4);
    if (!rc)
        rc = mdb_env_open(q->env, dir, 0, 0640);
    MDB_txn *txn = NULL;
    if (!rc)
        rc = mdb_txn_begin(q->env, NULL, 0, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &q->db_meta);
    if (!rc)
        rc = mdb_dbi_open(txn, "body", MDB_CREATE, &q->db_body);
    if (!rc)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        pm_log(PM_ERR, "event=store_error op=open path=%s error=\"%s\"", dir, mdb_strerror(rc));
        if (q->env)
            mdb_env_close(q->env);
        q->env = NULL;
        return -1;
    }
    return 0;
}

int queue_store_open(struct queue *q)
{
    char dir[4096];
    pm_config_state_path(q->cfg, "queue", dir, sizeof dir);
    struct stat st;
    if (pm_privsep_mkdirs(dir, 0750) < 0 || stat(dir, &st) < 0) {
        pm_log(PM_ERR, "event=store_error op=mkdir path=%s error=\"%s\"", dir, strerror(errno));
        return -1;
    }
    snprintf(store_dir, sizeof store_dir, "%s", dir);
    store_dev = st.st_dev;
    store_ino = st.st_ino;
    if (env_open(q, dir) < 0)
        return -1;
    pm_log(PM_INFO, "event=store_open path=%s map_size_mb=%lld", dir, q->cfg->queue.map_size_mb);
    return 0;
}

static int is_store_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_dev == store_dev && st.st_ino == store_ino;
}

/* MDB_PANIC: a write of the meta page failed (EIO, say) and LMDB refuses the environment from
 * then on, although the file is consistent: the failed commit's pages were synced but nothing
 * refers to them, the previous meta page is intact. Reopening recovers without a restart;
 * every change not yet written is still dirty in memory (the commit path keeps it). Without
 * a usable store the queue cannot go on: exit, and the supervisor starts it again. */
static void reopen(struct queue *q)
{
    const char *dir = is_store_dir(store_dir) ? store_dir : is_store_dir("/") ? "/" : NULL;
    mdb_env_close(q->env);
    q->env = NULL;
    if (!dir || env_open(q, dir) < 0) {
        pm_log(PM_ERR, "event=store_fatal op=reopen path=%s", dir ? dir : store_dir);
        exit(EXIT_FAILURE);
    }
    pm_log(PM_WARN, "event=store_reopened path=%s reason=\"%s\"", dir, mdb_strerror(MDB_PANIC));
}

static int txn_begin(struct queue *q, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(q->env, NULL, flags, txn);
    if (rc == MDB_PANIC) {
        reopen(q);
        rc = mdb_txn_begin(q->env, NULL, flags, txn);
    }
    return rc;
}

void queue_store_close(struct queue *q)
{
    if (q->env)
        mdb_env_close(q->env);
    q->env = NULL;
}

int queue_store_load(struct queue *q)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = txn_begin(q, MDB_RDONLY, &txn);
    if (rc)
        return -1;
    mdb_cursor_open(txn, q->db_meta, &cur);
    MDB_val k, v;
    size_t n = 0, bad = 0;
    /* Keys are ids sortable by arrival, so the cursor restores arrival order. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Postmesh__StoredMessage *rec = postmesh__stored_message__unpack(NULL, v.mv_size, v.mv_data);
        if (!rec) {
            bad++;
            char id[PM_LOGV_SIZE];
            pm_log(PM_ERR, "event=store_corrupt id=%s", pm_logv_mem(id, sizeof id, k.mv_data, k.mv_size, 0));
            continue;
        }
        struct qmsg *m = queue_msg_new(q, rec);
        m->committed = 1;
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    pm_log(PM_INFO, "event=store_loaded messages=%zu corrupt=%zu", n, bad);
    return 0;
}

static int put_meta(struct queue *q, MDB_txn *txn, struct qmsg *m)
{
    size_t len = postmesh__stored_message__get_packed_size(m->rec);
    MDB_val k = {QUEUE_ID_LEN, m->rec->queue_id}, v = {len, NULL};
    int rc = mdb_put(txn, q->db_meta, &k, &v, MDB_RESERVE);
    if (!rc)
        postmesh__stored_message__pack(m->rec, v.mv_data);
    return rc;
}

static int write_one(struct queue *q, MDB_txn *txn, struct qmsg *m)
{
    MDB_val k = {QUEUE_ID_LEN, m->rec->queue_id};
    int rc;
    if (m->removed) {
        rc = mdb_del(txn, q->db_meta, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (!rc) {
            rc = mdb_del(txn, q->db_body, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        return rc;
    }
    if (m->pending_submit) {
        ProtobufCBinaryData *b = &m->pending_submit->submit->body;
        MDB_val v = {b->len, b->data};
        rc = mdb_put(txn, q->db_body, &k, &v, 0);
        if (rc)
            return rc;
    }
    return put_meta(q, txn, m);
}

/* LMDB reports a short write ("filesystem full?") as EIO: the first pages of the commit fitted,
 * the rest did not. When the filesystem has less room left than the transaction needed, call
 * it what it is, so that the submitter hears "store full" (4.3.1), not "store error" (4.3.0). */
static int short_write_means_full(struct queue *q, struct qmsg **list, size_t n)
{
    int fd;
    struct statvfs st;
    if (mdb_env_get_fd(q->env, &fd) != 0 || fstatvfs(fd, &st) < 0)
        return 0;
    uint64_t need = 16 * 4096; /* branch pages, the free list, the meta page */
    for (size_t i = 0; i < n; i++) {
        need += 2 * 4096; /* the record and its leaf */
        if (list[i]->pending_submit)
            need += list[i]->pending_submit->submit->body.len;
    }
    return (uint64_t)st.f_bavail * st.f_frsize < need;
}

static int is_full(int rc) { return rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT; }

static int write_txn(struct queue *q, struct qmsg **list, size_t n)
{
    MDB_txn *txn;
    int rc = txn_begin(q, 0, &txn);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = write_one(q, txn, list[i]);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn); /* synced: LMDB without MDB_NOSYNC fdatasyncs here */
    if (rc == EIO && short_write_means_full(q, list, n))
        rc = ENOSPC;
    return rc;
}

/* LMDB hands out the pages a commit freed only from the second commit after it (the first
 * one's readers might still see them), and a failed transaction commits nothing. So when one
 * commit freed the room (removals: a big message delivered) and every later transaction
 * needs that room, none would ever succeed: intake stays refused although the store is
 * empty. This commit changes nothing but moves LMDB one transaction on (a key put and
 * deleted again: the transaction is dirty, so it really commits). */
static int freed_not_reusable; /* the last successful commit removed messages */

static int advance(struct queue *q)
{
    MDB_txn *txn;
    int rc = txn_begin(q, 0, &txn);
    if (rc)
        return rc;
    static const char key[] = "~advance"; /* never a queue id: those are 16 hex digits */
    MDB_val k = {sizeof key - 1, (void *)key}, v = {0, NULL};
    rc = mdb_put(txn, q->db_meta, &k, &v, 0);
    if (!rc)
        rc = mdb_del(txn, q->db_meta, &k, NULL);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

int queue_store_write(struct queue *q, struct qmsg **list, size_t n)
{
    double began = pm_mono_s();
    int rc = write_txn(q, list, n);
    if (is_full(rc) && freed_not_reusable) {
        freed_not_reusable = 0;
        int arc = advance(q);
        pm_log(PM_DEBUG, "event=store_advance records=%zu error=\"%s\"", n, arc ? mdb_strerror(arc) : "-");
        if (arc == 0)
            rc = write_txn(q, list, n);
    }
    if (rc == 0) {
        freed_not_reusable = 0;
        for (size_t i = 0; i < n; i++)
            freed_not_reusable |= list[i]->removed;
        /* One synced commit: how many records it carried and how long it took, sync included. */
        pm_metric_inc(PM_M_QUEUE_COMMITS);
        pm_metric_observe(PM_M_QUEUE_COMMIT_BATCH, (double)n);
        pm_metric_observe(PM_M_QUEUE_COMMIT_SECONDS, pm_mono_s() - began);
    }
    return rc;
}

int queue_store_body(struct queue *q, MDB_txn **txn, const char *id, MDB_val *body)
{
    int rc = txn_begin(q, MDB_RDONLY, txn);
    if (rc)
        return rc;
    MDB_val k = {QUEUE_ID_LEN, (void *)id};
    rc = mdb_get(*txn, q->db_body, &k, body);
    if (rc) {
        mdb_txn_abort(*txn);
        *txn = NULL;
    }
    return rc;
}
