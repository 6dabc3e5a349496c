#include "tls.h"

#include <stdio.h>
#include <stdlib.h>

#include "tls_server.h"

struct smtpd_tls {
    SSL_CTX *ctx;
};

/* The shared baseline plus what smtpd adds: its cipher list, no session cache. */
static SSL_CTX *make_ctx(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = pm_tls_server_context(cert_pem, key_pem, err, errsize);
    if (!ctx)
        return NULL;
    SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5:!RC4:!3DES");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* A client that shuts its side down without close_notify is at EOF, not in error: its
     * "." and QUIT still get their 250 and 221 (session.c, client_eof). No truncation risk:
     * SMTP frames itself, and a message cut short before its "." is never queued. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Partial writes and moving buffers: what bufferevent_openssl needs. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
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
