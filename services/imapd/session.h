/* IMAP sessions on libevent bufferevents: the server every session of the sandbox shares
 * (configuration, TLS context, the channel to the parent, per-address accounting, the
 * inotify instance of IDLE) and the session lifecycle seen from sandbox.c and drain.c. */
#ifndef IMAP_SESSION_H
#define IMAP_SESSION_H
#include <event2/util.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "config.h"

/* Password checks of one client address running at once (beyond: NO [UNAVAILABLE]), so
 * one address cannot take every turn at the password helper (parent.h caps the sandbox). */
#define IMAP_AUTH_PER_CLIENT 4
/* Without imapd.session_timeout a session lasts at most this many imapd.idle_timeout
 * periods (a day by default), however busy: a slot is not held forever. */
#define IMAP_SESSION_TIMEOUTS 48
#define IMAP_SESSION_LIMIT(cfg) ((cfg)->imapd.session_timeout ? (cfg)->imapd.session_timeout \
                                                               : (cfg)->imapd.idle_timeout * IMAP_SESSION_TIMEOUTS)

struct event_base;
struct event;
struct evconnlistener;
struct pm_priv_client;
struct pm_clients;
struct pm_mailfront_loop;
struct imap_session;
struct imap_idle_watch;
struct imap_idle_link;

#define IMAP_IDLE_BUCKETS 256 /* inotify watch descriptors -> folders */

struct imap_server {
    const struct pm_config *cfg;
    struct pm_mailfront_loop *loop; /* the sandbox's loop (mailfront_loop.h): ->tls is the
                                       TLS context now (NULL: no STARTTLS and no imaps) */
    struct event_base *base;      /* the loop's, and the next two too */
    struct pm_priv_client *priv;  /* password checks by the privileged parent */
    struct pm_clients *clients;   /* per client address: connections, logins in flight, lockout */
    char mail_root[4096];         /* the mail store as this process sees it (mailroot.h) */
    long nsessions;
    unsigned long long next_id;
    struct imap_session *sessions;
    /* IDLE (idle.c): one inotify instance for every session, its watches shared, found by
     * watch descriptor through a small hash. */
    int inotify_fd;
    struct event *inotify_ev;
    struct event *idle_poll_ev; /* every IDLE_POLL_S: folders without a working watch */
    struct imap_idle_watch *watches;
    struct imap_idle_link *by_wd[IMAP_IDLE_BUCKETS];
    /* Graceful stop (drain.c) */
    int draining;                 /* SIGTERM seen: listeners closed, idle sessions told BYE */
    int drain_expired;            /* imapd.drain_timeout passed: every session goes */
    struct event *ev_drain;
};

/* Takes over fd (an accepted, non-blocking socket). sa is the client's address; proxy the
 * PROXY-protocol peer it came through (logged), or NULL for a direct connection. */
void imap_session_start(struct imap_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int implicit_tls,
                        const struct sockaddr *proxy);
/* Ends every session at once (shutdown). */
void imap_session_close_all(struct imap_server *srv);

/* idle.c: the inotify instance (-1 and logged if none: IDLE then polls every few seconds). */
int imap_idle_init(struct imap_server *srv);
void imap_idle_free(struct imap_server *srv);

/* drain.c: SIGTERM (rolling updates), as pop3d's. Accepting stops at once; a session
 * waiting for a command (or IDLE) is told "* BYE Server shutting down" at once, one in the
 * middle of a command finishes it until imapd.drain_timeout and is told BYE at its end;
 * then the loop ends. A repeated signal changes nothing. */
void imap_drain_start(struct imap_server *srv, int sig);
/* A session is between commands (1 if it was closed for the drain). */
int imap_drain_session(struct imap_session *s);
/* A session was freed: when none is left while draining, the loop ends. */
void imap_drain_settled(struct imap_server *srv);
void imap_drain_free(struct imap_server *srv);

#endif
