/* The mta's job worker (docs/internals.md "Work dispatch"), through the shared job client
 * (jobclient.h): jobs past the concurrency limits wait in a local backlog (the queue already
 * keeps each domain at mta.max_per_domain, so they are few); each outbound job (outbound.h)
 * ends before its lease, counted from the job's arrival. */
#ifndef MTA_WORKER_H
#define MTA_WORKER_H
#include "outbound.h"

struct mta_worker;

struct mta_worker *mta_worker_new(const struct mta_env *env);
/* SIGTERM, for a rolling restart. Stops taking jobs (credit 0 to every shard), hands back the
 * jobs not started and ends every outbound job at once (undecided recipients are handed back:
 * RETURNED, so the queue gives them to another mta now), except one whose body went out and
 * waits for the server's verdict: with grace, those may finish for up to MTA_DRAIN_GRACE_MS
 * (the caller runs the loop again; it is broken when the last one is done or the grace is
 * over). Returns the jobs still running. Without grace, ends them too. The bus lingers
 * briefly on close so the results get out. */
#define MTA_DRAIN_GRACE_MS 3000
int mta_worker_shutdown(struct mta_worker *w, int grace);
void mta_worker_free(struct mta_worker *w);

#endif
