/* The server TLS context for STLS and pop3s: TLS 1.2 or newer, tls.certificate/tls.key. */
#ifndef POP3_TLS_H
#define POP3_TLS_H
#include <stddef.h>
#include <openssl/ssl.h>

/* NULL with the reason in err if the pair cannot be loaded. */
SSL_CTX *pop3_tls_context(const char *certificate, const char *key, char *err, size_t errsize);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log. */
void pop3_tls_describe(SSL *ssl, char *dst, size_t size);

#endif
