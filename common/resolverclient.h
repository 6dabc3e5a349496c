/* A client of postmesh-resolver (the mta's MX questions, smtpd's client checks): requests
 * over one DEALER on resolver.endpoint, matched to their replies by request_id, resent while
 * the resolver is not connected or says it is overloaded, and given up at a per-request
 * deadline so no caller waits forever. The socket is made at the first request, so a
 * process that never asks (smtpd without DNS checks) neither connects nor waits for the
 * resolver to be ready. */
#ifndef PM_RESOLVERCLIENT_H
#define PM_RESOLVERCLIENT_H
#include <stdint.h>

#include "bus.h"

struct event_base;
struct pm_resolver_client;

/* The resolver's answer when it is congested (TEMPFAIL with this status): asked again every
 * tick until the deadline, which then reports PM_RESOLVER_BUSY as the error. */
#define PM_RESOLVER_BUSY_DSN "4.3.2"
#define PM_RESOLVER_BUSY "resolver overloaded"
/* Requests waiting at once; beyond, a request fails at once ("too many lookups"). */
#define PM_RESOLVER_MAX_PENDING 16384

/* reply is NULL when the resolver did not answer in time (error says why). reply is freed
 * after the call. Never called from inside pm_resolve(). */
typedef void (*pm_resolve_cb)(const Postmesh__ResolveReply *reply, const char *error, void *arg);

/* NULL only when out of memory; the endpoint is connected at the first request.
 * send_window_ms: how long a request waits for a connection to the resolver before it fails
 * ("resolver not reachable"); once one did, the next fail at once until a send goes through
 * (smtpd: a client must not wait out every check while the resolver is down). 0: a request
 * waits until its own deadline (the mta, whose jobs can wait out a resolver restart). */
struct pm_resolver_client *pm_resolver_client_new(struct event_base *base, const char *endpoint, long send_window_ms);
/* Forgets every request without calling back. */
void pm_resolver_client_free(struct pm_resolver_client *c);
/* Connects now (a process that will ask soon, so the first answer does not wait for it).
 * 0, or -1 (logged) if the socket cannot be made. */
int pm_resolver_client_connect(struct pm_resolver_client *c);

/* Returns a handle for pm_resolve_cancel; 0 only when out of memory (cb is then never
 * called). A request that cannot be sent (too many waiting, no socket) is answered with an
 * error from the event loop. timeout_ms is counted from now. */
uint64_t pm_resolve(struct pm_resolver_client *c, Postmesh__ResolveRequest__Kind kind, const char *name,
                    long timeout_ms, pm_resolve_cb cb, void *arg);
void pm_resolve_cancel(struct pm_resolver_client *c, uint64_t handle);

/* Requests waiting now (tests, metrics). */
long pm_resolver_client_pending(const struct pm_resolver_client *c);

#endif
