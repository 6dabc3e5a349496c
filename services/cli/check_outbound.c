/* `postmesh check` for outbound security: the resolver's DNSSEC trust anchors, read as the
 * resolver reads them at start (a bad file stops it with exit 2), and the mta's CA files,
 * which the config loader only sees are readable: one without a certificate leaves verify,
 * secure and MTA-STS with nothing to trust (the mta only warns in its log). */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <sys/stat.h>

#include "check.h"
#include "trust_anchors.h"

static void check_dnssec(struct cli_check_report *r, const struct pm_config *cfg)
{
    if (!cfg->resolver.dnssec) {
        cli_check_line(r, "warn", "dnssec", "resolver.dnssec = false: no answer is secure, so DANE is never used");
        return;
    }
    struct pm_trust_anchors a = {0};
    char err[512];
    if (pm_trust_anchors_load_config(cfg, &a, err, sizeof err) < 0)
        cli_check_line(r, "FAIL", "dnssec", "resolver.trust_anchors: %s", err);
    else
        cli_check_line(r, "ok", "dnssec", "%d trust anchor(s) from %s%s", a.n,
                       cfg->resolver.trust_anchors.n ? cfg->resolver.trust_anchors.v[0] : PM_ROOT_TRUST_ANCHOR,
                       cfg->resolver.trust_anchors.n > 1 ? " and more" : "");
    pm_trust_anchors_free(&a);
}

/* Certificates in a PEM file, or -1 when it cannot be opened. */
static int count_certificates(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL))) {
        X509_free(x);
        n++;
    }
    fclose(f);
    return n;
}

static void check_ca_file(struct cli_check_report *r, const char *setting, const char *path)
{
    int n = count_certificates(path);
    if (n <= 0)
        cli_check_line(r, "FAIL", "ca", "%s %s: %s", setting, path,
                       n < 0 ? "cannot be read" : "holds no PEM certificate: nothing would verify");
    else
        cli_check_line(r, "ok", "ca", "%s %s: %d certificate(s)", setting, path, n);
}

static void check_ca(struct cli_check_report *r, const struct pm_config *cfg)
{
    struct stat st;
    if (cfg->mta.ca_file && cfg->mta.ca_file[0])
        check_ca_file(r, "mta.ca_file", cfg->mta.ca_file);
    else if (cfg->mta.ca_path && cfg->mta.ca_path[0] && (stat(cfg->mta.ca_path, &st) < 0 || !S_ISDIR(st.st_mode)))
        cli_check_line(r, "warn", "ca", "mta.ca_path %s is not a directory: the mta uses %s", cfg->mta.ca_path,
                       X509_get_default_cert_file());
    else
        cli_check_line(r, "ok", "ca", "mta.ca_path %s", cfg->mta.ca_path ? cfg->mta.ca_path : "");
    for (int i = 0; i < cfg->mta.tls_policy.n; i++) {
        const struct pm_tls_policy *p = &cfg->mta.tls_policy.v[i];
        if (p->ca_file && p->ca_file[0]) {
            char setting[300];
            snprintf(setting, sizeof setting, "mta.tls_policy %s ca_file", p->domain);
            check_ca_file(r, setting, p->ca_file);
        }
    }
}

void cli_check_outbound(struct cli_check_report *r, const struct pm_config *cfg)
{
    check_dnssec(r, cfg);
    check_ca(r, cfg);
}
