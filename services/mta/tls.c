#include "tls.h"

#include <arpa/inet.h>

#include "log.h"

SSL_CTX *mta_tls_context(int verify)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (verify) {
        /* The CA bundle is read now, in full: the job worker process later runs in an empty chroot. */
        if (SSL_CTX_load_verify_locations(ctx, X509_get_default_cert_file(), NULL) != 1 &&
            SSL_CTX_set_default_verify_paths(ctx) != 1)
            pm_log(PM_WARN, "event=tls_warning reason=\"no system CA store\"");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

SSL *mta_tls_new(SSL_CTX *ctx, const char *host, int verify)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    unsigned char bin[16];
    int is_ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, host);
    if (verify && !is_ip)
        SSL_set1_host(ssl, host);
    return ssl;
}
