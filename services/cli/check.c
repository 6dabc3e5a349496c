/* `postmesh check`: everything a start would trip over, found before starting, and what
 * `postmesh run` would start. Each check prints one line "ok|warn|FAIL  what: detail";
 * the exit status is 1 if any failed. Keys: check_keys.c; permissions and run-as: check_privs.c;
 * where postmaster mail goes: check_postmaster.c; trust anchors and CA files: check_outbound.c. */
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
#include "bindir.h"
#include "check.h"
#include "cli.h"
#include "services.h"
#include "userfile.h"

void cli_check_line(struct cli_check_report *r, const char *level, const char *what, const char *fmt, ...)
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

static void check_users(struct cli_check_report *r, const struct pm_config *cfg)
{
    struct cli_userfile uf;
    char err[1024];
    if (cli_userfile_open(&uf, cfg->users_file, 0, err, sizeof err) < 0) {
        cli_check_line(r, "FAIL", "users", "%s", err);
    } else {
        int n = 0;
        for (int i = 0; i < uf.n; i++) {
            char *a = cli_userfile_address(&uf, i);
            n += a != NULL;
            free(a);
        }
        cli_check_users_file_mode(r, cfg, n);
    }
    cli_userfile_close(&uf);
}

static void check_aliases(struct cli_check_report *r, const struct pm_config *cfg)
{
    char err[1024];
    if (!cfg->aliases_file || !*cfg->aliases_file) {
        cli_check_line(r, "ok", "aliases", "none configured");
        return;
    }
    struct pm_aliases *a = pm_aliases_load(cfg->aliases_file, err, sizeof err);
    if (!a)
        cli_check_line(r, "FAIL", "aliases", "%s", err);
    else if (access(cfg->aliases_file, F_OK) < 0)
        cli_check_line(r, "ok", "aliases", "%s (does not exist: no aliases)", cfg->aliases_file);
    else
        cli_check_line(r, "ok", "aliases", "%s", cfg->aliases_file);
    pm_aliases_free(a);
}

static const char *ssl_error(void)
{
    unsigned long e = ERR_get_error();
    const char *s = e ? ERR_reason_error_string(e) : NULL;
    return s ? s : "unknown error";
}

static void check_tls(struct cli_check_report *r, const struct pm_config *cfg)
{
    const char *cert = cfg->tls.certificate, *key = cfg->tls.key;
    if (!*cert && !*key) {
        cli_check_line(r, "warn", "tls", "no tls.certificate/tls.key: STARTTLS, smtps and pop3s are unavailable");
        return;
    }
    if (!*cert || !*key) {
        cli_check_line(r, "FAIL", "tls", "tls.certificate and tls.key must be set together");
        return;
    }
    int have_cert = access(cert, F_OK) == 0, have_key = access(key, F_OK) == 0;
    if (!have_cert && !have_key) {
        cli_check_line(r, "ok", "tls", "%s and %s will be created (self-signed, CN=%s) by `postmesh run`", cert, key,
             cfg->hostname);
        return;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        cli_check_line(r, "FAIL", "tls", "OpenSSL: %s", ssl_error());
        return;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        cli_check_line(r, "FAIL", "tls", "%s: cannot use the certificate: %s", cert, ssl_error());
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        cli_check_line(r, "FAIL", "tls", "%s: cannot use the key: %s", key, ssl_error());
    else if (SSL_CTX_check_private_key(ctx) != 1)
        cli_check_line(r, "FAIL", "tls", "%s does not belong to %s", key, cert);
    else {
        X509 *x = SSL_CTX_get0_certificate(ctx);
        char subject[256] = "";
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        int days = 0, secs = 0;
        ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x));
        struct stat st;
        if (stat(key, &st) == 0 && (st.st_mode & 0077))
            cli_check_line(r, "warn", "tls", "%s is readable by others (mode %03o): chmod 600", key,
                 (unsigned)(st.st_mode & 0777));
        cli_check_line(r, days < 0 || (days == 0 && secs < 0) ? "FAIL" : days < 14 ? "warn" : "ok", "tls",
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

/* Where this config's queue binds, and the shards everyone else connects to. */
static void describe_queue(const struct pm_config *cfg, char *dst, size_t size)
{
    size_t o = 0;
    if (cfg->queue.listen[0] && cfg->queue.control_listen[0])
        o += (size_t)snprintf(dst, size, "binds %s and %s, store in %s/queue", cfg->queue.listen,
                              cfg->queue.control_listen, cfg->state_dir);
    else
        o += (size_t)snprintf(dst, size, "cannot start from this file (no queue.listen/control_listen)");
    for (int i = 0; i < cfg->queue.endpoints.n && o < size; i++)
        o += (size_t)snprintf(dst + o, size - o, "%s%s (control %s)",
                              i ? ", " : cfg->queue.endpoints.n > 1 ? "; shards: " : "; clients connect to ",
                              cfg->queue.endpoints.v[i], cfg->queue.controls.v[i]);
}

/* The queue shards: with several, each shard's host must say where it binds (the list
 * names where the others connect, and one file serves every role). */
static void check_shards(struct cli_check_report *r, const struct pm_config *cfg)
{
    int n = cfg->queue.endpoints.n;
    if (n <= 1)
        return;
    cli_check_line(r, "ok", "shards", "%d queue shards: smtpd and the bouncer submit to each, workers and "
                   "`postmesh queue`/`status` talk to all", n);
    if (!cfg->queue.listen[0] || !cfg->queue.control_listen[0])
        cli_check_line(r, "warn", "shards", "queue.listen and queue.control_listen are not set: a queue shard "
                       "refuses to start with this file (fine on hosts that run no queue)");
}

/* What each service would do, as `postmesh run` would start it (common/services.def's rows
 * it starts, in its order): where it binds or listens when this file says, else its row's
 * description. */
static void check_services(struct cli_check_report *r, const struct pm_config *cfg)
{
    char bindir[PATH_MAX], path[PATH_MAX + 32], what[2048];
    if (cli_bindir(bindir, sizeof bindir) < 0) {
        cli_check_line(r, "FAIL", "services", "cannot find the directory of the postmesh binary");
        return;
    }
    int found = 0;
    for (const struct pm_svc *s = pm_svc_table; s->name; s++) {
        const char *name = s->name;
        if (!pm_svc_supervised(s))
            continue;
        if (!cli_service_path(bindir, name, path, sizeof path)) {
            cli_check_line(r, "ok", name, "not installed (%s): `postmesh run` skips it", path);
            continue;
        }
        found++;
        if (!strcmp(name, "queue"))
            describe_queue(cfg, what, sizeof what);
        else if (!strcmp(name, "resolver"))
            snprintf(what, sizeof what, "binds %s%s%s, asks %d nameserver(s)%s%s", cfg->resolver.listen,
                     strcmp(cfg->resolver.listen, cfg->resolver.endpoint) ? ", clients connect to " : "",
                     strcmp(cfg->resolver.listen, cfg->resolver.endpoint) ? cfg->resolver.endpoint : "",
                     cfg->resolver.nameservers.n, cfg->resolver.nameservers.n ? " from " : "",
                     cfg->resolver.nameservers.n ? cfg->resolver.nameservers.v[0] : "");
        else if (!strcmp(name, "smtpd"))
            print_listen(&cfg->smtpd.listen, what, sizeof what);
        else if (!strcmp(name, "pop3d"))
            print_listen(&cfg->pop3d.listen, what, sizeof what);
        else if (!strcmp(name, "imapd"))
            print_listen(&cfg->imapd.listen, what, sizeof what);
        else if (!strcmp(name, "mta"))
            snprintf(what, sizeof what, "delivers to remote port %lld", cfg->mta.remote_port);
        else if (!strcmp(name, "delivery"))
            snprintf(what, sizeof what, "delivers into %s/mail", cfg->state_dir);
        else if (!strcmp(name, "bouncer"))
            snprintf(what, sizeof what, "sends delivery status notifications");
        else
            snprintf(what, sizeof what, "%s", s->description);
        cli_check_line(r, "ok", name, "%s: %s", path, what);
        cli_check_runas(r, cfg, name);
    }
    if (!found)
        cli_check_line(r, "FAIL", "services", "no service binaries in %s", bindir);
}

int cli_cmd_check(const struct pm_config *cfg, const char *config_path, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        cli_error("usage: postmesh check");
        return CLI_USAGE;
    }
    struct cli_check_report r = {0, 0};
    cli_check_line(&r, "ok", "config", "%s (hostname %s)", config_path, cfg->hostname);
    if (cfg->domains.n == 0)
        cli_check_line(&r, "warn", "domains", "no local domains: nothing is delivered locally");
    for (int i = 0; i < cfg->domains.n; i++)
        cli_check_line(&r, "ok", "domain", "%s", cfg->domains.v[i]);
    if (cfg->resolver.nameservers.n == 0)
        cli_check_line(&r, "warn", "resolver", "no resolver.nameservers: remote delivery cannot look up MX hosts");
    cli_check_state_dir(&r, cfg);
    cli_check_keys(&r, cfg);
    check_users(&r, cfg);
    check_aliases(&r, cfg);
    cli_check_postmaster(&r, cfg);
    check_tls(&r, cfg);
    cli_check_outbound(&r, cfg);
    cli_check_accounts(&r);
    check_shards(&r, cfg);
    check_services(&r, cfg);
    struct passwd *pw = getpwuid(geteuid());
    cli_check_line(&r, "ok", "runs as", "uid %d (%s)%s", (int)geteuid(), pw ? pw->pw_name : "?",
         geteuid() == 0 ? ": services drop to the users above (privilege separation)"
                        : ": without root, services skip chroot and setuid (and say so in their log)");
    printf("%s: %d problem(s), %d warning(s)\n", r.failures ? "FAILED" : "ok", r.failures, r.warnings);
    return r.failures ? CLI_FAIL : CLI_OK;
}
