/* `postmesh dkim keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]` (docs/dkim.md): a new DKIM
 * signing key, rsa-2048 (or ed25519), written where only the queue's user can read it, and
 * what to do with it: the config entry to add and the DNS TXT record to publish (RFC 6376
 * 3.6.1; k=ed25519 with the raw 32-byte public key, RFC 8463 4). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "cli.h"
#include "config_rules.h"
#include "runas.h"

#define TXT_CHUNK 255 /* the longest character-string of a TXT record (RFC 1035 3.3) */

static int usage(void)
{
    cli_error("usage: postmesh dkim keygen DOMAIN SELECTOR [--ed25519] [--dir DIR]");
    return CLI_USAGE;
}

/* The key as PEM in tmp (mode 0600, the queue's user's when we are root), fsynced, then
 * linked to path: link() never replaces a file, so an existing key is never overwritten
 * and nobody sees a half-written one. 0, or -1 with errno. */
static int write_key(const char *path, EVP_PKEY *key)
{
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int ok = 1;
    if (geteuid() == 0) {
        const struct passwd *pw = getpwnam(pm_runas_find("queue")->user);
        ok = pw && fchown(fd, pw->pw_uid, pw->pw_gid) == 0;
        if (!pw)
            errno = ENOENT; /* the user is created by scripts/install-deps.sh */
    }
    FILE *f = ok ? fdopen(fd, "w") : NULL;
    ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) && fflush(f) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (f)
        fclose(f);
    else
        close(fd);
    if (ok && link(tmp, path) < 0) {
        saved = errno;
        ok = 0;
    }
    unlink(tmp);
    errno = saved;
    return ok ? 0 : -1;
}

/* "p=..." of the TXT record: base64 of the DER SubjectPublicKeyInfo for rsa, of the raw key
 * for ed25519. */
static int public_value(EVP_PKEY *key, int ed25519, char *out, size_t size)
{
    unsigned char raw[1024], *der = NULL;
    size_t rawlen = sizeof raw;
    long n;
    if (ed25519) {
        if (EVP_PKEY_get_raw_public_key(key, raw, &rawlen) != 1)
            return -1;
        n = pm_base64_encode(raw, rawlen, out, size);
    } else {
        int len = i2d_PUBKEY(key, &der);
        if (len <= 0)
            return -1;
        n = pm_base64_encode(der, (size_t)len, out, size);
        OPENSSL_free(der);
    }
    return n < 0 ? -1 : 0;
}

/* SELECTOR._domainkey.DOMAIN. IN TXT ( "..." "..." ): the record cut into strings of at most
 * 255 octets, which a resolver joins again (RFC 6376 3.6.2.2). */
static void print_txt(const char *selector, const char *domain, const char *record)
{
    printf("%s._domainkey.%s. IN TXT (", selector, domain);
    size_t len = strlen(record);
    for (size_t i = 0; i < len; i += TXT_CHUNK)
        printf(" \"%.*s\"", (int)(len - i < TXT_CHUNK ? len - i : TXT_CHUNK), record + i);
    printf(" )\n");
}

static int keygen(const struct pm_config *cfg, int argc, char **argv)
{
    const char *domain = NULL, *selector = NULL, *dir = NULL;
    int ed25519 = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--ed25519"))
            ed25519 = 1;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (argv[i][0] == '-')
            return usage();
        else if (!domain)
            domain = argv[i];
        else if (!selector)
            selector = argv[i];
        else
            return usage();
    }
    if (!domain || !selector)
        return usage();
    char why[160], defdir[4096], path[4200];
    if (dir && strlen(dir) > 3800) {
        cli_error("--dir is too long");
        return CLI_USAGE;
    }
    if (pm_rule_domain(domain, why, sizeof why) < 0) {
        cli_error("domain '%s' %s", domain, why);
        return CLI_USAGE;
    }
    if (pm_rule_dkim_selector(selector, why, sizeof why) < 0) {
        cli_error("selector '%s' %s", selector, why);
        return CLI_USAGE;
    }
    if (!dir)
        dir = pm_config_state_path(cfg, "dkim", defdir, sizeof defdir);
    if (cli_mkdirs(dir, 0750) < 0) {
        cli_error("cannot create %s: %s", dir, strerror(errno));
        return CLI_FAIL;
    }
    snprintf(path, sizeof path, "%s/%s.%s.%s.pem", dir, domain, selector, ed25519 ? "ed25519" : "rsa");
    if (access(path, F_OK) == 0) {
        cli_error("%s exists: a key is never overwritten (choose a new selector to rotate)", path);
        return CLI_FAIL;
    }
    EVP_PKEY *key =
        ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    char pub[2048];
    if (!key || public_value(key, ed25519, pub, sizeof pub) < 0) {
        cli_error("cannot make the key: %s", ERR_reason_error_string(ERR_get_error()));
        EVP_PKEY_free(key);
        return CLI_FAIL;
    }
    int rc = write_key(path, key);
    EVP_PKEY_free(key);
    if (rc < 0) {
        cli_error(errno == EEXIST ? "%s exists: a key is never overwritten" : "cannot write %s: %s", path,
                  strerror(errno));
        return CLI_FAIL;
    }
    char record[2200];
    snprintf(record, sizeof record, "v=DKIM1; k=%s; p=%s", ed25519 ? "ed25519" : "rsa", pub);
    printf("# wrote %s (%s; readable by the queue's user only)\n", path, ed25519 ? "ed25519" : "rsa 2048");
    printf("# add to the dkim list of the configuration:\n");
    printf("{ domain = \"%s\"; selector = \"%s\"; key = \"%s\"; active = true; }\n", domain, selector, path);
    printf("# publish in DNS:\n");
    print_txt(selector, domain, record);
    return CLI_OK;
}

int cli_cmd_dkim(const struct pm_config *cfg, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "keygen"))
        return keygen(cfg, argc - 2, argv + 2);
    return usage();
}
