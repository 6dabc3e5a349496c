/* Outbound TLS policy: one client context for every STARTTLS, and the connection object the
 * shared SMTP client's STARTTLS hook gets (outbound.c). Opportunistic by default (any
 * certificate, since an unverified channel still beats plaintext); with mta.tls_verify the
 * chain must verify against the system CAs and name the MX host. */
#ifndef MTA_TLS_H
#define MTA_TLS_H
#include <openssl/ssl.h>

SSL_CTX *mta_tls_context(int verify);

/* A connection object for one session: SNI and, when verifying, the expected host name. */
SSL *mta_tls_new(SSL_CTX *ctx, const char *host, int verify);

#endif
