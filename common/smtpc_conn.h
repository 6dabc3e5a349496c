/* One client connection of the shared SMTP client to one address: TCP connect, the dialogue
 * of smtpc.h (SMTP, LMTP or submission, as its struct pm_smtpc says), STARTTLS through the
 * caller's hook (bufferevent_openssl filter), the body, timeouts. All the network I/O of a
 * client lives here. What it does not do: choose the address (the mta's MX walk), decide TLS
 * policy (the hook builds the SSL), or judge the verdicts (the caller reads the recipients). */
#ifndef PM_SMTPC_CONN_H
#define PM_SMTPC_CONN_H
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "smtpc.h"

struct event_base;
struct pm_smtpc_conn;

typedef void (*pm_smtpc_conn_done)(struct pm_smtpc_conn *c, void *arg);

struct pm_smtpc_conn_params {
    struct event_base *base;
    /* The STARTTLS hook, the caller's TLS policy: a connection object for host (SNI, and the
     * name to verify if the SSL verifies its peer). NULL, or a NULL SSL: the handshake fails. */
    SSL *(*tls_new)(const char *host, void *arg);
    void *tls_arg;
    const char *log_id; /* the queue id, for the id= key of log lines */
    const char *host;   /* the server's name (an MX): SNI, verification, logs */
    const char *ip;
    int port;
    /* Seconds, per step (RFC 5321 4.5.3.2): re-armed by every reply and while the body
     * moves. A job's absolute deadline is the caller's, which frees the connection. */
    int connect_timeout, command_timeout;
    struct pm_smtpc *smtp; /* prepared by the caller; holds the recipients' verdicts */
    const uint8_t *body;
    size_t body_len;
    pm_smtpc_conn_done done; /* called once, from the event loop; may free the connection */
    void *arg;
};

/* Never calls done before returning. NULL only when out of memory. */
struct pm_smtpc_conn *pm_smtpc_conn_start(const struct pm_smtpc_conn_params *p);
void pm_smtpc_conn_free(struct pm_smtpc_conn *c);

int pm_smtpc_conn_connected(const struct pm_smtpc_conn *c); /* TCP connected */
int pm_smtpc_conn_tls_failed(const struct pm_smtpc_conn *c); /* the TLS handshake broke */
/* The connection could not even be tried for want of a local resource (descriptors,
 * ephemeral ports, buffers): nothing was learnt about the server. */
int pm_smtpc_conn_local_failure(const struct pm_smtpc_conn *c);
const char *pm_smtpc_conn_tls(const struct pm_smtpc_conn *c); /* "TLSv1.3 cipher" or "" */
const char *pm_smtpc_conn_relay(const struct pm_smtpc_conn *c); /* "host[ip]:port" */
const char *pm_smtpc_conn_local_ip(const struct pm_smtpc_conn *c); /* our address, once connected ("") */
/* The TLS session once the handshake is done (NULL before, or without TLS): the caller
 * reads what it verified. */
SSL *pm_smtpc_conn_ssl(const struct pm_smtpc_conn *c);
/* The certificate check's verdict of a handshake that broke (X509_V_OK if it was not that). */
long pm_smtpc_conn_verify_result(const struct pm_smtpc_conn *c);

#endif
