/* The password check, behind one small interface so it can move to a privileged parent
 * over a socketpair (privilege separation) without touching the session code. */
#ifndef POP3_PASSDB_H
#define POP3_PASSDB_H

struct pop3_passdb;

/* users_file is (re)read as needed; a bad file is logged and retried at the next check. */
struct pop3_passdb *pop3_passdb_open(const char *users_file);
void pop3_passdb_free(struct pop3_passdb *db);

/* 1: the password is right; 0: unknown user or wrong password (same time either way);
 * -1: the users database cannot be read. */
int pop3_passdb_verify(struct pop3_passdb *db, const char *user, const char *password);

#endif
