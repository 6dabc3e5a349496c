/* Per-client-IP accounting: concurrent connections, connection rate and AUTH failures
 * with lockout. Pure bookkeeping (the caller passes the time), so it is unit-tested. */
#ifndef SMTPD_CLIENTS_H
#define SMTPD_CLIENTS_H
#include <time.h>

struct smtpd_clients;
struct smtpd_client;

struct smtpd_client_limits {
    long max_per_ip;     /* concurrent connections */
    long rate_per_min;   /* new connections per 60 s, 0 = unlimited */
    long auth_failures;  /* failures within auth_lockout seconds before a lockout */
    long auth_lockout;   /* seconds */
};

enum smtpd_client_verdict { SMTPD_CLIENT_OK, SMTPD_CLIENT_TOO_MANY, SMTPD_CLIENT_TOO_FAST };

struct smtpd_clients *smtpd_clients_new(const struct smtpd_client_limits *lim);
void smtpd_clients_free(struct smtpd_clients *c);

/* Counts a new connection from ip. On OK returns the entry (release it with
 * smtpd_clients_disconnect); otherwise NULL and *verdict says why. */
struct smtpd_client *smtpd_clients_connect(struct smtpd_clients *c, const char *ip, time_t now,
                                           enum smtpd_client_verdict *verdict);
void smtpd_clients_disconnect(struct smtpd_clients *c, struct smtpd_client *cl, time_t now);

/* Is this client locked out of AUTH right now? */
int smtpd_clients_auth_locked(const struct smtpd_clients *c, const struct smtpd_client *cl, time_t now);
/* Records a failed AUTH; returns 1 if this failure started a lockout. */
int smtpd_clients_auth_failed(struct smtpd_clients *c, struct smtpd_client *cl, time_t now);

/* Drops idle entries whose windows have expired. Returns the number of entries left. */
long smtpd_clients_sweep(struct smtpd_clients *c, time_t now);

#endif
