/* The one door to password checks. Sessions ask and get the answer through a callback,
 * never by looking at the users database themselves, so the check can later move to a
 * privileged parent process behind a socketpair (issue 6) without touching session code.
 * Today the check runs in-process on the next loop iteration. */
#ifndef SMTPD_AUTHDB_H
#define SMTPD_AUTHDB_H

struct smtpd_server;
struct smtpd_authdb_req;

/* ok: 1 if the password is right. Never called after smtpd_authdb_cancel. */
typedef void (*smtpd_authdb_cb)(void *arg, int ok);

/* Starts a check; the callback always runs later, from the event loop. NULL if it could
 * not be started (the caller treats that as a temporary failure). */
struct smtpd_authdb_req *smtpd_authdb_verify(struct smtpd_server *srv, const char *user, const char *password,
                                             smtpd_authdb_cb cb, void *arg);
void smtpd_authdb_cancel(struct smtpd_authdb_req *req);

#endif
