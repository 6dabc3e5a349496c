/* What smtpd, pop3d and imapd share on the TLS server side: the baseline context (TLS 1.2 or
 * newer, no renegotiation, no compression, our cipher order), the close_notify that ends a
 * session, the error a failed one reports, and the parent's reading of the certificate/key
 * pair (tlspem.h has the PEM text handling underneath). */
#ifndef PM_TLS_SERVER_H
#define PM_TLS_SERVER_H
#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;

/* A server context holding the pair; the caller may tune it further. NULL with the reason
 * in err if the pair is not usable. */
SSL_CTX *pm_tls_server_context(const char *cert_pem, const char *key_pem, char *err, size_t errsize);

/* The server's close_notify, once, after everything the session wrote: a client that reads
 * to the end can then tell a finished session from a cut one (gnutls-cli reports "The TLS
 * connection was non-properly terminated" otherwise). Does nothing before the handshake
 * completed, after a fatal error or when already sent. The record goes to the SSL's write
 * BIO: the socket itself, or a bufferevent filter's underlying buffer. */
void pm_tls_close_notify(SSL *ssl);
/* The same for an OpenSSL bufferevent, only once its output is empty: a close_notify behind
 * a reply still waiting to be encrypted would pass a cut reply off as complete. */
void pm_tls_bev_close_notify(struct bufferevent *bev);

/* The server side of TLS on an accepted socket for a mail front end (pop3d, imapd): an
 * OpenSSL bufferevent that owns fd from now on (closed when it is freed) with deferred
 * callbacks, tolerating a client that ends without close_notify. NULL if it cannot be
 * made (fd is then still the caller's). */
struct event_base;
struct bufferevent *pm_tls_accept_bev(struct event_base *base, int fd, SSL_CTX *ctx);

/* Why an OpenSSL bufferevent failed, for the log: the first real OpenSSL error it kept
 * (consumes them all), else libevent's SSL_ERROR_* code, else 0. */
unsigned long pm_tls_bev_error(struct bufferevent *bev);

/* In the privileged parent: reads both PEM files and checks that they make a context.
 * 0 with *cert and *key set (free with pm_tls_pem_free), or -1 with both NULL and err. */
int pm_tls_read_pair(const char *cert_path, const char *key_path, char **cert, char **key, char *err,
                     size_t errsize);

/* In the parent after SIGHUP: the new pair (from pm_tls_read_pair) replaces the one held in
 * *held_cert and *held_key (freed) and is pushed to the worker (PM_PRIV_TLS_PEM) when worker_fd
 * >= 0. 0, or -1 if the worker could not be reached (it keeps its old pair). */
int pm_tls_keep_and_push(int worker_fd, char **held_cert, char **held_key, char *cert, char *key);

#endif
