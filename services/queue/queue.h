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

/* One message in memory: its stored record plus what only matters while running. */
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
    struct qmsg *prev, *next;     /* arrival order */
    struct qmsg *dirty_next;
    /* a new message waiting for the group commit: */
    Postmesh__BusMessage *pending_submit; /* the submission (body inside), until committed */
    uint8_t peer[256];
    size_t peerlen;
    uint64_t request_id;
};

struct worker {
    uint8_t id[256];
    size_t idlen;
    uint64_t serial;        /* names it in jobs (the array is compacted when one leaves) */
    Postmesh__WorkerKind kind;
    int credits;            /* jobs it can take now: its free slots minus jobs on the way */
    uint64_t jobs_sent;     /* counted like the worker's jobs_received */
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
    MDB_dbi db_meta, db_body;
    struct qmsg *head, *tail; /* all messages in arrival order */
    struct qmsg *dirty;       /* records to write at the next commit */
    size_t nmsgs;
    size_t batch;             /* new submissions waiting in the current batch */
    struct event *commit_ev;
    int commit_scheduled;
    struct event *tick_ev;
    struct worker *workers;
    size_t nworkers;
    struct job *jobs;
    uint64_t epoch;           /* random per start: a job of an earlier run never matches */
    uint64_t next_job_id;
    uint64_t next_worker_serial;
    struct pm_aliases *aliases;
    uint64_t committed_total, commits_total;
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

/* msg.c: in-memory messages */
struct qmsg *queue_msg_new(struct queue *q, Postmesh__StoredMessage *rec);
void queue_msg_mark_dirty(struct queue *q, struct qmsg *m);
void queue_msg_remove(struct queue *q, struct qmsg *m); /* unlink + mark for deletion */
void queue_msg_release(struct queue *q, struct qmsg *m); /* drop a job's reference */
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

/* control.c */
void queue_on_control(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg);

uint64_t queue_now(void);

#endif
