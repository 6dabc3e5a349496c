/* The password check, both sides of privilege separation. The sandbox asks (async, over the
 * privchan channel to the privileged parent) and the session waits for the callback; the
 * parent forwards to its helper process, the only one that loads the users file, which
 * answers with pop3_passdb_check. */
#ifndef POP3_PASSDB_H
#define POP3_PASSDB_H

struct pm_priv_client;

/* ---- sandbox side ---- */
struct pop3_passdb_req;
/* result: 1 the password is right; 0 unknown user or wrong password (same time either way);
 * -1 no answer (users file unreadable, parent gone). Never runs inside pop3_passdb_verify. */
typedef void (*pop3_passdb_cb)(void *arg, int result);

/* NULL if the question could not be sent (answer with a temporary failure). */
struct pop3_passdb_req *pop3_passdb_verify(struct pm_priv_client *priv, const char *user, const char *password,
                                           pop3_passdb_cb cb, void *arg);
/* The callback will not run. NULL is fine. */
void pop3_passdb_cancel(struct pop3_passdb_req *req);

/* ---- helper side ---- */
struct pop3_passdb;

/* users_file is (re)read as needed; a bad file is logged and retried at the next check. */
struct pop3_passdb *pop3_passdb_open(const char *users_file);
void pop3_passdb_free(struct pop3_passdb *db);

/* 1, 0 or -1 as above. */
int pop3_passdb_check(struct pop3_passdb *db, const char *user, const char *password);

#endif
