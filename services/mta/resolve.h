/* The mta's client of postmesh-resolver: MX requests through the common client
 * (common/resolverclient.h: resent while the resolver is not connected or overloaded), each
 * given up after the mta's deadline so no outbound job waits forever. */
#ifndef MTA_RESOLVE_H
#define MTA_RESOLVE_H
#include <stdint.h>

#include "resolverclient.h"

struct event_base;
struct mta_resolver;

/* The resolver's answer when it is congested: asked again until the deadline, which then
 * reports MTA_RESOLVER_BUSY as the error. */
#define MTA_RESOLVER_BUSY PM_RESOLVER_BUSY

/* reply is NULL when the resolver did not answer in time (error says so). reply is freed
 * after the call. */
typedef pm_resolve_cb mta_resolve_cb;

/* Connects at once (the mta's readiness includes the resolver). */
struct mta_resolver *mta_resolver_new(struct event_base *base, const char *endpoint, int timeout_seconds);
void mta_resolver_free(struct mta_resolver *r);

/* Returns a handle for mta_resolve_cancel (never 0). cb is never called from inside. */
uint64_t mta_resolve_mx(struct mta_resolver *r, const char *domain, mta_resolve_cb cb, void *arg);
/* Any kind (TXT for "_mta-sts.<domain>" and "_smtp._tls.<domain>", TLSA for
 * "_25._tcp.<mx>", A for a policy host), the same way. */
uint64_t mta_resolve(struct mta_resolver *r, Postmesh__ResolveRequest__Kind kind, const char *name,
                     mta_resolve_cb cb, void *arg);
void mta_resolve_cancel(struct mta_resolver *r, uint64_t handle);

#endif
