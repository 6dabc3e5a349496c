/* postmesh-queue: the only durable state. Shared types of the queue's files. */
#ifndef QUEUE_H
#define QUEUE_H
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "aliases.h"
#include "bus.h"
#include "config.h"

#define QUEUE_ID_LEN 16

/* Stored state of a message as the due index records it (the value of its entry): what the
 * depth metric counts without reading records. "active" is a runtime state on top of it. */
enum { QSTATE_QUEUED, QSTATE_DEFERRED, QSTATE_HOLD, QSTATE_N };

/* One message in memory (the active set): its stored record plus what only matters while
 * running. Messages not due stay in LMDB only (index.c). */
struct qmsg {
    Postmesh__StoredMessage *rec; /* owned; persisted when dirty */
    uint8_t *inflight;            /* per recipient: 1 while a job holds it */
    int bounce_inflight;          /* a bouncer job is out for this message */
    uint64_t bounce_retry_at;     /* after a failed DSN submission */
    int committed;                /* stored and synced: may be dispatched */
    int removed;                  /* deleted or finished; freed once no job refers to it */
    int dirty;                    /* record must be written in the next commit */
    uint64_t next_due;            /* skip in dispatch until then (0: look now) */
    int refs;                     /* jobs in flight referring to it */
    struct qmsg *prev, *next;     /* the active set, in the order loaded */
    struct qmsg *dirty_next;
    struct qmsg *hnext;           /* the id hash's chain */
    /* Its entry in the due index as last committed, and the one the pending write puts. */
    int indexed;
    uint64_t idx_due, new_due;
    uint8_t idx_state, new_state;
    /* a new message waiting for the group commit: */
    Postmesh__BusMessage *pending_submit; /* the submission (body inside), until committed */
    uint8_t peer[256];
    size_t peerlen;
    uint64_t request_id;
};

/* A job worker (mta, delivery, bouncer) as its Credits describe it. */
struct worker {
    uint8_t id[256];
    size_t idlen;
    uint64_t serial;        /* names it in jobs (the array is compacted when one leaves) */
    Postmesh__WorkerKind kind;
    int credits;            /* jobs it can take now: the free slots it announced minus jobs on the way */
    uint64_t jobs_sent;     /* counted like the worker's jobs_received */
    uint64_t outstanding;   /* jobs it holds that are not answered (nor past their lease) */
    uint64_t last_seen;
    char name[64];
};

struct job {
    uint64_t job_id;        /* with q->epoch, unique across restarts */
    struct qmsg *msg;
    uint64_t worker;        /* serial of the worker it went to */
    const char *domain;     /* mta: destination (inside msg's record, which the job pins) */
    Postmesh__WorkerKind kind;
    uint32_t *rcpts; /* recipient indexes */
    size_t nrcpts;
    int delay_notice;
    uint64_t deadline_ms; /* CLOCK_MONOTONIC: the lease ends */
    struct job *next;
};

struct queue {
    struct pm_config *cfg;
    struct event_base *base;
    struct pm_bus *bus;     /* queue.endpoint */
    struct pm_bus *control; /* queue.control */
    struct pm_bus_policy endpoint_policy; /* sized from the config (endpoints.c) */
    MDB_env *env;
    MDB_dbi db_meta, db_body, db_due;
    MDB_dbi db_tlsrpt;        /* TLS report counts per (day, policy domain): tlsrpt.h */
    struct qmsg *head, *tail; /* the active set (messages in memory) */
    struct qmsg *dirty;       /* records to write at the next commit */
    size_t nmsgs;             /* in the active set */
    struct qmsg **htab;       /* the active set by queue id */
    size_t hcap;
    size_t nstored;           /* committed messages in the store, in memory or not */
    size_t nfresh;            /* submissions not committed yet */
    size_t depth[QSTATE_N];   /* committed messages by stored state */
    size_t active_limit;
    int backlog;              /* due entries were left in the store for lack of room */
    /* The loader goes round the due entries (index.c): it resumes after the last key it
     * loaded, and a round ends at round_end (the time it began), then starts from the first. */
    uint8_t load_from[8 + QUEUE_ID_LEN];
    uint64_t round_end;
    size_t batch;             /* new submissions waiting in the current batch */
    struct event *commit_ev;
    int commit_scheduled;
    struct event *tick_ev;
    struct worker *workers;
    size_t nworkers;
    struct job *jobs;
    struct domjobs **domjobs; /* mta jobs in flight per (worker, destination): dispatch.c */
    uint64_t epoch;           /* random per start: a job of an earlier run never matches */
    uint64_t next_job_id;
    uint64_t next_worker_serial;
    struct pm_aliases *aliases;
    uint64_t committed_total, commits_total;
    struct queue_etrn *etrn;  /* ETRN requests being worked on (etrn.c) */
    struct dkim_signer *dkim; /* DKIM keys, loaded before the chroot (dkim_sign.h) */
    struct dkim_pool *dkim_pool; /* the signing threads (NULL: none, or sign inline) */
    struct queue_tlsrpt *tlsrpt; /* TLSRPT counts waiting for a commit, the report timer (tlsrpt.h) */
};

/* store.c: LMDB */
int queue_store_open(struct queue *q);
void queue_store_close(struct queue *q);
int queue_store_load(struct queue *q);
/* Writes the listed messages (new: body + record; changed: record; removed: delete) in one
 * synced transaction. Returns 0 or an MDB/errno error; on error nothing was written. */
int queue_store_write(struct queue *q, struct qmsg **list, size_t n);
/* Borrowed view of a body inside a read transaction the caller ends with mdb_txn_abort. */
int queue_store_body(struct queue *q, MDB_txn **txn, const char *id, MDB_val *body);
/* `queue flush` for the messages only in the store: their deferred recipients due now, in
 * transactions of 10,000 (held ones keep their hold). Returns the recipients rescheduled. */
int queue_store_flush(struct queue *q);
/* Drops the map's pages from the resident set (they stay in the page cache): store.c. */
void queue_store_trim(struct queue *q);
/* The stored record of id (NULL: none, or undecodable), read in txn or a transaction of its own;
 * why there is none in *err unless err is NULL: 0, MDB_NOTFOUND (no record), EBADMSG
 * (undecodable), ENOMEM, or another MDB error. */
Postmesh__StoredMessage *queue_store_record(struct queue *q, MDB_txn *txn, const char *id, int *err);
/* The "~index" marker (index version and the config the keys depend on: store.c), put in txn. */
int queue_store_put_marker(struct queue *q, MDB_txn *txn);
/* A transaction on the store (reopened first after MDB_PANIC). 0 or an MDB error. */
int queue_store_txn(struct queue *q, unsigned flags, MDB_txn **txn);

/* rewrite.c: a walk over the store's records in queue-id order, a bounded chunk per call;
 * what it changes is written back (record and due entry) in the chunk's transaction. */
struct queue_rewrite {
    char after[QUEUE_ID_LEN]; /* the last id visited (once started) */
    int started, done;        /* done: the last record was visited */
    size_t visited, written;
};
struct queue_rewrite_ops {
    /* May tell from the packed record alone that nothing is to change (NULL: decode all). */
    int (*wanted)(const uint8_t *packed, size_t len, void *arg);
    /* A message in memory (not removed): changed there, never in the store (the chunk's
     * transaction is open: it must not touch the store nor dispatch). */
    void (*in_memory)(struct queue *q, struct qmsg *m, void *arg);
    /* A record only in the store: returns 1 if it changed rec, which is then written back. */
    int (*stored)(struct queue *q, Postmesh__StoredMessage *rec, void *arg);
    /* After the chunk's commit, for each record it rewrote (may be NULL). */
    void (*written)(struct queue *q, const char *id, void *arg);
};
/* What one chunk may do: visit records, decode (and so perhaps rewrite) records only in the
 * store, and for about how long (the visits stop then; the decodes are bounded by number). */
struct queue_rewrite_limits {
    size_t visit, decode;
    uint64_t ms;
};
/* Visits the records after the last one w visited, within lim. Returns 0, or an MDB/errno
 * error: then nothing of this chunk was written and the walk must end (its records were
 * passed, and its messages in memory may have been changed already). */
int queue_store_rewrite(struct queue *q, struct queue_rewrite *w, const struct queue_rewrite_limits *lim,
                        const struct queue_rewrite_ops *ops, void *arg);

/* etrn.c: ETRN (RFC 1985) from smtpd. `want` is the domain as the client gave it: an exact
 * domain, or "@domain" for it and its subdomains; compared without case. */
int queue_etrn_match(const char *want, const char *domain);
/* Makes the deferred remote recipients of rec for want due at now, unless held or in flight
 * (inflight may be NULL), or tried at or after tried_since (unix s; 0: no such bound) — an
 * ETRN of the same node a moment ago already gave them their attempt. Returns how many
 * recipients wait for want (0: the message does not count); *changed: some next attempt was
 * later than now. */
size_t queue_etrn_flush(Postmesh__StoredMessage *rec, const uint8_t *inflight, const char *want, uint64_t now,
                        uint64_t tried_since, int *changed);
void queue_on_etrn(struct queue *q, const uint8_t *peer, size_t peerlen, const Postmesh__BusMessage *m);
/* One bounded chunk of the first request's scan (the event loop runs it once per turn until
 * every request is answered). Returns 1 if work is left. */
int queue_etrn_turn(struct queue *q);
void queue_etrn_free(struct queue *q); /* at exit: requests dropped unanswered */

/* index.c: the due index and the bounded active set. The "due" sub-database holds one entry
 * per stored message, key = due time (8 bytes, big-endian seconds) + queue id, value = its
 * stored state (QSTATE_*); written in the same transaction as the record. */
#define QUEUE_DUE_KEY_LEN (8 + QUEUE_ID_LEN)
#define QUEUE_DUE_NEVER UINT64_MAX
/* The loader's read of the index in key order (store.c): begin (0 or an MDB error), next
 * (from: the first key >= from, NULL: the one after; 0 or MDB_NOTFOUND; state clamped to a
 * QSTATE_*), a record in the same transaction (as queue_store_record), end. */
struct queue_due_scan {
    struct queue *q;
    MDB_txn *txn;
    MDB_cursor *cur;
};
int queue_store_scan_begin(struct queue *q, struct queue_due_scan *sc);
int queue_store_scan_next(struct queue_due_scan *sc, const uint8_t *from, uint8_t key[QUEUE_DUE_KEY_LEN],
                          uint8_t *state);
void queue_store_scan_end(struct queue_due_scan *sc);
/* The loader's repairs (store.c): entries without a record deleted, entries of undecodable
 * records moved to never due. 0 or -1 (nothing changed). */
int queue_store_fix_entries(struct queue *q, uint8_t (*drop)[QUEUE_DUE_KEY_LEN], size_t ndrop,
                            uint8_t (*never)[QUEUE_DUE_KEY_LEN], size_t nnever);
void queue_due_key(uint8_t key[QUEUE_DUE_KEY_LEN], uint64_t due, const char *id);
/* The smallest key after key (the next page or pass of a scan starts there). */
void queue_due_key_after(uint8_t key[QUEUE_DUE_KEY_LEN]);
uint64_t queue_due_key_time(const uint8_t *key);
/* When the stored record next needs the queue, and its stored state. Work to do at once is
 * keyed by the message's arrival (not 0), so that entries sort by when they became due: new
 * mail queues behind the retries, expiries and delay warnings due before it. A job in flight
 * counts as not sent, so that after a restart it is dispatched again. */
uint64_t queue_stored_due(const struct pm_config *cfg, const Postmesh__StoredMessage *rec);
/* The due rule both use (index.c): queue_stored_due, and dispatch.c's next_due for a message
 * in memory (what is in flight, its DSN retry, 0 for "at once"). */
uint64_t queue_due_rule(const struct pm_config *cfg, const Postmesh__StoredMessage *rec, const uint8_t *inflight,
                        int bounce_inflight, uint64_t bounce_retry_at, uint64_t at_once);
uint8_t queue_stored_state(const Postmesh__StoredMessage *rec);
/* Loads due messages from the store into the active set while there is room. */
void queue_load_due(struct queue *q);
/* Drops m from memory when nothing needs it there (committed, no job, not dirty) and it is
 * not due, or the active set is over its limit. Returns 1 if it did. */
int queue_msg_maybe_evict(struct queue *q, struct qmsg *m, uint64_t now);
/* Drops a due message that could not be dispatched (a backlog only): others get their turn. */
int queue_msg_evict_blocked(struct queue *q, struct qmsg *m);
/* After a commit wrote m: the index entry and the depth counters follow. */
void queue_index_written(struct queue *q, struct qmsg *m);
/* Id hash of the active set: allocated at start (queue_hash_init, 0 or -1) so that adding
 * never fails (a failed growth only lengthens chains); add fails (-1) only without a table. */
int queue_hash_init(struct queue *q, size_t expected);
void queue_hash_add(struct queue *q, struct qmsg *m);
void queue_hash_del(struct queue *q, struct qmsg *m);
struct qmsg *queue_hash_get(const struct queue *q, const char *id);

/* msg.c: in-memory messages. queue_msg_new takes rec; NULL (out of memory): rec freed. */
struct qmsg *queue_msg_new(struct queue *q, Postmesh__StoredMessage *rec);
void queue_msg_mark_dirty(struct queue *q, struct qmsg *m);
void queue_msg_remove(struct queue *q, struct qmsg *m); /* unlink + mark for deletion */
void queue_msg_unlink(struct queue *q, struct qmsg *m); /* out of the arrival list only */
void queue_msg_release(struct queue *q, struct qmsg *m); /* drop a job's reference */
/* The message with id: from the active set, else loaded from the store into it (NULL: none). */
struct qmsg *queue_msg_find(struct queue *q, const char *id);
void queue_msg_free(struct qmsg *m);
/* At exit: every job and message freed (each job gives back its reference first); the store
 * keeps everything for the next start. */
void queue_free_memory(struct queue *q);

/* endpoints.c: queue.endpoint and queue.control bound with their policies. 0 or -1. */
int queue_bind(struct queue *q);
/* The periodic work (main.c's tick): leases, commit scheduling, a full dispatch walk. */
void queue_tick(struct queue *q);
void queue_new_id(char out[QUEUE_ID_LEN + 1]);
int queue_msg_finished(const struct qmsg *m);
/* Replaces a string field of a stored record (handles protobuf-c's static empty string). */
void queue_set_str(char **field, const char *value);

/* submit.c */
void queue_on_submit(struct queue *q, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m);
struct dkim_outcome;
void queue_submit_admit(struct queue *q, Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen, int owned,
                        const struct dkim_outcome *o);
void queue_commit_now(struct queue *q);
void queue_schedule_commit(struct queue *q); /* commit once the current burst is read */
int queue_count_received(const uint8_t *body, size_t len);

/* dispatch.c */
void queue_on_credit(struct queue *q, const uint8_t *peer, size_t peerlen, const Postmesh__Credit *c);
void queue_on_result(struct queue *q, const Postmesh__JobResult *r);
/* A Ping answered in order with everything sent to that peer before (control.c). */
void queue_answer_ping(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, const Postmesh__BusMessage *bm);
void queue_dispatch(struct queue *q);      /* after events: stops when no worker has credit */
void queue_dispatch_full(struct queue *q); /* periodic: every message that is due */
void queue_expire_leases(struct queue *q, uint64_t now);
void queue_domjobs_free(struct queue *q); /* at exit */

/* schedule.c: retry arithmetic and expiry */
uint64_t queue_retry_delay(uint64_t attempts, uint64_t retry_min, uint64_t retry_max);
void queue_expire_rcpt(struct qmsg *m, Postmesh__StoredRecipient *r, uint64_t now);
/* Fails the deferred recipients of a message older than queue.max_lifetime. */
void queue_expire_msg(struct queue *q, struct qmsg *m, uint64_t now);
const char *queue_rcpt_state_name(Postmesh__StoredRecipient__State s);
/* A message's state as `queue list` and the depth metric show it: hold, active, deferred,
 * queued (control.c). */
const char *queue_msg_state(const struct qmsg *m);
/* Metrics (metrics.h): serves queue.metrics with the depth-by-state gauge; counts one
 * recipient result applied, kind "local", "remote" or "bounce" (res NULL: none named). */
int queue_metrics_serve(struct queue *q);
void queue_count_result(const char *kind, const Postmesh__RecipientResult *res);

/* testhook.c: POSTMESH_TEST_QUEUE_FILL=N fills the store with N deferred messages and exits
 * (compiled out of the release build). Returns -1 if not asked, else the exit status. */
int queue_testhook_fill(struct queue *q);

/* control.c */
void queue_on_control(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg);

uint64_t queue_now(void);

#endif
