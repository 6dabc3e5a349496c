#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlspem.h"

struct smtpd_tls {
    SSL_CTX *ctx;
};

static SSL_CTX *make_ctx(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errsize, "cannot create TLS context");
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation (a DoS lever), no compression (CRIME), our cipher order. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5:!RC4:!3DES");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Partial writes and moving buffers: what bufferevent_openssl needs. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (pm_tls_use_pem(ctx, cert_pem, key_pem, err, errsize) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct smtpd_tls *smtpd_tls_new(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = make_ctx(cert_pem, key_pem, err, errsize);
    if (!ctx)
        return NULL;
    struct smtpd_tls *t = calloc(1, sizeof *t);
    if (!t) {
        SSL_CTX_free(ctx);
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    t->ctx = ctx;
    return t;
}

int smtpd_tls_replace(struct smtpd_tls *t, const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = make_ctx(cert_pem, key_pem, err, errsize);
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
    free(t);
}

SSL *smtpd_tls_new_ssl(struct smtpd_tls *t) { return SSL_new(t->ctx); }

void smtpd_tls_describe(const SSL *ssl, char *ver, size_t vsize, char *cipher, size_t csize)
{
    snprintf(ver, vsize, "%s", ssl ? SSL_get_version(ssl) : "");
    const char *c = ssl ? SSL_get_cipher_name(ssl) : NULL;
    snprintf(cipher, csize, "%s", c ? c : "");
}
