/* The smtpd process: listeners, the queue connection, TLS, users/aliases and the table of
 * live sessions. One event loop serves every session. */
#ifndef SMTPD_SERVER_H
#define SMTPD_SERVER_H
#include <stdint.h>
#include <time.h>

#include "config.h"

struct event_base;
struct event;
struct evconnlistener;
struct pm_bus;
struct pm_users;
struct pm_aliases;
struct smtpd_session;
struct smtpd_tls;
struct smtpd_clients;

enum smtpd_mode { SMTPD_MODE_SMTP, SMTPD_MODE_SUBMISSION, SMTPD_MODE_SMTPS };

struct smtpd_listener {
    struct smtpd_server *srv;
    struct evconnlistener *lev;
    struct event *retry; /* re-enables accepting after EMFILE and friends */
    enum smtpd_mode mode;
    char address[128];
};

#define SMTPD_PENDING_BUCKETS 1024

struct smtpd_server {
    struct pm_config *cfg;
    struct event_base *base;
    struct smtpd_listener *listeners;
    int nlisteners;
    struct pm_bus *bus;          /* DEALER to queue.endpoint */
    struct smtpd_tls *tls;       /* NULL when no certificate is configured */
    struct pm_users *users;
    struct pm_aliases *aliases;
    time_t lists_checked;        /* last reload check of users/aliases */
    struct smtpd_clients *clients;
    struct smtpd_session *sessions; /* every live session */
    long nsessions;
    struct smtpd_session *pending[SMTPD_PENDING_BUCKETS]; /* by request_id, see submit.c */
    uint64_t next_request_id;
    struct event *ev_term, *ev_int, *ev_hup, *ev_sweep;
};

/* Loads users, aliases and TLS, opens listeners and the bus. -1 (logged) on failure. */
int smtpd_server_init(struct smtpd_server *srv, struct pm_config *cfg, struct event_base *base);
void smtpd_server_free(struct smtpd_server *srv);

/* Re-reads users/aliases if they changed; checks at most once a second. */
void smtpd_server_refresh_lists(struct smtpd_server *srv);

const char *smtpd_mode_name(enum smtpd_mode m);

#endif
