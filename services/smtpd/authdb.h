/* The one door to the privileged parent: password checks, local recipient existence and
 * the senders an authenticated user may use. The sandbox holds no users or aliases data; it
 * asks over the privchan channel and the session waits for the callback (reading paused).
 * The parent forwards to its helper processes, which alone load the files (lookup.h). A
 * recipient found to exist is remembered for smtpd.lookup_cache_ttl seconds (authdb.c). */
#ifndef SMTPD_AUTHDB_H
#define SMTPD_AUTHDB_H

struct smtpd_server;
struct smtpd_authdb_req;

/* result: 1 yes, 0 no, -1 no answer (parent or helper unavailable: a temporary failure).
 * Never called after smtpd_authdb_cancel, never from inside the call that started it. */
typedef void (*smtpd_authdb_cb)(void *arg, int result);

/* Each returns NULL if the question could not be sent (the caller answers with a temporary
 * failure), else a handle valid until the callback ran or it was cancelled. */
struct smtpd_authdb_req *smtpd_authdb_verify(struct smtpd_server *srv, const char *user, const char *password,
                                             smtpd_authdb_cb cb, void *arg);
struct smtpd_authdb_req *smtpd_authdb_rcpt_exists(struct smtpd_server *srv, const char *address, smtpd_authdb_cb cb,
                                                  void *arg);
struct smtpd_authdb_req *smtpd_authdb_sender_ok(struct smtpd_server *srv, const char *user, const char *sender,
                                                smtpd_authdb_cb cb, void *arg);
void smtpd_authdb_cancel(struct smtpd_authdb_req *req);

#endif
