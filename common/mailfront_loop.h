/* The sandbox side of a mail front end (pop3d, imapd) around its sessions: the event loop,
 * the listeners on the sockets the parent opened (with PROXY headers where configured),
 * the TLS context (replaced when the parent pushes a new pair after SIGHUP), the channel
 * to the parent, the per-address table (clients.h) and its sweep, SIGTERM/SIGINT handed to
 * the service's drain, and the sessions gauge. The service says how a connection becomes a
 * session (pm_mailfront_ops); this file knows no protocol. */
#ifndef PM_MAILFRONT_LOOP_H
#define PM_MAILFRONT_LOOP_H
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "clients.h"
#include "mailfront.h"
#include "metrics.h"

struct event;
struct event_base;
struct evconnlistener;
struct pm_priv_client;
struct pm_proxy_waits;

struct pm_mailfront_ops {
    /* A connection to serve (fd accepted, non-blocking): sa is the client's address, proxy
     * the PROXY-protocol peer it came through or NULL. */
    void (*start)(void *arg, int fd, const struct sockaddr *sa, int implicit_tls, const struct sockaddr *proxy);
    long (*sessions)(void *arg); /* open now */
    void (*stop)(void *arg, int sig); /* SIGTERM or SIGINT: the service drains */
};

struct pm_mailfront_loop_spec {
    struct pm_client_limits limits;
    long long max_connections; /* connections waiting for a PROXY header count against it */
    long long timeout;         /* seconds: a PROXY header is waited for at most this long */
    enum pm_metric_id sessions_metric;
    const struct pm_mailfront_ops *ops;
    void *arg;
};

struct pm_mailfront_listener {
    struct pm_mailfront_loop *loop;
    struct evconnlistener *l;
    int implicit_tls;
    int proxy_protocol; /* connections start with a PROXY header (proxywait.h) */
    struct event *retry; /* accepting paused after an error (out of descriptors) */
};

/* How long a listener pauses after accept failed (EMFILE): ms. */
#define PM_MAILFRONT_ACCEPT_RETRY_MS 100

struct pm_mailfront_loop {
    struct pm_mailfront_loop_spec spec;
    const struct pm_config *cfg;
    struct event_base *base;
    SSL_CTX *tls;                 /* NULL: no TLS pair; sessions made before a push keep theirs */
    struct pm_priv_client *priv;  /* questions to the privileged parent (password checks) */
    struct pm_clients *clients;   /* per client address: connections, logins in flight, lockout */
    struct pm_proxy_waits *proxy; /* NULL: no proxy_protocol listener */
    struct pm_mailfront_listener *listeners;
    int nlisteners;
    struct event *sigs[2], *sweep;
    int stopped; /* pm_mailfront_loop_stop_accepting ran: no listener comes back */
};

/* In the sandbox, on p (its copy of the parent's state; the key's PEM is wiped once in the
 * context): everything up to the dispatch (event_base_dispatch(loop->base) is the caller's).
 * 0, or -1 (logged); pm_mailfront_loop_free either way. */
int pm_mailfront_loop_init(struct pm_mailfront_loop *loop, struct pm_mailfront *p, int parent_fd,
                           const struct pm_mailfront_loop_spec *spec);
/* Draining: no new connection (the shared sockets are shut down, so the port refuses at
 * once) and those waiting for a PROXY header are closed. */
void pm_mailfront_loop_stop_accepting(struct pm_mailfront_loop *loop);
/* A connection refused before it is a session (too many, a lockout table full): line
 * (the protocol's refusal, with CRLF) is sent on plain listeners only, best effort, then
 * fd is closed and the refusal logged. */
void pm_mailfront_refuse(int fd, const char *ip, int implicit_tls, const char *line, const char *reason);

/* After the sessions are gone. */
void pm_mailfront_loop_free(struct pm_mailfront_loop *loop);

#endif
