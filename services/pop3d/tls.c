#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>

static void ssl_error(char *err, size_t errsize, const char *what, const char *path)
{
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    snprintf(err, errsize, "%s %s: %s", what, path, buf);
    ERR_clear_error();
}

SSL_CTX *pop3_tls_context(const char *certificate, const char *key, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(err, errsize, "cannot create TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation (a CPU DoS lever) and no compression (CRIME). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, certificate) != 1) {
        ssl_error(err, errsize, "cannot load certificate", certificate);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, errsize, "cannot load key", key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errsize, "key does not match certificate", certificate);
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

void pop3_tls_describe(SSL *ssl, char *dst, size_t size)
{
    snprintf(dst, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
