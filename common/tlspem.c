#include "tlspem.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void ssl_error(char *err, size_t errsize, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errsize, "%s: %s", what, buf[0] ? buf : "failed");
}

char *pm_tls_read_pem(const char *path, char *err, size_t errsize)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errsize, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PM_TLS_PEM_MAX + 2);
    size_t n = buf ? fread(buf, 1, PM_TLS_PEM_MAX + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > PM_TLS_PEM_MAX || n == 0) {
        snprintf(err, errsize, "cannot read %s: %s", path,
                 bad ? "read error" : n ? "larger than 16 KiB (the worker channel's limit)" : "empty file");
        if (buf)
            explicit_bzero(buf, n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        explicit_bzero(buf, n);
        free(buf);
        snprintf(err, errsize, "cannot read %s: NUL byte in a PEM file", path);
        return NULL;
    }
    return buf;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

int pm_tls_use_pem(SSL_CTX *ctx, const char *cert_pem, const char *key_pem, char *err, size_t errsize)
{
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL) : NULL;
    int ok = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    if (!ok) {
        BIO_free(bio);
        ssl_error(err, errsize, "cannot load certificate");
        return -1;
    }
    SSL_CTX_clear_chain_certs(ctx);
    X509 *ca;
    while ((ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL))) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            BIO_free(bio);
            ssl_error(err, errsize, "cannot load certificate chain");
            return -1;
        }
    }
    ERR_clear_error(); /* the end of the chain reads as "no start line" */
    BIO_free(bio);
    bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    ok = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        ssl_error(err, errsize, "cannot load key");
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errsize, "key does not match certificate");
        return -1;
    }
    return 0;
}

void pm_tls_pem_free(char *pem)
{
    if (!pem)
        return;
    explicit_bzero(pem, strlen(pem));
    free(pem);
}
