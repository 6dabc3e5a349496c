/* The server TLS context: TLS 1.2+ only, anonymous suites accepted last (opportunistic
 * STARTTLS, see make_ctx), built from PEM text (the sandbox cannot read the files from its
 * chroot: the privileged parent reads them), replaced atomically when the parent pushes a
 * new pair after SIGHUP (sessions already running keep the context they started with,
 * OpenSSL reference-counts it). Also the end of a session's TLS: the close_notify after the
 * last reply, and records a STARTTLS filter still holds pushed to the socket.
 *
 * Where the private key lives: the sandbox does the handshakes, so it holds the key in its
 * SSL_CTX (in memory only; it never can open the key file). The parent keeps the files and
 * the PEM text to start a new sandbox. Moving the signing itself to the parent (OpenSMTPD's
 * "ca" process) would keep the key out of the sandbox; not done here. */
#ifndef SMTPD_TLS_H
#define SMTPD_TLS_H
#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;
struct smtpd_tls;

/* NULL with err filled if the pair is not usable. */
struct smtpd_tls *smtpd_tls_new(const char *cert_pem, const char *key_pem, char *err, size_t errsize);
/* A new context from the pair; on failure keeps the old one and returns -1 (err filled). */
int smtpd_tls_replace(struct smtpd_tls *t, const char *cert_pem, const char *key_pem, char *err, size_t errsize);
void smtpd_tls_free(struct smtpd_tls *t);

/* A server-side SSL for one session (NULL on failure). */
SSL *smtpd_tls_new_ssl(struct smtpd_tls *t);

/* "TLSv1.3" and the cipher name of an established connection. */
void smtpd_tls_describe(const SSL *ssl, char *ver, size_t vsize, char *cipher, size_t csize);


/* For a STARTTLS session (an OpenSSL filter over the plain socket bufferevent): writes the
 * TLS records the filter left in the plain buffer to the socket now, as far as it takes
 * them. Called before the session is freed, the alert of a failed handshake leaves instead
 * of dying in that buffer (the client saw a bare close: GnuTLS "Can't gnutls_handshake").
 * Nothing to do for a socket SSL (smtps), which writes to the socket itself. */
void smtpd_tls_push(struct bufferevent *bev);

/* Once the last reply is out of bev's own buffer: our close_notify, pushed to the socket
 * (smtpd_tls_push). Safe to call again. */
void smtpd_tls_close_notify(struct bufferevent *bev);

#endif
