/* What the smtpd sandboxes tell each other: the sessions each one holds now, in one page the
 * parent maps shared before the first fork. smtpd.max_connections is for the whole smtpd,
 * so a sandbox admits a client only while its own sessions and the others' together are
 * under it; the metrics sandbox reports the sum. Each sandbox writes its own slot and only
 * reads the others'. The page is writable by every sandbox, so a compromised sandbox could
 * lie about the others' counts: at worst they refuse clients early and the gauge is wrong,
 * nothing a sandbox could not do by holding connections open. */
#ifndef SMTPD_TALLY_H
#define SMTPD_TALLY_H

#define SMTPD_TALLY_MAX 64 /* config.c caps smtpd.sandboxes at 64 */

struct smtpd_tally;

/* In the parent, before the sandboxes: NULL (logged) if the page cannot be mapped. */
struct smtpd_tally *smtpd_tally_new(void);
void smtpd_tally_free(struct smtpd_tally *t);

void smtpd_tally_set(struct smtpd_tally *t, int index, long sessions);
/* The sessions of every sandbox but index (all of them with index -1). */
long smtpd_tally_others(const struct smtpd_tally *t, int index);

/* Draining is for the whole smtpd (SIGTERM reaches every sandbox): once one sandbox
 * drains, every sandbox's readiness says "draining", also the ones that get the signal a
 * moment later. A sandbox starting clears it (no sandbox is restarted during a stop, so this only
 * ends the mark of one sandbox stopped alone). */
void smtpd_tally_set_draining(struct smtpd_tally *t, int on);
int smtpd_tally_draining(const struct smtpd_tally *t);

/* A sandbox is ready to serve: returns how many have said so since the start (a restarted
 * sandbox counts again). The sandbox that makes it smtpd.sandboxes logs event=started, so
 * that line still means "the whole smtpd serves", as with one sandbox. */
int smtpd_tally_ready(struct smtpd_tally *t);

/* This sandbox's tally (sandbox.c sets it; NULL in the parent). */
extern struct smtpd_tally *smtpd_tally_mine;

#endif
