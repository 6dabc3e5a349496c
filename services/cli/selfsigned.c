#include "selfsigned.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define VALID_DAYS 3650

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const char *hostname)
{
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    int ok = x && serial && X509_set_version(x, 2) && BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
             BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400L * VALID_DAYS) && X509_set_pubkey(x, key);
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname, -1, -1, 0) &&
         X509_set_issuer_name(x, name);
    /* Clients check the name in subjectAltName; an IP literal as hostname needs an IP entry. */
    char san[600];
    unsigned char ipbuf[16];
    int is_ip = inet_pton(AF_INET, hostname, ipbuf) == 1 || inet_pton(AF_INET6, hostname, ipbuf) == 1;
    snprintf(san, sizeof san, "%s:%s", is_ip ? "IP" : "DNS", hostname);
    ok = ok && add_ext(x, NID_subject_alt_name, san) == 0 &&
         add_ext(x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
         add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") == 0 &&
         add_ext(x, NID_ext_key_usage, "serverAuth") == 0 &&
         add_ext(x, NID_subject_key_identifier, "hash") == 0 &&
         add_ext(x, NID_authority_key_identifier, "keyid:always") == 0 && X509_sign(x, key, EVP_sha256()) > 0;
    BN_free(serial);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes one PEM object to path.tmp with mode, fsyncs it; the caller renames. */
static int write_pem(const char *tmp, mode_t mode, EVP_PKEY *key, X509 *cert)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -1;
    }
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

static int make_parent(const char *path, unsigned mode)
{
    char *copy = strdup(path);
    int rc = copy ? cli_mkdirs(dirname(copy), mode) : -1;
    free(copy);
    return rc;
}

int cli_tls_ensure(const struct pm_config *cfg, char *err, size_t errsize)
{
    const char *certp = cfg->tls.certificate, *keyp = cfg->tls.key;
    if (!certp || !*certp || !keyp || !*keyp)
        return 0;
    int have_cert = access(certp, F_OK) == 0, have_key = access(keyp, F_OK) == 0;
    if (have_cert && have_key)
        return 0;
    if (have_cert || have_key) {
        snprintf(err, errsize, "%s exists but %s does not: install the missing one or remove both to get a new "
                 "self-signed pair", have_cert ? certp : keyp, have_cert ? keyp : certp);
        return -1;
    }
    if (make_parent(certp, 0755) < 0 || make_parent(keyp, 0750) < 0) {
        snprintf(err, errsize, "cannot create the directory for %s or %s: %s", certp, keyp, strerror(errno));
        return -1;
    }
    char certtmp[4200], keytmp[4200];
    snprintf(certtmp, sizeof certtmp, "%s.tmp", certp);
    snprintf(keytmp, sizeof keytmp, "%s.tmp", keyp);
    unlink(certtmp); /* left over from an interrupted attempt */
    unlink(keytmp);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key ? make_cert(key, cfg->hostname) : NULL;
    int rc = -1;
    if (!cert) {
        snprintf(err, errsize, "cannot make a self-signed certificate: %s", ERR_reason_error_string(ERR_get_error()));
    } else if (write_pem(keytmp, 0600, key, NULL) < 0 || write_pem(certtmp, 0644, NULL, cert) < 0 ||
               rename(keytmp, keyp) < 0 || rename(certtmp, certp) < 0) {
        snprintf(err, errsize, "cannot write %s / %s: %s", keyp, certp, strerror(errno));
        unlink(keytmp);
        unlink(certtmp);
    } else {
        rc = 1;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
