/* The server TLS context for STLS and pop3s: TLS 1.2 or newer, built from the certificate
 * and key PEM text the privileged parent read (the worker cannot open the files from its
 * chroot). The worker holds the key in the context because it does the handshakes; the
 * parent keeps the files and pushes a new pair after SIGHUP. Also the close_notify that
 * ends a TLS session. */
#ifndef POP3_TLS_H
#define POP3_TLS_H
#include <stddef.h>
#include <openssl/ssl.h>

struct bufferevent;

/* NULL with the reason in err if the pair is not usable. */
SSL_CTX *pop3_tls_context(const char *cert_pem, const char *key_pem, char *err, size_t errsize);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log. */
void pop3_tls_describe(SSL *ssl, char *dst, size_t size);

/* Before a TLS session's bufferevent is freed: our close_notify, if the last reply has
 * left (pop3d's TLS bufferevents sit on the socket, so it leaves at once). Nothing for a
 * plain bufferevent, during a handshake or after a fatal TLS error (tls_server.h). */
void pop3_tls_close_notify(struct bufferevent *bev);

/* Why the session's TLS failed, for the log (tls_server.h, pm_tls_bev_error). */
unsigned long pop3_tls_error(struct bufferevent *bev);

#endif
