/* A small pool of threads doing the blocking Maildir writes. Finished jobs come back to the
 * event loop thread through a pipe, so everything else (bus, users, logs of results) stays
 * single-threaded. */
#ifndef DELIVERY_POOL_H
#define DELIVERY_POOL_H

#include "job.h"

struct event_base;
struct delivery_pool;

/* Called on the event loop thread for every finished job; the callee owns the job. */
typedef void (*delivery_pool_done)(struct delivery_job *job, void *arg);

struct delivery_pool *delivery_pool_new(struct event_base *base, int threads, delivery_pool_done done, void *arg);

/* Queues a prepared job (the pool owns it until it is handed to done). */
void delivery_pool_submit(struct delivery_pool *p, struct delivery_job *job);

/* Jobs queued or running. */
int delivery_pool_busy(const struct delivery_pool *p);

/* Stops: running jobs finish and are handed to done; jobs not started are dropped (their
 * lease expires and the queue dispatches them again). */
void delivery_pool_free(struct delivery_pool *p);

#endif
