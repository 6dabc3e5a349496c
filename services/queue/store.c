/* The LMDB store: "meta" maps queue id -> StoredMessage, "body" maps queue id -> message.
 * LMDB's default commit is synchronous (fdatasync), which is what a 250 promises; many
 * submissions share one commit (see submit.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "queue.h"

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0750) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(buf, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

int queue_store_open(struct queue *q)
{
    char dir[4096];
    pm_config_state_path(q->cfg, "queue", dir, sizeof dir);
    if (mkdir_p(dir) < 0) {
        pm_log(PM_ERR, "event=store_error op=mkdir path=%s error=\"%s\"", dir, strerror(errno));
        return -1;
    }
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
        return -1;
    }
    pm_log(PM_INFO, "event=store_open path=%s map_size_mb=%lld", dir, q->cfg->queue.map_size_mb);
    return 0;
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
    int rc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn);
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
            pm_log(PM_ERR, "event=store_corrupt id=%.*s", (int)k.mv_size, (const char *)k.mv_data);
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

int queue_store_write(struct queue *q, struct qmsg **list, size_t n)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(q->env, NULL, 0, &txn);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = write_one(q, txn, list[i]);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn); /* synced: LMDB without MDB_NOSYNC fdatasyncs here */
}

int queue_store_body(struct queue *q, MDB_txn **txn, const char *id, MDB_val *body)
{
    int rc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, txn);
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
