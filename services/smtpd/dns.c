/* smtpd's DNS over the resolver (dns.h): a per-sandbox answer cache, one resolver request
 * shared by every identical question in flight, and a timer per question. The pure parts
 * (answers, the cache, the flight table) are in dnscache.c, with their unit test. */
#include "dns.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dnscache.h"
#include "log.h"
#include "resolverclient.h"
#include "server.h"

/* A resolver request outlives the questions that wait on it (their own timers end them), so
 * its answer still reaches the cache; it is given up after this at the latest. */
#define FLIGHT_MIN_MS 5000
#define FLIGHT_MAX_MS 30000
/* The resolver not connected for this long: lookups answer TEMPFAIL (at once, while it stays
 * so) instead of each waiting out its timeout; long enough for the first connect's handshake. */
#define SEND_WINDOW_MS 500

struct qlist {
    struct smtpd_dns_query *head, *tail;
};

struct smtpd_dns_query {
    struct smtpd_dns *d;
    struct qlist *on; /* the list it is on: its flight's waiters, the ready list, a delivery */
    struct smtpd_dns_query *prev, *next;
    struct smtpd_dns_flight *f; /* while waiting on a flight */
    struct smtpd_dns_result *ready; /* the answer it gets from the loop (a reference) */
    struct event *timer;
    smtpd_dns_done done;
    void *arg;
};

/* One resolver request and who waits for it; keyed in the flight table (dnscache.h). */
struct smtpd_dns_flight {
    struct smtpd_dns *d;
    enum smtpd_dns_type type;
    uint64_t handle;
    struct qlist waiters;
    char name[SMTPD_DNS_NAME_MAX + 1];
};

struct smtpd_dns {
    struct smtpd_server *srv;
    struct pm_resolver_client *client; /* NULL: no resolver.endpoint; every lookup TEMPFAIL */
    struct smtpd_dns_cache *cache;
    struct smtpd_dns_flights *flights;
    struct qlist ready; /* answered from the cache (or failed at once), called from the loop */
    struct event *soon;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void list_push(struct qlist *l, struct smtpd_dns_query *q)
{
    q->on = l;
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
}

static void list_unlink(struct smtpd_dns_query *q)
{
    struct qlist *l = q->on;
    if (!l)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
    q->on = NULL;
}

static void query_free(struct smtpd_dns_query *q)
{
    list_unlink(q);
    if (q->timer)
        event_free(q->timer);
    smtpd_dns_result_unref(q->ready);
    free(q);
}

/* Calls back every query on l with its own answer (or r for all), one at a time: a callback
 * may cancel another query of the list, which then simply leaves it. */
static void deliver(struct qlist *l, const struct smtpd_dns_result *r)
{
    struct qlist local = {0};
    while (l->head) {
        struct smtpd_dns_query *q = l->head;
        list_unlink(q);
        list_push(&local, q);
    }
    while (local.head) {
        struct smtpd_dns_query *q = local.head;
        list_unlink(q);
        q->f = NULL;
        const struct smtpd_dns_result *mine = q->ready ? q->ready : r;
        struct smtpd_dns_answer a = {mine->status, (const char *const *)mine->records, mine->n, mine->ttl};
        q->done(q->arg, &a);
        query_free(q);
    }
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_dns *d = arg;
    deliver(&d->ready, NULL);
}

/* q is answered r from the event loop (takes a reference of r). */
static void answer_soon(struct smtpd_dns *d, struct smtpd_dns_query *q, struct smtpd_dns_result *r)
{
    q->ready = r;
    list_push(&d->ready, q);
    event_active(d->soon, EV_TIMEOUT, 0);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_dns_query *q = arg;
    list_unlink(q);
    q->f = NULL; /* the flight goes on: its answer still fills the cache */
    struct qlist one = {0};
    list_push(&one, q);
    smtpd_dns_result_unref(q->ready);
    q->ready = NULL;
    deliver(&one, smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL));
}

static void on_reply(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    struct smtpd_dns_flight *f = arg;
    struct smtpd_dns *d = f->d;
    smtpd_dns_flights_remove(d->flights, f->type, f->name);
    struct smtpd_dns_result *r = smtpd_dns_result_from_reply(f->type, reply);
    if (!r)
        r = smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL);
    if (error) {
        char name[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=dns_tempfail name=%s type=%s error=%s", PM_LOGV(name, f->name),
               smtpd_dns_type_name(f->type), PM_LOGV(why, error));
    }
    smtpd_dns_cache_put(d->cache, f->type, f->name, r, now_ms());
    deliver(&f->waiters, r);
    smtpd_dns_result_unref(r);
    free(f);
}

struct smtpd_dns *smtpd_dns_new(struct smtpd_server *srv)
{
    struct smtpd_dns *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->srv = srv;
    const char *ep = srv->cfg->resolver.endpoint;
    if (ep && *ep)
        d->client = pm_resolver_client_new(srv->base, ep, SEND_WINDOW_MS);
    d->cache = smtpd_dns_cache_new(SMTPD_DNS_CACHE_ENTRIES, SMTPD_DNS_CACHE_BYTES);
    d->flights = smtpd_dns_flights_new();
    d->soon = event_new(srv->base, -1, 0, on_soon, d);
    if ((ep && *ep && !d->client) || !d->cache || !d->flights || !d->soon) {
        smtpd_dns_free(d);
        return NULL;
    }
    return d;
}

int smtpd_dns_connect(struct smtpd_server *srv)
{
    return srv->dns && srv->dns->client ? pm_resolver_client_connect(srv->dns->client) : -1;
}

static void free_flight(struct smtpd_dns_flight *f, void *arg)
{
    (void)arg;
    while (f->waiters.head)
        query_free(f->waiters.head);
    free(f);
}

void smtpd_dns_free(struct smtpd_dns *d)
{
    if (!d)
        return;
    pm_resolver_client_free(d->client); /* no reply can arrive after this */
    if (d->flights)
        smtpd_dns_flights_free(d->flights, free_flight, NULL);
    while (d->ready.head)
        query_free(d->ready.head);
    smtpd_dns_cache_free(d->cache);
    if (d->soon)
        event_free(d->soon);
    free(d);
}

static Postmesh__ResolveRequest__Kind kind_of(enum smtpd_dns_type t)
{
    switch (t) {
    case SMTPD_DNS_TXT: return POSTMESH__RESOLVE_REQUEST__KIND__TXT;
    case SMTPD_DNS_MX: return POSTMESH__RESOLVE_REQUEST__KIND__MX;
    case SMTPD_DNS_PTR: return POSTMESH__RESOLVE_REQUEST__KIND__PTR;
    default: return POSTMESH__RESOLVE_REQUEST__KIND__A;
    }
}

struct smtpd_dns_query *smtpd_dns_lookup(struct smtpd_server *srv, enum smtpd_dns_type type, const char *name,
                                         long timeout_ms, smtpd_dns_done done, void *arg)
{
    struct smtpd_dns *d = srv->dns;
    struct smtpd_dns_query *q = calloc(1, sizeof *q);
    if (!q || !d) {
        free(q);
        return NULL;
    }
    q->d = d;
    q->done = done;
    q->arg = arg;
    char key[SMTPD_DNS_NAME_MAX + 1];
    if (smtpd_dns_key(name, key, sizeof key) < 0) {
        answer_soon(d, q, smtpd_dns_result_static(SMTPD_DNS_PERMFAIL));
        return q;
    }
    uint64_t now = now_ms();
    struct smtpd_dns_result *hit = smtpd_dns_cache_get(d->cache, type, key, now);
    if (hit) {
        answer_soon(d, q, hit);
        return q;
    }
    if (!d->client) {
        answer_soon(d, q, smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL));
        return q;
    }
    q->timer = evtimer_new(srv->base, on_timeout, q);
    if (!q->timer) {
        free(q);
        return NULL;
    }
    if (timeout_ms < 1)
        timeout_ms = 1;
    struct smtpd_dns_flight *f = smtpd_dns_flights_find(d->flights, type, key);
    if (!f) {
        if (smtpd_dns_flights_count(d->flights) >= SMTPD_DNS_MAX_FLIGHTS || !(f = calloc(1, sizeof *f))) {
            event_free(q->timer);
            q->timer = NULL;
            answer_soon(d, q, smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL));
            return q;
        }
        f->d = d;
        f->type = type;
        snprintf(f->name, sizeof f->name, "%s", key);
        long flight_ms = timeout_ms < FLIGHT_MIN_MS ? FLIGHT_MIN_MS : timeout_ms > FLIGHT_MAX_MS ? FLIGHT_MAX_MS : timeout_ms;
        f->handle = pm_resolve(d->client, kind_of(type), key, flight_ms, on_reply, f);
        if (!f->handle || smtpd_dns_flights_add(d->flights, type, f->name, f) < 0) {
            pm_resolve_cancel(d->client, f->handle);
            free(f);
            event_free(q->timer);
            q->timer = NULL;
            answer_soon(d, q, smtpd_dns_result_static(SMTPD_DNS_TEMPFAIL));
            return q;
        }
    }
    q->f = f;
    list_push(&f->waiters, q);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(q->timer, &tv);
    return q;
}

void smtpd_dns_cancel(struct smtpd_dns_query *q)
{
    if (q)
        query_free(q);
}
