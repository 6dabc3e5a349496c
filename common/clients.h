/* Per-client-address accounting for the front ends (smtpd, pop3d): concurrent connections,
 * connection rate, password checks in flight, and failed logins with lockout. Pure
 * bookkeeping (the caller passes the time), so it is unit-tested.
 *
 * Bounded: at most max_entries addresses are remembered. A connected client is always kept.
 * When the table is full, a new address takes the place of the address seen longest ago
 * that has nothing but counters to lose (not locked out); when every remembered address is
 * connected or locked out, the new address is refused (PM_CLIENT_TABLE_FULL) until a
 * lockout ends. A flood of source addresses (IPv6 makes them cheap) must never be a way to
 * make the table forget a lockout. */
#ifndef PM_CLIENTS_H
#define PM_CLIENTS_H
#include <time.h>

#define PM_CLIENTS_MAX_ENTRIES 100000

struct pm_clients;
struct pm_client;

struct pm_client_limits {
    long max_per_ip;     /* concurrent connections */
    long rate_per_min;   /* new connections per 60 s, 0 = unlimited */
    long auth_failures;  /* failures within auth_lockout seconds before a lockout */
    long auth_lockout;   /* seconds; 0 = no lockout */
    long auth_in_flight; /* password checks running at once per address, 0 = unlimited */
    long max_entries;    /* addresses remembered at most, 0 = PM_CLIENTS_MAX_ENTRIES */
};

enum pm_client_verdict { PM_CLIENT_OK, PM_CLIENT_TOO_MANY, PM_CLIENT_TOO_FAST, PM_CLIENT_TABLE_FULL };

struct pm_clients *pm_clients_new(const struct pm_client_limits *lim);
void pm_clients_free(struct pm_clients *c);

/* Counts a new connection from ip. On OK returns the entry (valid until
 * pm_clients_disconnect); otherwise NULL and *verdict says why (NULL with OK: no memory). */
struct pm_client *pm_clients_connect(struct pm_clients *c, const char *ip, time_t now,
                                     enum pm_client_verdict *verdict);
void pm_clients_disconnect(struct pm_clients *c, struct pm_client *cl, time_t now);

/* Is this client locked out of AUTH right now? */
int pm_clients_auth_locked(const struct pm_clients *c, const struct pm_client *cl, time_t now);
/* Records a failed AUTH; returns 1 if this failure started a lockout. */
int pm_clients_auth_failed(struct pm_clients *c, struct pm_client *cl, time_t now);

/* A password check of this client starts: 0 (not counted) if auth_in_flight of its checks
 * already run. Every 1 is matched by one pm_clients_auth_end. */
int pm_clients_auth_begin(struct pm_clients *c, struct pm_client *cl);
void pm_clients_auth_end(struct pm_clients *c, struct pm_client *cl);

/* Drops entries with nothing left to remember. Returns the number of entries left. */
long pm_clients_sweep(struct pm_clients *c, time_t now);

#endif
