#include "tls_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>

#include "privchan.h"
#include "tlspem.h"

SSL_CTX *pm_tls_server_context(const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errsize, "cannot create TLS context");
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* No renegotiation (a CPU DoS lever), no compression (CRIME), our cipher order. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (pm_tls_use_pem(ctx, cert_pem, key_pem, err, errsize) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void pm_tls_close_notify(SSL *ssl)
{
    /* Not during a handshake or after a fatal error (OpenSSL then counts the connection as
     * "in init"): there is no session to close, and the alert already said why. */
    if (!ssl || !SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        return;
    /* One call sends our close_notify; the peer's is not awaited (RFC 8446 6.1 lets the
     * closing side go once its own is sent). A dead socket only makes it fail. */
    SSL_shutdown(ssl);
    ERR_clear_error();
}

void pm_tls_bev_close_notify(struct bufferevent *bev)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        pm_tls_close_notify(bufferevent_openssl_get_ssl(bev));
}

struct bufferevent *pm_tls_accept_bev(struct event_base *base, int fd, SSL_CTX *ctx)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

unsigned long pm_tls_bev_error(struct bufferevent *bev)
{
    /* libevent hands its list back newest first and mixes in the bare SSL_ERROR_* code of
     * each failed call (library 0): after a failed handshake it tries the dead SSL again,
     * and its "5" (SSL_ERROR_SYSCALL) came out ahead of "no shared cipher". The oldest
     * real OpenSSL error is the cause. */
    unsigned long e, real = 0, code = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(e))
            real = e;
        else if (!code)
            code = e;
    }
    return real ? real : code;
}

int pm_tls_read_pair(const char *cert_path, const char *key_path, char **cert, char **key, char *err,
                     size_t errsize)
{
    *cert = pm_tls_read_pem(cert_path, err, errsize);
    *key = *cert ? pm_tls_read_pem(key_path, err, errsize) : NULL;
    SSL_CTX *check = *key ? pm_tls_server_context(*cert, *key, err, errsize) : NULL;
    if (!check) {
        pm_tls_pem_free(*cert);
        pm_tls_pem_free(*key);
        *cert = *key = NULL;
        return -1;
    }
    SSL_CTX_free(check);
    return 0;
}

int pm_tls_keep_and_push(int worker_fd, char **held_cert, char **held_key, char *cert, char *key)
{
    pm_tls_pem_free(*held_cert);
    pm_tls_pem_free(*held_key);
    *held_cert = cert;
    *held_key = key;
    struct pm_priv_msg push = {.id = 0, .op = PM_PRIV_TLS_PEM, .a = cert, .b = key};
    return worker_fd >= 0 && pm_priv_send(worker_fd, &push) < 0 ? -1 : 0;
}
