/* TLSRPT day records (tlsrpt.h): one JSON object per (UTC day, policy domain), already in
 * the report's shape so that the report copies its policies:
 *   {"rua": ["mailto:..."], "policies": [{"policy": {...}, "summary": {...},
 *                                          "failure-details": [{..., "failed-session-count": n}]}]}
 * A session counts under the policy it names (type, strings, mx patterns) and, when it
 * failed, under its (result type, sending ip, mx, receiving ip) detail. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tlsrpt.h"
#include "tlsrpt_record.h"

/* A policy domain as it may appear in the key, the Subject, the TLS-Report-Domain field and
 * the quoted file name: letters, digits, '-', '_' and '.', lower case (the mta wrote it so;
 * anything else on the bus is not counted). */
static int domain_ok(const char *d, size_t n)
{
    if (n == 0 || n > 255 || d[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

int queue_tlsrpt_key(char key[TLSRPT_KEY_SIZE], time_t t, const char *domain)
{
    struct tm tm;
    size_t dl = domain ? strlen(domain) : 0;
    if (!domain_ok(domain, dl) || !gmtime_r(&t, &tm))
        return -1;
    return snprintf(key, TLSRPT_KEY_SIZE, "%04d-%02d-%02d %s", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, domain);
}

int queue_tlsrpt_key_parse(const char *key, size_t len, time_t *day_start, const char **domain, size_t *dlen)
{
    if (len < 12 || len >= TLSRPT_KEY_SIZE || key[4] != '-' || key[7] != '-' || key[10] != ' ')
        return -1;
    int y = 0, m = 0, d = 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (key[i] < '0' || key[i] > '9'))
            return -1;
    y = (key[0] - '0') * 1000 + (key[1] - '0') * 100 + (key[2] - '0') * 10 + (key[3] - '0');
    m = (key[5] - '0') * 10 + (key[6] - '0');
    d = (key[8] - '0') * 10 + (key[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > 31 || y < 1970)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    if (!domain_ok(key + 11, len - 11))
        return -1;
    *day_start = timegm(&tm);
    *domain = key + 11;
    *dlen = len - 11;
    return 0;
}

int queue_tlsrpt_due(time_t day_start, time_t now, int hour)
{
    return now >= day_start + 86400 + (time_t)hour * 3600;
}

int queue_tlsrpt_session_for(const Postmesh__TlsSession *s, const char *domain)
{
    return s && s->policy_domain && domain && domain[0] && strcasecmp(s->policy_domain, domain) == 0;
}

json_object *queue_tlsrpt_record_new(void)
{
    json_object *rec = json_object_new_object();
    if (!rec)
        return NULL;
    json_object_object_add(rec, "rua", json_object_new_array());
    json_object_object_add(rec, "policies", json_object_new_array());
    return rec;
}

static const char *policy_type_name(Postmesh__TlsSession__PolicyType t)
{
    switch (t) {
    case POSTMESH__TLS_SESSION__POLICY_TYPE__STS: return "sts";
    case POSTMESH__TLS_SESSION__POLICY_TYPE__TLSA: return "tlsa";
    default: return "no-policy-found";
    }
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                           : "";
}

static json_object *array_of(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array) ? v : NULL;
}

static int strings_equal(json_object *arr, char **v, size_t n)
{
    size_t have = arr ? json_object_array_length(arr) : 0;
    if (have != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(e, json_type_string) || strcmp(json_object_get_string(e), v[i]) != 0)
            return 0;
    }
    return 1;
}

static json_object *string_array(char **v, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < n; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

/* Adds n to the integer member key of o (created at 0). */
static void count(json_object *o, const char *key, long long n)
{
    json_object *v;
    long long have = json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
    if (have < 0)
        have = 0;
    json_object_object_add(o, key, json_object_new_int64(have + n));
}

static void add_str(json_object *o, const char *key, const char *v)
{
    if (v && v[0]) /* the optional members are left out rather than empty */
        json_object_object_add(o, key, json_object_new_string(v));
}

static json_object *find_policy(json_object *policies, const Postmesh__TlsSession *s, const char *type)
{
    size_t n = json_object_array_length(policies);
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(policies, i), *pol;
        if (!json_object_object_get_ex(p, "policy", &pol))
            continue;
        if (strcmp(str_of(pol, "policy-type"), type) == 0 &&
            strings_equal(array_of(pol, "policy-string"), s->policy_strings, s->n_policy_strings) &&
            strings_equal(array_of(pol, "mx-host"), s->mx_host, s->n_mx_host))
            return p;
    }
    if (n >= TLSRPT_MAX_POLICIES)
        return NULL;
    json_object *p = json_object_new_object(), *pol = json_object_new_object(), *sum = json_object_new_object();
    if (!p || !pol || !sum) {
        json_object_put(p);
        json_object_put(pol);
        json_object_put(sum);
        return NULL;
    }
    json_object_object_add(pol, "policy-type", json_object_new_string(type));
    if (s->n_policy_strings)
        json_object_object_add(pol, "policy-string", string_array(s->policy_strings, s->n_policy_strings));
    json_object_object_add(pol, "policy-domain", json_object_new_string(s->policy_domain));
    if (s->n_mx_host)
        json_object_object_add(pol, "mx-host", string_array(s->mx_host, s->n_mx_host));
    json_object_object_add(p, "policy", pol);
    json_object_object_add(sum, "total-successful-session-count", json_object_new_int64(0));
    json_object_object_add(sum, "total-failure-session-count", json_object_new_int64(0));
    json_object_object_add(p, "summary", sum);
    json_object_array_add(policies, p);
    return p;
}

static void count_detail(json_object *p, const Postmesh__TlsSession *s)
{
    json_object *details = array_of(p, "failure-details");
    if (!details) {
        details = json_object_new_array();
        if (!details)
            return;
        json_object_object_add(p, "failure-details", details);
    }
    size_t n = json_object_array_length(details);
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(details, i);
        if (strcmp(str_of(d, "result-type"), s->result_type) == 0 &&
            strcmp(str_of(d, "sending-mta-ip"), s->sending_ip) == 0 &&
            strcmp(str_of(d, "receiving-mx-hostname"), s->receiving_mx_hostname) == 0 &&
            strcmp(str_of(d, "receiving-ip"), s->receiving_ip) == 0) {
            count(d, "failed-session-count", 1);
            return;
        }
    }
    if (n >= TLSRPT_MAX_DETAILS)
        return; /* counted in the summary only */
    json_object *d = json_object_new_object();
    if (!d)
        return;
    json_object_object_add(d, "result-type", json_object_new_string(s->result_type[0] ? s->result_type
                                                                                       : "validation-failure"));
    add_str(d, "sending-mta-ip", s->sending_ip);
    add_str(d, "receiving-mx-hostname", s->receiving_mx_hostname);
    add_str(d, "receiving-mx-helo", s->receiving_mx_helo);
    add_str(d, "receiving-ip", s->receiving_ip);
    json_object_object_add(d, "failed-session-count", json_object_new_int64(1));
    add_str(d, "additional-information", s->additional_info);
    add_str(d, "failure-reason-code", s->failure_reason_code);
    json_object_array_add(details, d);
}

int queue_tlsrpt_merge(json_object *rec, const Postmesh__TlsSession *s)
{
    json_object *policies = array_of(rec, "policies");
    if (!policies || !s->policy_domain || !s->policy_domain[0])
        return -1;
    json_object *rua = json_object_new_array();
    if (!rua)
        return -1;
    for (size_t i = 0; i < s->n_rua && i < PM_TLSRPT_MAX_RUA; i++) {
        char addr[PM_TLSRPT_ADDR_SIZE];
        if (pm_tlsrpt_mailto_addr(s->rua[i], strlen(s->rua[i]), addr, sizeof addr) == 0)
            json_object_array_add(rua, json_object_new_string(s->rua[i]));
    }
    if (json_object_array_length(rua) == 0) {
        json_object_put(rua);
        return -1;
    }
    json_object *p = find_policy(policies, s, policy_type_name(s->policy_type));
    if (!p) {
        json_object_put(rua);
        return -1;
    }
    json_object_object_add(rec, "rua", rua); /* the latest record the domain published */
    json_object *sum;
    if (!json_object_object_get_ex(p, "summary", &sum))
        return -1;
    if (s->success) {
        count(sum, "total-successful-session-count", 1);
    } else {
        count(sum, "total-failure-session-count", 1);
        count_detail(p, s);
    }
    return 0;
}

int queue_tlsrpt_rua(json_object *rec, char addrs[][256], int max)
{
    json_object *rua = array_of(rec, "rua");
    int n = 0;
    size_t len = rua ? json_object_array_length(rua) : 0;
    for (size_t i = 0; i < len && n < max; i++) {
        json_object *e = json_object_array_get_idx(rua, i);
        if (!json_object_is_type(e, json_type_string))
            continue;
        const char *u = json_object_get_string(e);
        if (pm_tlsrpt_mailto_addr(u, strlen(u), addrs[n], 256) != 0)
            continue;
        int dup = 0;
        for (int k = 0; k < n; k++)
            dup |= strcasecmp(addrs[k], addrs[n]) == 0;
        if (!dup)
            n++;
    }
    return n;
}

void queue_tlsrpt_totals(json_object *rec, long long *ok, long long *failed)
{
    *ok = *failed = 0;
    json_object *policies = array_of(rec, "policies");
    size_t n = policies ? json_object_array_length(policies) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *sum, *v;
        if (!json_object_object_get_ex(json_object_array_get_idx(policies, i), "summary", &sum))
            continue;
        if (json_object_object_get_ex(sum, "total-successful-session-count", &v))
            *ok += json_object_get_int64(v);
        if (json_object_object_get_ex(sum, "total-failure-session-count", &v))
            *failed += json_object_get_int64(v);
    }
}
