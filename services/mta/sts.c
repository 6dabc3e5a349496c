/* STUB until sts_*.c land: no domain has a policy. */
#include "sts.h"

#include <event2/event.h>
#include <stdlib.h>

struct mta_sts {
    struct event_base *base;
    uint64_t next;
};

struct stub_call {
    mta_sts_cb cb;
    void *arg;
};

struct mta_sts *mta_sts_new(struct event_base *base, struct mta_resolver *resolver, const struct pm_config *cfg)
{
    (void)resolver;
    (void)cfg;
    struct mta_sts *s = calloc(1, sizeof *s);
    if (s)
        s->base = base;
    return s;
}

void mta_sts_free(struct mta_sts *s) { free(s); }

static void stub_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct stub_call *c = arg;
    struct mta_sts_result r = {.status = MTA_STS_NONE};
    c->cb(&r, c->arg);
    free(c);
}

uint64_t mta_sts_lookup(struct mta_sts *s, const char *domain, mta_sts_cb cb, void *arg)
{
    (void)domain;
    struct stub_call *c = malloc(sizeof *c);
    if (!c)
        abort();
    c->cb = cb;
    c->arg = arg;
    event_base_once(s->base, -1, EV_TIMEOUT, stub_fire, c, NULL);
    return ++s->next;
}

void mta_sts_cancel(struct mta_sts *s, uint64_t handle)
{
    (void)s;
    (void)handle; /* stub: the callback still comes; callers must not rely on this stub */
}

int mta_sts_mx_matches(const struct mta_sts_policy *p, const char *mx_host)
{
    (void)p;
    (void)mx_host;
    return 0;
}
