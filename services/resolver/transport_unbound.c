#include "transport_unbound.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound-event.h>
#include <unbound.h>

#include "clock.h"
#include "dlist.h"
#include "log.h"
#include "names.h"

#define MAX_INFLIGHT 256 /* questions inside libunbound at once; more wait their turn */

/* Default local zones libunbound would answer itself (RFC 6761 names, localhost; the AS112
 * reverse zones go with unblock-lan-zones): the ldns engine asks the nameservers for every
 * name, so this one does too. Removed once the context is final (a "nodefault" local-zone
 * option is not taken through ub_ctx_set_option). */
static const char *const default_zones[] = {
    "localhost.", "127.in-addr.arpa.", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
    "home.arpa.", "resolver.arpa.", "service.arpa.", "onion.", "test.", "invalid.", "local.",
    NULL,
};

struct uq {
    struct uq *prev, *next; /* in u->active or u->waiting */
    struct resolver_unbound *u;
    char name[RESOLVER_NAME_MAX];
    int type;
    int async_id;
    int started;  /* handed to libunbound (the timer then is the deadline) */
    int starting; /* inside ub_resolve_event: an answer from its cache comes at once */
    int answered; /* ... and is kept here until ub_resolve_event returns */
    uint64_t asked_ms; /* when the caller asked (pm_mono_ms) */
    ldns_pkt *pkt;
    enum resolver_security sec;
    char error[256];
    struct event *timer;
    resolver_transport_cb cb;
    void *arg;
};

struct qlist {
    struct uq *head, *tail;
    int n;
};

struct resolver_unbound {
    struct ub_ctx *ctx;
    FILE *devnull; /* libunbound's own log: our log is one key=value line per event */
    int timeout_ms;
    struct event_base *base;
    struct qlist active, waiting;
};

static void list_push(struct qlist *l, struct uq *x) { PM_DQUEUE_APPEND(l, x); }

static void list_remove(struct qlist *l, struct uq *x) { PM_DQUEUE_REMOVE(l, x); }

int resolver_unbound_fwd_text(const struct resolver_ns *ns, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    int port;
    if (ns->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ns->addr;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        port = ntohs(s4->sin_port);
    } else if (ns->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ns->addr;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        port = ntohs(s6->sin6_port);
    } else {
        return -1;
    }
    int n = snprintf(out, size, "%s@%d", host, port);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void activate(struct resolver_unbound *u, struct uq *x)
{
    list_push(&u->active, x);
    /* Started from the timer, so that no callback is made from inside the query call. */
    struct timeval tv = {0, 0};
    evtimer_add(x->timer, &tv);
}

static void uq_free(struct uq *x)
{
    if (x->timer)
        event_free(x->timer);
    if (x->pkt)
        ldns_pkt_free(x->pkt);
    free(x);
}

/* Ends a query: lets a waiting one start, then tells the caller. */
static void finish(struct uq *x, ldns_pkt *pkt, enum resolver_security sec, const char *error)
{
    struct resolver_unbound *u = x->u;
    resolver_transport_cb cb = x->cb;
    void *arg = x->arg;
    char why[256];
    snprintf(why, sizeof why, "%s", error ? error : "");
    if (x->pkt == pkt)
        x->pkt = NULL; /* handed on */
    list_remove(&u->active, x);
    uq_free(x);
    if (u->waiting.head && u->active.n < MAX_INFLIGHT) {
        struct uq *w = u->waiting.head;
        list_remove(&u->waiting, w);
        activate(u, w);
    }
    cb(pkt, sec, pkt ? NULL : why, arg);
}

/* libunbound's answer: the validated message, its security (0 insecure, 1 bogus, 2 secure)
 * and for bogus the validator's reason. A server failure comes as rcode with no packet. */
static void on_answer(void *mydata, int rcode, void *packet, int len, int sec, char *why_bogus, int ratelimited)
{
    (void)ratelimited;
    struct uq *x = mydata;
    ldns_pkt *pkt = NULL;
    enum resolver_security s = RESOLVER_INSECURE;
    x->error[0] = '\0';
    if (sec == 1) {
        s = RESOLVER_BOGUS;
        int n = snprintf(x->error, sizeof x->error, "DNSSEC validation failed: %s",
                         why_bogus && why_bogus[0] ? why_bogus : "bogus answer");
        /* The reason quotes names from the zone: printable ASCII only, for replies and logs. */
        for (int i = 0; i < n && i < (int)sizeof x->error - 1; i++)
            if ((unsigned char)x->error[i] < 0x20 || (unsigned char)x->error[i] > 0x7e)
                x->error[i] = '?';
    } else if (packet && len > 0 && ldns_wire2pkt(&pkt, packet, (size_t)len) == LDNS_STATUS_OK) {
        int rc = rcode ? rcode : (int)ldns_pkt_get_rcode(pkt);
        if (rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN) {
            ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, rc);
            snprintf(x->error, sizeof x->error, "%s", lt ? lt->name : "server failure");
            ldns_pkt_free(pkt);
            pkt = NULL;
        } else {
            s = sec == 2 ? RESOLVER_SECURE : RESOLVER_INSECURE;
        }
    } else {
        ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, rcode ? rcode : LDNS_RCODE_SERVFAIL);
        snprintf(x->error, sizeof x->error, "%s", packet ? "bad answer" : lt ? lt->name : "server failure");
        if (pkt)
            ldns_pkt_free(pkt);
        pkt = NULL;
    }
    if (x->starting) {
        x->answered = 1;
        x->pkt = pkt;
        x->sec = s;
        return;
    }
    finish(x, pkt, s, x->error);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct uq *x = arg;
    struct resolver_unbound *u = x->u;
    if (x->started) {
        /* The deadline: libunbound forgets the callback; its own retries end by themselves. */
        ub_cancel(u->ctx, x->async_id);
        finish(x, NULL, RESOLVER_INSECURE, "timeout");
        return;
    }
    if (pm_mono_ms() - x->asked_ms >= (uint64_t)u->timeout_ms) {
        /* It waited its whole time in line (MAX_INFLIGHT busy, e.g. a zone that never
         * answers): asking now would only spend a slot on an answer nobody waits for, and
         * let a backlog of stale questions delay every fresh one. */
        finish(x, NULL, RESOLVER_INSECURE, "timeout (waited in line)");
        return;
    }
    x->started = 1;
    x->starting = 1;
    int rc = ub_resolve_event(u->ctx, x->name, x->type, LDNS_RR_CLASS_IN, x, on_answer, &x->async_id);
    x->starting = 0;
    if (rc != 0) {
        finish(x, NULL, RESOLVER_INSECURE, ub_strerror(rc));
        return;
    }
    if (x->answered) {
        finish(x, x->pkt, x->sec, x->error);
        return;
    }
    struct timeval tv = {u->timeout_ms / 1000, (suseconds_t)(u->timeout_ms % 1000) * 1000};
    evtimer_add(x->timer, &tv);
}

int resolver_unbound_query(struct resolver_unbound *u, const char *name, ldns_rr_type type, resolver_transport_cb cb,
                           void *arg)
{
    if (!name[0] || strlen(name) >= RESOLVER_NAME_MAX)
        return -1;
    struct uq *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    x->u = u;
    snprintf(x->name, sizeof x->name, "%s", name);
    x->type = (int)type;
    x->cb = cb;
    x->arg = arg;
    x->asked_ms = pm_mono_ms();
    x->timer = evtimer_new(u->base, on_timer, x);
    if (!x->timer) {
        free(x);
        return -1;
    }
    if (u->active.n < MAX_INFLIGHT)
        activate(u, x);
    else
        list_push(&u->waiting, x);
    return 0;
}

int resolver_unbound_inflight(const struct resolver_unbound *u) { return u->active.n + u->waiting.n; }

static void on_warmup(void *mydata, int rcode, void *packet, int len, int sec, char *why_bogus, int ratelimited)
{
    (void)rcode, (void)packet, (void)len, (void)sec, (void)why_bogus, (void)ratelimited;
    *(int *)mydata = 1;
}

#define WARMUP_NAME "warmup.postmesh.invalid."

static int set(struct resolver_unbound *u, const char *opt, const char *val, char *err, size_t errsize)
{
    int rc = ub_ctx_set_option(u->ctx, opt, val);
    if (rc != 0)
        snprintf(err, errsize, "libunbound option %s %s: %s", opt, val, ub_strerror(rc));
    return rc ? -1 : 0;
}

static int configure(struct resolver_unbound *u, const struct resolver_ns *ns, int nns,
                     const struct resolver_unbound_conf *conf, char *err, size_t errsize)
{
    char num[32];
    /* Our nameservers are often on loopback (a local recursor, the tests' servers). */
    if (set(u, "do-not-query-localhost:", "no", err, errsize) < 0)
        return -1;
    /* Its caches never keep an answer longer than ours (cache.c): a day at most, a negative
     * answer resolver.negative_ttl at most, a bogus one not at all (TEMPFAIL is never kept). */
    snprintf(num, sizeof num, "%u", conf->max_ttl);
    if (set(u, "cache-max-ttl:", num, err, errsize) < 0)
        return -1;
    snprintf(num, sizeof num, "%u", conf->negative_ttl);
    if (set(u, "cache-max-negative-ttl:", num, err, errsize) < 0 || set(u, "val-bogus-ttl:", "0", err, errsize) < 0)
        return -1;
    /* Ask the nameservers for every name, as the ldns engine does; no queries of its own. */
    if (set(u, "unblock-lan-zones:", "yes", err, errsize) < 0 || set(u, "insecure-lan-zones:", "yes", err, errsize) < 0 ||
        set(u, "trust-anchor-signaling:", "no", err, errsize) < 0 ||
        set(u, "root-key-sentinel:", "no", err, errsize) < 0 || set(u, "prefetch:", "no", err, errsize) < 0 ||
        set(u, "serve-expired:", "no", err, errsize) < 0)
        return -1;
    /* The reason of a bogus answer (why_bogus) is gathered from val-log-level 2; the lines
     * it logs go to devnull, we log the reason ourselves. */
    if (set(u, "val-log-level:", "2", err, errsize) < 0)
        return -1;
    snprintf(num, sizeof num, "%d", 2 * MAX_INFLIGHT);
    if (set(u, "num-queries-per-thread:", num, err, errsize) < 0)
        return -1;
    for (int i = 0; i < nns; i++) {
        char fwd[96];
        int rc = resolver_unbound_fwd_text(&ns[i], fwd, sizeof fwd) < 0 ? UB_SYNTAX : ub_ctx_set_fwd(u->ctx, fwd);
        if (rc != 0) {
            snprintf(err, errsize, "nameserver %s: %s", ns[i].text, ub_strerror(rc));
            return -1;
        }
    }
    for (int i = 0; i < conf->nanchors; i++) {
        int rc = ub_ctx_add_ta(u->ctx, conf->anchors[i]);
        if (rc != 0) {
            snprintf(err, errsize, "trust anchor \"%s\": %s", conf->anchors[i], ub_strerror(rc));
            return -1;
        }
    }
    /* Finalize now (anchors parsed, caches and modules made) and make the event worker
     * (its sockets' setup, OpenSSL's context) with one question answered from local data:
     * everything that reads a file happens here, before the sandbox. */
    int rc = ub_ctx_data_add(u->ctx, WARMUP_NAME " 0 IN A 127.0.0.1");
    if (rc != 0) {
        snprintf(err, errsize, "libunbound setup (trust anchors, options): %s", ub_strerror(rc));
        return -1;
    }
    int answered = 0, id = 0;
    rc = ub_resolve_event(u->ctx, WARMUP_NAME, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, &answered, on_warmup, &id);
    if (rc != 0) {
        snprintf(err, errsize, "libunbound start: %s", ub_strerror(rc));
        return -1;
    }
    if (!answered)
        ub_cancel(u->ctx, id);
    ub_ctx_data_remove(u->ctx, WARMUP_NAME);
    ub_ctx_zone_remove(u->ctx, WARMUP_NAME);
    for (const char *const *z = default_zones; *z; z++)
        ub_ctx_zone_remove(u->ctx, *z);
    return 0;
}

struct resolver_unbound *resolver_unbound_new(struct event_base *base, const struct resolver_ns *ns, int nns,
                                              int timeout_ms, const struct resolver_unbound_conf *conf, char *err,
                                              size_t errsize)
{
    struct resolver_unbound *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    u->base = base;
    u->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
    u->ctx = nns > 0 ? ub_ctx_create_event(base) : NULL;
    u->devnull = fopen("/dev/null", "w");
    if (!u->ctx || !u->devnull) {
        snprintf(err, errsize, "%s", nns > 0 ? "libunbound: cannot create a context" : "no nameserver");
        resolver_unbound_free(u);
        return NULL;
    }
    if (configure(u, ns, nns, conf, err, errsize) < 0) {
        resolver_unbound_free(u);
        return NULL;
    }
    ub_ctx_debugout(u->ctx, u->devnull);
    return u;
}

void resolver_unbound_free(struct resolver_unbound *u)
{
    if (!u)
        return;
    struct qlist *lists[] = {&u->active, &u->waiting};
    for (int i = 0; i < 2; i++) {
        while (lists[i]->head) {
            struct uq *x = lists[i]->head;
            if (x->started && u->ctx)
                ub_cancel(u->ctx, x->async_id);
            list_remove(lists[i], x);
            uq_free(x);
        }
    }
    if (u->ctx)
        ub_ctx_delete(u->ctx);
    if (u->devnull)
        fclose(u->devnull);
    free(u);
}
