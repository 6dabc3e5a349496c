/* The milters of smtpd.milters, asked by every session (milter_conn.h: one connection per
 * session per milter, opened at the session's first MAIL and kept for its other
 * transactions). The session waits (state LOOKUP, reading off) while a milter answers:
 *   MAIL   connect (the client's address), HELO (the last one, with the TLS macros) and MAIL
 *          with its ESMTP arguments; a milter that refuses the connect or HELO has every
 *          later MAIL of the session refused with its reply
 *   RCPT   each recipient our own checks accepted
 *   eom    the end-of-message stage "milters" (eom.h): DATA, each header, EOH, the body in
 *          chunks, end of body; then the changes (headers, body, quarantine) are applied
 *          to the message as it will be queued.
 * A milter that is down, too slow or breaks the protocol gets its default_action:
 * tempfail (451 4.7.1 for that command and each later one of the session) or accept (the
 * session goes on without it). Recipient and sender changes (ADDRCPT, DELRCPT, CHGFROM)
 * are not offered in the negotiation. */
#ifndef SMTPD_MILTER_H
#define SMTPD_MILTER_H
#include <stddef.h>

struct smtpd_session;

/* Keeps the ESMTP arguments of a MAIL or RCPT line (the command's argument: "FROM:<a> X=y")
 * for the milters; nothing when there are none configured. */
void smtpd_milter_args(struct smtpd_session *s, const char *arg, size_t len);

/* MAIL passed our checks (s->txn is filled): 1 if the milters have it (they answer 250
 * or refuse and reset the transaction, resuming the session), 0 to answer 250 now. */
int smtpd_milter_mail(struct smtpd_session *s);

/* RCPT passed our checks: 1 if the milters have it (on their yes they call
 * finish(s, *final), which takes final; on a no they refuse it), 0 to go on now. */
int smtpd_milter_rcpt(struct smtpd_session *s, char **final, void (*finish)(struct smtpd_session *s, char *final));

/* The end-of-message stage (eom.c's "milters" row). */
int smtpd_milter_eom_wanted(const struct smtpd_session *s);
void smtpd_milter_eom_start(struct smtpd_session *s);
void smtpd_milter_eom_cancel(struct smtpd_session *s);

/* The session is closing: every milter connection is closed (QUIT), nothing calls back. */
void smtpd_milter_end(struct smtpd_session *s);

#endif
