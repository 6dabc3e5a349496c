#include "server.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "lookup.h"

#define MAX_OUTSTANDING 10000 /* lookups in progress; past this, answer TEMPFAIL at once */

struct request {
    struct request *prev, *next;
    struct resolver_server *s;
    uint64_t request_id;
    size_t peerlen;
    uint8_t peer[256];
};

struct resolver_server {
    struct pm_bus *bus;
    struct resolver_queries *q;
    struct request *head; /* outstanding, so shutdown can free them */
    int outstanding;
};

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

static void on_done(Postmesh__ResolveReply *reply, void *arg)
{
    struct request *r = arg;
    struct resolver_server *s = r->s;
    send_reply(s, r->peer, r->peerlen, r->request_id, reply);
    if (r->prev)
        r->prev->next = r->next;
    else
        s->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    s->outstanding--;
    free(r);
}

static void on_message(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)bus;
    struct resolver_server *s = arg;
    if (msg->body_case != POSTMESH__BUS_MESSAGE__BODY_RESOLVE || !msg->resolve || !peer) {
        pm_log(PM_WARN, "event=bus_drop reason=unexpected_message body=%d", (int)msg->body_case);
        return;
    }
    char kind[16];
    pm_metric_enum(&postmesh__resolve_request__kind__descriptor, (int)msg->resolve->kind, kind, sizeof kind);
    pm_metric_add(PM_M_RESOLVER_QUERIES, 1, kind, NULL);
    if (s->outstanding >= MAX_OUTSTANDING || peerlen > sizeof ((struct request *)0)->peer) {
        Postmesh__ResolveReply busy = POSTMESH__RESOLVE_REPLY__INIT;
        busy.status = POSTMESH__RESOLVE_REPLY__STATUS__TEMPFAIL;
        busy.dsn_status = "4.4.3";
        busy.text = "resolver overloaded";
        pm_log(PM_WARN, "event=overloaded outstanding=%d", s->outstanding);
        send_reply(s, peer, peerlen, msg->request_id, &busy);
        return;
    }
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->s = s;
    r->request_id = msg->request_id;
    r->peerlen = peerlen;
    memcpy(r->peer, peer, peerlen);
    r->next = s->head;
    if (s->head)
        s->head->prev = r;
    s->head = r;
    s->outstanding++;
    resolver_lookup_start(s->q, msg->resolve, on_done, r); /* may answer before returning */
}

/* smtpd asks for its client checks (PTR, A), the mta for MX and addresses; a Resolve is a
 * name and a type. */
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
    while (s->head) {
        struct request *r = s->head;
        s->head = r->next;
        free(r);
    }
    pm_bus_close(s->bus);
    free(s);
}
