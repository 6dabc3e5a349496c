/* POP3 sessions on libevent bufferevents: one per client connection, plain (STLS-capable)
 * or implicit TLS (pop3s). */
#ifndef POP3_SESSION_H
#define POP3_SESSION_H
#include <event2/util.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "config.h"

/* Password checks of one client address running at once (beyond: -ERR [SYS/TEMP]), so one
 * address cannot take every turn at the password helper (mailfront.h caps the whole sandbox). */
#define POP3_AUTH_PER_CLIENT 4
/* Without pop3d.session_timeout, a session lasts at most this many pop3d.timeout periods
 * (1 hour by default), however busy: a client that keeps a session (and a mailbox lock)
 * forever holds a slot forever. */
#define POP3_SESSION_TIMEOUTS 6
#define POP3_SESSION_LIMIT(cfg) ((cfg)->pop3d.session_timeout ? (cfg)->pop3d.session_timeout \
                                                               : (cfg)->pop3d.timeout * POP3_SESSION_TIMEOUTS)

struct event_base;
struct event;
struct pm_priv_client;
struct pm_clients;
struct pm_mailfront_loop;
struct pop3_session;

struct pop3_server {
    const struct pm_config *cfg;
    struct pm_mailfront_loop *loop; /* the sandbox's loop (mailfront_loop.h): ->tls is the
                                       TLS context now (NULL: no STLS and no pop3s) */
    struct event_base *base;      /* the loop's, and priv and clients too */
    struct pm_priv_client *priv;  /* password checks by the privileged parent */
    char mail_root[4096];         /* the mail store as this process sees it (mailroot.h) */
    struct pm_clients *clients;   /* per client address: connections, logins in flight, lockout */
    long nsessions;
    unsigned long long next_id;
    struct pop3_session *sessions;
    /* Graceful stop (drain.c) */
    int draining;                 /* SIGTERM seen: listeners closed, idle sessions told -ERR */
    int drain_expired;            /* pop3d.drain_timeout passed: every session goes */
    struct event *ev_drain;
};

/* Takes over fd (an accepted, non-blocking socket). sa is the client's address; proxy the
 * PROXY-protocol peer it came through (logged), or NULL for a direct connection. */
void pop3_session_start(struct pop3_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int implicit_tls,
                        const struct sockaddr *proxy);

/* drain.c: SIGTERM (rolling updates). Accepting stops at once, a session waiting for a
 * command with nothing to lose is told "-ERR [SYS/TEMP] shutting down" at once, one in the
 * middle of something (a command, a login, DELE marks not yet applied) goes on until
 * pop3d.drain_timeout and is told so at its next command after that; then the loop ends.
 * A repeated signal changes nothing. */
void pop3_drain_start(struct pop3_server *srv, int sig);
/* A session is about to run its next command (before 1) or found none complete (before
 * 0). While draining, tells it -ERR and closes it if it must go now. 1 if it did. */
int pop3_drain_session(struct pop3_session *s, int before);
/* A session was freed: when none is left while draining, the loop ends. */
void pop3_drain_settled(struct pop3_server *srv);
void pop3_drain_free(struct pop3_server *srv);

/* Ends every session without UPDATE (shutdown). */
void pop3_session_close_all(struct pop3_server *srv);

#endif
