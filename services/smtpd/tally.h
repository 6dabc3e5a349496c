/* What the smtpd workers tell each other: the sessions each one holds now, in one page the
 * parent maps shared before the first fork. smtpd.max_connections is for the whole smtpd,
 * so a worker admits a client only while its own sessions and the others' together are
 * under it; the metrics worker reports the sum. Each worker writes its own slot and only
 * reads the others'. The page is writable by every worker, so a compromised worker could
 * lie about the others' counts: at worst they refuse clients early and the gauge is wrong,
 * nothing a worker could not do by holding connections open. */
#ifndef SMTPD_TALLY_H
#define SMTPD_TALLY_H

#define SMTPD_TALLY_MAX 64 /* config.c caps smtpd.workers at 64 */

struct smtpd_tally;

/* In the parent, before the workers: NULL (logged) if the page cannot be mapped. */
struct smtpd_tally *smtpd_tally_new(void);
void smtpd_tally_free(struct smtpd_tally *t);

void smtpd_tally_set(struct smtpd_tally *t, int index, long sessions);
/* The sessions of every worker but index (all of them with index -1). */
long smtpd_tally_others(const struct smtpd_tally *t, int index);

/* Draining is for the whole smtpd (SIGTERM reaches every worker): once one worker drains,
 * every worker's readiness says "draining", also the ones that get the signal a moment
 * later. A worker starting clears it (no worker is restarted during a stop, so this only
 * ends the mark of one worker stopped alone). */
void smtpd_tally_set_draining(struct smtpd_tally *t, int on);
int smtpd_tally_draining(const struct smtpd_tally *t);

/* A worker is ready to serve: returns how many have said so since the start (a restarted
 * worker counts again). The worker that makes it smtpd.workers logs event=started, so that
 * line still means "the whole smtpd serves", as with one worker. */
int smtpd_tally_ready(struct smtpd_tally *t);

/* This worker's tally (worker.c sets it; NULL in the parent). */
extern struct smtpd_tally *smtpd_tally_mine;

#endif
