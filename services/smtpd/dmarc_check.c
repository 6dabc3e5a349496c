/* DMARC with libopendmarc over the message's DNS table (dmarc_check.h). */
#include "dmarc_check.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <opendkim/dkim.h>
#include <opendmarc/dmarc.h>

#include "authres_dns.h"
#include "authres_header.h"

/* In libopendmarc, not in its header. */
int opendmarc_get_tld(u_char *domain, u_char *tld, size_t tld_len);

enum { STAGE_START, STAGE_FROM, STAGE_ORG, STAGE_DONE };

int dmarc_check_init(const char *psl_path)
{
    OPENDMARC_LIB_T cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
    if (psl_path && *psl_path)
        snprintf((char *)cfg.tld_source_file, sizeof cfg.tld_source_file, "%s", psl_path);
    return opendmarc_policy_library_init(&cfg) == DMARC_PARSE_OKAY ? 0 : -1;
}

void dmarc_check_org_domain(const char *domain, char *out, size_t size)
{
    u_char buf[256] = {0};
    char copy[256];
    snprintf(copy, sizeof copy, "%s", domain);
    if (opendmarc_get_tld((u_char *)copy, buf, sizeof buf) == 0 && buf[0]) {
        snprintf(out, size, "%s", (char *)buf);
        return;
    }
    /* No rule of the list matches: the implicit "*" rule, so the last two labels. */
    const char *last = strrchr(domain, '.');
    const char *p = last;
    while (p && p > domain && p[-1] != '.')
        p--;
    snprintf(out, size, "%s", last && p > domain ? p : domain);
}

/* One address in the value, no list: a comma outside quotes, comments and angle brackets
 * means several. */
static int several_addresses(const char *v)
{
    int quoted = 0, depth = 0, angle = 0;
    for (; *v; v++) {
        if (*v == '\\' && v[1]) {
            v++;
            continue;
        }
        if (quoted) {
            quoted = *v != '"';
            continue;
        }
        if (*v == '"')
            quoted = 1;
        else if (*v == '(')
            depth++;
        else if (*v == ')' && depth)
            depth--;
        else if (!depth && *v == '<')
            angle = 1;
        else if (!depth && *v == '>')
            angle = 0;
        else if (!depth && !angle && *v == ',')
            return 1;
    }
    return 0;
}

void dmarc_check_start(struct dmarc_check *c, const char *hdr, size_t hdrlen)
{
    memset(c, 0, sizeof *c);
    c->from_state = -1;
    size_t pos = 0;
    int fields = 0;
    struct ar_field f;
    char value[2048];
    while (ar_header_next(hdr, hdrlen, &pos, &f)) {
        if (f.namelen != 4 || strncasecmp(f.name, "From", 4) != 0)
            continue;
        if (++fields > 1)
            break;
        size_t o = 0; /* unfolded, without CR and LF */
        for (size_t i = 0; i < f.valuelen && o + 1 < sizeof value; i++)
            if (f.value[i] != '\r' && f.value[i] != '\n')
                value[o++] = f.value[i];
        value[o] = '\0';
    }
    if (fields != 1) {
        c->from_state = fields ? -2 : -1;
        return;
    }
    if (several_addresses(value)) {
        c->from_state = -2;
        return;
    }
    u_char *user = NULL, *domain = NULL;
    if (dkim_mail_parse((u_char *)value, &user, &domain) != 0 || !domain || !*domain)
        return;
    size_t n = strlen((char *)domain);
    if (n && domain[n - 1] == '.')
        domain[--n] = '\0';
    if (n == 0 || n >= sizeof c->from_domain)
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = domain[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '[')
            return; /* no domain name (an address literal, or junk) */
        c->from_domain[i] = (char)tolower(ch);
    }
    c->from_domain[n] = '\0';
    c->from_state = 0;
}

/* The one "v=DMARC1" record of an answer; several are no record (RFC 7489 6.6.3). */
static const char *pick(const struct ar_dns_entry *e)
{
    const char *found = NULL;
    for (size_t i = 0; e->status == SMTPD_DNS_OK && i < e->n; i++) {
        const char *r = e->records[i];
        while (*r == ' ')
            r++;
        if (strncasecmp(r, "v=DMARC1", 8) == 0 && (r[8] == ';' || r[8] == ' ' || r[8] == '\0')) {
            if (found)
                return NULL;
            found = r;
        }
    }
    return found;
}

static int want(struct ar_dns *d, const char *domain, char *name, size_t size)
{
    if ((size_t)snprintf(name, size, "_dmarc.%s", domain) >= size)
        return -1;
    return ar_dns_want(d, SMTPD_DNS_TXT, name);
}

int dmarc_check_lookup(struct dmarc_check *c, struct ar_dns *d)
{
    char name[300];
    if (c->from_state != 0 || c->stage == STAGE_DONE)
        return 1;
    if (c->stage == STAGE_START) {
        c->stage = STAGE_FROM;
        if (want(d, c->from_domain, name, sizeof name) == 0)
            return 0;
        c->stage = STAGE_DONE; /* no name to ask (too long): no record */
        return 1;
    }
    const char *domain = c->stage == STAGE_FROM ? c->from_domain : c->org_domain;
    snprintf(name, sizeof name, "_dmarc.%s", domain);
    const struct ar_dns_entry *e = ar_dns_find(d, SMTPD_DNS_TXT, name);
    if (!e || e->state != AR_DNS_DONE)
        return 0;
    const char *rec = pick(e);
    if (e->status == SMTPD_DNS_TEMPFAIL) {
        c->temperror = 1;
    } else if (rec) {
        snprintf(c->record, sizeof c->record, "%s", rec);
        c->record_at_org = c->stage == STAGE_ORG;
    } else if (c->stage == STAGE_FROM) {
        dmarc_check_org_domain(c->from_domain, c->org_domain, sizeof c->org_domain);
        if (strcasecmp(c->org_domain, c->from_domain) != 0 && want(d, c->org_domain, name, sizeof name) == 0) {
            c->stage = STAGE_ORG;
            return 0;
        }
    }
    c->stage = STAGE_DONE;
    return 1;
}

static int spf_outcome(enum spf_check_result r)
{
    switch (r) {
    case SPF_CHECK_PASS:
        return DMARC_POLICY_SPF_OUTCOME_PASS;
    case SPF_CHECK_NONE:
        return DMARC_POLICY_SPF_OUTCOME_NONE;
    case SPF_CHECK_TEMPERROR:
        return DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
    default:
        return DMARC_POLICY_SPF_OUTCOME_FAIL;
    }
}

static int dkim_outcome(enum dkim_verify_result r)
{
    switch (r) {
    case DKIM_VERIFY_PASS:
        return DMARC_POLICY_DKIM_OUTCOME_PASS;
    case DKIM_VERIFY_NONE:
        return DMARC_POLICY_DKIM_OUTCOME_NONE;
    case DKIM_VERIFY_TEMPERROR:
        return DMARC_POLICY_DKIM_OUTCOME_TMPFAIL;
    default:
        return DMARC_POLICY_DKIM_OUTCOME_FAIL;
    }
}

static void name_policy(struct dmarc_check_outcome *out, int p)
{
    out->policy = p == DMARC_RECORD_P_REJECT       ? DMARC_POLICY_ASKS_REJECT
                  : p == DMARC_RECORD_P_QUARANTINE ? DMARC_POLICY_ASKS_QUARANTINE
                                                   : DMARC_POLICY_ASKS_NONE;
    out->policy_name = out->policy == DMARC_POLICY_ASKS_REJECT       ? "reject"
                       : out->policy == DMARC_POLICY_ASKS_QUARANTINE ? "quarantine"
                                                                     : "none";
}

void dmarc_check_evaluate(const struct dmarc_check *c, const char *ip, const struct spf_check_outcome *spf,
                          const struct dkim_verify_sig *sigs, size_t nsigs, struct dmarc_check_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->policy_name = "";
    if (c->from_state == -2) {
        out->result = DMARC_CHECK_PERMERROR;
        return;
    }
    if (c->from_state != 0 || (!c->record[0] && !c->temperror)) {
        out->result = DMARC_CHECK_NONE;
        return;
    }
    if (c->temperror) {
        out->result = DMARC_CHECK_TEMPERROR;
        return;
    }
    DMARC_POLICY_T *ctx = opendmarc_policy_connect_init((u_char *)ip, strchr(ip, ':') != NULL);
    if (!ctx) {
        out->result = DMARC_CHECK_TEMPERROR;
        return;
    }
    char from[256], record[sizeof c->record], org[256];
    snprintf(from, sizeof from, "%s", c->from_domain);
    snprintf(record, sizeof record, "%s", c->record);
    snprintf(org, sizeof org, "%s", c->org_domain);
    if (opendmarc_policy_store_from_domain(ctx, (u_char *)from) != DMARC_PARSE_OKAY ||
        opendmarc_policy_store_dmarc(ctx, (u_char *)record, (u_char *)from, c->record_at_org ? (u_char *)org : NULL) !=
            DMARC_PARSE_OKAY) {
        out->result = DMARC_CHECK_PERMERROR;
        opendmarc_policy_connect_shutdown(ctx);
        return;
    }
    if (spf && spf->domain[0]) {
        char dom[256];
        snprintf(dom, sizeof dom, "%s", spf->domain);
        opendmarc_policy_store_spf(ctx, (u_char *)dom, spf_outcome(spf->result),
                                   spf->helo_identity ? DMARC_POLICY_SPF_ORIGIN_HELO : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
                                   NULL);
    }
    for (size_t i = 0; i < nsigs; i++) {
        if (!sigs[i].domain[0])
            continue;
        char dom[256], sel[128];
        snprintf(dom, sizeof dom, "%s", sigs[i].domain);
        snprintf(sel, sizeof sel, "%s", sigs[i].selector);
        opendmarc_policy_store_dkim(ctx, (u_char *)dom, (u_char *)sel, dkim_outcome(sigs[i].result), NULL);
    }
    int verdict = opendmarc_get_policy_to_enforce(ctx);
    int p = 0, sp = 0, dkim_al = 0, spf_al = 0;
    opendmarc_policy_fetch_p(ctx, &p);
    opendmarc_policy_fetch_sp(ctx, &sp);
    opendmarc_policy_fetch_alignment(ctx, &dkim_al, &spf_al);
    name_policy(out, c->record_at_org && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p);
    out->dkim_aligned = dkim_al == DMARC_POLICY_DKIM_ALIGNMENT_PASS;
    out->spf_aligned = spf_al == DMARC_POLICY_SPF_ALIGNMENT_PASS;
    switch (verdict) {
    case DMARC_POLICY_PASS:
        out->result = DMARC_CHECK_PASS;
        break;
    case DMARC_POLICY_REJECT:
    case DMARC_POLICY_QUARANTINE:
    case DMARC_POLICY_NONE:
        out->result = DMARC_CHECK_FAIL;
        break;
    default:
        out->result = DMARC_CHECK_NONE;
        break;
    }
    opendmarc_policy_connect_shutdown(ctx);
}

const char *dmarc_check_result_name(enum dmarc_check_result r)
{
    static const char *const names[] = {"none", "pass", "fail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}
