/* The answer cache: (name, type) -> answer until its TTL runs out. Bounded in entries and
 * in bytes (TXT answers can be large: RESOLVER_CACHE_BYTES in all): when full, expired
 * entries go first, then the oldest. Time is passed in (monotonic
 * seconds) so tests can move it. */
#ifndef RESOLVER_CACHE_H
#define RESOLVER_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "answer.h"

#define RESOLVER_CACHE_BYTES (64u << 20)

struct resolver_cache;

struct resolver_cache *resolver_cache_new(size_t max_entries);
void resolver_cache_free(struct resolver_cache *c);

/* A fresh cached answer or NULL. The pointer is valid until the next put. */
const struct resolver_answer *resolver_cache_get(struct resolver_cache *c, const char *name, uint16_t type,
                                                 uint64_t now);

/* Stores a copy (TEMPFAIL answers and TTL 0 are not stored). */
void resolver_cache_put(struct resolver_cache *c, const char *name, uint16_t type, const struct resolver_answer *a,
                        uint64_t now);

size_t resolver_cache_count(const struct resolver_cache *c);
size_t resolver_cache_bytes(const struct resolver_cache *c);

/* Hash of (name, type) shared with the in-flight table. */
uint32_t resolver_key_hash(const char *name, uint16_t type);

#endif
