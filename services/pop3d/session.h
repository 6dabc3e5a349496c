/* POP3 sessions on libevent bufferevents: one per client connection, plain (STLS-capable)
 * or implicit TLS (pop3s). */
#ifndef POP3_SESSION_H
#define POP3_SESSION_H
#include <event2/util.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "config.h"

struct event_base;
struct pm_priv_client;
struct pop3_authfail;
struct pop3_session;

struct pop3_server {
    const struct pm_config *cfg;
    struct event_base *base;
    SSL_CTX *tls; /* NULL: no STLS and no pop3s */
    struct pm_priv_client *priv;  /* password checks by the privileged parent */
    char mail_root[4096];         /* the mail store as this process sees it (mailroot.h) */
    struct pop3_authfail *fails;
    long nsessions;
    unsigned long long next_id;
    struct pop3_session *sessions;
};

/* Takes over fd (an accepted, non-blocking socket). */
void pop3_session_start(struct pop3_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int implicit_tls);

/* Ends every session without UPDATE (shutdown). */
void pop3_session_close_all(struct pop3_server *srv);

#endif
