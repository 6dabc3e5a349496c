/* TLSRPT (RFC 8460), the mta's half (tlsrpt.h): one job's sessions, counted as the report
 * counts them, with the policy that applied and the domain's rua, put into the JobResult.
 * Everything is bounded here already (the bus refuses more, bus_rules.c): at most
 * MTA_TLSRPT_MAX_SESSIONS sessions, MTA_TLSRPT_MAX_POLICY strings of at most 1023 octets,
 * strings of sessions cut at 255, control characters replaced (they reach the report). */
#include "tlsrpt.h"

#include <stdlib.h>
#include <string.h>

#include "tlsrpt_record.h"

#define MTA_TLSRPT_MAX_POLICY 32 /* policy strings and mx patterns (TLSA: the resolver keeps 32) */
#define POLICY_STR 1024
#define FIELD 256

struct session {
    int success;
    char result_type[64], mx[FIELD], rip[64], sip[64], helo[FIELD], info[FIELD];
};

struct mta_tlsrpt {
    char domain[FIELD];
    char rua[PM_TLSRPT_MAX_RUA][PM_TLSRPT_URI_SIZE];
    int nrua;
    Postmesh__TlsSession__PolicyType type;
    char *strings[MTA_TLSRPT_MAX_POLICY], *mx[MTA_TLSRPT_MAX_POLICY];
    size_t nstrings, nmx;
    struct session s[MTA_TLSRPT_MAX_SESSIONS];
    size_t ns;
};

/* Copied, cut to size, lower case if asked, control characters as '?'. */
static void copy_line(char *dst, size_t size, const char *src, int lower)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < size; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x20 || c == 0x7f)
            c = '?';
        else if (lower && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        dst[i] = (char)c;
    }
    dst[i] = '\0';
}

static char *dup_line(const char *src, size_t size)
{
    char *d = malloc(size);
    if (d)
        copy_line(d, size, src, 0);
    return d;
}

struct mta_tlsrpt *mta_tlsrpt_new(const char *policy_domain)
{
    struct mta_tlsrpt *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    copy_line(r->domain, sizeof r->domain, policy_domain, 1);
    size_t n = strlen(r->domain);
    if (n && r->domain[n - 1] == '.')
        r->domain[n - 1] = '\0';
    return r;
}

static void drop_policy(struct mta_tlsrpt *r)
{
    for (size_t i = 0; i < r->nstrings; i++)
        free(r->strings[i]);
    for (size_t i = 0; i < r->nmx; i++)
        free(r->mx[i]);
    r->nstrings = r->nmx = 0;
}

void mta_tlsrpt_free(struct mta_tlsrpt *r)
{
    if (!r)
        return;
    drop_policy(r);
    free(r);
}

void mta_tlsrpt_set_record(struct mta_tlsrpt *r, const char *const *texts, size_t n)
{
    if (r)
        r->nrua = pm_tlsrpt_pick_record(texts, n, r->rua, PM_TLSRPT_MAX_RUA);
}

void mta_tlsrpt_set_policy(struct mta_tlsrpt *r, Postmesh__TlsSession__PolicyType type, const char *const *strings,
                           size_t nstrings, const char *const *mx, size_t nmx)
{
    if (!r)
        return;
    drop_policy(r);
    r->type = type;
    for (size_t i = 0; i < nstrings && r->nstrings < MTA_TLSRPT_MAX_POLICY; i++)
        if (strings[i] && (r->strings[r->nstrings] = dup_line(strings[i], POLICY_STR)))
            r->nstrings++;
    for (size_t i = 0; i < nmx && r->nmx < MTA_TLSRPT_MAX_POLICY; i++)
        if (mx[i] && (r->mx[r->nmx] = dup_line(mx[i], FIELD)))
            r->nmx++;
}

void mta_tlsrpt_session(struct mta_tlsrpt *r, int success, const char *result_type, const char *mx_host,
                        const char *receiving_ip, const char *sending_ip, const char *helo, const char *additional)
{
    if (!r || r->ns >= MTA_TLSRPT_MAX_SESSIONS)
        return;
    struct session *s = &r->s[r->ns++];
    s->success = success != 0;
    copy_line(s->result_type, sizeof s->result_type, success ? "" : result_type ? result_type : "validation-failure", 1);
    copy_line(s->mx, sizeof s->mx, mx_host, 1);
    size_t n = strlen(s->mx);
    if (n && s->mx[n - 1] == '.')
        s->mx[n - 1] = '\0';
    copy_line(s->rip, sizeof s->rip, receiving_ip, 0);
    copy_line(s->sip, sizeof s->sip, sending_ip, 0);
    copy_line(s->helo, sizeof s->helo, helo, 0);
    copy_line(s->info, sizeof s->info, additional, 0);
}

static char **dup_list(char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            while (i--)
                free(out[i]);
            free(out);
            return NULL;
        }
    return out;
}

static Postmesh__TlsSession *make_session(const struct mta_tlsrpt *r, const struct session *s)
{
    Postmesh__TlsSession *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    postmesh__tls_session__init(t);
    /* free_unpacked frees every string but the static empty default: set them all. */
    t->policy_domain = strdup(r->domain);
    t->policy_type = r->type;
    t->success = s->success;
    t->result_type = strdup(s->result_type);
    t->sending_ip = strdup(s->sip);
    t->receiving_mx_hostname = strdup(s->mx);
    t->receiving_ip = strdup(s->rip);
    t->receiving_mx_helo = strdup(s->helo);
    /* RFC 8460 4.3: additional-information is a URI pointing elsewhere (we have none);
     * failure-reason-code is the text field for "a TLS-related error code or error message". */
    t->additional_info = strdup("");
    t->failure_reason_code = strdup(s->info);
    char *rua[PM_TLSRPT_MAX_RUA];
    for (int i = 0; i < r->nrua; i++)
        rua[i] = (char *)r->rua[i];
    t->policy_strings = dup_list(r->strings, r->nstrings);
    t->mx_host = dup_list(r->mx, r->nmx);
    t->rua = dup_list(rua, (size_t)r->nrua);
    t->n_policy_strings = t->policy_strings ? r->nstrings : 0;
    t->n_mx_host = t->mx_host ? r->nmx : 0;
    t->n_rua = t->rua ? (size_t)r->nrua : 0;
    if (!t->policy_domain || !t->result_type || !t->sending_ip || !t->receiving_mx_hostname || !t->receiving_ip ||
        !t->receiving_mx_helo || !t->additional_info || !t->failure_reason_code || !t->policy_strings ||
        !t->mx_host || !t->rua) {
        postmesh__tls_session__free_unpacked(t, NULL); /* the NULL lists have count 0 */
        return NULL;
    }
    return t;
}

void mta_tlsrpt_attach(struct mta_tlsrpt *r, Postmesh__JobResult *res)
{
    if (!r || !res || r->nrua == 0 || r->ns == 0 || !r->domain[0])
        return;
    mta_tlsrpt_release(res);
    res->tls_sessions = calloc(r->ns, sizeof *res->tls_sessions);
    if (!res->tls_sessions)
        return; /* statistics: lost, the mail is not */
    for (size_t i = 0; i < r->ns; i++)
        if ((res->tls_sessions[res->n_tls_sessions] = make_session(r, &r->s[i])))
            res->n_tls_sessions++;
    r->ns = 0;
}

void mta_tlsrpt_release(Postmesh__JobResult *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->n_tls_sessions; i++)
        postmesh__tls_session__free_unpacked(res->tls_sessions[i], NULL);
    free(res->tls_sessions);
    res->tls_sessions = NULL;
    res->n_tls_sessions = 0;
}
