/* Who may send what where: relay permission, local recipients that must exist, and the
 * envelope senders an authenticated user may use. Each check returns 0 (accept) or -1
 * with the exact reply to send. */
#ifndef SMTPD_POLICY_H
#define SMTPD_POLICY_H
#include <stddef.h>

#include "addr.h"

struct smtpd_session;

/* Authenticated, or connecting from trusted_networks. */
int smtpd_policy_may_relay(const struct smtpd_session *s);

/* addr is a parsed RCPT; *final gets the address to store (malloc'd): "<Postmaster>" becomes
 * postmaster@ the first local domain. */
int smtpd_policy_rcpt(struct smtpd_session *s, const struct pm_addr *addr, char **final, char *reply, size_t size);

/* addr is a parsed MAIL FROM. */
int smtpd_policy_sender(struct smtpd_session *s, const struct pm_addr *addr, char *reply, size_t size);

#endif
