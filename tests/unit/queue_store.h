/* A real LMDB store for the queue's unit tests, in a temporary directory: the three
 * sub-databases the queue opens (store.c), unsynced (a test has nothing to lose). Header-only,
 * like fake_queue.h: include it after cmocka.h and "queue/queue.h". */
#ifndef QUEUE_STORE_H
#define QUEUE_STORE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char qs_dir[64];

/* q->cfg becomes cfg (zeroed, with queue.max_lifetime). */
static inline void qs_open(struct queue *q, struct pm_config *cfg, long long max_lifetime)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->queue.max_lifetime = max_lifetime;
    q->cfg = cfg;
    snprintf(qs_dir, sizeof qs_dir, "/tmp/test_queue_store.XXXXXX");
    assert_non_null(mkdtemp(qs_dir));
    assert_int_equal(mdb_env_create(&q->env), 0);
    mdb_env_set_maxdbs(q->env, 4);
    mdb_env_set_mapsize(q->env, 64u << 20);
    assert_int_equal(mdb_env_open(q->env, qs_dir, MDB_NOSYNC, 0600), 0);
    MDB_txn *t;
    assert_int_equal(mdb_txn_begin(q->env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "meta", MDB_CREATE, &q->db_meta), 0);
    assert_int_equal(mdb_dbi_open(t, "body", MDB_CREATE, &q->db_body), 0);
    assert_int_equal(mdb_dbi_open(t, "due", MDB_CREATE, &q->db_due), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
}

/* Frees what is in memory and removes the store. */
static inline void qs_close(struct queue *q)
{
    queue_free_memory(q);
    mdb_env_close(q->env);
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", qs_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", qs_dir);
    unlink(path);
    rmdir(qs_dir);
}

#endif
