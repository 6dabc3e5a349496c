/* The parts of smtpd's DNS (dns.h) that need no event loop, so they can be unit-tested: an
 * answer as a shared, immutable result; a resolver reply turned into one; the per-sandbox
 * cache (bounded in entries and bytes, TTLs bounded); the table of questions in flight. */
#ifndef SMTPD_DNSCACHE_H
#define SMTPD_DNSCACHE_H
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "postmesh.pb-c.h"

#define SMTPD_DNS_NAME_MAX 253         /* a domain without its final dot */
#define SMTPD_DNS_MAX_RECORDS 64       /* per answer (the bus carries at most 64 texts) */
#define SMTPD_DNS_CACHE_ENTRIES 4096
#define SMTPD_DNS_CACHE_BYTES (4u << 20)
#define SMTPD_DNS_MAX_TTL 3600         /* kept at most an hour here (the resolver keeps longer) */
#define SMTPD_DNS_MAX_FLIGHTS 4096     /* distinct questions in flight; beyond, TEMPFAIL */

struct smtpd_dns_result {
    int refs; /* 0: a static one, never freed */
    enum smtpd_dns_status status;
    uint32_t ttl;
    size_t n;
    size_t bytes; /* what it costs the cache */
    char **records;
};

/* NULL when out of memory. records are copied; at most SMTPD_DNS_MAX_RECORDS are kept. */
struct smtpd_dns_result *smtpd_dns_result_new(enum smtpd_dns_status status, uint32_t ttl,
                                              const char *const *records, size_t n);
/* A shared answer without records and TTL 0 (TEMPFAIL, PERMFAIL, ...). */
struct smtpd_dns_result *smtpd_dns_result_static(enum smtpd_dns_status status);
struct smtpd_dns_result *smtpd_dns_result_ref(struct smtpd_dns_result *r);
void smtpd_dns_result_unref(struct smtpd_dns_result *r);

/* The resolver's reply (NULL: none came) as smtpd sees it; the mapping is dns.h's. NULL only
 * when out of memory. */
struct smtpd_dns_result *smtpd_dns_result_from_reply(enum smtpd_dns_type type, const Postmesh__ResolveReply *reply);

/* The form a question is keyed and sent in: lower case, no final dot. -1 if name cannot be
 * a DNS name or address (empty, too long, control characters, spaces). */
int smtpd_dns_key(const char *name, char *out, size_t size);
const char *smtpd_dns_type_name(enum smtpd_dns_type t);
const char *smtpd_dns_status_name(enum smtpd_dns_status s);

struct smtpd_dns_cache;
struct smtpd_dns_cache *smtpd_dns_cache_new(size_t max_entries, size_t max_bytes);
void smtpd_dns_cache_free(struct smtpd_dns_cache *c);
/* A reference to a fresh answer (unref it), or NULL. now and expiry in monotonic ms. */
struct smtpd_dns_result *smtpd_dns_cache_get(struct smtpd_dns_cache *c, enum smtpd_dns_type type, const char *key,
                                             uint64_t now_ms);
/* Keeps a reference for min(ttl, SMTPD_DNS_MAX_TTL); TEMPFAIL, PERMFAIL and TTL 0 are not
 * kept. When full, expired entries go first, then the oldest. */
void smtpd_dns_cache_put(struct smtpd_dns_cache *c, enum smtpd_dns_type type, const char *key,
                         struct smtpd_dns_result *r, uint64_t now_ms);
size_t smtpd_dns_cache_count(const struct smtpd_dns_cache *c);

/* (type, key) -> the caller's flight. */
struct smtpd_dns_flight; /* the caller's (dns.c) */
struct smtpd_dns_flights;
struct smtpd_dns_flights *smtpd_dns_flights_new(void);
/* each is called for every flight still in the table. */
void smtpd_dns_flights_free(struct smtpd_dns_flights *t, void (*each)(struct smtpd_dns_flight *f, void *arg),
                            void *arg);
struct smtpd_dns_flight *smtpd_dns_flights_find(struct smtpd_dns_flights *t, enum smtpd_dns_type type,
                                                const char *key);
int smtpd_dns_flights_add(struct smtpd_dns_flights *t, enum smtpd_dns_type type, const char *key,
                          struct smtpd_dns_flight *f);
void smtpd_dns_flights_remove(struct smtpd_dns_flights *t, enum smtpd_dns_type type, const char *key);
size_t smtpd_dns_flights_count(const struct smtpd_dns_flights *t);

#endif
