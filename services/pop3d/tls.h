/* The server TLS context for STLS and pop3s: TLS 1.2 or newer, built from the certificate
 * and key PEM text the privileged parent read (the sandbox cannot open the files from its
 * chroot). The sandbox holds the key in the context because it does the handshakes; the
 * parent keeps the files and pushes a new pair after SIGHUP. */
#ifndef POP3_TLS_H
#define POP3_TLS_H
#include <stddef.h>
#include <openssl/ssl.h>

/* NULL with the reason in err if the pair is not usable. */
SSL_CTX *pop3_tls_context(const char *cert_pem, const char *key_pem, char *err, size_t errsize);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log. */
void pop3_tls_describe(SSL *ssl, char *dst, size_t size);

#endif
