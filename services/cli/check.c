/* `postmesh check`: everything a start would trip over, found before starting, and what
 * `postmesh run` would start. Each check prints one line "ok|warn|FAIL  what: detail";
 * the exit status is 1 if any failed. (Keys and privileges get their checks here too.) */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aliases.h"
#include "cli.h"
#include "services.h"
#include "userfile.h"

struct report {
    int failures, warnings;
};

static void line(struct report *r, const char *level, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void line(struct report *r, const char *level, const char *what, const char *fmt, ...)
{
    char detail[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (!strcmp(level, "FAIL"))
        r->failures++;
    else if (!strcmp(level, "warn"))
        r->warnings++;
    printf("%-4s  %-10s %s\n", level, what, detail);
}

static void check_state_dir(struct report *r, const struct pm_config *cfg)
{
    struct stat st;
    if (stat(cfg->state_dir, &st) < 0) {
        if (errno == ENOENT)
            line(r, "ok", "state_dir", "%s (created by `postmesh run`)", cfg->state_dir);
        else
            line(r, "FAIL", "state_dir", "%s: %s", cfg->state_dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        line(r, "FAIL", "state_dir", "%s is not a directory", cfg->state_dir);
    } else if (access(cfg->state_dir, W_OK | X_OK) < 0) {
        line(r, "FAIL", "state_dir", "%s is not writable by uid %d", cfg->state_dir, (int)getuid());
    } else {
        line(r, "ok", "state_dir", "%s", cfg->state_dir);
    }
}

static void check_users(struct report *r, const struct pm_config *cfg)
{
    struct cli_userfile uf;
    char err[1024];
    if (cli_userfile_open(&uf, cfg->users_file, 0, err, sizeof err) < 0) {
        line(r, "FAIL", "users", "%s", err);
    } else {
        int n = 0;
        for (int i = 0; i < uf.n; i++) {
            char *a = cli_userfile_address(&uf, i);
            n += a != NULL;
            free(a);
        }
        struct stat st;
        if (stat(cfg->users_file, &st) < 0)
            line(r, "warn", "users", "%s does not exist: nobody can log in (add users with `postmesh user add`)",
                 cfg->users_file);
        else if (st.st_mode & 0007)
            line(r, "warn", "users", "%s: %d users, but the file is world-accessible (mode %03o)", cfg->users_file,
                 n, (unsigned)(st.st_mode & 0777));
        else
            line(r, "ok", "users", "%s: %d users", cfg->users_file, n);
    }
    cli_userfile_close(&uf);
}

static void check_aliases(struct report *r, const struct pm_config *cfg)
{
    char err[1024];
    if (!cfg->aliases_file || !*cfg->aliases_file) {
        line(r, "ok", "aliases", "none configured");
        return;
    }
    struct pm_aliases *a = pm_aliases_load(cfg->aliases_file, err, sizeof err);
    if (!a)
        line(r, "FAIL", "aliases", "%s", err);
    else if (access(cfg->aliases_file, F_OK) < 0)
        line(r, "ok", "aliases", "%s (does not exist: no aliases)", cfg->aliases_file);
    else
        line(r, "ok", "aliases", "%s", cfg->aliases_file);
    pm_aliases_free(a);
}

static const char *ssl_error(void)
{
    unsigned long e = ERR_get_error();
    const char *s = e ? ERR_reason_error_string(e) : NULL;
    return s ? s : "unknown error";
}

static void check_tls(struct report *r, const struct pm_config *cfg)
{
    const char *cert = cfg->tls.certificate, *key = cfg->tls.key;
    if (!*cert && !*key) {
        line(r, "warn", "tls", "no tls.certificate/tls.key: STARTTLS, smtps and pop3s are unavailable");
        return;
    }
    if (!*cert || !*key) {
        line(r, "FAIL", "tls", "tls.certificate and tls.key must be set together");
        return;
    }
    int have_cert = access(cert, F_OK) == 0, have_key = access(key, F_OK) == 0;
    if (!have_cert && !have_key) {
        line(r, "ok", "tls", "%s and %s will be created (self-signed, CN=%s) by `postmesh run`", cert, key,
             cfg->hostname);
        return;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        line(r, "FAIL", "tls", "OpenSSL: %s", ssl_error());
        return;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        line(r, "FAIL", "tls", "%s: cannot use the certificate: %s", cert, ssl_error());
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        line(r, "FAIL", "tls", "%s: cannot use the key: %s", key, ssl_error());
    else if (SSL_CTX_check_private_key(ctx) != 1)
        line(r, "FAIL", "tls", "%s does not belong to %s", key, cert);
    else {
        X509 *x = SSL_CTX_get0_certificate(ctx);
        char subject[256] = "";
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        int days = 0, secs = 0;
        ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x));
        struct stat st;
        if (stat(key, &st) == 0 && (st.st_mode & 0077))
            line(r, "warn", "tls", "%s is readable by others (mode %03o): chmod 600", key,
                 (unsigned)(st.st_mode & 0777));
        line(r, days < 0 || (days == 0 && secs < 0) ? "FAIL" : days < 14 ? "warn" : "ok", "tls",
             "%s %s, expires in %d days", cert, subject, days);
    }
    SSL_CTX_free(ctx);
}

static void print_listen(const struct pm_listenlist *l, char *dst, size_t size)
{
    size_t o = 0;
    dst[0] = '\0';
    for (int i = 0; i < l->n && o < size; i++)
        o += (size_t)snprintf(dst + o, size - o, "%s%s (%s)", i ? ", " : "listens on ", l->v[i].address,
                              l->v[i].mode);
    if (l->n == 0)
        snprintf(dst, size, "no listen addresses configured");
}

/* What each service would do, as `postmesh run` would start it. */
static void check_services(struct report *r, const struct pm_config *cfg)
{
    char bindir[PATH_MAX], path[PATH_MAX + 32], what[2048];
    if (cli_bindir(bindir, sizeof bindir) < 0) {
        line(r, "FAIL", "services", "cannot find the directory of the postmesh binary");
        return;
    }
    int found = 0;
    for (int i = 0; i < cli_nservices; i++) {
        const char *name = cli_services[i].name;
        if (!cli_service_path(bindir, name, path, sizeof path)) {
            line(r, "ok", name, "not installed (%s): `postmesh run` skips it", path);
            continue;
        }
        found++;
        if (!strcmp(name, "queue"))
            snprintf(what, sizeof what, "binds %s and %s, store in %s", cfg->queue.endpoint, cfg->queue.control,
                     cfg->state_dir);
        else if (!strcmp(name, "resolver"))
            snprintf(what, sizeof what, "binds %s, asks %d nameserver(s)%s%s", cfg->resolver.endpoint,
                     cfg->resolver.nameservers.n, cfg->resolver.nameservers.n ? " from " : "",
                     cfg->resolver.nameservers.n ? cfg->resolver.nameservers.v[0] : "");
        else if (!strcmp(name, "smtpd"))
            print_listen(&cfg->smtpd.listen, what, sizeof what);
        else if (!strcmp(name, "pop3d"))
            print_listen(&cfg->pop3d.listen, what, sizeof what);
        else if (!strcmp(name, "mta"))
            snprintf(what, sizeof what, "delivers to remote port %lld", cfg->mta.remote_port);
        else if (!strcmp(name, "delivery"))
            snprintf(what, sizeof what, "delivers into %s/mail", cfg->state_dir);
        else
            snprintf(what, sizeof what, "sends delivery status notifications");
        line(r, "ok", name, "%s: %s", path, what);
    }
    if (!found)
        line(r, "FAIL", "services", "no service binaries in %s", bindir);
}

int cli_cmd_check(const struct pm_config *cfg, const char *config_path, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        cli_error("usage: postmesh check");
        return CLI_USAGE;
    }
    struct report r = {0, 0};
    line(&r, "ok", "config", "%s (hostname %s)", config_path, cfg->hostname);
    if (cfg->domains.n == 0)
        line(&r, "warn", "domains", "no local domains: nothing is delivered locally");
    for (int i = 0; i < cfg->domains.n; i++)
        line(&r, "ok", "domain", "%s", cfg->domains.v[i]);
    if (cfg->resolver.nameservers.n == 0)
        line(&r, "warn", "resolver", "no resolver.nameservers: remote delivery cannot look up MX hosts");
    check_state_dir(&r, cfg);
    check_users(&r, cfg);
    check_aliases(&r, cfg);
    check_tls(&r, cfg);
    check_services(&r, cfg);
    struct passwd *pw = getpwuid(geteuid());
    line(&r, "ok", "runs as", "uid %d (%s)%s", (int)geteuid(), pw ? pw->pw_name : "?",
         geteuid() == 0 ? "" : ": without root, no privileged ports and no privilege separation");
    printf("%s: %d problem(s), %d warning(s)\n", r.failures ? "FAILED" : "ok", r.failures, r.warnings);
    return r.failures ? CLI_FAIL : CLI_OK;
}
