#include "resolverclient.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "log.h"

#define TICK_MS 100          /* resends and deadlines are looked at this often */
#define NBUCKETS 1024        /* requests by handle */
#define RECONNECT_MS 5000    /* after a socket could not be made (e.g. no resolver key) */
#define ATTEMPT_BITS 8       /* request_id = handle << 8 | attempt: a resend after "busy" has a
                              * new id, so a late twin of the busy reply cannot match it */

struct req {
    struct req *prev, *next; /* every request, for the tick */
    struct req *hnext;       /* bucket chain */
    uint64_t handle;
    unsigned attempt;
    int sent;
    int busy;          /* the resolver said it is overloaded: asked again from the tick */
    const char *error; /* set: fails at the next tick (could not be made) */
    int expiring;      /* on the tick's list of requests about to be failed (see on_tick) */
    uint64_t deadline_ms;
    uint64_t send_by_ms; /* not sent by then: "resolver not reachable" (send window) */
    Postmesh__ResolveRequest__Kind kind;
    pm_resolve_cb cb;
    void *arg;
    char name[];
};

struct pm_resolver_client {
    struct event_base *base;
    char *endpoint;
    struct pm_bus *bus;
    uint64_t connect_failed_ms; /* when the socket last could not be made; 0: never */
    struct event *tick;
    struct req *head;
    struct req *expiring; /* given up, callbacks pending: still cancellable (hnext kept) */
    struct req *buckets[NBUCKETS];
    long n;
    uint64_t next_handle;
    long send_window_ms; /* 0: a request waits for the connection until its deadline */
    int down;            /* a request found no connection for a whole window: the next ones
                          * fail at once, until a send goes through again */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct req **slot(struct pm_resolver_client *c, uint64_t handle)
{
    struct req **pp = &c->buckets[handle % NBUCKETS];
    while (*pp && (*pp)->handle != handle)
        pp = &(*pp)->hnext;
    return pp;
}

static void unlink_bucket(struct pm_resolver_client *c, struct req *p)
{
    struct req **pp = slot(c, p->handle);
    if (*pp == p)
        *pp = p->hnext;
}

static void unlink_list(struct pm_resolver_client *c, struct req *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    c->n--;
    if (c->n == 0)
        event_del(c->tick);
}

static void unlink_req(struct pm_resolver_client *c, struct req *p)
{
    unlink_bucket(c, p);
    unlink_list(c, p);
}

static int send_request(struct pm_resolver_client *c, struct req *p)
{
    if (!c->bus)
        return -1;
    Postmesh__ResolveRequest rq = POSTMESH__RESOLVE_REQUEST__INIT;
    rq.kind = p->kind;
    rq.name = p->name;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = p->handle << ATTEMPT_BITS | (p->attempt & ((1u << ATTEMPT_BITS) - 1));
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE;
    m.resolve = &rq;
    if (pm_bus_send(c->bus, &m) < 0)
        return -1; /* EAGAIN: not connected yet; the tick tries again */
    p->sent = 1;
    c->down = 0;
    return 0;
}

/* Validated at the edge (bus_rules.c): a body of its case, every string set and bounded. */
static void on_message(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)bus;
    (void)peer;
    (void)peerlen;
    struct pm_resolver_client *c = arg;
    if (msg->body_case != POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY)
        return;
    struct req *p = *slot(c, msg->request_id >> ATTEMPT_BITS);
    if (!p || !p->sent || (msg->request_id & ((1u << ATTEMPT_BITS) - 1)) != (p->attempt & ((1u << ATTEMPT_BITS) - 1)))
        return; /* answered after we gave up, cancelled, or a reply to an earlier attempt */
    const Postmesh__ResolveReply *rr = msg->resolve_reply;
    int busy = rr->status == POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL &&
               strcmp(rr->dsn_status, PM_RESOLVER_BUSY_DSN) == 0;
    if (busy && now_ms() + TICK_MS < p->deadline_ms) {
        /* Local congestion, not an answer about the name: the tick asks again. */
        p->sent = 0;
        p->busy = 1;
        p->attempt++;
        return;
    }
    unlink_req(c, p);
    /* Still congested at the deadline: the caller hears PM_RESOLVER_BUSY, the same as from
     * the tick, and never has to read the resolver's busy reply itself. */
    if (busy)
        p->cb(NULL, PM_RESOLVER_BUSY, p->arg);
    else
        p->cb(rr, NULL, p->arg);
    free(p);
}

int pm_resolver_client_connect(struct pm_resolver_client *c)
{
    if (c->bus)
        return 0;
    uint64_t now = now_ms();
    if (c->connect_failed_ms && now < c->connect_failed_ms + RECONNECT_MS)
        return -1;
    c->bus = pm_bus_connect(c->base, ZMQ_DEALER, c->endpoint, on_message, c);
    c->connect_failed_ms = c->bus ? 0 : now;
    return c->bus ? 0 : -1;
}

/* Resends what could not be sent and expires what was not answered. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_resolver_client *c = arg;
    uint64_t now = now_ms();
    for (struct req *p = c->head, *next; p; p = next) {
        next = p->next;
        if (!p->sent && !p->error && now >= p->send_by_ms && send_request(c, p) < 0) {
            p->error = "resolver not reachable";
            if (!c->down && c->send_window_ms > 0)
                pm_log(PM_WARN, "event=resolver_unreachable endpoint=%s window_ms=%ld", c->endpoint,
                       c->send_window_ms);
            c->down = 1;
        }
        if (p->error || now >= p->deadline_ms) {
            unlink_list(c, p);
            p->expiring = 1;
            p->next = c->expiring;
            c->expiring = p;
            continue;
        }
        if (!p->sent)
            send_request(c, p);
    }
    /* Call back after the walk: a callback may start new requests, or cancel one of those
     * still waiting here (an outbound job ended by its MX lookup's failure cancels its other
     * lookups): they stay findable by handle until their turn. */
    while (c->expiring) {
        struct req *p = c->expiring;
        c->expiring = p->next;
        unlink_bucket(c, p);
        const char *why = p->error       ? p->error
                          : p->busy      ? PM_RESOLVER_BUSY
                          : p->sent      ? "resolver did not answer in time"
                                         : "resolver not reachable";
        if (!p->error) {
            char name[PM_LOGV_SIZE];
            pm_log(PM_WARN, "event=resolver_timeout name=%s sent=%d", PM_LOGV(name, p->name), p->sent);
        }
        p->cb(NULL, why, p->arg);
        free(p);
    }
}

struct pm_resolver_client *pm_resolver_client_new(struct event_base *base, const char *endpoint, long send_window_ms)
{
    struct pm_resolver_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->send_window_ms = send_window_ms;
    c->endpoint = strdup(endpoint ? endpoint : "");
    c->tick = event_new(base, -1, EV_PERSIST, on_tick, c);
    if (!c->endpoint || !c->tick) {
        pm_resolver_client_free(c);
        return NULL;
    }
    return c;
}

void pm_resolver_client_free(struct pm_resolver_client *c)
{
    if (!c)
        return;
    while (c->head) {
        struct req *p = c->head;
        c->head = p->next;
        free(p);
    }
    while (c->expiring) {
        struct req *p = c->expiring;
        c->expiring = p->next;
        free(p);
    }
    if (c->tick)
        event_free(c->tick);
    pm_bus_close(c->bus);
    free(c->endpoint);
    free(c);
}

uint64_t pm_resolve(struct pm_resolver_client *c, Postmesh__ResolveRequest__Kind kind, const char *name,
                    long timeout_ms, pm_resolve_cb cb, void *arg)
{
    size_t len = strlen(name);
    struct req *p = calloc(1, sizeof *p + len + 1);
    if (!p)
        return 0;
    memcpy(p->name, name, len + 1);
    p->handle = ++c->next_handle;
    p->kind = kind;
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    p->send_by_ms = c->send_window_ms > 0 ? now_ms() + (uint64_t)c->send_window_ms : p->deadline_ms;
    p->next = c->head;
    if (c->head)
        c->head->prev = p;
    c->head = p;
    struct req **pp = slot(c, p->handle);
    p->hnext = *pp;
    *pp = p;
    if (c->n++ == 0) {
        struct timeval tv = {0, TICK_MS * 1000};
        event_add(c->tick, &tv);
    }
    if (c->n > PM_RESOLVER_MAX_PENDING)
        p->error = "too many lookups waiting";
    else if (pm_resolver_client_connect(c) < 0)
        p->error = "resolver not reachable";
    else if (send_request(c, p) < 0 && c->send_window_ms > 0 && c->down)
        p->error = "resolver not reachable"; /* known down: no waiting out another window */
    /* else if it could not go now, the tick resends */
    if (p->error)
        event_active(c->tick, EV_TIMEOUT, 0);
    return p->handle;
}

void pm_resolve_cancel(struct pm_resolver_client *c, uint64_t handle)
{
    struct req *p = handle ? *slot(c, handle) : NULL;
    if (!p)
        return;
    if (p->expiring) {
        struct req **pp = &c->expiring;
        while (*pp && *pp != p)
            pp = &(*pp)->next;
        if (*pp)
            *pp = p->next;
        unlink_bucket(c, p);
        free(p);
        return;
    }
    unlink_req(c, p);
    free(p);
}

long pm_resolver_client_pending(const struct pm_resolver_client *c) { return c->n; }
