/* An smtpd sandbox's server: listeners (sockets the privileged parent opened), the queue
 * connection and the requests waiting on it, TLS, the channel to the parent (users and
 * aliases checks) and the table of live sessions. One event loop serves every session. */
#ifndef SMTPD_SERVER_H
#define SMTPD_SERVER_H
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "listeners.h"

struct event_base;
struct event;
struct evconnlistener;
struct pm_bus;
struct pm_priv_client;
struct smtpd_session;
struct smtpd_pending;
struct smtpd_tls;
struct pm_clients;
struct pm_proxy_waits;
struct smtpd_dns;

enum smtpd_mode { SMTPD_MODE_SMTP, SMTPD_MODE_SUBMISSION, SMTPD_MODE_SMTPS };

struct smtpd_listener {
    struct smtpd_server *srv;
    struct evconnlistener *lev;
    struct event *retry; /* re-enables accepting after EMFILE and friends */
    enum smtpd_mode mode;
    int proxy_protocol; /* connections start with a PROXY header (proxywait.h) */
    char address[128];
};

#define SMTPD_PENDING_BUCKETS 1024
/* Password checks of one client address running at once (beyond: 454 4.7.0): one address
 * cannot take every turn at the password helper (parent.h caps the whole sandbox). */
#define SMTPD_AUTH_PER_CLIENT 4
/* Message bodies buffered by the sandbox at once, in max_message_size units: the memory
 * budget for bodies unless smtpd.body_memory_mb sets it. Over it: 452 4.3.1. */
#define SMTPD_BODY_BUDGET_MESSAGES 8

struct smtpd_server {
    struct pm_config *cfg;
    struct event_base *base;
    struct smtpd_listener *listeners;
    int nlisteners;
    struct pm_queueset *queues;  /* a DEALER per queue shard (pending.h) */
    struct smtpd_dns *dns;       /* questions to the resolver, its answers cached (dns.h) */
    struct smtpd_tls *tls;       /* NULL when no certificate is configured */
    struct pm_priv_client *priv; /* questions to the privileged parent (authdb.h) */
    struct pm_clients *clients;
    struct smtpd_session *sessions; /* every live session */
    long nsessions;
    struct smtpd_pending *pending[SMTPD_PENDING_BUCKETS]; /* requests waiting, by id (pending.h) */
    uint64_t next_request_id;
    unsigned long long body_budget; /* bytes of message bodies all sessions may hold together */
    unsigned long long body_used;   /* held now (message.c) */
    struct event *ev_term, *ev_int, *ev_sweep;
    struct pm_proxy_waits *proxy; /* connections waiting for their PROXY header (NULL: no such listener) */
    long long max_sessions;       /* sessions this process may hold: smtpd.max_connections, less
                                   * what the other sandboxes hold (before_accept keeps it so) */
    /* With several sandboxes (sandbox.c): before an accept, max_sessions from the shared
     * tally; after it, our count into the tally. NULL with one sandbox. */
    void (*before_accept)(struct smtpd_server *srv);
    void (*after_accept)(struct smtpd_server *srv);
    /* Graceful stop (drain.c) */
    int draining;                 /* SIGTERM seen: listeners closed, idle sessions told 421 */
    int drain_expired;            /* smtpd.drain_timeout passed: every session is told 421 */
    long nlinger;                 /* sessions only lingering after their FIN */
    struct event *ev_drain;       /* the drain deadline, then the final grace */
};

/* Serves the inherited listening sockets, connects to the queue and takes the channel to
 * the parent (priv_fd) and tls (may be NULL; owned from now on, also on failure).
 * -1 (logged) on failure. */
int smtpd_server_init(struct smtpd_server *srv, struct pm_config *cfg, struct event_base *base,
                      const struct pm_listener *fds, int nfds, struct smtpd_tls *tls, int priv_fd);
void smtpd_server_free(struct smtpd_server *srv);

const char *smtpd_mode_name(enum smtpd_mode m);
enum smtpd_mode smtpd_mode_parse(const char *name);

#endif
