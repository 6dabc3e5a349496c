/* One (name, type) question answered from the cache, or by one transport query shared by
 * everyone asking the same question at the same time. */
#ifndef RESOLVER_QUERY_H
#define RESOLVER_QUERY_H
#include <ldns/ldns.h>
#include <stdint.h>

#include "answer.h"
#include "cache.h"
#include "transport.h"

struct resolver_queries;

/* a is valid during the call only. Called exactly once per resolver_query(); possibly
 * from inside resolver_query() itself (cache hit, unusable name). */
typedef void (*resolver_query_cb)(const struct resolver_answer *a, void *arg);

struct resolver_queries *resolver_queries_new(struct resolver_transport *t, struct resolver_cache *c,
                                              uint32_t negative_ttl);
/* Forgets outstanding questions without calling back. */
void resolver_queries_free(struct resolver_queries *q);

/* name must be normalized (names.h). */
void resolver_query(struct resolver_queries *q, const char *name, ldns_rr_type type, resolver_query_cb cb,
                    void *arg);

const char *resolver_type_name(uint16_t type);

/* Monotonic seconds, the cache's clock. */
uint64_t resolver_now(void);

#endif
