/* The DSN parameters (RFC 3461) the SMTP client sends to a server that offers DSN: RET and
 * ENVID on MAIL, NOTIFY and ORCPT on RCPT, xtext-encoded. The values are those smtpd stored
 * (decoded). */
#ifndef PM_SMTPC_DSN_H
#define PM_SMTPC_DSN_H

#include <stddef.h>

struct evbuffer;

/* NOTIFY bits: the proto's DsnNotify values. */
#define PM_SMTPC_NOTIFY_SUCCESS 1u
#define PM_SMTPC_NOTIFY_FAILURE 2u
#define PM_SMTPC_NOTIFY_DELAY 4u
#define PM_SMTPC_NOTIFY_NEVER 8u

/* " RET=FULL|HDRS" (ret 1, 2; 0 none) and " ENVID=xtext" (envid "" or NULL: none). */
void pm_smtpc_dsn_mail(struct evbuffer *out, int ret, const char *envid);

/* " NOTIFY=..." (notify 0: none) and " ORCPT=type;xtext" (orcpt "type;address", ""/NULL: none). */
void pm_smtpc_dsn_rcpt(struct evbuffer *out, unsigned notify, const char *orcpt);

/* xtext (RFC 3461 4) of s into dst; its length, or -1 if it does not fit. */
int pm_smtpc_xtext(char *dst, size_t size, const char *s);

#endif
