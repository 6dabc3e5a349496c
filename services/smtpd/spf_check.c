/* SPF with libspf2 over the message's DNS table (spf_check.h). */
#include "spf_check.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "authres_dns.h"
#include "log.h"

static SPF_server_t *server;

#define SPF_MAX_TERMS 10 /* RFC 7208 4.6.4 */
#define SPF_MAX_VOIDS 2
#define SPF_FOLLOWUPS 10 /* libspf2 looks at 10 MX hosts and 10 PTR names */

/* The run in progress: libspf2 is synchronous and smtpd has one thread, so one at a time. */
static struct {
    struct ar_dns *dns;
    int missed;         /* a question was not in the table: it is wanted now */
    int over_limit;     /* too many questions, or the table is full */
    size_t questions;
    int txt_asked;      /* TXT questions: the first is the identity's own record */
    int terms;          /* RFC 7208 4.6.4: DNS-querying terms, includes and redirects too */
    int voids;          /* of those, answered NXDOMAIN or with no records */
    /* Names an MX or PTR answer brought: their address lookups are part of that term. */
    char followups[2 * SPF_FOLLOWUPS][AR_DNS_MAX_NAME + 1];
    int nfollowups;
    int jump_ok;
    jmp_buf jump;
} run;

/* libspf2's "fatal" errors are its assertions: end this run (permerror), not the process.
 * What the run allocated is lost; that takes a library bug and is logged. */
__attribute__((noreturn)) static void spf_fatal(const char *file, int line, const char *msg)
{
    char v[PM_LOGV_SIZE];
    pm_log(PM_ERR, "event=spf_library_error file=%s line=%d error=%s", file ? file : "-", line, PM_LV(v, msg ? msg : ""));
    if (run.jump_ok)
        longjmp(run.jump, 1);
    abort();
}

static void spf_quiet(const char *file, int line, const char *msg)
{
    (void)file;
    (void)line;
    char v[PM_LOGV_SIZE];
    pm_log(PM_DEBUG, "event=spf_library_note note=%s", PM_LV(v, msg ? msg : ""));
}

static SPF_dns_rr_t *no_answer(SPF_dns_server_t *srv, const char *domain, ns_type t, SPF_dns_stat_t herrno)
{
    return SPF_dns_rr_new_init(srv, domain, t, 0, herrno);
}

/* "4.3.2.1.in-addr.arpa" or the ip6.arpa nibbles back to the address text dns.h wants. */
static int reverse_to_address(const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    const char *v4 = ".in-addr.arpa", *v6 = ".ip6.arpa";
    if (n > strlen(v4) && strcasecmp(name + n - strlen(v4), v4) == 0) {
        unsigned o[4];
        char tail[2];
        if (sscanf(name, "%u.%u.%u.%u.%1s", &o[3], &o[2], &o[1], &o[0], tail) != 5 || o[0] > 255 || o[1] > 255 ||
            o[2] > 255 || o[3] > 255)
            return -1;
        snprintf(out, size, "%u.%u.%u.%u", o[0], o[1], o[2], o[3]);
        return 0;
    }
    if (n == 64 + strlen(v6) && strcasecmp(name + 64, v6) == 0) {
        unsigned char a[16] = {0};
        for (int i = 0; i < 32; i++) {
            char c = name[i * 2];
            int nib = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
            if (nib < 0 || name[i * 2 + 1] != '.')
                return -1;
            int pos = 31 - i; /* nibble index from the most significant */
            a[pos / 2] |= (unsigned char)(pos % 2 ? nib : nib << 4);
        }
        return inet_ntop(AF_INET6, a, out, (socklen_t)size) ? 0 : -1;
    }
    return -1;
}

static SPF_dns_rr_t *from_entry(SPF_dns_server_t *srv, const char *domain, ns_type t, const struct ar_dns_entry *e)
{
    switch (e->status) {
    case SMTPD_DNS_OK:
        break;
    case SMTPD_DNS_NODATA:
        return no_answer(srv, domain, t, NO_DATA);
    case SMTPD_DNS_TEMPFAIL:
        return no_answer(srv, domain, t, TRY_AGAIN);
    default: /* NXDOMAIN, and a name the resolver refuses is no name */
        return no_answer(srv, domain, t, HOST_NOT_FOUND);
    }
    SPF_dns_rr_t *rr = SPF_dns_rr_new_init(srv, domain, t, 0, NETDB_SUCCESS);
    if (!rr)
        return NULL;
    int k = 0;
    for (size_t i = 0; i < e->n; i++) {
        const char *r = e->records[i];
        if (t == ns_t_ptr && k >= SPF_FOLLOWUPS)
            break; /* RFC 7208 4.6.4: names past the tenth are ignored (libspf2 would permerror) */
        if (t == ns_t_a || t == ns_t_aaaa) {
            int af = t == ns_t_a ? AF_INET : AF_INET6;
            unsigned char bin[16];
            if (inet_pton(af, r, bin) != 1)
                continue; /* the other family of the same lookup */
            size_t len = af == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
            if (SPF_dns_rr_buf_realloc(rr, k, len) != SPF_E_SUCCESS)
                break;
            memcpy(t == ns_t_a ? (void *)&rr->rr[k]->a : (void *)&rr->rr[k]->aaaa, bin, len);
        } else {
            if (t == ns_t_mx && strcmp(r, ".") == 0)
                continue; /* a null MX names no host */
            size_t len = strlen(r) + 1;
            if (SPF_dns_rr_buf_realloc(rr, k, len) != SPF_E_SUCCESS)
                break;
            memcpy(rr->rr[k]->txt, r, len); /* txt, mx and ptr share the storage */
        }
        rr->num_rr = ++k;
    }
    if (k == 0)
        rr->herrno = NO_DATA;
    return rr;
}

/* Every MX host's addresses are wanted with the MX answer: libspf2 asks for them one at a
 * time, which would otherwise take one round trip each. */
static void want_mx_hosts(const struct ar_dns_entry *e)
{
    for (size_t i = 0; e->status == SMTPD_DNS_OK && i < e->n && i < SPF_FOLLOWUPS; i++)
        if (strcmp(e->records[i], ".") != 0)
            ar_dns_want(run.dns, SMTPD_DNS_A, e->records[i]);
}

static void note_followups(const struct ar_dns_entry *e)
{
    for (size_t i = 0; e->status == SMTPD_DNS_OK && i < e->n && i < SPF_FOLLOWUPS; i++)
        if (run.nfollowups < 2 * SPF_FOLLOWUPS)
            snprintf(run.followups[run.nfollowups++], sizeof run.followups[0], "%s", e->records[i]);
}

static int is_followup(const char *name)
{
    for (int i = 0; i < run.nfollowups; i++)
        if (strcasecmp(run.followups[i], name) == 0)
            return 1;
    return 0;
}

/* RFC 7208 7.3: an expanded name over 253 octets loses labels on its left until it fits. */
static const char *left_truncated(const char *domain)
{
    size_t n = strlen(domain);
    if (n && domain[n - 1] == '.')
        n--;
    while (n > 253) {
        const char *dot = memchr(domain, '.', n);
        if (!dot)
            return NULL;
        n -= (size_t)(dot + 1 - domain);
        domain = dot + 1;
    }
    return domain;
}

static SPF_dns_rr_t *table_lookup(SPF_dns_server_t *srv, const char *domain, ns_type t, int should_cache)
{
    (void)should_cache;
    enum smtpd_dns_type type;
    char name[AR_DNS_MAX_NAME + 1];
    const char *fit = left_truncated(domain ? domain : "");
    if (!fit)
        return no_answer(srv, domain, t, HOST_NOT_FOUND);
    snprintf(name, sizeof name, "%s", fit);
    switch (t) {
    case ns_t_a:
    case ns_t_aaaa:
        type = SMTPD_DNS_A;
        break;
    case ns_t_mx:
        type = SMTPD_DNS_MX;
        break;
    case ns_t_txt:
        type = SMTPD_DNS_TXT;
        break;
    case ns_t_ptr:
        type = SMTPD_DNS_PTR;
        if (reverse_to_address(domain ? domain : "", name, sizeof name) < 0)
            return no_answer(srv, domain, t, HOST_NOT_FOUND);
        break;
    default: /* the SPF RR type (99) is obsolete (RFC 7208 3.1): never asked for */
        return no_answer(srv, domain, t, NO_DATA);
    }
    if (++run.questions > SPF_CHECK_MAX_QUESTIONS) {
        run.over_limit = 1;
        return no_answer(srv, domain, t, TRY_AGAIN);
    }
    /* A term of its own: not the identity's record, not an MX host's or PTR name's address. */
    int term = type == SMTPD_DNS_TXT ? run.txt_asked++ > 0 : !(type == SMTPD_DNS_A && is_followup(name));
    if (term && ++run.terms > SPF_MAX_TERMS) {
        run.over_limit = 1;
        return no_answer(srv, domain, t, TRY_AGAIN);
    }
    const struct ar_dns_entry *e = ar_dns_find(run.dns, type, name);
    if (e && e->state == AR_DNS_DONE) {
        if (t == ns_t_mx)
            want_mx_hosts(e);
        if (t == ns_t_mx || t == ns_t_ptr)
            note_followups(e);
        SPF_dns_rr_t *rr = from_entry(srv, domain, t, e);
        if (term && rr && (rr->herrno == HOST_NOT_FOUND || rr->herrno == NO_DATA) && ++run.voids > SPF_MAX_VOIDS)
            run.over_limit = 1; /* permerror, once the run has asked all it asks */
        return rr;
    }
    if (!e) {
        if (run.dns->n >= AR_DNS_MAX_NAMES) {
            run.over_limit = 1;
            return no_answer(srv, domain, t, TRY_AGAIN);
        }
        if (ar_dns_want(run.dns, type, name) < 0) /* not a name anyone could look up */
            return no_answer(srv, domain, t, HOST_NOT_FOUND);
    }
    run.missed = 1;
    return no_answer(srv, domain, t, TRY_AGAIN);
}

/* Static, without a destructor: libspf2 then leaves it alone when the server goes. */
static SPF_dns_server_t table_layer = {.lookup = table_lookup, .name = "postmesh"};

int spf_check_init(const char *rec_dom)
{
    if (server)
        return 0;
    SPF_error_handler = spf_fatal;
    SPF_warning_handler = spf_quiet;
    SPF_info_handler = spf_quiet;
    SPF_debug_handler = NULL;
    server = SPF_server_new_dns(&table_layer, 0);
    if (!server)
        return -1;
    if (SPF_server_set_rec_dom(server, rec_dom) != SPF_E_SUCCESS) {
        SPF_server_free(server);
        server = NULL;
        return -1;
    }
    return 0;
}

void spf_check_shutdown(void)
{
    if (server)
        SPF_server_free(server);
    server = NULL;
}

static enum spf_check_result from_libspf2(SPF_result_t r)
{
    switch (r) {
    case SPF_RESULT_PASS:
        return SPF_CHECK_PASS;
    case SPF_RESULT_FAIL:
        return SPF_CHECK_FAIL;
    case SPF_RESULT_SOFTFAIL:
        return SPF_CHECK_SOFTFAIL;
    case SPF_RESULT_NEUTRAL:
        return SPF_CHECK_NEUTRAL;
    case SPF_RESULT_NONE:
        return SPF_CHECK_NONE;
    case SPF_RESULT_TEMPERROR:
        return SPF_CHECK_TEMPERROR;
    default:
        return SPF_CHECK_PERMERROR;
    }
}

/* A record that was found but did not compile leaves an error other than "not SPF". */
static int compile_failed(SPF_response_t *resp)
{
    for (int i = 0; i < SPF_response_messages(resp); i++) {
        SPF_error_t *m = SPF_response_message(resp, i);
        if (m && m->is_error && m->code != SPF_E_NOT_SPF && m->code != SPF_E_DNS_ERROR)
            return 1;
    }
    return 0;
}

/* What the identity's domain is, or "" when there is none worth a lookup (no HELO, or an
 * address literal). */
static const char *identity_domain(const char *helo, const char *sender, int *helo_identity)
{
    const char *at = sender ? strrchr(sender, '@') : NULL;
    *helo_identity = !(sender && *sender);
    const char *dom = *helo_identity ? (helo ? helo : "") : (at ? at + 1 : "");
    if (!*dom || dom[0] == '[' || !strchr(dom, '.'))
        return "";
    return dom;
}

/* One evaluation as SPF_request_query_mailfrom does it, without its free pass for loopback
 * clients (ours is port 25 from the internet; a loopback client is a test or a relay that
 * should be a trusted network, and trusted clients are never checked). */
static SPF_errcode_t evaluate(SPF_request_t *req, SPF_response_t **respp)
{
    SPF_response_t *resp = *respp = SPF_response_new(req);
    if (!resp)
        return SPF_E_NO_MEMORY;
    req->cur_dom = req->env_from_dp;
    SPF_record_t *rec = NULL;
    SPF_errcode_t err = SPF_server_get_record(server, req, resp, &rec);
    if (err != SPF_E_SUCCESS) {
        if (rec)
            SPF_record_free(rec);
        return err;
    }
    resp->spf_record_exp = rec;
    err = SPF_record_interpret(rec, req, resp, 0);
    SPF_record_free(rec);
    resp->spf_record_exp = NULL;
    return err;
}

int spf_check_run(struct ar_dns *d, const char *ip, const char *helo, const char *sender,
                  struct spf_check_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *dom = identity_domain(helo, sender, &out->helo_identity);
    snprintf(out->domain, sizeof out->domain, "%s", dom);
    if (!*dom || !server) {
        out->result = *dom ? SPF_CHECK_TEMPERROR : SPF_CHECK_NONE;
        return 1;
    }
    memset(&run, 0, sizeof run);
    run.dns = d;
    SPF_request_t *volatile req = SPF_request_new(server);
    SPF_response_t *volatile resp = NULL;
    enum spf_check_result result = SPF_CHECK_PERMERROR;
    if (!req) {
        out->result = SPF_CHECK_TEMPERROR;
        return 1;
    }
    int is6 = strchr(ip, ':') != NULL;
    if ((is6 ? SPF_request_set_ipv6_str(req, ip) : SPF_request_set_ipv4_str(req, ip)) != SPF_E_SUCCESS) {
        SPF_request_free(req);
        out->result = SPF_CHECK_PERMERROR;
        return 1;
    }
    if (helo && *helo && SPF_request_set_helo_dom(req, helo) != SPF_E_SUCCESS)
        goto done;
    if (SPF_request_set_env_from(req, out->helo_identity ? "" : sender) != SPF_E_SUCCESS || !req->env_from_dp)
        goto done;
    if (setjmp(run.jump) == 0) {
        run.jump_ok = 1;
        SPF_response_t *r = NULL;
        SPF_errcode_t err = evaluate(req, &r);
        resp = r;
        run.jump_ok = 0;
        if (run.over_limit)
            result = SPF_CHECK_PERMERROR;
        else if (run.missed) {
            SPF_response_free(resp);
            SPF_request_free(req);
            return 0;
        } else if (resp && resp->result != SPF_RESULT_INVALID)
            result = from_libspf2(resp->result);
        else if (err == SPF_E_DNS_ERROR)
            result = SPF_CHECK_TEMPERROR;
        else if (err == SPF_E_NOT_SPF && resp && !compile_failed(resp))
            result = SPF_CHECK_NONE;
        else
            result = SPF_CHECK_PERMERROR;
    } else {
        run.jump_ok = 0;
        resp = NULL; /* abandoned with the run */
        result = SPF_CHECK_PERMERROR;
    }
done:
    out->result = result;
    out->questions = run.questions;
    if (resp)
        SPF_response_free(resp);
    SPF_request_free(req);
    return 1;
}

const char *spf_check_result_name(enum spf_check_result r)
{
    static const char *const names[] = {"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "permerror";
}
