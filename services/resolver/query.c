#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define NFLIGHT_BUCKETS 1024

struct waiter {
    struct waiter *next;
    resolver_query_cb cb;
    void *arg;
};

/* A question on the wire; later askers of the same question join its waiters. */
struct flight {
    struct flight *next; /* bucket chain */
    struct resolver_queries *q;
    uint16_t type;
    struct waiter *waiters, **tail;
    char name[];
};

struct resolver_queries {
    struct resolver_transport *t;
    struct resolver_cache *cache;
    uint32_t negative_ttl;
    struct flight *flights[NFLIGHT_BUCKETS];
};

const char *resolver_type_name(uint16_t type)
{
    switch (type) {
    case LDNS_RR_TYPE_A: return "A";
    case LDNS_RR_TYPE_AAAA: return "AAAA";
    case LDNS_RR_TYPE_MX: return "MX";
    case LDNS_RR_TYPE_PTR: return "PTR";
    case LDNS_RR_TYPE_CNAME: return "CNAME";
    case LDNS_RR_TYPE_TXT: return "TXT";
    case LDNS_RR_TYPE_TLSA: return "TLSA";
    default: return "other";
    }
}

uint64_t resolver_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

struct resolver_queries *resolver_queries_new(struct resolver_transport *t, struct resolver_cache *c,
                                              uint32_t negative_ttl)
{
    struct resolver_queries *q = calloc(1, sizeof *q);
    if (q) {
        q->t = t;
        q->cache = c;
        q->negative_ttl = negative_ttl;
    }
    return q;
}

static void free_waiters(struct waiter *w)
{
    while (w) {
        struct waiter *next = w->next;
        free(w);
        w = next;
    }
}

void resolver_queries_free(struct resolver_queries *q)
{
    if (!q)
        return;
    /* The transport is freed by the owner too, so no callback can reach a freed flight. */
    for (int i = 0; i < NFLIGHT_BUCKETS; i++) {
        for (struct flight *f = q->flights[i], *next; f; f = next) {
            next = f->next;
            free_waiters(f->waiters);
            free(f);
        }
    }
    free(q);
}

static struct flight **flight_slot(struct resolver_queries *q, const char *name, uint16_t type)
{
    struct flight **pp = &q->flights[resolver_key_hash(name, type) % NFLIGHT_BUCKETS];
    while (*pp && ((*pp)->type != type || strcmp((*pp)->name, name) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void on_transport(ldns_pkt *pkt, enum resolver_security sec, const char *error, void *arg)
{
    struct flight *f = arg;
    struct resolver_queries *q = f->q;
    struct resolver_answer a;
    if (!pkt || resolver_answer_from_pkt(pkt, f->name, f->type, q->negative_ttl, &a) < 0)
        resolver_answer_tempfail(&a, pkt ? "out of memory" : error);
    else if (a.rcode != RESOLVER_TEMPFAIL)
        a.security = sec; /* the security of the whole response: the RRset or its denial */
    if (!pkt && sec == RESOLVER_BOGUS)
        a.security = RESOLVER_BOGUS; /* TEMPFAIL: never cached, never used */
    if (pkt)
        ldns_pkt_free(pkt);
    char why[PM_LOGV_SIZE], name[PM_LOGV_SIZE];
    pm_log(a.security == RESOLVER_BOGUS ? PM_WARN : PM_DEBUG,
           "event=dns_answer name=%s type=%s rcode=%s dnssec=%s records=%d ttl=%u why=%s", PM_LOGV(name, f->name),
           resolver_type_name(f->type), resolver_rcode_name(a.rcode), resolver_security_name(a.security), a.n, a.ttl,
           PM_LV(why, a.why));
    resolver_cache_put(q->cache, f->name, f->type, &a, resolver_now());

    /* Unhook the flight before calling back: a waiter may ask the same question again. */
    struct flight **pp = flight_slot(q, f->name, f->type);
    if (*pp == f)
        *pp = f->next;
    struct waiter *w = f->waiters;
    free(f);
    while (w) {
        struct waiter *next = w->next;
        w->cb(&a, w->arg);
        free(w);
        w = next;
    }
    resolver_answer_free(&a);
}

void resolver_query(struct resolver_queries *q, const char *name, ldns_rr_type type, resolver_query_cb cb,
                    void *arg)
{
    const struct resolver_answer *hit = resolver_cache_get(q->cache, name, (uint16_t)type, resolver_now());
    if (hit) {
        /* A private copy: the callback may start queries that change the cache. */
        struct resolver_answer a;
        if (resolver_answer_copy(&a, hit) < 0)
            resolver_answer_tempfail(&a, "out of memory");
        cb(&a, arg);
        resolver_answer_free(&a);
        return;
    }
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        goto fail;
    w->cb = cb;
    w->arg = arg;
    struct flight **pp = flight_slot(q, name, (uint16_t)type);
    if (*pp) {
        *(*pp)->tail = w;
        (*pp)->tail = &w->next;
        return;
    }
    size_t len = strlen(name);
    struct flight *f = calloc(1, sizeof *f + len + 1);
    if (!f) {
        free(w);
        goto fail;
    }
    memcpy(f->name, name, len + 1);
    f->q = q;
    f->type = (uint16_t)type;
    f->waiters = w;
    f->tail = &w->next;
    if (resolver_transport_query(q->t, name, type, on_transport, f) < 0) {
        free(w);
        free(f);
        goto fail;
    }
    *pp = f;
    return;
fail: {
    struct resolver_answer a;
    resolver_answer_tempfail(&a, "cannot query");
    cb(&a, arg);
}
}
