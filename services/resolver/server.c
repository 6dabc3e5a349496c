/* The resolver's bus side (server.h). A burst of questions waits its turn instead of being
 * refused: at most MAX_LOOKUPS lookups run at once (each holds room for a whole MX set), the
 * rest wait in arrival order, small (name, asker, id), up to MAX_WAITING. Only beyond that
 * does an asker hear "resolver overloaded", with 4.3.2 (local congestion, as the workers say
 * it): the mta asks again soon instead of deferring the mail. */
#include "server.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "lookup.h"

#define MAX_LOOKUPS 2048   /* lookups in progress (each ~10 KB); DNS sockets are bounded below */
#define MAX_WAITING 65536  /* questions waiting for a lookup slot; past this, 4.3.2 at once */
#define MAX_PEER 256

struct request {
    struct request *prev, *next;
    struct resolver_server *s;
    uint64_t request_id;
    Postmesh__ResolveRequest__Kind kind;
    char *name;  /* while waiting */
    size_t peerlen;
    uint8_t peer[MAX_PEER];
};

struct list {
    struct request *head, *tail;
    int n;
};

struct resolver_server {
    struct pm_bus *bus;
    struct resolver_queries *q;
    struct list running; /* lookups in progress, so shutdown can free them */
    struct list waiting; /* arrival order */
    int starting;        /* inside start_waiting: a lookup that answers at once must not recurse */
};

static void list_push(struct list *l, struct request *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

static void list_unlink(struct list *l, struct request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

static void send_reply(struct resolver_server *s, const uint8_t *peer, size_t peerlen, uint64_t request_id,
                       Postmesh__ResolveReply *reply)
{
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = request_id;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY;
    m.resolve_reply = reply;
    if (pm_bus_send_to(s->bus, peer, peerlen, &m) < 0)
        pm_log(PM_WARN, "event=reply_dropped request_id=%llu error=\"%s\"", (unsigned long long)request_id,
               zmq_strerror(zmq_errno()));
}

static void start_waiting(struct resolver_server *s);

static void on_done(Postmesh__ResolveReply *reply, void *arg)
{
    struct request *r = arg;
    struct resolver_server *s = r->s;
    send_reply(s, r->peer, r->peerlen, r->request_id, reply);
    list_unlink(&s->running, r);
    free(r);
    start_waiting(s); /* the slot goes to the oldest question waiting */
}

/* Starts waiting questions, oldest first, while lookup slots are free. A lookup answered
 * from the cache finishes inside resolver_lookup_start and calls on_done, which lands here
 * again: the flag turns that into another turn of this loop instead of a deeper stack. */
static void start_waiting(struct resolver_server *s)
{
    if (s->starting)
        return;
    s->starting = 1;
    while (s->waiting.head && s->running.n < MAX_LOOKUPS) {
        struct request *r = s->waiting.head;
        list_unlink(&s->waiting, r);
        list_push(&s->running, r);
        Postmesh__ResolveRequest req = POSTMESH__RESOLVE_REQUEST__INIT;
        req.kind = r->kind;
        req.name = r->name;
        char *name = r->name;
        r->name = NULL;
        resolver_lookup_start(s->q, &req, on_done, r); /* may answer (and free r) before returning */
        free(name);
    }
    s->starting = 0;
}

static void refuse_busy(struct resolver_server *s, const uint8_t *peer, size_t peerlen, uint64_t request_id)
{
    Postmesh__ResolveReply busy = POSTMESH__RESOLVE_REPLY__INIT;
    busy.status = POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL;
    busy.dsn_status = "4.3.2";
    busy.text = "resolver overloaded";
    pm_log(PM_WARN, "event=overloaded running=%d waiting=%d", s->running.n, s->waiting.n);
    send_reply(s, peer, peerlen, request_id, &busy);
}

/* The bus hands over only what the policy below admits, a ResolveRequest from a ROUTER peer,
 * and only within its rules (common/bus_valid.c: a known kind, a name of 1 to 255 octets
 * without control characters); one outside them was answered PERMFAIL 5.5.4 there. Whether
 * the name is a usable domain or address is the lookup's to say (5.1.2, 5.1.3). */
static void on_message(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)bus;
    struct resolver_server *s = arg;
    const Postmesh__ResolveRequest *req = msg->resolve;
    char kind[16];
    pm_metric_enum(&postmesh__resolve_request__kind__descriptor, (int)req->kind, kind, sizeof kind);
    pm_metric_add(PM_M_RESOLVER_QUERIES, 1, kind, NULL);
    if (s->waiting.n >= MAX_WAITING || peerlen > MAX_PEER) {
        refuse_busy(s, peer, peerlen, msg->request_id);
        return;
    }
    struct request *r = calloc(1, sizeof *r);
    char *name = r ? strdup(req->name) : NULL;
    if (!name) {
        free(r);
        refuse_busy(s, peer, peerlen, msg->request_id);
        return;
    }
    r->s = s;
    r->request_id = msg->request_id;
    r->kind = req->kind;
    r->name = name;
    r->peerlen = peerlen;
    memcpy(r->peer, peer, peerlen);
    list_push(&s->waiting, r);
    start_waiting(s);
}

/* smtpd asks for its checks (A and TXT of DNS lists, SPF, DKIM keys, DMARC; PTR), the mta
 * for MX and addresses; a Resolve is a name and a type. */
static const struct pm_bus_rule rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_RESOLVE, PM_ROLE_BIT(PM_ROLE_MTA) | PM_ROLE_BIT(PM_ROLE_SMTPD), 2048},
    {0, 0, 0},
};
static const struct pm_bus_policy policy = {.max_message = 1 << 16, .rules = rules};

struct resolver_server *resolver_server_new(struct event_base *base, const char *endpoint,
                                            struct resolver_queries *q)
{
    struct resolver_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->q = q;
    s->bus = pm_bus_bind(base, ZMQ_ROUTER, endpoint, &policy, on_message, s);
    if (!s->bus) {
        free(s);
        return NULL;
    }
    return s;
}

void resolver_server_free(struct resolver_server *s)
{
    if (!s)
        return;
    struct list *lists[] = {&s->running, &s->waiting};
    for (int i = 0; i < 2; i++) {
        while (lists[i]->head) {
            struct request *r = lists[i]->head;
            list_unlink(lists[i], r);
            free(r->name);
            free(r);
        }
    }
    pm_bus_close(s->bus);
    free(s);
}
