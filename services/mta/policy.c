/* The outbound TLS decision (policy.h): one table, read top to bottom. */
#include "policy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "sts.h"

static const char *const level_names[] = {
    [MTA_TLS_LEVEL_NONE] = "none",       [MTA_TLS_LEVEL_MAY] = "may",       [MTA_TLS_LEVEL_ENCRYPT] = "encrypt",
    [MTA_TLS_LEVEL_VERIFY] = "verify",   [MTA_TLS_LEVEL_SECURE] = "secure", [MTA_TLS_LEVEL_DANE] = "dane",
    [MTA_TLS_LEVEL_DANE_ONLY] = "dane-only",
};

int mta_tls_level_parse(const char *name, int tls_verify)
{
    if (!name || !name[0])
        return tls_verify ? MTA_TLS_LEVEL_VERIFY : MTA_TLS_LEVEL_DANE;
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *mta_tls_level_name(enum mta_tls_level l)
{
    return (unsigned)l < sizeof level_names / sizeof level_names[0] ? level_names[l] : "?";
}

const char *mta_sts_applied_name(enum mta_sts_applied s)
{
    return s == MTA_STS_APPLIED_ENFORCE ? "enforce" : s == MTA_STS_APPLIED_TESTING ? "testing" : "no";
}

enum mta_tls_level mta_policy_level(const struct pm_tls_policy *row, const char *tls_level, int tls_verify)
{
    int l = row ? mta_tls_level_parse(row->level, tls_verify) : -1;
    if (l < 0)
        l = mta_tls_level_parse(tls_level, tls_verify);
    return l < 0 ? MTA_TLS_LEVEL_DANE : (enum mta_tls_level)l;
}

static int uses_dane(enum mta_tls_level l) { return l == MTA_TLS_LEVEL_DANE || l == MTA_TLS_LEVEL_DANE_ONLY; }

/* "TLS-Required: No" opts out of DANE and MTA-STS, never out of REQUIRETLS (RFC 8689 5:
 * the two are not to be combined; REQUIRETLS wins). */
static int opted_out(const struct mta_policy_in *in) { return in->tls_required_no && !in->requiretls; }

/* A REQUIRETLS message at a local level (encrypt, verify, secure) still needs what the
 * domain publishes: without it, an insecure MX under encrypt could never be authenticated
 * (RFC 8689 4.2.1 asks for DANE or MTA-STS). */
static int requiretls_asks(const struct mta_policy_in *in)
{
    return in->requiretls && in->level != MTA_TLS_LEVEL_NONE;
}

int mta_policy_wants_tlsa(const struct mta_policy_in *in, int mx_secure)
{
    return mx_secure && (uses_dane(in->level) || requiretls_asks(in)) && !opted_out(in);
}

int mta_policy_wants_sts(const struct mta_policy_in *in)
{
    return (in->level == MTA_TLS_LEVEL_MAY || uses_dane(in->level) || requiretls_asks(in)) && !opted_out(in);
}

int mta_policy_wants_tlsrpt(const struct mta_policy_in *in)
{
    return in->level != MTA_TLS_LEVEL_NONE && !opted_out(in);
}

static void skip(struct mta_policy_decision *d, const char *dsn, const char *result_type, const char *fmt,
                 const char *a, const char *b)
{
    d->mode = MTA_TLS_MODE_SKIP;
    snprintf(d->dsn, sizeof d->dsn, "%s", dsn);
    int n = snprintf(d->why, sizeof d->why, "%s ", dsn);
    if (n > 0 && (size_t)n < sizeof d->why)
        snprintf(d->why + n, sizeof d->why - (size_t)n, fmt, a, b ? b : "");
    d->result_type = result_type;
}

static void mandatory(struct mta_policy_decision *d, enum mta_tls_mode mode)
{
    d->mode = mode;
    d->tls_required = 1;
    d->plaintext_retry = 0;
    d->authenticated = mode == MTA_TLS_MODE_VERIFY || mode == MTA_TLS_MODE_DANE;
}

/* No DANE for this MX: MTA-STS if the domain has a policy, else opportunistic (may). */
static void sts_or_may(const struct mta_policy_in *in, const struct mta_policy_mx *mx, struct mta_policy_decision *d)
{
    const struct mta_sts_policy *p = opted_out(in) ? NULL : in->sts;
    /* RFC 8689 4.2.1: a REQUIRETLS message treats a testing policy as enforce. */
    int enforce = p && (p->mode == MTA_STS_MODE_ENFORCE || (p->mode == MTA_STS_MODE_TESTING && in->requiretls));
    if (enforce) {
        d->sts = MTA_STS_APPLIED_ENFORCE;
        if (!mta_sts_mx_matches(p, mx->host)) {
            skip(d, "4.7.5", "validation-failure", "MX host %s is not in the MTA-STS policy of %s", mx->host, in->domain);
            return;
        }
        mandatory(d, MTA_TLS_MODE_VERIFY);
        d->names = MTA_TLS_NAMES_MX;
        d->ca_file = NULL; /* RFC 8461 4.2: the Web PKI, mta.ca_file/ca_path */
        return;
    }
    if (p && p->mode == MTA_STS_MODE_TESTING) {
        /* RFC 8461 5.2: delivered as without the policy, reported as enforce would judge it. */
        d->sts = MTA_STS_APPLIED_TESTING;
        if (!mta_sts_mx_matches(p, mx->host))
            d->result_type = "validation-failure";
    }
    d->mode = MTA_TLS_MODE_MAY;
    d->plaintext_retry = 1;
}

static void decide_dane(const struct mta_policy_in *in, const struct mta_policy_mx *mx, struct mta_policy_decision *d)
{
    int only = in->level == MTA_TLS_LEVEL_DANE_ONLY;
    enum mta_tlsa_state t = mx->secure ? mx->tlsa : MTA_TLSA_NOT_ASKED;
    switch (t) {
    case MTA_TLSA_FAILED:
        /* The resolver's text may say the same already ("TLSA lookup for _25._tcp... failed: ..."). */
        if (mx->tlsa_why && strncmp(mx->tlsa_why, "TLSA lookup for ", 16) == 0)
            skip(d, "4.7.5", "dnssec-invalid", "%s%s", mx->tlsa_why, NULL);
        else
            skip(d, "4.7.5", "dnssec-invalid", "TLSA lookup for %s failed: %s", mx->host,
                 mx->tlsa_why && mx->tlsa_why[0] ? mx->tlsa_why : "no answer");
        return;
    case MTA_TLSA_USABLE:
        mandatory(d, MTA_TLS_MODE_DANE);
        d->dane = 1;
        return;
    case MTA_TLSA_UNUSABLE:
        d->tlsa_unusable = 1;
        if (only) {
            skip(d, "4.7.5", "tlsa-invalid", "no usable TLSA record for %s (dane-only)%s", mx->host, NULL);
            return;
        }
        mandatory(d, MTA_TLS_MODE_ENCRYPT); /* RFC 7672 2.2: TLS, even unauthenticated */
        return;
    case MTA_TLSA_NONE:
    case MTA_TLSA_NOT_ASKED:
        if (only) {
            skip(d, "4.7.5", "dane-required", "no DNSSEC-secure TLSA records for %s (dane-only)%s", mx->host, NULL);
            return;
        }
        sts_or_may(in, mx, d);
        return;
    }
}

/* A REQUIRETLS message at encrypt, verify or secure: what DANE and MTA-STS say, on top of
 * the level (d, decided already). An MX they refuse (a failed TLSA lookup, not in an
 * enforce policy) is skipped; under encrypt their authentication replaces the level's
 * unauthenticated TLS; verify and secure keep their own PKIX check (authenticated already). */
static void with_published(const struct mta_policy_in *in, const struct mta_policy_mx *mx, struct mta_policy_decision *d)
{
    struct mta_policy_in as_dane = *in;
    as_dane.level = MTA_TLS_LEVEL_DANE;
    struct mta_policy_decision p;
    memset(&p, 0, sizeof p);
    decide_dane(&as_dane, mx, &p);
    if (p.mode == MTA_TLS_MODE_SKIP || (p.authenticated && !d->authenticated)) {
        p.level = d->level;
        p.ca_file = p.mode == MTA_TLS_MODE_VERIFY ? NULL : d->ca_file;
        p.match = d->match;
        *d = p;
        return;
    }
    d->sts = p.sts;
}

void mta_policy_decide(const struct mta_policy_in *in, const struct mta_policy_mx *mx, struct mta_policy_decision *d)
{
    memset(d, 0, sizeof *d);
    enum mta_tls_level level = in->level;
    /* "TLS-Required: No": DANE and MTA-STS ignored; what is left of dane is may. */
    if (opted_out(in) && uses_dane(level))
        level = MTA_TLS_LEVEL_MAY;
    d->level = level;
    d->ca_file = in->row && in->row->ca_file && in->row->ca_file[0] ? in->row->ca_file : NULL;
    int has_match = in->row && in->row->match.n > 0;
    d->match = has_match ? &in->row->match : NULL;
    switch (level) {
    case MTA_TLS_LEVEL_NONE:
        d->mode = MTA_TLS_MODE_NONE;
        break;
    case MTA_TLS_LEVEL_MAY:
        sts_or_may(in, mx, d);
        break;
    case MTA_TLS_LEVEL_ENCRYPT:
        mandatory(d, MTA_TLS_MODE_ENCRYPT);
        if (in->requiretls)
            with_published(in, mx, d);
        break;
    case MTA_TLS_LEVEL_VERIFY:
    case MTA_TLS_LEVEL_SECURE:
        mandatory(d, MTA_TLS_MODE_VERIFY);
        d->names = has_match ? MTA_TLS_NAMES_MATCH : level == MTA_TLS_LEVEL_SECURE ? MTA_TLS_NAMES_DOMAIN : MTA_TLS_NAMES_MX;
        if (in->requiretls)
            with_published(in, mx, d);
        break;
    case MTA_TLS_LEVEL_DANE:
    case MTA_TLS_LEVEL_DANE_ONLY:
        decide_dane(in, mx, d);
        break;
    }
    /* RFC 8689 4.2.1: with a DNSSEC-secure MX answer, PKIX with the MX name authenticates
     * the server enough for REQUIRETLS when neither DANE nor MTA-STS says more. */
    if (d->mode != MTA_TLS_MODE_SKIP && in->requiretls && !d->authenticated && mx->secure &&
        level != MTA_TLS_LEVEL_NONE && d->mode != MTA_TLS_MODE_NONE) {
        mandatory(d, MTA_TLS_MODE_VERIFY);
        d->names = MTA_TLS_NAMES_MX;
    }
    if (d->mode != MTA_TLS_MODE_SKIP && in->requiretls && !d->authenticated && in->sts_failed) {
        /* The domain has an MTA-STS policy we could not fetch (maybe an attacker blocking
         * HTTPS): temporary, as the fetch is; never a bounce (RFC 8461 5.1). */
        skip(d, "4.7.5", NULL, "MTA-STS policy could not be fetched for %s (REQUIRETLS needs authenticated TLS to %s)",
             in->domain, mx->host);
        return;
    }
    if (d->mode != MTA_TLS_MODE_SKIP && in->requiretls && !d->authenticated) {
        skip(d, MTA_REQUIRETLS_DSN, NULL,
             "REQUIRETLS: no authenticated TLS to %s (no DANE, no MTA-STS policy, no verify level)%s", mx->host, NULL);
        d->perm = 1;
    }
}

/* ------------------------------------------------------------------ TLS-Required: No */
static int is_wsp(unsigned char c) { return c == ' ' || c == '\t'; }

int mta_tls_required_no(const uint8_t *msg, size_t len)
{
    static const char name[] = "tls-required:";
    const size_t nlen = sizeof name - 1;
    size_t i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && msg[eol] != '\n')
            eol++;
        size_t end = eol > i && msg[eol - 1] == '\r' ? eol - 1 : eol;
        if (end == i) /* the empty line: the body starts */
            return 0;
        if (end - i >= nlen && strncasecmp((const char *)msg + i, name, nlen) == 0) {
            /* The value, unfolded: every continuation line (starting with WSP) belongs to it. */
            char v[16];
            size_t n = 0, p = i + nlen;
            int over = 0;
            for (;;) {
                for (; p < end; p++) {
                    if (is_wsp(msg[p]))
                        continue;
                    if (n < sizeof v - 1)
                        v[n++] = (char)msg[p];
                    else
                        over = 1;
                }
                size_t next = eol + 1;
                if (next >= len || !is_wsp(msg[next]))
                    break;
                eol = next;
                while (eol < len && msg[eol] != '\n')
                    eol++;
                p = next;
                end = eol > next && msg[eol - 1] == '\r' ? eol - 1 : eol;
            }
            v[n] = '\0';
            if (!over && strcasecmp(v, "no") == 0)
                return 1;
        }
        i = eol + 1;
    }
    return 0;
}
