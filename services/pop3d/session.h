/* POP3 sessions on libevent bufferevents: one per client connection, plain (STLS-capable)
 * or implicit TLS (pop3s). */
#ifndef POP3_SESSION_H
#define POP3_SESSION_H
#include <event2/util.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "config.h"

/* Password checks of one client address running at once (beyond: -ERR [SYS/TEMP]), so one
 * address cannot take every turn at the password helper (parent.h caps the worker). */
#define POP3_AUTH_PER_CLIENT 4
/* Without pop3d.session_timeout, a session lasts at most this many pop3d.timeout periods
 * (1 hour by default), however busy: a client that keeps a session (and a mailbox lock)
 * forever holds a slot forever. */
#define POP3_SESSION_TIMEOUTS 6
#define POP3_SESSION_LIMIT(cfg) ((cfg)->pop3d.session_timeout ? (cfg)->pop3d.session_timeout \
                                                               : (cfg)->pop3d.timeout * POP3_SESSION_TIMEOUTS)

struct event_base;
struct pm_priv_client;
struct pm_clients;
struct pop3_session;

struct pop3_server {
    const struct pm_config *cfg;
    struct event_base *base;
    SSL_CTX *tls; /* NULL: no STLS and no pop3s */
    struct pm_priv_client *priv;  /* password checks by the privileged parent */
    char mail_root[4096];         /* the mail store as this process sees it (mailroot.h) */
    struct pm_clients *clients;   /* per client address: connections, logins in flight, lockout */
    long nsessions;
    unsigned long long next_id;
    struct pop3_session *sessions;
};

/* Takes over fd (an accepted, non-blocking socket). */
void pop3_session_start(struct pop3_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int implicit_tls);

/* Ends every session without UPDATE (shutdown). */
void pop3_session_close_all(struct pop3_server *srv);

#endif
