/* The mta as a queue worker (docs/internals.md "Work dispatch"), through the shared job
 * client (jobclient.h): jobs past the concurrency limits wait in a local backlog (the queue
 * already keeps each domain at mta.max_per_domain, so they are few); each delivery ends
 * before its job's lease, counted from the job's arrival. */
#ifndef MTA_WORKER_H
#define MTA_WORKER_H
#include "delivery.h"

struct mta_worker;

struct mta_worker *mta_worker_new(const struct mta_env *env);
/* Stops taking jobs, ends every delivery (undecided recipients are handed back), hands back
 * the jobs not started and sends the results; the bus lingers briefly on close so they get out. */
void mta_worker_shutdown(struct mta_worker *w);
void mta_worker_free(struct mta_worker *w);

#endif
