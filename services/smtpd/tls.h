/* The server TLS context: TLS 1.2+ only, certificate and key from the config, replaced
 * atomically on SIGHUP (sessions already running keep the context they started with,
 * OpenSSL reference-counts it). */
#ifndef SMTPD_TLS_H
#define SMTPD_TLS_H
#include <stddef.h>

#include <openssl/ssl.h>

struct smtpd_tls;

/* NULL with err filled if the pair cannot be loaded. */
struct smtpd_tls *smtpd_tls_load(const char *cert, const char *key, char *err, size_t errsize);
/* Loads the files again; on failure keeps the old context and returns -1 (err filled). */
int smtpd_tls_reload(struct smtpd_tls *t, char *err, size_t errsize);
void smtpd_tls_free(struct smtpd_tls *t);

/* A server-side SSL for one session (NULL on failure). */
SSL *smtpd_tls_new_ssl(struct smtpd_tls *t);

/* "TLSv1.3" and the cipher name of an established connection. */
void smtpd_tls_describe(const SSL *ssl, char *ver, size_t vsize, char *cipher, size_t csize);

#endif
