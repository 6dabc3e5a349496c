/* The worker side of the job protocol, written once for every kind of worker (mta, delivery,
 * bouncer). It owns the DEALER to queue.endpoint and everything the contract asks of a
 * worker; the service only runs jobs and reports their outcome:
 *  - Credit: the free slots (capacity minus jobs not yet answered, further limited by the
 *    service's callback) and the count of jobs received, on start, after answers and every
 *    heartbeat; retried every 100 ms until the queue is connected;
 *  - a job of the wrong kind, beyond the bounded backlog or while draining is handed back at
 *    once (RETURNED: the queue re-dispatches it and counts no attempt);
 *  - each job's lease deadline counts from its dispatch (the queue's send time against our
 *    clock, never later than arrival + lease);
 *  - a result the queue cannot take right now is held and resent until that deadline.
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
    const char *endpoint;
    Postmesh__WorkerKind kind;
    const char *name;      /* for the queue's logs */
    int capacity;          /* jobs the service runs or holds at once */
    int backlog;           /* extra jobs accepted beyond capacity (a late Credit race); 0: none */
    /* Optional: the service's own free slots (e.g. fewer while a resource is short). */
    int (*free_slots)(void *arg);
    /* A new job, already checked (kind, queue id, recipients). The service must answer it
     * exactly once with pm_job_finish or pm_job_return. */
    void (*on_job)(struct pm_job *job, void *arg);
    void *arg;
};

/* NULL (logged) if the socket cannot be created. */
struct pm_job_client *pm_job_client_new(struct event_base *base, const struct pm_job_client_config *cfg);

/* Sends the outcome of every recipient of the job and frees the job. The results' indexes
 * must be those of the job's recipients; their order does not matter. */
void pm_job_finish(struct pm_job *job, Postmesh__RecipientResult **results, size_t n);

/* Hands the job back unattempted (RETURNED, with why in the text) and frees it. */
void pm_job_return(struct pm_job *job, const char *why);

/* Gives the service the BusMessage holding the Job (job->job becomes NULL); it frees it with
 * postmesh__bus_message__free_unpacked. The job still has to be finished or returned. */
Postmesh__BusMessage *pm_job_take_message(struct pm_job *job);

/* The service's capacity changed (a slot freed outside an answer): tell the queue soon. */
void pm_job_client_credit_soon(struct pm_job_client *c);

/* Jobs received and not answered yet. */
int pm_job_client_outstanding(const struct pm_job_client *c);

/* SIGTERM: credit 0 from now on and every new job is returned. The service returns or
 * finishes what it holds; results still held go out while the bus lingers on free. */
void pm_job_client_drain(struct pm_job_client *c);

/* Hands back every job not answered yet (after the service dropped its own references),
 * so the queue re-dispatches them at once instead of waiting out their lease. */
void pm_job_client_return_all(struct pm_job_client *c, const char *why);

/* Unanswered jobs are dropped (their lease runs out in the queue). */
void pm_job_client_free(struct pm_job_client *c);

#endif
