#include "tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#include "tls_server.h"

struct smtpd_tls {
    SSL_CTX *ctx;
};

/* Authenticated suites first (server order); the anonymous ones only for a client that
 * offers nothing else. */
#define SMTPD_CIPHERS "HIGH:!MD5:!RC4:!3DES:+aNULL"
/* The Diffie-Hellman group of the anonymous (and DHE) suites, without which none of them
 * can be chosen: RFC 7919's 2048-bit group, the size Postfix uses (OpenSSL's automatic
 * choice would give the AES-128 ones 1024 bits). */
#define SMTPD_DH_GROUP "ffdhe2048"

typedef int (*sec_cb)(const SSL *, const SSL_CTX *, int, int, int, void *, void *);
static sec_cb default_security; /* OpenSSL's own, the same for every context */

/* OpenSSL's security level refuses every anonymous suite from level 1 on. This lets them
 * through when they are strong enough and leaves every other check (key sizes, DH group,
 * signature algorithms, versions) to the level. */
static int security(const SSL *s, const SSL_CTX *ctx, int op, int bits, int nid, void *other, void *ex)
{
    if ((op == SSL_SECOP_CIPHER_SUPPORTED || op == SSL_SECOP_CIPHER_SHARED || op == SSL_SECOP_CIPHER_CHECK) &&
        other && SSL_CIPHER_get_auth_nid(other) == NID_auth_null)
        return bits >= 128;
    return default_security(s, ctx, op, bits, nid, other, ex);
}

static int use_dh_group(SSL_CTX *ctx)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *dh = NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, SMTPD_DH_GROUP, 0), OSSL_PARAM_END};
    int ok = pctx && EVP_PKEY_fromdata_init(pctx) > 0 &&
             EVP_PKEY_fromdata(pctx, &dh, EVP_PKEY_KEY_PARAMETERS, params) > 0 && SSL_CTX_set0_tmp_dh_pkey(ctx, dh);
    if (!ok)
        EVP_PKEY_free(dh);
    EVP_PKEY_CTX_free(pctx);
    return ok ? 0 : -1;
}

/* The shared baseline plus what smtpd adds: its cipher list, anonymous suites, no session
 * cache. */
static SSL_CTX *make_ctx(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = pm_tls_server_context(cert_pem, key_pem, err, errsize);
    if (!ctx)
        return NULL;
    /* STARTTLS on port 25 is opportunistic (RFC 7435): an unauthenticated encrypted session
     * beats the plaintext the client would fall back to. Some clients offer anonymous
     * Diffie-Hellman and nothing else (postal's GnuTLS session: "NORMAL:+ANON-DH" with
     * anonymous credentials only); refused, each of them fails its handshake. Postfix
     * accepts them ("aNULL:-aNULL:HIGH:..."). A client that verifies certificates never
     * offers these suites, and one that offers both gets a certificate. */
    if (!default_security)
        default_security = SSL_CTX_get_security_callback(ctx);
    if (SSL_CTX_set_cipher_list(ctx, SMTPD_CIPHERS) != 1 || use_dh_group(ctx) < 0) {
        snprintf(err, errsize, "cannot set up the TLS cipher list");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (default_security)
        SSL_CTX_set_security_callback(ctx, security);
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

void smtpd_tls_push(struct bufferevent *bev)
{
    struct bufferevent *under = bufferevent_get_underlying(bev);
    if (!under)
        return; /* a socket SSL writes its records to the socket itself */
    struct evbuffer *out = bufferevent_get_output(under);
    evutil_socket_t fd = bufferevent_getfd(under);
    if (fd < 0)
        return;
    /* As session.c's flush_direct: the socket bufferevent keeps its output's start frozen
     * except while it writes itself. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
        ;
    evbuffer_freeze(out, 1);
}


void smtpd_tls_close_notify(struct bufferevent *bev)
{
    pm_tls_bev_close_notify(bev);
    smtpd_tls_push(bev);
}
