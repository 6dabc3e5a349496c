/* One SMTP connection to one address of one MX host: TCP connect, the dialogue of smtp.h,
 * STARTTLS (bufferevent_openssl filter), the body, timeouts. All network I/O of the mta
 * lives here and in tls.c, so a privilege-separated worker can own exactly these files. */
#ifndef MTA_SESSION_H
#define MTA_SESSION_H
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp.h"

struct event_base;
struct mta_session;

typedef void (*mta_session_done)(struct mta_session *s, void *arg);

struct mta_session_params {
    struct event_base *base;
    SSL_CTX *tls_ctx;   /* NULL: never STARTTLS */
    int tls_verify;
    const char *queue_id; /* for logs */
    const char *host;   /* MX name: SNI, verification, logs */
    const char *ip;
    int port;
    /* Seconds, per step (RFC 5321 4.5.3.2): re-armed by every reply and while the body
     * moves. The job's absolute deadline is the delivery's, which frees the session. */
    int connect_timeout, command_timeout;
    struct mta_smtp *smtp; /* prepared by the caller; holds the recipients' verdicts */
    const uint8_t *body;
    size_t body_len;
    mta_session_done done; /* called once, from the event loop; may free the session */
    void *arg;
};

/* Never calls done before returning. NULL only when out of memory. */
struct mta_session *mta_session_start(const struct mta_session_params *p);
void mta_session_free(struct mta_session *s);

int mta_session_connected(const struct mta_session *s); /* TCP connected */
int mta_session_tls_failed(const struct mta_session *s); /* the TLS handshake broke */
/* The connection could not even be tried for want of a local resource (descriptors,
 * ephemeral ports, buffers): nothing was learnt about the server. */
int mta_session_local_failure(const struct mta_session *s);
const char *mta_session_tls(const struct mta_session *s); /* "TLSv1.3 cipher" or "" */
const char *mta_session_relay(const struct mta_session *s); /* "host[ip]:port" */

#endif
