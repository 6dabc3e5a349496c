/* The worker side of the job protocol, written once for every kind of worker (mta, delivery,
 * bouncer). It owns one DEALER per queue shard (queue.endpoint, or each of the list) and
 * everything the contract asks of a worker; the service only runs jobs and reports their
 * outcome:
 *  - every job remembers the shard it came from; its result (or RETURNED) goes back there
 *    and nowhere else (one DEALER on several endpoints would round-robin its sends);
 *  - Credit to every shard: the free slots of the whole worker (capacity minus jobs not yet
 *    answered from any shard, further limited by the service's callback), so the slots are
 *    never counted once per shard; two shards filling the same free slot at once land in
 *    the backlog (or come back RETURNED beyond it). With jobs_received counted per shard, on
 *    start, after answers, after jobs from another shard, and every heartbeat; retried every
 *    100 ms while that shard is not connected;
 *  - a job of the wrong kind, beyond the bounded backlog or while draining is handed back at
 *    once (RETURNED: the queue re-dispatches it and counts no attempt);
 *  - each job's lease deadline counts from its dispatch (the queue's send time against our
 *    clock, never later than arrival + lease);
 *  - a result the queue cannot take right now is held and resent until that deadline, to its
 *    own shard only: a shard that is down or restarting holds up nothing from the others.
 * What it does not do: run or schedule jobs (the service decides what starts when). */
#ifndef PM_JOBCLIENT_H
#define PM_JOBCLIENT_H
#include <stddef.h>
#include <stdint.h>

#include "postmesh.pb-c.h"

struct event_base;
struct pm_job_client;

/* One job from its arrival until pm_job_finish or pm_job_return. */
struct pm_job {
    const Postmesh__Job *job; /* the decoded Job; NULL after pm_job_take_message */
    uint64_t deadline_ms;     /* CLOCK_MONOTONIC ms after which the queue dispatches it again */
    uint64_t lease_ms;        /* the job's whole lease (deadline_ms <= arrival + lease_ms) */
    void *user;               /* the service's own state for this job */
};

struct pm_job_client_config {
    const char *endpoint;              /* the one queue when nendpoints == 0 */
    const char *const *endpoints;      /* one per queue shard (cfg->queue.endpoints) */
    int nendpoints;
    Postmesh__WorkerKind kind;
    const char *name;      /* for the queue's logs */
    int capacity;          /* jobs the service runs or holds at once */
    int backlog;           /* extra jobs accepted beyond capacity (a late Credit race); 0: none */
    /* Optional: the service's own free slots (e.g. fewer while a resource is short). */
    int (*free_slots)(void *arg);
    /* A new job of the client's kind, its fields checked where it was decoded (bus_valid.h:
     * queue id, recipients, addresses). The service must answer it exactly once with
     * pm_job_finish or pm_job_return. */
    void (*on_job)(struct pm_job *job, void *arg);
    void *arg;
};

/* NULL (logged) if the socket cannot be created. */
struct pm_job_client *pm_job_client_new(struct event_base *base, const struct pm_job_client_config *cfg);

/* Sends the outcome of every recipient of the job and frees the job. The results' indexes
 * must be those of the job's recipients; their order does not matter. */
void pm_job_finish(struct pm_job *job, Postmesh__RecipientResult **results, size_t n);
/* The same with the mta's TLS sessions for TLS reporting (JobResult.tls_sessions; copied
 * when sent or held, the caller keeps them). */
void pm_job_finish_tls(struct pm_job *job, Postmesh__RecipientResult **results, size_t n,
                       Postmesh__TlsSession **sessions, size_t nsessions);

/* Hands the job back unattempted (RETURNED, with why in the text) and frees it. */
void pm_job_return(struct pm_job *job, const char *why);

/* Gives the service the BusMessage holding the Job (job->job becomes NULL); it frees it with
 * postmesh__bus_message__free_unpacked. The job still has to be finished or returned. */
Postmesh__BusMessage *pm_job_take_message(struct pm_job *job);

/* The service's capacity changed (a slot freed outside an answer): tell the queue soon. */
void pm_job_client_credit_soon(struct pm_job_client *c);

/* Jobs received and not answered yet (from every shard). */
int pm_job_client_outstanding(const struct pm_job_client *c);

/* SIGTERM: credit 0 from now on and every new job is returned. The service returns or
 * finishes what it holds; results still held go out while the bus lingers on free. */
void pm_job_client_drain(struct pm_job_client *c);

/* After the service's loop stopped: waits (running base, at most timeout_ms) until every
 * shard answered the Ping pm_job_client_drain sent behind its credit 0, handing back every
 * job that was already on the way, so none is left to wait out its lease. */
void pm_job_client_settle(struct pm_job_client *c, struct event_base *base, int timeout_ms);
#define PM_JOB_SETTLE_MS 1000 /* what every worker gives it on SIGTERM */

/* Hands back every job not answered yet (after the service dropped its own references),
 * so the queue re-dispatches them at once instead of waiting out their lease. */
void pm_job_client_return_all(struct pm_job_client *c, const char *why);

/* Unanswered jobs are dropped (their lease runs out in the queue). */
void pm_job_client_free(struct pm_job_client *c);

#endif
