/* What smtpd's privileged helper answers for the sandbox (privhelper.h): passwords, local
 * recipients and the senders an authenticated user may use, from the users and aliases
 * files (re-read when they change: the users file at every question, the aliases at most
 * once a second). Only the helper processes ever load these files: no sandbox holds a
 * password hash. */
#ifndef SMTPD_LOOKUP_H
#define SMTPD_LOOKUP_H

#include "config.h"
#include "privchan.h"

struct pm_users;
struct pm_aliases;
struct smtpd_lookup;

/* Loads both files (errors are logged; the answers are then -1 until a good version). */
struct smtpd_lookup *smtpd_lookup_open(const struct pm_config *cfg);
void smtpd_lookup_free(struct smtpd_lookup *l);

/* PM_PRIV_AUTH, PM_PRIV_RCPT_EXISTS, PM_PRIV_SENDER_OK -> reply->result 1, 0 or -1. */
void smtpd_lookup_answer(struct smtpd_lookup *l, const struct pm_priv_msg *req, struct pm_priv_msg *reply);

/* A user or an alias of a local domain? */
int smtpd_lookup_local_exists(const struct pm_users *users, const struct pm_aliases *aliases,
                              const struct pm_config *cfg, const char *address);
/* May user send as address: the same address, or an alias that expands to it? */
int smtpd_lookup_owns(const struct pm_aliases *aliases, const struct pm_config *cfg, const char *user,
                      const char *address);

#endif
