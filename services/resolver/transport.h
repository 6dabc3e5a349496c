/* Asynchronous DNS queries to the configured nameservers only.
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
 * ("timeout", "SERVFAIL", ...). */
typedef void (*resolver_transport_cb)(ldns_pkt *pkt, const char *error, void *arg);

struct resolver_transport *resolver_transport_new(struct event_base *base, const struct resolver_ns *ns, int nns,
                                                  int timeout_ms);
/* Drops every outstanding query without calling back. */
void resolver_transport_free(struct resolver_transport *t);

/* Starts (or queues, past the in-flight limit) a query. 0, or -1 if name is unusable. */
int resolver_transport_query(struct resolver_transport *t, const char *name, ldns_rr_type type,
                             resolver_transport_cb cb, void *arg);

int resolver_transport_inflight(const struct resolver_transport *t);

#endif
