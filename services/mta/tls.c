#include "tls.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "targets.h"

#define MAX_CA_FILES 4096 /* in mta.ca_path */

struct ca_store {
    char *file;
    X509_STORE *store;
};

struct mta_tls {
    SSL_CTX *ctx;
    struct ca_store *rows; /* one per distinct mta.tls_policy ca_file */
    int nrows;
};

static int load_file(X509_STORE *st, const char *file)
{
    int ok = X509_STORE_load_file(st, file) == 1;
    ERR_clear_error();
    return ok;
}

/* Every certificate file of a directory, read now (the chroot has no /etc/ssl/certs). */
static int load_dir(X509_STORE *st, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    /* /etc/ssl/certs holds each certificate under two or three names (the .pem, its hash
     * links): each file once, by inode. */
    static struct {
        dev_t dev;
        ino_t ino;
    } files[MAX_CA_FILES];
    int n = 0, seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) && seen < MAX_CA_FILES) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path || stat(path, &sb) != 0 ||
            !S_ISREG(sb.st_mode) || sb.st_size > 4 * 1024 * 1024)
            continue;
        int dup = 0;
        for (int i = 0; i < seen && !dup; i++)
            dup = files[i].dev == sb.st_dev && files[i].ino == sb.st_ino;
        if (dup)
            continue;
        files[seen].dev = sb.st_dev;
        files[seen].ino = sb.st_ino;
        seen++;
        n += load_file(st, path);
    }
    closedir(d);
    return n;
}

static X509_STORE *row_store(struct mta_tls *t, const char *file)
{
    for (int i = 0; i < t->nrows; i++)
        if (strcmp(t->rows[i].file, file) == 0)
            return t->rows[i].store;
    return NULL;
}

struct mta_tls *mta_tls_new_context(const struct pm_config *cfg)
{
    struct mta_tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx || mta_dane_ctx_enable(t->ctx) < 0) {
        mta_tls_free(t);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    X509_STORE *st = SSL_CTX_get_cert_store(t->ctx);
    const char *ca_file = cfg->mta.ca_file ? cfg->mta.ca_file : "";
    const char *ca_path = cfg->mta.ca_path ? cfg->mta.ca_path : "";
    if (ca_file[0]) {
        if (!load_file(st, ca_file))
            pm_log(PM_WARN, "event=tls_warning reason=\"mta.ca_file holds no certificate\" file=%s", ca_file);
    } else if (!(ca_path[0] && load_dir(st, ca_path)) && !load_file(st, X509_get_default_cert_file())) {
        pm_log(PM_WARN, "event=tls_warning reason=\"no CA certificates: verify, secure and MTA-STS will defer\"");
    }
    const struct pm_tls_policy_list *pl = &cfg->mta.tls_policy;
    t->rows = calloc((size_t)pl->n + 1, sizeof *t->rows);
    if (!t->rows) {
        mta_tls_free(t);
        return NULL;
    }
    for (int i = 0; i < pl->n; i++) {
        const char *f = pl->v[i].ca_file;
        if (!f || !f[0] || row_store(t, f))
            continue;
        struct ca_store *c = &t->rows[t->nrows];
        c->file = strdup(f);
        c->store = X509_STORE_new();
        if (!c->file || !c->store) {
            free(c->file);
            X509_STORE_free(c->store);
            continue;
        }
        t->nrows++;
        if (!load_file(c->store, f))
            pm_log(PM_WARN, "event=tls_warning reason=\"tls_policy ca_file holds no certificate\" domain=%s file=%s",
                   pl->v[i].domain, f);
    }
    return t;
}

void mta_tls_free(struct mta_tls *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nrows; i++) {
        free(t->rows[i].file);
        X509_STORE_free(t->rows[i].store);
    }
    free(t->rows);
    SSL_CTX_free(t->ctx);
    free(t);
}

static int is_ip(const char *host)
{
    unsigned char bin[16];
    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
}

/* The names of d on ssl: the first replaces, the rest add (any one may match). */
static int set_names(SSL *ssl, const char *host, const char *domain, const struct mta_policy_decision *d)
{
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    switch (d->names) {
    case MTA_TLS_NAMES_MATCH:
        for (int i = 0; d->match && i < d->match->n; i++)
            if ((i == 0 ? SSL_set1_host(ssl, d->match->v[i]) : SSL_add1_host(ssl, d->match->v[i])) != 1)
                return -1;
        return d->match && d->match->n ? 0 : -1;
    case MTA_TLS_NAMES_DOMAIN: {
        /* "secure": the next-hop domain and its subdomains (Postfix nexthop, dot-nexthop);
         * a leading dot tells OpenSSL any subdomain will do. */
        char dot[260];
        snprintf(dot, sizeof dot, ".%s", domain);
        return SSL_set1_host(ssl, domain) == 1 && SSL_add1_host(ssl, dot) == 1 ? 0 : -1;
    }
    case MTA_TLS_NAMES_MX:
        break;
    }
    if (is_ip(host)) /* an address literal: the certificate must name the address */
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

SSL *mta_tls_session(struct mta_tls *t, const char *host, const char *domain, const struct mta_policy_decision *d,
                     const struct mta_tlsa_set *tlsa)
{
    if (!t)
        return NULL;
    /* An address literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]") is its address: no SNI,
     * and verify checks the address in the certificate. */
    char ip[64];
    if (host[0] == '[' && mta_domain_literal(host, ip, sizeof ip))
        host = ip;
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    if (!is_ip(host))
        SSL_set_tlsext_host_name(ssl, host);
    int ok = 1;
    switch (d->mode) {
    case MTA_TLS_MODE_VERIFY: {
        X509_STORE *st = d->ca_file ? row_store(t, d->ca_file) : NULL;
        if (d->ca_file && !st)
            ok = 0; /* the row's CAs only, never the system's instead */
        else if (st)
            ok = SSL_set1_verify_cert_store(ssl, st) == 1;
        ok = ok && set_names(ssl, host, domain, d) == 0;
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        break;
    }
    case MTA_TLS_MODE_DANE:
        ok = tlsa && mta_dane_apply(ssl, host, tlsa) == 0;
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        break;
    default:
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        break;
    }
    if (!ok) {
        char h[PM_LOGV_SIZE];
        static const char *const modes[] = {"skip", "none", "may", "encrypt", "verify", "dane"};
        pm_log(PM_WARN, "event=tls_setup_failed host=%s mode=%s", PM_LOGV(h, host),
               (unsigned)d->mode < sizeof modes / sizeof modes[0] ? modes[d->mode] : "?");
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

int mta_tls_verified(SSL *ssl)
{
    return ssl && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && SSL_get_verify_result(ssl) == X509_V_OK &&
           SSL_get0_peer_certificate(ssl) != NULL;
}

int mta_tls_dane_usage(SSL *ssl)
{
    uint8_t usage, selector, mtype;
    if (!ssl || SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, NULL, NULL) < 0)
        return -1;
    return usage;
}
