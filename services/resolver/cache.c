#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define NBUCKETS 4096

struct entry {
    struct entry *hnext;              /* bucket chain */
    struct entry *older, *newer;      /* insertion order, for eviction */
    uint16_t type;
    uint64_t expires;
    size_t bytes;
    struct resolver_answer answer;
    char name[];
};

struct resolver_cache {
    struct entry *buckets[NBUCKETS];
    struct entry *oldest, *newest;
    size_t count, max;
    size_t bytes, max_bytes;
};

uint32_t resolver_key_hash(const char *name, uint16_t type)
{
    uint32_t h = 2166136261u ^ type; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

struct resolver_cache *resolver_cache_new(size_t max_entries)
{
    struct resolver_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->max = max_entries ? max_entries : 1;
        c->max_bytes = RESOLVER_CACHE_BYTES;
    }
    return c;
}

static void unlink_entry(struct resolver_cache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[resolver_key_hash(e->name, e->type) % NBUCKETS];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    c->count--;
    c->bytes -= e->bytes;
    resolver_answer_free(&e->answer);
    free(e);
}

void resolver_cache_free(struct resolver_cache *c)
{
    if (!c)
        return;
    while (c->oldest)
        unlink_entry(c, c->oldest);
    free(c);
}

static struct entry *find(struct resolver_cache *c, const char *name, uint16_t type)
{
    for (struct entry *e = c->buckets[resolver_key_hash(name, type) % NBUCKETS]; e; e = e->hnext)
        if (e->type == type && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

const struct resolver_answer *resolver_cache_get(struct resolver_cache *c, const char *name, uint16_t type,
                                                 uint64_t now)
{
    struct entry *e = find(c, name, type);
    if (e && e->expires <= now) {
        unlink_entry(c, e);
        e = NULL;
    }
    pm_metric_add(PM_M_RESOLVER_CACHE, 1, e ? "hit" : "miss", NULL);
    return e ? &e->answer : NULL;
}

static int full(const struct resolver_cache *c, size_t more)
{
    return c->count >= c->max || c->bytes + more > c->max_bytes;
}

static void make_room(struct resolver_cache *c, uint64_t now, size_t more)
{
    if (!full(c, more))
        return;
    /* Drop everything expired first (a bounded walk: the list holds at most max). */
    for (struct entry *e = c->oldest, *next; e; e = next) {
        next = e->newer;
        if (e->expires <= now)
            unlink_entry(c, e);
    }
    while (full(c, more) && c->oldest)
        unlink_entry(c, c->oldest);
}

void resolver_cache_put(struct resolver_cache *c, const char *name, uint16_t type, const struct resolver_answer *a,
                        uint64_t now)
{
    if (a->rcode == RESOLVER_TEMPFAIL || a->ttl == 0)
        return;
    size_t len = strlen(name);
    size_t bytes = sizeof(struct entry) + len + 1 + (size_t)a->n * sizeof *a->rr;
    for (int i = 0; i < a->n; i++)
        bytes += strlen(a->rr[i].text) + 1;
    struct entry *old = find(c, name, type);
    if (old)
        unlink_entry(c, old);
    make_room(c, now, bytes);
    struct entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return;
    memcpy(e->name, name, len + 1);
    e->type = type;
    e->bytes = bytes;
    e->expires = now + (a->ttl > RESOLVER_MAX_TTL ? RESOLVER_MAX_TTL : a->ttl);
    if (resolver_answer_copy(&e->answer, a) < 0) {
        free(e);
        return;
    }
    size_t b = resolver_key_hash(name, type) % NBUCKETS;
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    c->count++;
    c->bytes += bytes;
}

size_t resolver_cache_count(const struct resolver_cache *c) { return c->count; }
size_t resolver_cache_bytes(const struct resolver_cache *c) { return c->bytes; }
