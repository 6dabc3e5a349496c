#include "tls.h"

#include <stdio.h>

#include "tls_server.h"

/* pop3d uses the shared baseline as it is. */
SSL_CTX *pop3_tls_context(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    return pm_tls_server_context(cert_pem, key_pem, err, errsize);
}

void pop3_tls_describe(SSL *ssl, char *dst, size_t size)
{
    snprintf(dst, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
