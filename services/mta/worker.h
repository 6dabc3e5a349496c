/* The mta as a queue worker (docs/internals.md "Work dispatch"): a DEALER to queue.endpoint,
 * Credit{WORKER_MTA, free slots} on start, after every job and every 2 s; jobs past the
 * concurrency limits wait in a local backlog; results that cannot be sent right away are
 * kept and resent until their lease is over. */
#ifndef MTA_WORKER_H
#define MTA_WORKER_H
#include "delivery.h"

struct mta_worker;

struct mta_worker *mta_worker_new(const struct mta_env *env);
/* Stops taking jobs, ends every delivery (undecided recipients TEMPFAIL) and sends the
 * results; the bus lingers briefly on close so they get out. */
void mta_worker_shutdown(struct mta_worker *w);
void mta_worker_free(struct mta_worker *w);

/* Free job slots: max_concurrency - running - waiting (never negative). */
int mta_worker_free_slots(const struct mta_worker *w);

#endif
