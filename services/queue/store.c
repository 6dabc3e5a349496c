/* The LMDB store: "meta" maps queue id -> StoredMessage, "body" maps queue id -> message,
 * "due" indexes the records by when they are due (index.c; written with the record).
 * LMDB's default commit is synchronous (fdatasync), which is what a 250 promises; many
 * submissions share one commit (see submit.c). A full store (map full, ENOSPC, or a short
 * write LMDB calls EIO) is reported as full; room freed by the last commit is made usable
 * (advance()); after a failed meta-page write the store is reopened (reopen()). The LMDB
 * side of the due index lives here too: its build and marker at start-up, the loader's scan
 * and repairs (index.c), and `queue flush` for the messages only in the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "privsep.h"
#include "queue.h"
#include "tlsrpt.h"

/* Where the store lives, to reopen it: the configured path before the chroot, "/" inside it
 * (the same directory, recognised by device and inode). */
static char store_dir[4096];
static dev_t store_dev;
static ino_t store_ino;
static void *map_base; /* LMDB's map of data.mdb, found at open (LMDB does not say where) */
static size_t map_len;

/* The map's address from /proc/self/maps: read at open, before the chroot. After a reopen
 * inside the chroot it is unknown and trimming stops (the next start has it again). */
static void find_map(const char *dir)
{
    char want[4200], line[4400], real[4096];
    snprintf(want, sizeof want, "%s/data.mdb", realpath(dir, real) ? real : dir); /* the kernel's name */
    map_base = NULL;
    map_len = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char path[4200] = "";
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %4199s", &lo, &hi, path) == 3 && strcmp(path, want) == 0) {
            map_base = (void *)lo;
            map_len = hi - lo;
            break;
        }
    }
    fclose(f);
}

static int env_open(struct queue *q, const char *dir)
{
    int rc = mdb_env_create(&q->env);
    if (!rc)
        rc = mdb_env_set_mapsize(q->env, (size_t)q->cfg->queue.map_size_mb << 20);
    if (!rc)
        rc = mdb_env_set_maxdbs(q->env, 4);
    /* No readahead: the store is read at random (a record loaded when due), and readahead
     * would pull a deep queue's whole file into the map for a scan of its small index. */
    if (!rc)
        rc = mdb_env_open(q->env, dir, MDB_NORDAHEAD, 0640);
    MDB_txn *txn = NULL;
    if (!rc)
        rc = mdb_txn_begin(q->env, NULL, 0, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &q->db_meta);
    if (!rc)
        rc = mdb_dbi_open(txn, "body", MDB_CREATE, &q->db_body);
    if (!rc)
        rc = mdb_dbi_open(txn, "due", MDB_CREATE, &q->db_due);
    if (!rc)
        rc = mdb_dbi_open(txn, "tlsrpt", MDB_CREATE, &q->db_tlsrpt); /* TLS report counts (tlsrpt.h) */
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
    find_map(dir);
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
    map_base = NULL; /* unmapped; the new map's address is not known in the chroot */
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

int queue_store_txn(struct queue *q, unsigned flags, MDB_txn **txn) { return txn_begin(q, flags, txn); }

void queue_store_close(struct queue *q)
{
    if (q->env)
        mdb_env_close(q->env);
    q->env = NULL;
}

/* The "~index" marker in meta (never a queue id): how the entries were computed. Keys depend on
 * the index layout and on queue.max_lifetime and queue.delay_warning (a deferred message is
 * due at its expiry and its delay warning), so after a change of either the recomputed key of
 * a record would not find its entry: start-up rebuilds the index instead. */
#define INDEX_VERSION 2 /* 2: a message due at once is keyed by its arrival, not time 0 */
static const char index_marker[] = "~index";

static int marker_text(const struct queue *q, char *buf, size_t len)
{
    return snprintf(buf, len, "v=%d max_lifetime=%lld delay_warning=%lld", INDEX_VERSION,
                    q->cfg->queue.max_lifetime, q->cfg->queue.delay_warning);
}

int queue_store_put_marker(struct queue *q, MDB_txn *txn)
{
    char text[128];
    int n = marker_text(q, text, sizeof text);
    MDB_val k = {sizeof index_marker - 1, (void *)index_marker}, v = {(size_t)n, text};
    return mdb_put(txn, q->db_meta, &k, &v, 0);
}

/* 1 if the marker is there and says what this start would compute, 0 if not; *present: it is there. */
static int marker_matches(struct queue *q, MDB_txn *txn, int *present)
{
    char text[128];
    int n = marker_text(q, text, sizeof text);
    MDB_val k = {sizeof index_marker - 1, (void *)index_marker}, v;
    *present = mdb_get(txn, q->db_meta, &k, &v) == 0;
    return *present && v.mv_size == (size_t)n && memcmp(v.mv_data, text, (size_t)n) == 0;
}

/* The index built from the records (a store written before it existed, half built, or built
 * with another config): one pass decodes every record and writes its entry, in transactions
 * of 10,000; the marker goes with the last one, so a start killed half way builds again. An
 * undecodable record gets an entry that is never due, so entries and records still match. */
static int build_index(struct queue *q, size_t *corrupt)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    size_t n = 0, bad = 0;
    int rc = txn_begin(q, 0, &txn);
    if (rc)
        return -1;
    char last[QUEUE_ID_LEN] = {0};
    int started = 0;
    for (;;) {
        if ((rc = mdb_cursor_open(txn, q->db_meta, &cur)) != 0) {
            mdb_txn_abort(txn);
            break;
        }
        MDB_val k = {QUEUE_ID_LEN, last}, v;
        rc = mdb_cursor_get(cur, &k, &v, started ? MDB_SET_RANGE : MDB_FIRST);
        if (rc == 0 && started && k.mv_size == QUEUE_ID_LEN && memcmp(k.mv_data, last, QUEUE_ID_LEN) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        size_t in_txn = 0;
        int put_rc = 0;
        for (; rc == 0 && in_txn < 10000; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != QUEUE_ID_LEN)
                continue;
            memcpy(last, k.mv_data, QUEUE_ID_LEN);
            started = 1;
            uint8_t key[QUEUE_DUE_KEY_LEN], state = QSTATE_QUEUED;
            Postmesh__StoredMessage *rec = postmesh__stored_message__unpack(NULL, v.mv_size, v.mv_data);
            if (rec) {
                state = queue_stored_state(rec);
                queue_due_key(key, queue_stored_due(q->cfg, rec), last); /* the id as the key has it */
                postmesh__stored_message__free_unpacked(rec, NULL);
            } else {
                pm_log(PM_ERR, "event=store_corrupt id=%.16s", last);
                queue_due_key(key, QUEUE_DUE_NEVER, last);
                bad++;
            }
            MDB_val dk = {sizeof key, key}, dv = {1, &state};
            if ((put_rc = mdb_put(txn, q->db_due, &dk, &dv, 0)) != 0)
                break;
            n++;
            in_txn++;
        }
        mdb_cursor_close(cur);
        if (put_rc) {
            pm_log(PM_ERR, "event=store_error op=build_index error=\"%s\"", mdb_strerror(put_rc));
            mdb_txn_abort(txn);
            return -1;
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            pm_log(PM_ERR, "event=store_error op=build_index error=\"%s\"", mdb_strerror(rc));
            mdb_txn_abort(txn);
            return -1;
        }
        int more = rc == 0;
        if (!more && (rc = queue_store_put_marker(q, txn)) != 0) {
            mdb_txn_abort(txn);
            break;
        }
        if ((rc = mdb_txn_commit(txn)) != 0 || !more)
            break;
        if ((rc = txn_begin(q, 0, &txn)) != 0)
            break;
    }
    if (rc) {
        pm_log(PM_ERR, "event=store_error op=build_index error=\"%s\"", mdb_strerror(rc));
        return -1;
    }
    pm_log(PM_INFO, "event=index_built messages=%zu corrupt=%zu", n, bad);
    *corrupt = bad;
    return 0;
}

/* Start-up reads the due index only (no record is decoded): its entries count the stored
 * messages by state, and the loader then brings what is due into memory. *marker: 1 if the
 * marker matches this config, 0 if it is missing or differs. */
static int count_index(struct queue *q, size_t *entries, size_t *records, int *marker)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = txn_begin(q, MDB_RDONLY, &txn);
    if (rc)
        return -1;
    MDB_stat st;
    int present = 0;
    *marker = marker_matches(q, txn, &present);
    *records = mdb_stat(txn, q->db_meta, &st) == 0 ? st.ms_entries - (size_t)present : 0;
    *entries = 0;
    memset(q->depth, 0, sizeof q->depth);
    if ((rc = mdb_cursor_open(txn, q->db_due, &cur)) != 0) {
        pm_log(PM_ERR, "event=store_error op=count_index error=\"%s\"", mdb_strerror(rc));
        mdb_txn_abort(txn);
        return -1;
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t s = v.mv_size ? *(const uint8_t *)v.mv_data : QSTATE_QUEUED;
        q->depth[s < QSTATE_N ? s : QSTATE_QUEUED]++;
        (*entries)++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

int queue_store_load(struct queue *q)
{
    size_t entries, records, corrupt = 0;
    int marker;
    if (count_index(q, &entries, &records, &marker) < 0)
        return -1;
    if (entries != records || (!marker && records > 0)) {
        /* Half built (a start killed while indexing), records written by a binary without
         * the index, or keys computed with another config: rebuilt from the records, or
         * some would never be loaded (or not found when they change). */
        pm_log(PM_WARN, "event=index_rebuild records=%zu entries=%zu marker=%s", records, entries,
               marker ? "ok" : "stale");
        MDB_txn *txn;
        int rc = entries ? txn_begin(q, 0, &txn) : 0;
        if (!rc && entries && ((rc = mdb_drop(txn, q->db_due, 0)) != 0 || (rc = mdb_txn_commit(txn)) != 0)) {
            pm_log(PM_ERR, "event=store_error op=drop_index error=\"%s\"", mdb_strerror(rc));
            return -1;
        }
        if (rc || build_index(q, &corrupt) < 0 || count_index(q, &entries, &records, &marker) < 0)
            return -1;
    } else if (!marker) {
        /* An empty store: the marker says how the entries to come are computed. */
        MDB_txn *txn;
        int rc = txn_begin(q, 0, &txn);
        if (!rc && (rc = queue_store_put_marker(q, txn)) != 0)
            mdb_txn_abort(txn);
        if (!rc)
            rc = mdb_txn_commit(txn);
        if (rc) {
            pm_log(PM_ERR, "event=store_error op=index_marker error=\"%s\"", mdb_strerror(rc));
            return -1;
        }
    }
    if (entries != records)
        pm_log(PM_WARN, "event=index_mismatch records=%zu entries=%zu", records, entries);
    q->nstored = entries;
    queue_load_due(q);
    queue_store_trim(q);
    /* corrupt: records start-up found undecodable. It decodes none when the index exists
     * (a record is decoded when it is loaded, and one that cannot be is logged then). */
    pm_log(PM_INFO, "event=store_loaded messages=%zu corrupt=%zu in_memory=%zu deferred=%zu hold=%zu", entries,
           corrupt, q->nmsgs, q->depth[QSTATE_DEFERRED], q->depth[QSTATE_HOLD]);
    return 0;
}

/* LMDB reads through a read-only shared map of the file; every page a scan touched (and the
 * kernel's fault-around neighbours) stays mapped and counts in the resident set, although it
 * is clean page cache the kernel can drop at any time: a deep queue's start-up scan of the
 * index alone left the whole file (~480 MB for a million messages) "resident". Dropping the
 * mappings is harmless (LMDB writes with pwrite, not through the map; a page read again is
 * mapped again from the page cache), so the queue's resident set stays what it really uses. */
void queue_store_trim(struct queue *q)
{
    if (q->env && map_base)
        madvise(map_base, map_len, MADV_DONTNEED);
}

/* protobuf-c says NULL for a record it cannot decode and for one it could not allocate: the
 * allocator tells them apart (out of memory is not corruption). */
static int unpack_oom;
static void *oom_alloc(void *data, size_t size)
{
    (void)data;
    void *p = malloc(size);
    if (!p)
        unpack_oom = 1;
    return p;
}
static void oom_free(void *data, void *p)
{
    (void)data;
    free(p);
}
static ProtobufCAllocator oom_allocator = {oom_alloc, oom_free, NULL};

Postmesh__StoredMessage *queue_store_record(struct queue *q, MDB_txn *txn, const char *id, int *err)
{
    MDB_txn *own = NULL;
    int rc = txn ? 0 : txn_begin(q, MDB_RDONLY, &own);
    Postmesh__StoredMessage *rec = NULL;
    if (!rc) {
        MDB_val k = {QUEUE_ID_LEN, (void *)id}, v;
        rc = mdb_get(txn ? txn : own, q->db_meta, &k, &v);
        if (!rc) {
            unpack_oom = 0;
            rec = postmesh__stored_message__unpack(&oom_allocator, v.mv_size, v.mv_data);
            if (!rec && unpack_oom) {
                rc = ENOMEM;
            } else if (!rec) {
                rc = EBADMSG;
                pm_log(PM_ERR, "event=store_corrupt id=%.16s", id);
            }
        }
    }
    if (own)
        mdb_txn_abort(own);
    if (err)
        *err = rc;
    return rec;
}

/* The loader's repairs, in a small transaction of its own: entries whose record is gone
 * (drop[]) are deleted, entries of undecodable records (never[]) move to "never due" (the
 * counts stay right and the loader stops reading them). 0 or -1. */
int queue_store_fix_entries(struct queue *q, uint8_t (*drop)[QUEUE_DUE_KEY_LEN], size_t ndrop,
                            uint8_t (*never)[QUEUE_DUE_KEY_LEN], size_t nnever)
{
    MDB_txn *txn;
    if (!ndrop && !nnever)
        return 0;
    if (txn_begin(q, 0, &txn))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < ndrop && !rc; i++) {
        MDB_val k = {QUEUE_DUE_KEY_LEN, drop[i]};
        rc = mdb_del(txn, q->db_due, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    for (size_t i = 0; i < nnever && !rc; i++) {
        MDB_val k = {QUEUE_DUE_KEY_LEN, never[i]}, v;
        uint8_t key[QUEUE_DUE_KEY_LEN], state = QSTATE_QUEUED;
        if (mdb_get(txn, q->db_due, &k, &v) != 0)
            continue;
        if (v.mv_size)
            state = *(const uint8_t *)v.mv_data;
        rc = mdb_del(txn, q->db_due, &k, NULL);
        queue_due_key(key, QUEUE_DUE_NEVER, (const char *)never[i] + 8);
        MDB_val nk = {sizeof key, key}, nv = {1, &state};
        if (!rc)
            rc = mdb_put(txn, q->db_due, &nk, &nv, 0);
    }
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    if (rc) {
        pm_log(PM_ERR, "event=store_error op=fix_index error=\"%s\"", mdb_strerror(rc));
        return -1;
    }
    if (ndrop)
        pm_log(PM_WARN, "event=index_orphans dropped=%zu", ndrop);
    return 0;
}

/* A read of the due index in key order for the loader (index.c), in one read transaction. */
int queue_store_scan_begin(struct queue *q, struct queue_due_scan *sc)
{
    sc->q = q;
    sc->cur = NULL;
    int rc = txn_begin(q, MDB_RDONLY, &sc->txn);
    if (!rc && (rc = mdb_cursor_open(sc->txn, q->db_due, &sc->cur)) != 0)
        mdb_txn_abort(sc->txn);
    return rc;
}

int queue_store_scan_next(struct queue_due_scan *sc, const uint8_t *from, uint8_t key[QUEUE_DUE_KEY_LEN],
                          uint8_t *state)
{
    MDB_val k = {QUEUE_DUE_KEY_LEN, (void *)from}, v;
    int rc = mdb_cursor_get(sc->cur, &k, &v, from ? MDB_SET_RANGE : MDB_NEXT);
    while (rc == 0 && k.mv_size != QUEUE_DUE_KEY_LEN) /* not an entry: skipped */
        rc = mdb_cursor_get(sc->cur, &k, &v, MDB_NEXT);
    if (rc)
        return rc;
    memcpy(key, k.mv_data, QUEUE_DUE_KEY_LEN);
    *state = v.mv_size ? *(const uint8_t *)v.mv_data : QSTATE_QUEUED;
    if (*state >= QSTATE_N)
        *state = QSTATE_QUEUED; /* as count_index counts it */
    return 0;
}

void queue_store_scan_end(struct queue_due_scan *sc)
{
    mdb_cursor_close(sc->cur);
    mdb_txn_abort(sc->txn);
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

/* The due-index entry: the old one (if the record had one) replaced by the new. */
static int put_due(struct queue *q, MDB_txn *txn, struct qmsg *m)
{
    uint8_t key[QUEUE_DUE_KEY_LEN];
    int rc = 0;
    if (m->indexed && (m->removed || m->idx_due != m->new_due)) {
        queue_due_key(key, m->idx_due, m->rec->queue_id);
        MDB_val k = {sizeof key, key};
        rc = mdb_del(txn, q->db_due, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc || m->removed)
        return rc;
    queue_due_key(key, m->new_due, m->rec->queue_id);
    MDB_val k = {sizeof key, key}, v = {1, &m->new_state};
    return mdb_put(txn, q->db_due, &k, &v, 0);
}

static int write_one(struct queue *q, MDB_txn *txn, struct qmsg *m)
{
    MDB_val k = {QUEUE_ID_LEN, m->rec->queue_id};
    int rc;
    if (m->removed) {
        rc = put_due(q, txn, m);
        if (!rc)
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
    m->new_due = queue_stored_due(q->cfg, m->rec);
    m->new_state = queue_stored_state(m->rec);
    rc = put_due(q, txn, m);
    return rc ? rc : put_meta(q, txn, m);
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
    if (!rc) /* TLS report counts and reported days go with the commit (tlsrpt.h) */
        rc = queue_tlsrpt_stage(q, txn, list, n);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn); /* synced: LMDB without MDB_NOSYNC fdatasyncs here */
    if (rc == 0)
        queue_tlsrpt_committed(q, list, n);
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

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

/* Flush for the messages that are only in the store: every entry not due yet is rewritten
 * due now (record and entry in one transaction per 10,000), so the loader brings them in.
 * Held messages keep their hold (their entry stays at their expiry). */
/* The queue id inside a due key, as a string in id. Returns id. */
static char *due_key_id(const uint8_t key[QUEUE_DUE_KEY_LEN], char id[QUEUE_ID_LEN + 1])
{
    memcpy(id, key + 8, QUEUE_ID_LEN);
    id[QUEUE_ID_LEN] = '\0';
    return id;
}

int queue_store_flush(struct queue *q)
{
    uint64_t now = queue_now();
    uint8_t from[QUEUE_DUE_KEY_LEN];
    queue_due_key(from, now + 1, "0000000000000000");
    int total = 0, done = 0;
    while (!done) {
        MDB_txn *txn;
        MDB_cursor *cur;
        if (txn_begin(q, 0, &txn))
            break;
        if (mdb_cursor_open(txn, q->db_due, &cur)) {
            mdb_txn_abort(txn);
            break;
        }
        /* Ids first (the index changes under the cursor as entries are rewritten). */
        static uint8_t keys[10000][QUEUE_DUE_KEY_LEN]; /* the entry as it is, whatever the config now computes */
        char id[QUEUE_ID_LEN + 1];
        size_t n = 0;
        MDB_val k = {sizeof from, from}, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        for (; rc == 0 && n < sizeof keys / sizeof keys[0]; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != QUEUE_DUE_KEY_LEN)
                continue;
            memcpy(from, k.mv_data, sizeof from);
            memcpy(keys[n], k.mv_data, QUEUE_DUE_KEY_LEN);
            if (!queue_hash_get(q, due_key_id(keys[n], id)))
                n++;
        }
        done = rc != 0;
        mdb_cursor_close(cur);
        /* The next batch starts after the last key seen. */
        queue_due_key_after(from);
        int changed = 0, err = 0, in_batch = 0;
        for (size_t i = 0; i < n && !err; i++) {
            Postmesh__StoredMessage *rec = queue_store_record(q, txn, due_key_id(keys[i], id), NULL);
            if (!rec)
                continue;
            uint64_t old_due = queue_due_key_time(keys[i]);
            int nr = 0;
            for (size_t r = 0; r < rec->n_recipients; r++)
                if (rec->recipients[r]->state == ST(DEFERRED)) {
                    rec->recipients[r]->next_attempt = 0;
                    nr++;
                }
            uint64_t new_due = queue_stored_due(q->cfg, rec);
            if (nr && new_due != old_due) {
                uint8_t key[QUEUE_DUE_KEY_LEN], state = queue_stored_state(rec);
                size_t len = postmesh__stored_message__get_packed_size(rec);
                MDB_val mk = {QUEUE_ID_LEN, id}, mv = {len, NULL};
                memcpy(key, keys[i], sizeof key);
                MDB_val dk = {sizeof key, key}, dv = {1, &state};
                /* The entry deleted is the one the cursor read; a failure half way through
                 * a message aborts the batch (a record must never lose its entry). */
                err = mdb_del(txn, q->db_due, &dk, NULL);
                if (!err) {
                    queue_due_key(key, new_due, id);
                    err = mdb_put(txn, q->db_due, &dk, &dv, 0);
                }
                if (!err)
                    err = mdb_put(txn, q->db_meta, &mk, &mv, MDB_RESERVE);
                if (!err) {
                    postmesh__stored_message__pack(rec, mv.mv_data);
                    in_batch += nr;
                    changed = 1;
                }
            }
            postmesh__stored_message__free_unpacked(rec, NULL);
        }
        if (err || !changed) {
            mdb_txn_abort(txn);
            if (err) {
                pm_log(PM_ERR, "event=flush_failed error=\"%s\"", mdb_strerror(err));
                break;
            }
        } else if ((err = mdb_txn_commit(txn)) != 0) {
            pm_log(PM_ERR, "event=flush_failed error=\"%s\"", mdb_strerror(err));
            break;
        } else {
            total += in_batch;
        }
    }
    return total;
}
