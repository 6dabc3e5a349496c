/* Who may send what where: relay permission, local recipients that must exist, and the
 * envelope senders an authenticated user may use. The decisions that need the users or
 * aliases files are the privileged parent's (authdb.h): these functions say when to ask. */
#ifndef SMTPD_POLICY_H
#define SMTPD_POLICY_H
#include <stddef.h>

#include "addr.h"

struct smtpd_session;

enum smtpd_verdict {
    SMTPD_REJECT = -1, /* reply holds the exact reply to send */
    SMTPD_ACCEPT = 0,
    SMTPD_ASK = 1,     /* accept only if the parent says yes (see each function) */
};

/* Authenticated, or connecting from trusted_networks. */
int smtpd_policy_may_relay(const struct smtpd_session *s);

/* addr is a parsed RCPT; *final gets the address to store (malloc'd) on ACCEPT and ASK:
 * "<Postmaster>" becomes postmaster@ the first local domain, and postmaster@ any local
 * domain is accepted without asking (common/postmaster.h). ASK: *final is in a local
 * domain and must exist (a user or an alias); smtpd_policy_rcpt_unknown() gives the reply
 * if it does not. */
enum smtpd_verdict smtpd_policy_rcpt(struct smtpd_session *s, const struct pm_addr *addr, char **final, char *reply,
                                     size_t size);
void smtpd_policy_rcpt_unknown(const char *rcpt, char *reply, size_t size);

/* addr is a parsed MAIL FROM. ASK: the authenticated user must own addr->address (an
 * alias of the user); smtpd_policy_sender_refused() gives the reply if not. */
enum smtpd_verdict smtpd_policy_sender(struct smtpd_session *s, const struct pm_addr *addr, char *reply, size_t size);
void smtpd_policy_sender_refused(const struct smtpd_session *s, const char *sender, char *reply, size_t size);

#endif
