#include "dnscache.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096

/* ---------------------------------------------------------------- results */

static struct smtpd_dns_result statics[] = {
    {0, SMTPD_DNS_OK, 0, 0, 0, NULL},       {0, SMTPD_DNS_NODATA, 0, 0, 0, NULL},
    {0, SMTPD_DNS_NXDOMAIN, 0, 0, 0, NULL}, {0, SMTPD_DNS_TEMPFAIL, 0, 0, 0, NULL},
    {0, SMTPD_DNS_PERMFAIL, 0, 0, 0, NULL},
};

struct smtpd_dns_result *smtpd_dns_result_static(enum smtpd_dns_status status)
{
    return &statics[(unsigned)status < sizeof statics / sizeof statics[0] ? status : SMTPD_DNS_TEMPFAIL];
}

struct smtpd_dns_result *smtpd_dns_result_ref(struct smtpd_dns_result *r)
{
    if (r && r->refs)
        r->refs++;
    return r;
}

void smtpd_dns_result_unref(struct smtpd_dns_result *r)
{
    if (!r || r->refs == 0 || --r->refs > 0)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->records[i]);
    free(r->records);
    free(r);
}

struct smtpd_dns_result *smtpd_dns_result_new(enum smtpd_dns_status status, uint32_t ttl,
                                              const char *const *records, size_t n)
{
    if (n > SMTPD_DNS_MAX_RECORDS)
        n = SMTPD_DNS_MAX_RECORDS;
    struct smtpd_dns_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->refs = 1;
    r->status = status;
    r->ttl = ttl;
    r->bytes = sizeof *r + 64;
    r->records = calloc(n + 1, sizeof *r->records); /* NULL-terminated too */
    if (!r->records) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(r->records[i] = strdup(records[i] ? records[i] : ""))) {
            smtpd_dns_result_unref(r);
            return NULL;
        }
        r->n = i + 1;
        r->bytes += strlen(records[i] ? records[i] : "") + 1 + sizeof(char *);
    }
    return r;
}

static int dsn_is(const Postmesh__ResolveReply *r, const char *dsn) { return r->dsn_status && !strcmp(r->dsn_status, dsn); }

struct smtpd_dns_result *smtpd_dns_result_from_reply(enum smtpd_dns_type type, const Postmesh__ResolveReply *reply)
{
    if (!reply || reply->status == POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL)
        return smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL);
    if (reply->status != POSTMESH__RESOLVE_REPLY__STATUS__OK) {
        /* The resolver's permanent answers (proto: ResolveReply): 5.1.2 the name does not
         * exist; a null MX is an MX answer of "."; anything else is final and says no more. */
        if (dsn_is(reply, "5.1.2"))
            return smtpd_dns_result_new(SMTPD_DNS_NXDOMAIN, reply->ttl, NULL, 0);
        if (type == SMTPD_DNS_MX && dsn_is(reply, "5.1.10")) {
            const char *dot[] = {"."};
            return smtpd_dns_result_new(SMTPD_DNS_OK, reply->ttl, dot, 1);
        }
        return smtpd_dns_result_static(SMTPD_DNS_PERMFAIL);
    }
    const char *recs[SMTPD_DNS_MAX_RECORDS];
    size_t n = 0;
    switch (type) {
    case SMTPD_DNS_A:
        for (size_t h = 0; h < reply->n_hosts; h++)
            for (size_t i = 0; i < reply->hosts[h]->n_addresses && n < SMTPD_DNS_MAX_RECORDS; i++)
                recs[n++] = reply->hosts[h]->addresses[i];
        break;
    case SMTPD_DNS_MX:
        /* No MX record: the resolver answers with the domain as its implicit MX. */
        if (reply->text && !strcmp(reply->text, "implicit MX"))
            break;
        for (size_t h = 0; h < reply->n_hosts && n < SMTPD_DNS_MAX_RECORDS; h++)
            recs[n++] = reply->hosts[h]->name;
        break;
    case SMTPD_DNS_TXT:
        for (size_t i = 0; i < reply->n_texts && n < SMTPD_DNS_MAX_RECORDS; i++)
            recs[n++] = reply->texts[i];
        break;
    case SMTPD_DNS_PTR:
        for (size_t i = 0; i < reply->n_names && n < SMTPD_DNS_MAX_RECORDS; i++)
            recs[n++] = reply->names[i];
        break;
    }
    return smtpd_dns_result_new(n ? SMTPD_DNS_OK : SMTPD_DNS_NODATA, reply->ttl, recs, n);
}

int smtpd_dns_key(const char *name, char *out, size_t size)
{
    size_t len = name ? strlen(name) : 0;
    if (len > 1 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > SMTPD_DNS_NAME_MAX || len >= size)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f)
            return -1;
        out[i] = (char)tolower(c);
    }
    out[len] = '\0';
    return 0;
}

const char *smtpd_dns_type_name(enum smtpd_dns_type t)
{
    return t == SMTPD_DNS_TXT ? "TXT" : t == SMTPD_DNS_MX ? "MX" : t == SMTPD_DNS_PTR ? "PTR" : "A";
}

const char *smtpd_dns_status_name(enum smtpd_dns_status s)
{
    switch (s) {
    case SMTPD_DNS_OK: return "ok";
    case SMTPD_DNS_NODATA: return "nodata";
    case SMTPD_DNS_NXDOMAIN: return "nxdomain";
    case SMTPD_DNS_TEMPFAIL: return "tempfail";
    default: return "permfail";
    }
}

static uint32_t key_hash(enum smtpd_dns_type type, const char *key)
{
    uint32_t h = 2166136261u ^ (uint32_t)type; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h % NBUCKETS;
}

/* ---------------------------------------------------------------- cache */

struct entry {
    struct entry *hnext;
    struct entry *older, *newer;
    enum smtpd_dns_type type;
    uint64_t expires;
    struct smtpd_dns_result *r;
    size_t bytes;
    char key[];
};

struct smtpd_dns_cache {
    struct entry *buckets[NBUCKETS];
    struct entry *oldest, *newest;
    size_t count, max, bytes, max_bytes;
};

struct smtpd_dns_cache *smtpd_dns_cache_new(size_t max_entries, size_t max_bytes)
{
    struct smtpd_dns_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->max = max_entries ? max_entries : 1;
        c->max_bytes = max_bytes;
    }
    return c;
}

static void drop(struct smtpd_dns_cache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[key_hash(e->type, e->key)];
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
    smtpd_dns_result_unref(e->r);
    free(e);
}

void smtpd_dns_cache_free(struct smtpd_dns_cache *c)
{
    if (!c)
        return;
    while (c->oldest)
        drop(c, c->oldest);
    free(c);
}

static struct entry *find(struct smtpd_dns_cache *c, enum smtpd_dns_type type, const char *key)
{
    for (struct entry *e = c->buckets[key_hash(type, key)]; e; e = e->hnext)
        if (e->type == type && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

struct smtpd_dns_result *smtpd_dns_cache_get(struct smtpd_dns_cache *c, enum smtpd_dns_type type, const char *key,
                                             uint64_t now_ms)
{
    struct entry *e = find(c, type, key);
    if (e && e->expires <= now_ms) {
        drop(c, e);
        e = NULL;
    }
    return e ? smtpd_dns_result_ref(e->r) : NULL;
}

void smtpd_dns_cache_put(struct smtpd_dns_cache *c, enum smtpd_dns_type type, const char *key,
                         struct smtpd_dns_result *r, uint64_t now_ms)
{
    if (!r || r->refs == 0 || r->ttl == 0 || r->status == SMTPD_DNS_TEMPFAIL || r->status == SMTPD_DNS_PERMFAIL)
        return;
    size_t len = strlen(key);
    size_t bytes = sizeof(struct entry) + len + 1 + r->bytes;
    if (bytes > c->max_bytes / 4)
        return; /* one answer may not push out a quarter of the cache */
    struct entry *old = find(c, type, key);
    if (old)
        drop(c, old);
    if (c->count >= c->max || c->bytes + bytes > c->max_bytes) {
        for (struct entry *e = c->oldest, *next; e; e = next) { /* expired ones first */
            next = e->newer;
            if (e->expires <= now_ms)
                drop(c, e);
        }
        while (c->oldest && (c->count >= c->max || c->bytes + bytes > c->max_bytes))
            drop(c, c->oldest);
    }
    struct entry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return;
    memcpy(e->key, key, len + 1);
    e->type = type;
    uint32_t ttl = r->ttl > SMTPD_DNS_MAX_TTL ? SMTPD_DNS_MAX_TTL : r->ttl;
    e->expires = now_ms + (uint64_t)ttl * 1000;
    e->r = smtpd_dns_result_ref(r);
    e->bytes = bytes;
    struct entry **b = &c->buckets[key_hash(type, key)];
    e->hnext = *b;
    *b = e;
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
    c->count++;
    c->bytes += bytes;
}

size_t smtpd_dns_cache_count(const struct smtpd_dns_cache *c) { return c->count; }

/* ---------------------------------------------------------------- flights */

struct fentry {
    struct fentry *next;
    enum smtpd_dns_type type;
    struct smtpd_dns_flight *f;
    char key[];
};

struct smtpd_dns_flights {
    struct fentry *buckets[NBUCKETS];
    size_t count;
};

struct smtpd_dns_flights *smtpd_dns_flights_new(void) { return calloc(1, sizeof(struct smtpd_dns_flights)); }

void smtpd_dns_flights_free(struct smtpd_dns_flights *t, void (*each)(struct smtpd_dns_flight *f, void *arg),
                            void *arg)
{
    if (!t)
        return;
    for (int i = 0; i < NBUCKETS; i++)
        for (struct fentry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            if (each)
                each(e->f, arg);
            free(e);
        }
    free(t);
}

static struct fentry **fslot(struct smtpd_dns_flights *t, enum smtpd_dns_type type, const char *key)
{
    struct fentry **pp = &t->buckets[key_hash(type, key)];
    while (*pp && ((*pp)->type != type || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

struct smtpd_dns_flight *smtpd_dns_flights_find(struct smtpd_dns_flights *t, enum smtpd_dns_type type,
                                                const char *key)
{
    struct fentry *e = *fslot(t, type, key);
    return e ? e->f : NULL;
}

int smtpd_dns_flights_add(struct smtpd_dns_flights *t, enum smtpd_dns_type type, const char *key,
                          struct smtpd_dns_flight *f)
{
    struct fentry **pp = fslot(t, type, key);
    if (*pp)
        return -1;
    size_t len = strlen(key);
    struct fentry *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, len + 1);
    e->type = type;
    e->f = f;
    *pp = e;
    t->count++;
    return 0;
}

void smtpd_dns_flights_remove(struct smtpd_dns_flights *t, enum smtpd_dns_type type, const char *key)
{
    struct fentry **pp = fslot(t, type, key);
    struct fentry *e = *pp;
    if (!e)
        return;
    *pp = e->next;
    free(e);
    t->count--;
}

size_t smtpd_dns_flights_count(const struct smtpd_dns_flights *t) { return t->count; }
