/* Asynchronous DNS queries to the configured nameservers only, by one of two engines:
 * with resolver.dnssec off, ldns packets on our own sockets (below); with it on, libunbound
 * validating every answer from the trust anchors (transport_unbound.h). Either way the
 * caller gets a response packet and its security.
 *
 * Why not ldns_resolver_query(): it blocks, and a thread per lookup would still let a
 * handful of dead zones starve the rest. Instead ldns builds and parses the packets and
 * libevent drives non-blocking sockets: every query has its own connected UDP socket
 * (a fresh random source port, plus ICMP "port unreachable" reported at once), a random
 * id, retransmissions across the nameservers within `resolver.timeout`, and a TCP retry
 * when the answer is truncated. Thousands of lookups wait side by side. */
#ifndef RESOLVER_TRANSPORT_H
#define RESOLVER_TRANSPORT_H
#include <ldns/ldns.h>
#include <sys/socket.h>

#include "answer.h"

struct event_base;
struct resolver_transport;

struct resolver_ns {
    struct sockaddr_storage addr;
    socklen_t len;
    char text[80]; /* "127.0.0.1:53", "[::1]:53" for logs */
};

/* Parses "host" or "host:port" / "[v6]:port" (numeric addresses only; port 53 default). */
int resolver_ns_parse(const char *spec, struct resolver_ns *ns);

/* Called once per query, from the event loop (never from resolver_transport_query):
 * pkt is the validated response (the callee owns it, ldns_pkt_free) or NULL with a reason
 * ("timeout", "SERVFAIL", ...). sec is the packet's DNSSEC status; RESOLVER_BOGUS comes
 * with pkt NULL and the validator's reason. The ldns engine says RESOLVER_INSECURE always. */
typedef void (*resolver_transport_cb)(ldns_pkt *pkt, enum resolver_security sec, const char *error, void *arg);

/* The ldns engine: no validation. */
struct resolver_transport *resolver_transport_new(struct event_base *base, const struct resolver_ns *ns, int nns,
                                                  int timeout_ms);

/* The validating engine (transport_unbound.c). anchors: DS or DNSKEY records in text, one
 * each (anchors.h). max_ttl / negative_ttl bound what libunbound keeps in its own caches,
 * so that they never outlive ours. NULL with err filled if libunbound refuses a setting or
 * an anchor. Everything libunbound needs from the system is set up here, before the
 * sandbox: afterwards it only makes sockets. */
struct resolver_unbound_conf {
    const char *const *anchors;
    int nanchors;
    uint32_t max_ttl, negative_ttl;
};
struct resolver_transport *resolver_transport_new_unbound(struct event_base *base, const struct resolver_ns *ns,
                                                          int nns, int timeout_ms,
                                                          const struct resolver_unbound_conf *conf, char *err,
                                                          size_t errsize);
/* Drops every outstanding query without calling back. */
void resolver_transport_free(struct resolver_transport *t);

/* Starts (or queues, past the in-flight limit) a query. 0, or -1 if name is unusable. */
int resolver_transport_query(struct resolver_transport *t, const char *name, ldns_rr_type type,
                             resolver_transport_cb cb, void *arg);

int resolver_transport_inflight(const struct resolver_transport *t);

#endif
