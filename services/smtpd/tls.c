#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smtpd_tls {
    SSL_CTX *ctx;
    char *cert, *key;
};

static void ssl_error(char *err, size_t errsize, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errsize, "%s %s: %s", what, path, buf[0] ? buf : "failed");
}

static SSL_CTX *make_ctx(const char *cert, const char *key, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(err, errsize, "cannot create TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation (a DoS lever), no compression (CRIME), our cipher order. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5:!RC4:!3DES");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Partial writes and moving buffers: what bufferevent_openssl needs. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_error(err, errsize, "cannot load certificate", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, errsize, "cannot load key", key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errsize, "key does not match certificate", cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct smtpd_tls *smtpd_tls_load(const char *cert, const char *key, char *err, size_t errsize)
{
    SSL_CTX *ctx = make_ctx(cert, key, err, errsize);
    if (!ctx)
        return NULL;
    struct smtpd_tls *t = calloc(1, sizeof *t);
    t->ctx = ctx;
    t->cert = strdup(cert);
    t->key = strdup(key);
    return t;
}

int smtpd_tls_reload(struct smtpd_tls *t, char *err, size_t errsize)
{
    SSL_CTX *ctx = make_ctx(t->cert, t->key, err, errsize);
    if (!ctx)
        return -1;
    SSL_CTX_free(t->ctx); /* live SSLs hold their own reference */
    t->ctx = ctx;
    return 0;
}

void smtpd_tls_free(struct smtpd_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t->cert);
    free(t->key);
    free(t);
}

SSL *smtpd_tls_new_ssl(struct smtpd_tls *t) { return SSL_new(t->ctx); }

void smtpd_tls_describe(const SSL *ssl, char *ver, size_t vsize, char *cipher, size_t csize)
{
    snprintf(ver, vsize, "%s", ssl ? SSL_get_version(ssl) : "");
    const char *c = ssl ? SSL_get_cipher_name(ssl) : NULL;
    snprintf(cipher, csize, "%s", c ? c : "");
}
