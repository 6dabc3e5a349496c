/* The resolver's bus side: a ROUTER bound on resolver.listen (clients connect to
 * resolver.endpoint) taking ResolveRequests from any number of clients and answering each,
 * in completion order, with its request_id. A burst beyond the lookups it runs at once waits
 * in arrival order (bounded); only past that bound is a question answered TEMPFAIL 4.3.2
 * "resolver overloaded", which the mta asks again rather than defer mail for. */
#ifndef RESOLVER_SERVER_H
#define RESOLVER_SERVER_H
#include "query.h"

struct event_base;
struct resolver_server;

struct resolver_server *resolver_server_new(struct event_base *base, const char *endpoint,
                                            struct resolver_queries *q);
void resolver_server_free(struct resolver_server *s);

#endif
