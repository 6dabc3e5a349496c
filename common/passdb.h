/* The password check of the mail front ends (pop3d, imapd), both sides of privilege
 * separation. The sandbox asks (async, over the privchan channel to the privileged parent)
 * and the session waits for the callback; the parent forwards to its helper process, the
 * only one that loads the users file, which answers with pm_passdb_check. */
#ifndef PM_PASSDB_H
#define PM_PASSDB_H

struct pm_priv_client;

/* ---- sandbox side ---- */
struct pm_passdb_req;
/* result: 1 the password is right; 0 unknown user or wrong password (same time either way);
 * -1 no answer (users file unreadable, parent gone). Never runs inside pm_passdb_verify. */
typedef void (*pm_passdb_cb)(void *arg, int result);

/* NULL if the question could not be sent (answer with a temporary failure). */
struct pm_passdb_req *pm_passdb_verify(struct pm_priv_client *priv, const char *user, const char *password,
                                           pm_passdb_cb cb, void *arg);
/* The callback will not run. NULL is fine. */
void pm_passdb_cancel(struct pm_passdb_req *req);

/* ---- helper side ---- */
struct pm_passdb;

/* users_file is (re)read as needed; a bad file is logged and retried at the next check. */
struct pm_passdb *pm_passdb_open(const char *users_file);
void pm_passdb_free(struct pm_passdb *db);

/* 1, 0 or -1 as above. */
int pm_passdb_check(struct pm_passdb *db, const char *user, const char *password);

#endif
