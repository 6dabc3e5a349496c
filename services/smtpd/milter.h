/* The milters of smtpd.milters, asked by every session as Postfix asks them (milter_conn.h:
 * one connection per session per milter, opened when the client connects and kept for the
 * whole session: an idle probe costs each milter a connection, as with Postfix). The
 * session waits (reading off) while a milter answers, each answer bounded by its timeout:
 *   connect  after the DNS lists passed the client, before the greeting (during the greet
 *            pause when there is one and no DNS list runs): OPTNEG, CONNECT. A reject gives
 *            the greeting 554 (the milter's text) and 503 to every command but QUIT; a 421
 *            reply is the greeting and the session closes; a tempfail greets 220 and every
 *            MAIL of the session gets it (Postfix's behaviour)
 *   HELO     each HELO/EHLO (after STARTTLS with the TLS macros) waits for the milters: a
 *            refusal is that HELO's reply, and that of every later HELO and MAIL
 *   MAIL     with its ESMTP arguments
 *   RCPT     each recipient our own checks accepted
 *   eom      the end-of-message stage "milters" (eom.h): DATA, each header, EOH, the body in
 *            chunks, end of body; then the changes (headers, body, quarantine) are applied
 *            to the message as it will be queued.
 * A milter that accepts at connect or HELO is told nothing more (its connection closes). A
 * milter that is down, too slow or breaks the protocol gets its default_action: tempfail
 * (451 4.7.1 for that command and each later MAIL of the session) or accept (the session
 * goes on without it). Recipient and sender changes (ADDRCPT, DELRCPT, CHGFROM) are not
 * offered in the negotiation. */
#ifndef SMTPD_MILTER_H
#define SMTPD_MILTER_H
#include <stddef.h>

struct smtpd_session;

/* The connect step: started (if not yet) now; 1 while the milters are asked (the session
 * waits: smtpd_session_milter_connected comes), 0 once the verdict is in or none are set. */
int smtpd_milter_connect(struct smtpd_session *s);
/* The verdict is in: 0 if the greeting is 220 (the caller sends it), 1 if it was answered
 * (554, the session then refused but for QUIT; or 421 and closed). */
int smtpd_milter_greet(struct smtpd_session *s);
/* Called by the connect step when its verdict is in (session.c): greets if the greeting waits. */
void smtpd_session_milter_connected(struct smtpd_session *s);

/* HELO/EHLO passed our checks (s->helo set): 1 if the milters have it (they answer with
 * smtpd_helo_answer or refuse), 0 to answer now. */
int smtpd_milter_helo(struct smtpd_session *s);

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
