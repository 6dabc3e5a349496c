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

/* libopendmarc 1.4.2's opendmarc_get_tld answers the public suffix for a registered
 * domain whose first label is one character ("x.de" -> "de", "a.com" -> "com"), and "" for
 * a suffix the list does not know; asked for a child name ("zz.x.de") it answers right. So
 * it is asked for "zz.<domain>": an answer that is that name itself means domain is a
 * public suffix (its own organizational domain). */
void dmarc_check_org_domain(const char *domain, char *out, size_t size)
{
    u_char buf[300] = {0};
    char copy[300];
    size_t dlen = strlen(domain);
    if ((size_t)snprintf(copy, sizeof copy, "zz.%s", domain) < sizeof copy &&
        opendmarc_get_tld((u_char *)copy, buf, sizeof buf) == 0 && buf[0]) {
        size_t blen = strlen((char *)buf);
        if (strcasecmp((char *)buf, copy) == 0 || blen > dlen) {
            snprintf(out, size, "%s", domain);
            return;
        }
        if (strcasecmp(domain + dlen - blen, (char *)buf) == 0 && (blen == dlen || domain[dlen - blen - 1] == '.')) {
            snprintf(out, size, "%s", domain + dlen - blen);
            return;
        }
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
    static char value[16384]; /* one thread; a From: longer than this is permerror */
    while (ar_header_next(hdr, hdrlen, &pos, &f)) {
        if (f.namelen != 4 || strncasecmp(f.name, "From", 4) != 0)
            continue;
        if (++fields > 1)
            break;
        size_t o = 0; /* unfolded, without CR and LF */
        for (size_t i = 0; i < f.valuelen; i++) {
            if (f.value[i] == '\r' || f.value[i] == '\n')
                continue;
            if (o + 1 >= sizeof value || f.value[i] == '\0') {
                /* Past our copy (the domain may sit beyond it) or a NUL (what the reader
                 * sees after it is unknown): no one domain to judge, never a quiet none. */
                c->from_state = -3;
                return;
            }
            value[o++] = f.value[i];
        }
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

/* RFC 7489 3.1: strict, the same name; relaxed, the same organizational domain. */
static int aligned(const char *id, const char *from, const char *from_org, int strict)
{
    char dom[256], org[256];
    snprintf(dom, sizeof dom, "%s", id);
    size_t n = strlen(dom);
    if (n && dom[n - 1] == '.')
        dom[n - 1] = '\0';
    if (strict)
        return strcasecmp(dom, from) == 0;
    dmarc_check_org_domain(dom, org, sizeof org);
    return strcasecmp(org, from_org) == 0;
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
    if (c->from_state <= -2) {
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
    /* The verdict is ours: libopendmarc 1.4.2 aligns by its opendmarc_get_tld, which puts
     * "x.de" and "y.de" (and any two names under a suffix it does not know) in one
     * organizational domain. It parses the record; alignment uses dmarc_check_org_domain. */
    int p = 0, sp = 0, adkim = 0, aspf = 0;
    opendmarc_policy_fetch_p(ctx, &p);
    opendmarc_policy_fetch_sp(ctx, &sp);
    opendmarc_policy_fetch_adkim(ctx, &adkim);
    opendmarc_policy_fetch_aspf(ctx, &aspf);
    opendmarc_policy_connect_shutdown(ctx);
    name_policy(out, c->record_at_org && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p);
    char from_org[256];
    dmarc_check_org_domain(c->from_domain, from_org, sizeof from_org);
    int temp = 0;
    if (spf && spf->domain[0] && aligned(spf->domain, c->from_domain, from_org, aspf == DMARC_RECORD_A_STRICT)) {
        out->spf_aligned = spf->result == SPF_CHECK_PASS;
        temp |= spf->result == SPF_CHECK_TEMPERROR;
    }
    for (size_t i = 0; i < nsigs; i++) {
        if (!sigs[i].domain[0] || !aligned(sigs[i].domain, c->from_domain, from_org, adkim == DMARC_RECORD_A_STRICT))
            continue;
        out->dkim_aligned |= sigs[i].result == DKIM_VERIFY_PASS;
        temp |= sigs[i].result == DKIM_VERIFY_TEMPERROR;
    }
    /* A temporary error of an identifier that would align may hide its pass: not a fail. */
    out->result = out->spf_aligned || out->dkim_aligned ? DMARC_CHECK_PASS
                  : temp                                ? DMARC_CHECK_TEMPERROR
                                                        : DMARC_CHECK_FAIL;
}

const char *dmarc_check_result_name(enum dmarc_check_result r)
{
    static const char *const names[] = {"none", "pass", "fail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}
