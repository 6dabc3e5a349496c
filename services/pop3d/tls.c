#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>

#include "tlspem.h"

SSL_CTX *pop3_tls_context(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errsize, "cannot create TLS context");
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation (a CPU DoS lever) and no compression (CRIME). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (pm_tls_use_pem(ctx, cert_pem, key_pem, err, errsize) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void pop3_tls_describe(SSL *ssl, char *dst, size_t size)
{
    snprintf(dst, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
