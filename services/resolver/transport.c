#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlist.h"
#include "log.h"
#include "names.h"
#include "net.h"
#include "transport_unbound.h"

#define MAX_INFLIGHT 512  /* sockets in use at once; more queries wait their turn */
#define MAX_ATTEMPTS 4    /* UDP transmissions per query */
#define EDNS_UDP_SIZE 1232 /* the DNS flag day 2020 value: no IP fragmentation */
#define UDP_READS_PER_EVENT 8

struct xfer {
    struct resolver_transport *t;
    struct xfer *prev, *next; /* in t->active or t->waiting */
    int active;
    char name[RESOLVER_NAME_MAX];
    ldns_rr_type type;
    ldns_rdf *qname;
    uint16_t id;
    uint8_t *wire;
    size_t wirelen;
    int nattempt, nfailed;
    int fds[MAX_ATTEMPTS];
    struct event *evs[MAX_ATTEMPTS];
    struct event *timer;
    uint64_t deadline_ms;
    struct bufferevent *tcp;
    char error[160];
    resolver_transport_cb cb;
    void *arg;
};

struct xlist {
    struct xfer *head, *tail;
    int n;
};

struct resolver_transport {
    struct resolver_unbound *ub; /* the validating engine, when resolver.dnssec is on */
    struct event_base *base;
    struct resolver_ns *ns;
    int nns;
    int timeout_ms, attempts, interval_ms;
    struct xlist active, waiting;
};

static uint8_t rxbuf[65536]; /* one thread: a shared receive buffer */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int resolver_ns_parse(const char *spec, struct resolver_ns *ns)
{
    char host[64]; /* INET6_ADDRSTRLEN is 46 */
    int port = 53;
    memset(ns, 0, sizeof *ns);
    /* "host" alone (v4, or bare v6 with several colons) or "host:port" / "[v6]:port". */
    int colons = 0;
    for (const char *p = spec; *p; p++)
        colons += *p == ':';
    if (spec[0] == '[' || colons == 1) {
        if (pm_split_hostport(spec, host, sizeof host, &port) < 0 || port == 0)
            return -1;
    } else {
        if (strlen(spec) >= sizeof host)
            return -1;
        strcpy(host, spec);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ns->addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ns->addr;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        ns->len = sizeof *s4;
        snprintf(ns->text, sizeof ns->text, "%s:%d", host, port);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        ns->len = sizeof *s6;
        snprintf(ns->text, sizeof ns->text, "[%s]:%d", host, port);
    } else {
        return -1;
    }
    return 0;
}

static void list_push(struct xlist *l, struct xfer *x) { PM_DQUEUE_APPEND(l, x); }

static void list_remove(struct xlist *l, struct xfer *x) { PM_DQUEUE_REMOVE(l, x); }

static void close_udp(struct xfer *x)
{
    for (int i = 0; i < MAX_ATTEMPTS; i++) {
        if (x->evs[i])
            event_free(x->evs[i]);
        if (x->fds[i] >= 0)
            close(x->fds[i]);
        x->evs[i] = NULL;
        x->fds[i] = -1;
    }
}

static void xfer_free(struct xfer *x)
{
    close_udp(x);
    if (x->tcp)
        bufferevent_free(x->tcp);
    if (x->timer)
        event_free(x->timer);
    if (x->qname)
        ldns_rdf_deep_free(x->qname);
    free(x->wire);
    free(x);
}

static void activate(struct resolver_transport *t, struct xfer *x)
{
    x->active = 1;
    list_push(&t->active, x);
    x->deadline_ms = now_ms() + (uint64_t)t->timeout_ms;
    /* The first transmission happens from the timer so that callbacks are never made
     * from inside resolver_transport_query(). */
    struct timeval tv = {0, 0};
    evtimer_add(x->timer, &tv);
}

/* Ends a query: frees it, lets a waiting one start, then tells the caller. */
static void finish(struct xfer *x, ldns_pkt *pkt, const char *error)
{
    struct resolver_transport *t = x->t;
    resolver_transport_cb cb = x->cb;
    void *arg = x->arg;
    char why[160];
    snprintf(why, sizeof why, "%s", error ? error : "");
    list_remove(&t->active, x);
    xfer_free(x);
    if (t->waiting.head && t->active.n < MAX_INFLIGHT) {
        struct xfer *w = t->waiting.head;
        list_remove(&t->waiting, w);
        activate(t, w);
    }
    cb(pkt, RESOLVER_INSECURE, pkt ? NULL : why, arg);
}

/* Is pkt an answer to our question (id, QR, same single question)? */
static int matches(const struct xfer *x, const ldns_pkt *pkt)
{
    if (!ldns_pkt_qr(pkt) || ldns_pkt_id(pkt) != x->id)
        return 0;
    const ldns_rr_list *q = ldns_pkt_question(pkt);
    if (!q || ldns_rr_list_rr_count(q) != 1)
        return 0;
    const ldns_rr *rr = ldns_rr_list_rr(q, 0);
    return ldns_rr_get_type(rr) == x->type && ldns_dname_compare(ldns_rr_owner(rr), x->qname) == 0;
}

static int is_server_failure(ldns_pkt_rcode rc)
{
    return rc != LDNS_RCODE_NOERROR && rc != LDNS_RCODE_NXDOMAIN;
}

static int send_attempt(struct xfer *x);
static void advance(struct xfer *x);
static void arm(struct xfer *x, uint64_t ms);

/* One nameserver failed (error reply, unreachable): with several servers move on to the
 * next at once; finish when every attempt made has failed. */
static void attempt_failed(struct xfer *x, const char *why)
{
    snprintf(x->error, sizeof x->error, "%s", why);
    x->nfailed++;
    if (x->t->nns > 1 && x->nattempt < x->t->attempts)
        advance(x);
    else if (x->nfailed >= x->nattempt)
        finish(x, NULL, x->error);
}

static void on_tcp_read(struct bufferevent *bev, void *arg)
{
    struct xfer *x = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t hdr[2];
    if (evbuffer_copyout(in, hdr, 2) < 2)
        return;
    size_t len = ((size_t)hdr[0] << 8) | hdr[1];
    if (evbuffer_get_length(in) < 2 + len)
        return;
    evbuffer_drain(in, 2);
    evbuffer_remove(in, rxbuf, len);
    ldns_pkt *pkt = NULL;
    if (ldns_wire2pkt(&pkt, rxbuf, len) != LDNS_STATUS_OK || !matches(x, pkt)) {
        if (pkt)
            ldns_pkt_free(pkt);
        finish(x, NULL, "bad TCP answer");
        return;
    }
    if (is_server_failure(ldns_pkt_get_rcode(pkt))) {
        ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, (int)ldns_pkt_get_rcode(pkt));
        ldns_pkt_free(pkt);
        finish(x, NULL, lt ? lt->name : "server failure");
        return;
    }
    finish(x, pkt, NULL);
}

static void on_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct xfer *x = arg;
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
        finish(x, NULL, "TCP connection failed");
}

/* A truncated UDP answer: ask the same server again over TCP within the deadline. */
static void start_tcp(struct xfer *x, const struct resolver_ns *ns)
{
    close_udp(x);
    x->tcp = bufferevent_socket_new(x->t->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!x->tcp || bufferevent_socket_connect(x->tcp, (const struct sockaddr *)&ns->addr, (int)ns->len) < 0) {
        finish(x, NULL, "TCP connect failed");
        return;
    }
    uint8_t hdr[2] = {(uint8_t)(x->wirelen >> 8), (uint8_t)x->wirelen};
    bufferevent_write(x->tcp, hdr, 2);
    bufferevent_write(x->tcp, x->wire, x->wirelen);
    bufferevent_setcb(x->tcp, on_tcp_read, NULL, on_tcp_event, x);
    bufferevent_setwatermark(x->tcp, EV_READ, 0, 2 + 65535); /* one message at most */
    bufferevent_enable(x->tcp, EV_READ | EV_WRITE);
    arm(x, (uint64_t)x->t->timeout_ms);
}

static void on_udp_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct xfer *x = arg;
    int slot = 0;
    while (slot < MAX_ATTEMPTS && x->fds[slot] != fd)
        slot++;
    const struct resolver_ns *ns = &x->t->ns[slot % x->t->nns];
    for (int i = 0; i < UDP_READS_PER_EVENT; i++) {
        ssize_t n = recv(fd, rxbuf, sizeof rxbuf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            /* ICMP port/host unreachable on the connected socket: this server is down. */
            char why[160];
            snprintf(why, sizeof why, "%s from %s", strerror(errno), ns->text);
            event_del(x->evs[slot]);
            attempt_failed(x, why);
            return;
        }
        ldns_pkt *pkt = NULL;
        if (ldns_wire2pkt(&pkt, rxbuf, (size_t)n) != LDNS_STATUS_OK)
            continue; /* garbage: keep waiting for the real answer */
        if (!matches(x, pkt)) {
            ldns_pkt_free(pkt);
            continue;
        }
        if (ldns_pkt_tc(pkt)) {
            ldns_pkt_free(pkt);
            start_tcp(x, ns);
            return;
        }
        if (is_server_failure(ldns_pkt_get_rcode(pkt))) {
            ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, (int)ldns_pkt_get_rcode(pkt));
            char why[160];
            snprintf(why, sizeof why, "%s from %s", lt ? lt->name : "error", ns->text);
            ldns_pkt_free(pkt);
            event_del(x->evs[slot]);
            attempt_failed(x, why);
            return;
        }
        finish(x, pkt, NULL);
        return;
    }
}

/* Sends the query over a fresh connected UDP socket to the next nameserver in turn.
 * 0 if sent; -1 (x->error set, counted as failed) if not. */
static int send_attempt(struct xfer *x)
{
    struct resolver_transport *t = x->t;
    int slot = x->nattempt++;
    const struct resolver_ns *ns = &t->ns[slot % t->nns];
    int fd = socket(ns->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&ns->addr, ns->len) < 0 ||
        send(fd, x->wire, x->wirelen, 0) < 0) {
        snprintf(x->error, sizeof x->error, "%s to %s", strerror(errno), ns->text);
        x->nfailed++;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    x->fds[slot] = fd;
    x->evs[slot] = event_new(t->base, fd, EV_READ | EV_PERSIST, on_udp_read, x);
    event_add(x->evs[slot], NULL);
    return 0;
}

static void arm(struct xfer *x, uint64_t ms)
{
    uint64_t now = now_ms();
    uint64_t left = x->deadline_ms > now ? x->deadline_ms - now : 0;
    if (ms > left)
        ms = left;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(x->timer, &tv);
}

/* Transmits to the next server that takes the packet, then waits an interval; when no
 * attempt is left, waits for the outstanding ones until the deadline. */
static void advance(struct xfer *x)
{
    struct resolver_transport *t = x->t;
    while (x->nattempt < t->attempts) {
        if (send_attempt(x) == 0) {
            arm(x, (uint64_t)t->interval_ms);
            return;
        }
    }
    if (x->nfailed >= x->nattempt)
        finish(x, NULL, x->error);
    else
        arm(x, (uint64_t)t->timeout_ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct xfer *x = arg;
    if (x->tcp || x->nattempt >= x->t->attempts || now_ms() + 10 >= x->deadline_ms) {
        finish(x, NULL, x->nfailed && x->error[0] ? x->error : "timeout");
        return;
    }
    advance(x);
}

struct resolver_transport *resolver_transport_new(struct event_base *base, const struct resolver_ns *ns, int nns,
                                                  int timeout_ms)
{
    struct resolver_transport *t = calloc(1, sizeof *t);
    if (!t || nns <= 0)
        goto fail;
    t->ns = calloc((size_t)nns, sizeof *ns);
    if (!t->ns)
        goto fail;
    memcpy(t->ns, ns, (size_t)nns * sizeof *ns);
    t->nns = nns;
    t->base = base;
    t->timeout_ms = timeout_ms;
    t->attempts = nns >= 2 ? (nns < MAX_ATTEMPTS ? nns : MAX_ATTEMPTS) : 2;
    t->interval_ms = timeout_ms / t->attempts;
    return t;
fail:
    if (t)
        free(t->ns);
    free(t);
    return NULL;
}

struct resolver_transport *resolver_transport_new_unbound(struct event_base *base, const struct resolver_ns *ns,
                                                          int nns, int timeout_ms,
                                                          const struct resolver_unbound_conf *conf, char *err,
                                                          size_t errsize)
{
    struct resolver_transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    t->ub = resolver_unbound_new(base, ns, nns, timeout_ms, conf, err, errsize);
    if (!t->ub) {
        free(t);
        return NULL;
    }
    t->base = base;
    return t;
}

void resolver_transport_free(struct resolver_transport *t)
{
    if (!t)
        return;
    if (t->ub) {
        resolver_unbound_free(t->ub);
        free(t);
        return;
    }
    while (t->active.head) {
        struct xfer *x = t->active.head;
        list_remove(&t->active, x);
        xfer_free(x);
    }
    while (t->waiting.head) {
        struct xfer *x = t->waiting.head;
        list_remove(&t->waiting, x);
        xfer_free(x);
    }
    free(t->ns);
    free(t);
}

int resolver_transport_query(struct resolver_transport *t, const char *name, ldns_rr_type type,
                             resolver_transport_cb cb, void *arg)
{
    if (t->ub)
        return resolver_unbound_query(t->ub, name, type, cb, arg);
    struct xfer *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    for (int i = 0; i < MAX_ATTEMPTS; i++)
        x->fds[i] = -1;
    x->t = t;
    x->type = type;
    x->cb = cb;
    x->arg = arg;
    snprintf(x->name, sizeof x->name, "%s", name);
    x->qname = ldns_dname_new_frm_str(name);
    ldns_pkt *q = NULL;
    if (x->qname) {
        ldns_rdf *owner = ldns_rdf_clone(x->qname);
        q = owner ? ldns_pkt_query_new(owner, type, LDNS_RR_CLASS_IN, LDNS_RD) : NULL;
    }
    if (!q) {
        xfer_free(x);
        return -1;
    }
    x->id = (uint16_t)arc4random_uniform(65536);
    ldns_pkt_set_id(q, x->id);
    ldns_pkt_set_edns_udp_size(q, EDNS_UDP_SIZE);
    ldns_status st = ldns_pkt2wire(&x->wire, q, &x->wirelen);
    ldns_pkt_free(q);
    x->timer = evtimer_new(t->base, on_timer, x);
    if (st != LDNS_STATUS_OK || !x->timer) {
        xfer_free(x);
        return -1;
    }
    if (t->active.n < MAX_INFLIGHT)
        activate(t, x);
    else
        list_push(&t->waiting, x);
    return 0;
}

int resolver_transport_inflight(const struct resolver_transport *t)
{
    return t->ub ? resolver_unbound_inflight(t->ub) : t->active.n + t->waiting.n;
}
