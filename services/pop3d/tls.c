#include "tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
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

void pop3_tls_close_notify(struct bufferevent *bev)
{
    /* Only after a whole reply: a close_notify behind a cut one would pass it off as
     * complete. */
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        pm_tls_close_notify(bufferevent_openssl_get_ssl(bev));
}

unsigned long pop3_tls_error(struct bufferevent *bev) { return pm_tls_bev_error(bev); }
