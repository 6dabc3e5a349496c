/* The mta's client of postmesh-resolver: MX requests over a DEALER on resolver.endpoint,
 * matched to their replies by request_id, resent while the resolver is not connected or says
 * it is overloaded, and given up after a deadline so no outbound job waits forever. */
#ifndef MTA_RESOLVE_H
#define MTA_RESOLVE_H
#include <stdint.h>

#include "bus.h"

struct event_base;
struct mta_resolver;

/* The resolver's answer when it is congested (TEMPFAIL with this status): asked again every
 * 200 ms until the deadline, which then reports MTA_RESOLVER_BUSY as the error. */
#define MTA_RESOLVER_BUSY_DSN "4.3.2"
#define MTA_RESOLVER_BUSY "resolver overloaded"

/* reply is NULL when the resolver did not answer in time (error says so). reply is freed
 * after the call. */
typedef void (*mta_resolve_cb)(const Postmesh__ResolveReply *reply, const char *error, void *arg);

struct mta_resolver *mta_resolver_new(struct event_base *base, const char *endpoint, int timeout_seconds);
void mta_resolver_free(struct mta_resolver *r);

/* Returns a handle for mta_resolve_cancel (never 0). cb is never called from inside. */
uint64_t mta_resolve_mx(struct mta_resolver *r, const char *domain, mta_resolve_cb cb, void *arg);
void mta_resolve_cancel(struct mta_resolver *r, uint64_t handle);

#endif
