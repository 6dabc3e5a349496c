/* postmaster@ every local domain (RFC 5321 4.5.1): it must be accepted whoever the users
 * file lists, and it always has somewhere to go. The rule lives here once, for smtpd (RCPT
 * needs nobody's answer), delivery (its mailbox exists without a users entry) and `postmesh
 * check` (says where it goes). Where it goes is the aliases file's business: the queue
 * expands `postmaster@domain` (or a bare `postmaster`) at commit like any alias; without
 * an alias, the mail stays in the postmaster@domain mailbox, which `postmesh user add`
 * can give a password to read it over POP3. */
#ifndef PM_POSTMASTER_H
#define PM_POSTMASTER_H

#include "config.h"

/* 1 if address is postmaster@<one of cfg's local domains>, in any case. */
int pm_postmaster_is(const struct pm_config *cfg, const char *address);

#endif
