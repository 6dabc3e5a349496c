/* The validating engine behind transport.h: libunbound (full RFC 4035 validation: chain of
 * trust from our anchors, NSEC/NSEC3 denial, proofs of insecure delegations) on our own
 * libevent loop (ub_ctx_create_event: no thread, no fork), forwarding every question to
 * resolver.nameservers only. The AD bit of those servers means nothing to it: it fetches
 * the DNSKEYs and DS records itself and checks every signature.
 *
 * Each query waits at most timeout_ms and is then cancelled (ub_cancel) and answered
 * "timeout", as the ldns engine does. Use through transport.h. */
#ifndef RESOLVER_TRANSPORT_UNBOUND_H
#define RESOLVER_TRANSPORT_UNBOUND_H
#include "transport.h"

struct resolver_unbound;

struct resolver_unbound *resolver_unbound_new(struct event_base *base, const struct resolver_ns *ns, int nns,
                                              int timeout_ms, const struct resolver_unbound_conf *conf, char *err,
                                              size_t errsize);
/* Cancels every outstanding query without calling back. */
void resolver_unbound_free(struct resolver_unbound *u);
int resolver_unbound_query(struct resolver_unbound *u, const char *name, ldns_rr_type type, resolver_transport_cb cb,
                           void *arg);
int resolver_unbound_inflight(const struct resolver_unbound *u);

/* "127.0.0.1@5353", "::1@53": libunbound's form of a nameserver address. */
int resolver_unbound_fwd_text(const struct resolver_ns *ns, char *out, size_t size);

#endif
