#include "resolve.h"

#include <stdlib.h>

struct mta_resolver {
    struct pm_resolver_client *client;
    long timeout_ms;
};

struct mta_resolver *mta_resolver_new(struct event_base *base, const char *endpoint, int timeout_seconds)
{
    struct mta_resolver *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->timeout_ms = (long)timeout_seconds * 1000;
    r->client = pm_resolver_client_new(base, endpoint, 0); /* waits out a resolver restart */
    if (!r->client || pm_resolver_client_connect(r->client) < 0) {
        mta_resolver_free(r);
        return NULL;
    }
    return r;
}

void mta_resolver_free(struct mta_resolver *r)
{
    if (!r)
        return;
    pm_resolver_client_free(r->client);
    free(r);
}

uint64_t mta_resolve(struct mta_resolver *r, Postmesh__ResolveRequest__Kind kind, const char *name,
                     mta_resolve_cb cb, void *arg)
{
    uint64_t h = pm_resolve(r->client, kind, name, r->timeout_ms, cb, arg);
    if (!h)
        abort(); /* out of memory: as before, a job we cannot track is a bug we must not hide */
    return h;
}

uint64_t mta_resolve_mx(struct mta_resolver *r, const char *domain, mta_resolve_cb cb, void *arg)
{
    return mta_resolve(r, POSTMESH__RESOLVE_REQUEST__KIND__MX, domain, cb, arg);
}

void mta_resolve_cancel(struct mta_resolver *r, uint64_t handle) { pm_resolve_cancel(r->client, handle); }
