/* Is each recipient of a job a local user? The worker never loads the users file: it asks
 * the privileged parent (PM_PRIV_RCPT_EXISTS over the privchan channel, one question per
 * recipient) and hands the job on once every answer is in. The parent forwards to its
 * helper process, the only one that reads the file (it also holds password hashes). */
#ifndef DELIVERY_USERCHECK_H
#define DELIVERY_USERCHECK_H

#include "job.h"

struct pm_priv_client;
struct delivery_checks;

/* Called once per job with every recipient's user answer recorded (delivery_job_set_user);
 * the callee owns the job. */
typedef void (*delivery_checked)(struct delivery_job *job, void *arg);

struct delivery_checks *delivery_checks_new(struct pm_priv_client *priv, delivery_checked done, void *arg);

/* Starts the questions for job (owned until done runs; done may run before this returns,
 * e.g. when the parent is gone and every answer is -1). */
void delivery_checks_start(struct delivery_checks *c, struct delivery_job *job);

/* Jobs waiting for answers (they count as busy slots). */
int delivery_checks_pending(const struct delivery_checks *c);

/* Drops the waiting jobs (their lease expires; the queue dispatches them again). */
void delivery_checks_free(struct delivery_checks *c);

#endif
