#include "lookup.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_valid.h"
#include "hex.h"
#include "log.h"
#include "names.h"

#define MAX_ADDRS 16 /* per host and family */
#define MAX_TLSA 32  /* TLSA records per reply (proto: ResolveReply.tlsa) */

/* A reply built here is always one the bus admits (bus_valid.h): an mta refuses anything
 * beyond these bounds as if the resolver had not answered. */
_Static_assert(RESOLVER_MAX_MX <= PM_BUS_MAX_HOSTS, "MX hosts per reply");
_Static_assert(2 * MAX_ADDRS <= PM_BUS_MAX_ADDRS, "addresses per host");
_Static_assert(RESOLVER_MAX_RECORDS <= PM_BUS_MAX_NAMES, "PTR names per reply");
_Static_assert(RESOLVER_NAME_MAX - 1 <= PM_BUS_MAX_DOMAIN, "host names");
_Static_assert(RESOLVER_MAX_RECORDS <= PM_BUS_MAX_NAMES, "TXT records per reply");
_Static_assert(RESOLVER_MAX_TXT <= PM_BUS_MAX_TXT, "one TXT record");
_Static_assert(MAX_TLSA <= PM_BUS_MAX_TLSA, "TLSA records per reply");
_Static_assert(RESOLVER_MAX_TLSA_DATA <= PM_BUS_MAX_TLSA_DATA, "one TLSA record's data");

struct lookup;

struct addr_wait {
    struct lookup *l;
    int host;
    int v6;
};

struct host {
    char name[RESOLVER_NAME_MAX];
    uint16_t pref;
    char *addrs[2][MAX_ADDRS]; /* [0] A, [1] AAAA: IPv4 first in the reply */
    int naddrs[2];
    int tempfail;
    int failed[2];                 /* its A / AAAA lookup failed (TEMPFAIL): no address from it */
    enum resolver_security sec[2]; /* of its A and its AAAA answer */
    struct addr_wait wait[2];
};

struct lookup {
    struct lookup *prev, *next; /* every live lookup, so shutdown can free them */
    struct resolver_queries *q;
    resolver_lookup_done done;
    void *arg;
    Postmesh__ResolveRequest__Kind kind;
    char name[RESOLVER_NAME_MAX];
    int implicit;
    int nhosts;
    struct host hosts[RESOLVER_MAX_MX];
    int pending;
    int nxdomain;  /* an address question of the name said NXDOMAIN */
    int answered;  /* ttl holds the smallest TTL of the DNS answers used */
    int bogus;     /* an address answer failed DNSSEC validation */
    enum resolver_security sec; /* MX: of the MX answer (or its denial) */
    uint32_t ttl;
    char why[384]; /* last temporary failure, for the reply text */
};

static struct lookup *live;
static resolver_rng lookup_rng = resolver_rng_default;
static void *lookup_rng_arg;

void resolver_lookup_set_rng(resolver_rng rng, void *arg)
{
    lookup_rng = rng ? rng : resolver_rng_default;
    lookup_rng_arg = arg;
}

static const char *kind_name(Postmesh__ResolveRequest__Kind k)
{
    switch (k) {
    case POSTMESH__RESOLVE_REQUEST__KIND__MX: return "MX";
    case POSTMESH__RESOLVE_REQUEST__KIND__PTR: return "PTR";
    case POSTMESH__RESOLVE_REQUEST__KIND__TXT: return "TXT";
    case POSTMESH__RESOLVE_REQUEST__KIND__TLSA: return "TLSA";
    default: return "A";
    }
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort(); /* a reply we cannot build is a bug we must not hide */
    return d;
}

/* A reply built with malloc throughout, so free_unpacked() can release it. */
static Postmesh__ResolveReply *reply_new(Postmesh__ResolveReply__Status status, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static Postmesh__ResolveReply *reply_new(Postmesh__ResolveReply__Status status, const char *dsn, const char *fmt, ...)
{
    Postmesh__ResolveReply *r = malloc(sizeof *r);
    if (!r)
        abort();
    postmesh__resolve_reply__init(r);
    r->status = status;
    r->dsn_status = xstrdup(dsn);
    char text[512]; /* within PM_BUS_MAX_TEXT */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->text = xstrdup(text);
    return r;
}

static Postmesh__Dnssec dnssec_of(enum resolver_security s)
{
    switch (s) {
    case RESOLVER_SECURE: return POSTMESH__DNSSEC__DNSSEC_SECURE;
    case RESOLVER_BOGUS: return POSTMESH__DNSSEC__DNSSEC_BOGUS;
    default: return POSTMESH__DNSSEC__DNSSEC_INSECURE;
    }
}

static const char *dnssec_name(Postmesh__Dnssec d)
{
    return d == POSTMESH__DNSSEC__DNSSEC_SECURE ? "secure" : d == POSTMESH__DNSSEC__DNSSEC_BOGUS ? "bogus" : "insecure";
}

static void lookup_free(struct lookup *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        live = l->next;
    if (l->next)
        l->next->prev = l->prev;
    for (int i = 0; i < l->nhosts; i++)
        for (int f = 0; f < 2; f++)
            for (int j = 0; j < l->hosts[i].naddrs[f]; j++)
                free(l->hosts[i].addrs[f][j]);
    free(l);
}

void resolver_lookup_free_all(void)
{
    while (live)
        lookup_free(live);
}

/* Every answer used counts for the reply's TTL; a temporary failure is never kept. */
static void saw(struct lookup *l, const struct resolver_answer *a)
{
    if (a->rcode == RESOLVER_TEMPFAIL)
        return;
    if (!l->answered || a->ttl < l->ttl)
        l->ttl = a->ttl;
    l->answered = 1;
}

static void finish(struct lookup *l, Postmesh__ResolveReply *r)
{
    char text[PM_LOGV_SIZE];
    r->ttl = r->status == POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL || !l->answered ? 0 : l->ttl;
    enum pm_log_level lvl = r->status == POSTMESH__RESOLVE_REPLY__STATUS__OK ? PM_DEBUG : PM_INFO;
    pm_log(lvl,
           "event=resolved kind=%s name=%s status=%s dsn=%s dnssec=%s hosts=%zu names=%zu texts=%zu tlsa=%zu ttl=%u "
           "text=%s",
           kind_name(l->kind),
           l->name,
           r->status == POSTMESH__RESOLVE_REPLY__STATUS__OK         ? "ok"
           : r->status == POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL ? "tempfail"
                                                                    : "permfail",
           r->dsn_status[0] ? r->dsn_status : "-", dnssec_name(r->dnssec), r->n_hosts, r->n_names, r->n_texts,
           r->n_tlsa, r->ttl, PM_LV(text, r->text));
    l->done(r, l->arg);
    postmesh__resolve_reply__free_unpacked(r, NULL);
    lookup_free(l);
}

/* ---------------------------------------------------------------- addresses */

/* Secure when every answer the host's addresses came from (or were securely denied by) was.
 * A family whose lookup failed gave no address and does not count: else an attacker who
 * drops the AAAA questions would turn DANE off for the host. */
static int host_secure(const struct host *h)
{
    int answered = 0;
    for (int f = 0; f < 2; f++) {
        if (h->failed[f] && h->sec[f] != RESOLVER_BOGUS)
            continue;
        if (h->sec[f] != RESOLVER_SECURE)
            return 0;
        answered = 1;
    }
    return answered;
}

/* One family bogus: the host is not used at all, not even by its other family's addresses
 * (they would go out marked insecure, without DANE: a downgrade an attacker could cause). */
static int host_usable(const struct host *h)
{
    return h->sec[0] != RESOLVER_BOGUS && h->sec[1] != RESOLVER_BOGUS && h->naddrs[0] + h->naddrs[1] > 0;
}

/* The reply's dnssec: MX, the MX answer's; A, secure when every address answer was. */
static enum resolver_security reply_security(const struct lookup *l)
{
    if (l->kind == POSTMESH__RESOLVE_REQUEST__KIND__MX)
        return l->sec;
    for (int i = 0; i < l->nhosts; i++)
        if (!host_secure(&l->hosts[i]))
            return RESOLVER_INSECURE;
    return l->nhosts ? RESOLVER_SECURE : RESOLVER_INSECURE;
}

static void finish_addresses_reply(struct lookup *l, Postmesh__ResolveReply *r)
{
    if (r->dnssec != POSTMESH__DNSSEC__DNSSEC_BOGUS)
        r->dnssec = dnssec_of(reply_security(l));
    finish(l, r);
}

static void finish_addresses(struct lookup *l)
{
    int tempfail = 0;
    size_t usable = 0;
    for (int i = 0; i < l->nhosts; i++) {
        tempfail |= l->hosts[i].tempfail;
        usable += host_usable(&l->hosts[i]);
    }
    if (usable == 0) {
        if (tempfail && l->bogus) {
            /* An address that should have been signed and was not: an attack or a broken
             * zone, never a reason to use another answer (4.7.5: security failure). */
            Postmesh__ResolveReply *r = reply_new(POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL, "4.7.5",
                                                  "address lookup for %s failed: %s", l->name, l->why);
            r->dnssec = POSTMESH__DNSSEC__DNSSEC_BOGUS;
            finish(l, r);
        } else if (tempfail)
            finish(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL, "4.4.3",
                                "address lookup for %s failed temporarily: %s", l->name, l->why));
        else if (l->kind != POSTMESH__RESOLVE_REQUEST__KIND__MX && l->nxdomain)
            finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.2",
                                "host %s does not exist (NXDOMAIN)", l->name));
        else if (l->kind != POSTMESH__RESOLVE_REQUEST__KIND__MX)
            /* NODATA: the name exists without addresses (proto: OK with no hosts). */
            finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", "host %s has no address",
                                                l->name));
        else if (l->implicit)
            finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.4.4",
                                "domain %s has no MX and no address records", l->name));
        else
            finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.4.4",
                                                "no MX host of %s has an address", l->name));
        return;
    }
    Postmesh__ResolveReply *r = reply_new(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", "%s",
                                          l->implicit ? "implicit MX" : "");
    r->hosts = calloc(usable, sizeof *r->hosts);
    if (!r->hosts)
        abort();
    for (int i = 0; i < l->nhosts; i++) {
        struct host *h = &l->hosts[i];
        int n = h->naddrs[0] + h->naddrs[1];
        if (!host_usable(h))
            continue; /* try the hosts that have an address (and no bogus answer) */
        Postmesh__MxHost *m = malloc(sizeof *m);
        if (!m)
            abort();
        postmesh__mx_host__init(m);
        m->name = xstrdup(h->name);
        m->preference = h->pref;
        m->secure = host_secure(h);
        m->addresses = calloc((size_t)n, sizeof *m->addresses);
        if (!m->addresses)
            abort();
        for (int f = 0; f < 2; f++)
            for (int j = 0; j < h->naddrs[f]; j++)
                m->addresses[m->n_addresses++] = xstrdup(h->addrs[f][j]);
        r->hosts[r->n_hosts++] = m;
    }
    finish_addresses_reply(l, r);
}

static void on_address(const struct resolver_answer *a, void *arg)
{
    struct addr_wait *w = arg;
    struct lookup *l = w->l;
    struct host *h = &l->hosts[w->host];
    saw(l, a);
    l->nxdomain |= a->rcode == RESOLVER_NXDOMAIN;
    h->sec[w->v6] = a->security;
    if (a->rcode == RESOLVER_TEMPFAIL) {
        h->tempfail = 1;
        h->failed[w->v6] = 1;
        l->bogus |= a->security == RESOLVER_BOGUS;
        snprintf(l->why, sizeof l->why, "%s %s: %s", h->name, w->v6 ? "AAAA" : "A", a->why);
    }
    for (int i = 0; i < a->n && h->naddrs[w->v6] < MAX_ADDRS; i++)
        h->addrs[w->v6][h->naddrs[w->v6]++] = xstrdup(a->rr[i].text);
    if (--l->pending == 0)
        finish_addresses(l);
}

/* Asks A and AAAA of every host at once; the extra pending count keeps the lookup alive
 * while answers from the cache arrive inside the loop. */
static void resolve_addresses(struct lookup *l)
{
    l->pending = 1;
    for (int i = 0; i < l->nhosts; i++) {
        for (int v6 = 0; v6 < 2; v6++) {
            struct addr_wait *w = &l->hosts[i].wait[v6];
            w->l = l;
            w->host = i;
            w->v6 = v6;
            l->pending++;
            resolver_query(l->q, l->hosts[i].name, v6 ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A, on_address, w);
        }
    }
    if (--l->pending == 0)
        finish_addresses(l);
}

/* ---------------------------------------------------------------- MX */

static void on_mx(const struct resolver_answer *a, void *arg)
{
    struct lookup *l = arg;
    saw(l, a);
    l->sec = a->security;
    switch (a->rcode) {
    case RESOLVER_TEMPFAIL: {
        int bogus = a->security == RESOLVER_BOGUS;
        Postmesh__ResolveReply *r = reply_new(POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL, bogus ? "4.7.5" : "4.4.3",
                                              "MX lookup for %s failed: %s", l->name, a->why);
        r->dnssec = dnssec_of(a->security);
        finish(l, r);
        return;
    }
    case RESOLVER_NXDOMAIN:
        finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.2",
                                            "domain %s does not exist (NXDOMAIN)", l->name));
        return;
    case RESOLVER_NODATA:
        /* RFC 5321 5.1: no MX records, the domain itself is the implicit MX. */
        l->implicit = 1;
        l->nhosts = 1;
        snprintf(l->hosts[0].name, sizeof l->hosts[0].name, "%s", l->name);
        resolve_addresses(l);
        return;
    case RESOLVER_OK:
        break;
    }
    struct resolver_mx mx[RESOLVER_MAX_RECORDS];
    int n = 0;
    for (int i = 0; i < a->n && n < RESOLVER_MAX_RECORDS; i++) {
        mx[n].pref = a->rr[i].pref;
        mx[n].name = a->rr[i].text;
        n++;
    }
    if (resolver_mx_order(mx, &n, lookup_rng, lookup_rng_arg) == RESOLVER_MX_NULL) {
        finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.10",
                                            "domain %s does not accept mail (null MX, RFC 7505)", l->name));
        return;
    }
    if (n == 0) {
        finish_addresses_reply(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.4.4",
                                            "domain %s has no usable MX host", l->name));
        return;
    }
    l->nhosts = n;
    for (int i = 0; i < n; i++) {
        snprintf(l->hosts[i].name, sizeof l->hosts[i].name, "%s", mx[i].name);
        l->hosts[i].pref = mx[i].pref;
    }
    resolve_addresses(l);
}

/* ---------------------------------------------------------------- PTR */

/* PTR and TXT: the records as they are. NXDOMAIN is PERMFAIL 5.1.2, NODATA an OK without
 * records (proto: ResolveReply). */
/* "3 1 1 <hex>" (answer.c's text of a TLSA record) -> a TlsaRecord; NULL if it is not one. */
static Postmesh__TlsaRecord *tlsa_record(const char *text)
{
    unsigned u, s, m;
    int off = 0;
    if (sscanf(text, "%u %u %u %n", &u, &s, &m, &off) != 3 || off == 0 || u > 255 || s > 255 || m > 255)
        return NULL;
    const char *hex = text + off;
    size_t len = strlen(hex);
    if (len == 0 || len % 2 || len / 2 > RESOLVER_MAX_TLSA_DATA)
        return NULL;
    Postmesh__TlsaRecord *t = malloc(sizeof *t);
    uint8_t *data = malloc(len / 2);
    if (!t || !data)
        abort();
    postmesh__tlsa_record__init(t);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = pm_hex_digit(hex[2 * i]), lo = pm_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(data);
            free(t);
            return NULL;
        }
        data[i] = (uint8_t)(hi << 4 | lo);
    }
    t->usage = u;
    t->selector = s;
    t->matching_type = m;
    t->data.data = data;
    t->data.len = len / 2;
    return t;
}

static void finish_records(struct lookup *l, const struct resolver_answer *a, const char *type)
{
    saw(l, a);
    if (a->rcode == RESOLVER_TEMPFAIL) {
        int bogus = a->security == RESOLVER_BOGUS;
        Postmesh__ResolveReply *r = reply_new(POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL, bogus ? "4.7.5" : "4.4.3",
                                              "%s lookup for %s failed: %s", type, l->name, a->why);
        r->dnssec = dnssec_of(a->security);
        finish(l, r);
        return;
    }
    if (a->rcode == RESOLVER_NXDOMAIN) {
        Postmesh__ResolveReply *r = reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.2",
                                              "%s does not exist (NXDOMAIN)", l->name);
        r->dnssec = dnssec_of(a->security);
        finish(l, r);
        return;
    }
    Postmesh__ResolveReply *r = reply_new(POSTMESH__RESOLVE_REPLY__STATUS__OK, "", "%s",
                                          a->rcode == RESOLVER_NODATA ? "no record" : "");
    r->dnssec = dnssec_of(a->security);
    if (l->kind == POSTMESH__RESOLVE_REQUEST__KIND__TLSA) {
        r->tlsa = a->n ? calloc((size_t)(a->n < MAX_TLSA ? a->n : MAX_TLSA), sizeof *r->tlsa) : NULL;
        if (a->n && !r->tlsa)
            abort();
        for (int i = 0; i < a->n && r->n_tlsa < MAX_TLSA; i++) {
            Postmesh__TlsaRecord *t = tlsa_record(a->rr[i].text);
            if (t)
                r->tlsa[r->n_tlsa++] = t;
        }
        finish(l, r);
        return;
    }
    char **list = a->n ? calloc((size_t)a->n, sizeof *list) : NULL;
    if (a->n && !list)
        abort();
    for (int i = 0; i < a->n; i++)
        list[i] = xstrdup(a->rr[i].text);
    if (l->kind == POSTMESH__RESOLVE_REQUEST__KIND__TXT) {
        r->texts = list;
        r->n_texts = (size_t)a->n;
    } else {
        r->names = list;
        r->n_names = (size_t)a->n;
    }
    finish(l, r);
}

static void on_ptr(const struct resolver_answer *a, void *arg) { finish_records(arg, a, "PTR"); }
static void on_txt(const struct resolver_answer *a, void *arg) { finish_records(arg, a, "TXT"); }
static void on_tlsa(const struct resolver_answer *a, void *arg) { finish_records(arg, a, "TLSA"); }

/* "192.0.2.1" -> "1.2.0.192.in-addr.arpa"; NULL if ip is not an address. */
static int reverse_name(const char *ip, char *out, size_t size)
{
    unsigned char bin[16];
    ldns_rdf *rdf = NULL;
    if (inet_pton(AF_INET, ip, bin) == 1)
        rdf = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, ip);
    else if (inet_pton(AF_INET6, ip, bin) == 1)
        rdf = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_AAAA, ip);
    if (!rdf)
        return -1;
    ldns_rdf *rev = ldns_rdf_address_reverse(rdf);
    ldns_rdf_deep_free(rdf);
    char *s = rev ? ldns_rdf2str(rev) : NULL;
    if (rev)
        ldns_rdf_deep_free(rev);
    int rc = s ? resolver_name_normalize(s, out, size) : -1;
    free(s);
    return rc;
}

/* ---------------------------------------------------------------- entry */

void resolver_lookup_start(struct resolver_queries *q, const Postmesh__ResolveRequest *req,
                           resolver_lookup_done done, void *arg)
{
    struct lookup *l = calloc(1, sizeof *l);
    if (!l)
        abort();
    l->next = live;
    if (live)
        live->prev = l;
    live = l;
    l->q = q;
    l->done = done;
    l->arg = arg;
    l->kind = req->kind;
    const char *name = req->name; /* 1 to 255 octets, no control characters (bus_valid.c) */
    pm_logv(l->name, sizeof l->name, name); /* escaped, for logs until it is a domain */

    if (req->kind == POSTMESH__RESOLVE_REQUEST__KIND__PTR) {
        char rev[RESOLVER_NAME_MAX];
        if (reverse_name(name, rev, sizeof rev) < 0) {
            finish(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL, "5.1.3", "not an IP address: %s", l->name));
            return;
        }
        resolver_query(q, rev, LDNS_RR_TYPE_PTR, on_ptr, l);
        return;
    }
    char norm[RESOLVER_NAME_MAX];
    if (resolver_name_normalize(name, norm, sizeof norm) < 0 || strcmp(norm, ".") == 0) {
        /* 5.1.2 for the mta's MX question, as always; 5.1.3 for the others, where 5.1.2
         * means NXDOMAIN (proto: ResolveReply). */
        finish(l, reply_new(POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL,
                            req->kind == POSTMESH__RESOLVE_REQUEST__KIND__MX ? "5.1.2" : "5.1.3",
                            "not a valid domain name: %s", l->name));
        return;
    }
    snprintf(l->name, sizeof l->name, "%s", norm);
    if (req->kind == POSTMESH__RESOLVE_REQUEST__KIND__MX) {
        resolver_query(q, l->name, LDNS_RR_TYPE_MX, on_mx, l);
        return;
    }
    if (req->kind == POSTMESH__RESOLVE_REQUEST__KIND__TXT) {
        resolver_query(q, l->name, LDNS_RR_TYPE_TXT, on_txt, l);
        return;
    }
    if (req->kind == POSTMESH__RESOLVE_REQUEST__KIND__TLSA) {
        resolver_query(q, l->name, LDNS_RR_TYPE_TLSA, on_tlsa, l);
        return;
    }
    /* A: the bus admits no other kind (common/bus_valid.c refuses numbers the proto lacks). */
    l->nhosts = 1;
    snprintf(l->hosts[0].name, sizeof l->hosts[0].name, "%s", l->name);
    resolve_addresses(l);
}
