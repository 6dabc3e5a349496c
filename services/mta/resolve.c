#include "resolve.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "log.h"

#define TICK_MS 200

struct pending {
    struct pending *next;
    uint64_t id;     /* of the request on the wire (a new one for each ask) */
    uint64_t handle; /* the caller's, for mta_resolve_cancel */
    int sent;
    int busy; /* the resolver said it is overloaded: asked again from the tick */
    uint64_t deadline_ms;
    mta_resolve_cb cb;
    void *arg;
    char domain[];
};

struct mta_resolver {
    struct pm_bus *bus;
    struct event *tick;
    struct pending *head;
    uint64_t next_id;
    int timeout_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct pending *take(struct mta_resolver *r, uint64_t id, int by_handle)
{
    for (struct pending **pp = &r->head; *pp; pp = &(*pp)->next) {
        if ((by_handle ? (*pp)->handle : (*pp)->id) == id) {
            struct pending *p = *pp;
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

/* Validated at the edge (bus_rules.c): a body of its case, every string set and bounded. */
static void on_message(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)bus;
    (void)peer;
    (void)peerlen;
    struct mta_resolver *r = arg;
    if (msg->body_case != POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY)
        return;
    struct pending *p = take(r, msg->request_id, 0);
    if (!p)
        return; /* answered after we gave up, or cancelled */
    const Postmesh__ResolveReply *rr = msg->resolve_reply;
    int busy = rr->status == POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL &&
               strcmp(rr->dsn_status, MTA_RESOLVER_BUSY_DSN) == 0;
    if (busy && now_ms() + TICK_MS < p->deadline_ms) {
        /* Local congestion, not an answer about the domain: ask again soon (the tick sends
         * it, under a new id so a late twin of this reply cannot match it). */
        p->sent = 0;
        p->busy = 1;
        p->id = ++r->next_id;
        p->next = r->head;
        r->head = p;
        return;
    }
    /* Still congested at the deadline: the caller hears it as MTA_RESOLVER_BUSY, the same as
     * from the tick, and never has to read the resolver's busy reply itself. */
    if (busy)
        p->cb(NULL, MTA_RESOLVER_BUSY, p->arg);
    else
        p->cb(rr, NULL, p->arg);
    free(p);
}

static int send_request(struct mta_resolver *r, struct pending *p)
{
    Postmesh__ResolveRequest req = POSTMESH__RESOLVE_REQUEST__INIT;
    req.kind = POSTMESH__RESOLVE_REQUEST__KIND__MX;
    req.name = p->domain;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = p->id;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE;
    m.resolve = &req;
    if (pm_bus_send(r->bus, &m) < 0)
        return -1; /* EAGAIN: not connected yet; the tick tries again */
    p->sent = 1;
    return 0;
}

/* Resends what could not be sent and expires what was not answered. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_resolver *r = arg;
    uint64_t now = now_ms();
    struct pending *expired = NULL;
    for (struct pending **pp = &r->head; *pp;) {
        struct pending *p = *pp;
        if (now >= p->deadline_ms) {
            *pp = p->next;
            p->next = expired;
            expired = p;
            continue;
        }
        if (!p->sent)
            send_request(r, p);
        pp = &p->next;
    }
    /* Call back after the walk: a callback may start new requests. */
    while (expired) {
        struct pending *p = expired;
        expired = p->next;
        char dom[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=resolver_timeout domain=%s sent=%d", PM_LOGV(dom, p->domain), p->sent);
        p->cb(NULL, p->busy ? MTA_RESOLVER_BUSY : p->sent ? "resolver did not answer in time" : "resolver not reachable",
              p->arg);
        free(p);
    }
}

struct mta_resolver *mta_resolver_new(struct event_base *base, const char *endpoint, int timeout_seconds)
{
    struct mta_resolver *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->timeout_ms = timeout_seconds * 1000;
    r->bus = pm_bus_connect(base, ZMQ_DEALER, endpoint, on_message, r);
    r->tick = event_new(base, -1, EV_PERSIST, on_tick, r);
    if (!r->bus || !r->tick) {
        mta_resolver_free(r);
        return NULL;
    }
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(r->tick, &tv);
    return r;
}

void mta_resolver_free(struct mta_resolver *r)
{
    if (!r)
        return;
    while (r->head) {
        struct pending *p = r->head;
        r->head = p->next;
        free(p);
    }
    if (r->tick)
        event_free(r->tick);
    pm_bus_close(r->bus);
    free(r);
}

uint64_t mta_resolve_mx(struct mta_resolver *r, const char *domain, mta_resolve_cb cb, void *arg)
{
    size_t len = strlen(domain);
    struct pending *p = calloc(1, sizeof *p + len + 1);
    if (!p)
        abort();
    memcpy(p->domain, domain, len + 1);
    p->id = p->handle = ++r->next_id;
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = now_ms() + (uint64_t)r->timeout_ms;
    p->next = r->head;
    r->head = p;
    send_request(r, p); /* if it cannot go now, the tick resends */
    return p->handle;
}

void mta_resolve_cancel(struct mta_resolver *r, uint64_t handle)
{
    free(take(r, handle, 1));
}
