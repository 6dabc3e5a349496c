/* The DKIM keys (dkim_sign.h): each configured key file read once at queue start, as root
 * or the queue's user and before the chroot, and checked: readable, not world-readable, a
 * PEM private key that is rsa of at least 2048 bits or ed25519, and at most one active key
 * per (domain, algorithm). Errors name the config entry's file:line. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkim_sign_int.h"

#define MAX_KEY_FILE 16384

static int fail(const struct pm_dkim_key *k, char *err, size_t size, const char *fmt, ...)
{
    int n = snprintf(err, size, "%s:%d: dkim %s selector %s: ", k->file, k->line, k->domain, k->selector);
    if (n < 0 || (size_t)n >= size)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The file's bytes (NUL-terminated), refusing a world-readable or oversized one. */
static unsigned char *read_key_file(const struct pm_dkim_key *k, size_t *len, char *err, size_t size)
{
    /* Symlinks are followed: a Kubernetes Secret volume is made of them. The checks below
     * are of the file opened, whatever name led to it. */
    int fd = open(k->key, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fail(k, err, size, "cannot read key %s: %s", k->key, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    unsigned char *buf = NULL;
    if (!S_ISREG(st.st_mode))
        fail(k, err, size, "key %s is not a regular file", k->key);
    else if (st.st_mode & S_IROTH)
        fail(k, err, size, "key %s is readable by everyone (mode %03o): chmod 0600 or 0640 (`postmesh dkim keygen` "
             "writes it so)", k->key, (unsigned)(st.st_mode & 0777));
    else if (st.st_mode & S_IWOTH) /* anyone could put their own key in: every signature would fail */
        fail(k, err, size, "key %s is writable by everyone (mode %03o): chmod 0600", k->key,
             (unsigned)(st.st_mode & 0777));
    else if (st.st_size <= 0 || st.st_size > MAX_KEY_FILE)
        fail(k, err, size, "key %s is empty or larger than %d bytes", k->key, MAX_KEY_FILE);
    else if ((buf = malloc((size_t)st.st_size + 1))) {
        ssize_t n = read(fd, buf, (size_t)st.st_size);
        if (n != st.st_size) {
            fail(k, err, size, "cannot read key %s: %s", k->key, n < 0 ? strerror(errno) : "short read");
            OPENSSL_clear_free(buf, (size_t)st.st_size + 1);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    close(fd);
    return buf;
}

/* An encrypted key is refused, never prompted for: OpenSSL's default would read a passphrase
 * from the terminal and hang a queue started from a shell. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag;
    *(int *)u = 1;
    return -1;
}

/* The PEM key parsed, and which algorithm it is: 0, or -1 (err) for anything but rsa of
 * 2048 to 8192 bits or ed25519. */
static int classify(const struct pm_dkim_key *k, const unsigned char *pem, size_t pemlen, struct dkim_key *out,
                    char *err, size_t size)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)pemlen);
    int asked = 0;
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked) : NULL;
    BIO_free(bio);
    if (!pk)
        return fail(k, err, size, asked ? "key %s is encrypted: the queue reads it unattended, store it without a "
                                          "passphrase (mode 0600)" : "key %s is not a PEM private key", k->key);
    int rc = 0;
    if (EVP_PKEY_base_id(pk) == EVP_PKEY_RSA) {
        out->alg = DKIM_ALG_RSA;
        out->bits = EVP_PKEY_bits(pk);
        if (out->bits < 2048)
            rc = fail(k, err, size, "key %s is rsa of %d bits: at least 2048 are needed (RFC 8301)", k->key, out->bits);
        else if (out->bits > 8192)
            rc = fail(k, err, size, "key %s is rsa of %d bits: at most 8192 are supported", k->key, out->bits);
    } else if (EVP_PKEY_base_id(pk) == EVP_PKEY_ED25519) {
        out->alg = DKIM_ALG_ED25519;
        out->bits = 256;
    } else {
        rc = fail(k, err, size, "key %s is neither rsa nor ed25519", k->key);
    }
    if (rc == 0)
        out->pkey = pk; /* kept: parsed once, signed with for every message */
    else
        EVP_PKEY_free(pk);
    return rc;
}

int queue_dkim_load_keys(struct dkim_signer *d, const struct pm_config *cfg, char *err, size_t size)
{
    d->keys = calloc((size_t)cfg->dkim.n + 1, sizeof *d->keys);
    if (!d->keys) {
        snprintf(err, size, "%s:0: dkim: out of memory", cfg->path);
        return -1;
    }
    for (int i = 0; i < cfg->dkim.n; i++) {
        const struct pm_dkim_key *k = &cfg->dkim.v[i];
        struct dkim_key *out = &d->keys[d->nkeys];
        out->domain = k->domain;
        out->selector = k->selector;
        out->active = k->active;
        size_t pemlen = 0;
        unsigned char *pem = read_key_file(k, &pemlen, err, size);
        if (!pem)
            return -1;
        int rc = classify(k, pem, pemlen, out, err, size);
        OPENSSL_clear_free(pem, pemlen + 1); /* only the parsed key stays in memory */
        if (rc < 0)
            return -1;
        d->nkeys++;
        for (int j = 0; j < i; j++) {
            const struct dkim_key *o = &d->keys[j];
            if (out->active && o->active && o->alg == out->alg && !strcasecmp(o->domain, out->domain))
                return fail(k, err, size, "a second active %s key for %s (selector %s at line %d is active too): "
                            "mark one active = false", queue_dkim_alg_name(out->alg), out->domain, o->selector,
                            cfg->dkim.v[j].line);
        }
    }
    return 0;
}

void queue_dkim_free_keys(struct dkim_signer *d)
{
    for (int i = 0; i < d->nkeys; i++)
        EVP_PKEY_free(d->keys[i].pkey);
    free(d->keys);
    d->keys = NULL;
    d->nkeys = 0;
}
