/* The bouncer's job worker, its side of "Work dispatch" (docs/internals.md): through the
 * shared job client (jobclient.h) it takes WORKER_BOUNCER jobs from every queue shard, turns
 * each Job into a DSN, submits it to a shard that is up (common/queueset.h, as smtpd does;
 * replies matched by request_id) and answers the Job with DELIVERED once a shard committed
 * the DSN, TEMPFAIL when none did (error, timeout), PERMFAIL when the queue refused it for
 * good. A DSN whose shard lost its connection or did not answer within a short per-shard
 * timeout is sent to another shard. A slot is busy from the Submit until its SubmitReply. */
#ifndef BOUNCER_WORKER_H
#define BOUNCER_WORKER_H

struct event_base;
struct bouncer_worker;

struct bouncer_worker_config {
    const char *endpoint;     /* queue.endpoint, when nendpoints == 0 */
    const char *const *endpoints; /* one per queue shard (cfg->queue.endpoints) */
    int nendpoints;
    const char *hostname;     /* for the DSN and the worker's name */
    int slots;                /* DSN submissions in flight at once */
    int submit_timeout_ms;    /* wait for SubmitReply, then TEMPFAIL */
    long long delay_warning;  /* for the warning's wording */
    long long max_lifetime;   /* for Will-Retry-Until */
};

/* NULL (logged) if the bus sockets cannot be created. */
struct bouncer_worker *bouncer_worker_new(struct event_base *base, const struct bouncer_worker_config *cfg);
/* SIGTERM: no new jobs (credit 0), jobs not started are handed back, and the loop ends once
 * the DSNs already submitted are answered by the queue, or after timeout_ms (then those are
 * handed back too: if the queue did commit one, the sender may get it twice, at-least-once).
 * Call it from inside the running loop (a signal callback): it may break the loop at once. */
void bouncer_worker_drain(struct bouncer_worker *w, int timeout_ms);
/* Drops unanswered jobs: the queue dispatches them again when their lease runs out. */
void bouncer_worker_free(struct bouncer_worker *w);

#endif
