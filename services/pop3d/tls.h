/* TLS as the log shows it. The server context for STLS and pop3s is the shared baseline
 * (common/tls_server.h), built in the sandbox from the PEM text the privileged parent read
 * (mailfront_loop.c): the sandbox cannot open the files from its chroot. */
#ifndef POP3_TLS_H
#define POP3_TLS_H
#include <stddef.h>
#include <openssl/ssl.h>

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the log. */
void pop3_tls_describe(SSL *ssl, char *dst, size_t size);

#endif
