/* One ResolveRequest (MX, A, PTR, TXT or TLSA) from question to ResolveReply: the MX set, null
 * MX and implicit MX rules, then every host's A and AAAA, all asked concurrently. Each reply
 * says how DNSSEC judged its answer (dnssec; MxHost.secure per host); a bogus answer is
 * TEMPFAIL 4.7.5, never used. */
#ifndef RESOLVER_LOOKUP_H
#define RESOLVER_LOOKUP_H
#include "bus.h"
#include "mx.h"
#include "query.h"

/* reply is freed after the call returns. */
typedef void (*resolver_lookup_done)(Postmesh__ResolveReply *reply, void *arg);

/* req as the bus admits it (common/bus_valid.c): kind MX, A, PTR, TXT or TLSA, a name without control
 * characters. done is called exactly once, possibly before this returns (everything cached). */
void resolver_lookup_start(struct resolver_queries *q, const Postmesh__ResolveRequest *req,
                           resolver_lookup_done done, void *arg);

/* Shutdown: frees every unfinished lookup without calling back (free the transport
 * first so no answer arrives afterwards). */
void resolver_lookup_free_all(void);

/* Shuffle source for equal MX preferences (tests make it deterministic). */
void resolver_lookup_set_rng(resolver_rng rng, void *arg);

#endif
