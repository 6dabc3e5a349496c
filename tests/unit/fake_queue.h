/* The queue's end of the bus for unit tests of its workers (job client, bouncer): a real
 * ZeroMQ ROUTER on loopback in the test's own event loop that records a copy of every
 * message it receives, and bounded waits on those records. Header-only: each test program
 * is one file (tests/unit/test_<svc>_<what>.c) plus its libraries; `static inline` keeps
 * the helpers a test does not use from being warnings. */
#ifndef FAKE_QUEUE_H
#define FAKE_QUEUE_H
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "config.h"

#define FQ_MAX_RECORDS 256

struct fq_record {
    uint8_t peer[256];
    size_t peerlen;
    Postmesh__BusMessage *m;
};

struct fake_queue {
    struct event_base *base;
    struct event *tick;
    struct pm_bus *router; /* NULL while the queue is "away" */
    char endpoint[128];
    int port;
    struct fq_record rec[FQ_MAX_RECORDS];
    int n;
    int breaks; /* loop iterations that ended with event_base_loopbreak (a drain) */
};

/* The bus frees messages after the handler: keep a copy made by packing and unpacking. */
static inline void fq_on_router(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg, void *arg)
{
    (void)bus;
    struct fake_queue *q = arg;
    if (q->n >= FQ_MAX_RECORDS)
        return;
    size_t len = postmesh__bus_message__get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    postmesh__bus_message__pack(msg, buf);
    struct fq_record *r = &q->rec[q->n++];
    r->m = postmesh__bus_message__unpack(NULL, len, buf);
    free(buf);
    r->peerlen = peerlen < sizeof r->peer ? peerlen : sizeof r->peer;
    memcpy(r->peer, peer, r->peerlen);
}

static inline void fq_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* What the fake queue takes: what a real one takes from workers and submitters (the tests
 * run without CurveZMQ, so no role is checked). */
static const struct pm_bus_rule fq_rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_SUBMIT, ~0u, 0},
    {POSTMESH__BUS_MESSAGE__BODY_CREDIT, ~0u, 0},
    {POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, ~0u, 0},
    {POSTMESH__BUS_MESSAGE__BODY_PING, ~0u, 0},
    {0, 0, 0},
};
static const struct pm_bus_policy fq_policy = {.max_message = 64 << 20, .rules = fq_rules};

/* A loop, a 20 ms tick (so every wait is bounded in time) and a ROUTER on a free port. */
static inline void fq_open(struct fake_queue *q)
{
    q->base = event_base_new();
    q->tick = event_new(q->base, -1, EV_PERSIST, fq_on_tick, NULL);
    struct timeval tv = {0, 20 * 1000};
    event_add(q->tick, &tv);
    q->router = pm_bus_bind(q->base, ZMQ_ROUTER, "tcp://127.0.0.1:*", &fq_policy, fq_on_router, q);
    assert_non_null(q->router);
    size_t len = sizeof q->endpoint;
    assert_int_equal(zmq_getsockopt(pm_bus_socket(q->router), ZMQ_LAST_ENDPOINT, q->endpoint, &len), 0);
    const char *colon = strrchr(q->endpoint, ':');
    assert_non_null(colon);
    q->port = atoi(colon + 1);
}

/* After the worker under test was freed. */
static inline void fq_close(struct fake_queue *q)
{
    pm_bus_close(q->router);
    event_free(q->tick);
    event_base_free(q->base);
    for (int i = 0; i < q->n; i++)
        if (q->rec[i].m)
            postmesh__bus_message__free_unpacked(q->rec[i].m, NULL);
}

static inline int fq_count(const struct fake_queue *q, Postmesh__BusMessage__BodyCase c)
{
    int k = 0;
    for (int i = 0; i < q->n; i++)
        k += q->rec[i].m && q->rec[i].m->body_case == c;
    return k;
}

/* The k-th (0-based) recorded message of a kind, or NULL. */
static inline struct fq_record *fq_nth(struct fake_queue *q, Postmesh__BusMessage__BodyCase c, int k)
{
    for (int i = 0; i < q->n; i++)
        if (q->rec[i].m && q->rec[i].m->body_case == c && k-- == 0)
            return &q->rec[i];
    return NULL;
}

static inline struct fq_record *fq_last(struct fake_queue *q, Postmesh__BusMessage__BodyCase c)
{
    int k = fq_count(q, c);
    return k ? fq_nth(q, c, k - 1) : NULL;
}

/* One loop iteration; counts a break by the worker (libevent resets the flag when the next
 * iteration starts, so it is read here). */
static inline void fq_step(struct fake_queue *q)
{
    event_base_loop(q->base, EVLOOP_ONCE);
    q->breaks += event_base_got_break(q->base);
}

/* Runs the loop until at least n messages of kind c were received, or timeout_ms passed. */
static inline int fq_wait_count(struct fake_queue *q, Postmesh__BusMessage__BodyCase c, int n, int timeout_ms)
{
    uint64_t deadline = pm_mono_ms() + (uint64_t)timeout_ms;
    while (fq_count(q, c) < n && pm_mono_ms() < deadline)
        fq_step(q);
    return fq_count(q, c) >= n;
}

static inline void fq_run_for(struct fake_queue *q, int ms)
{
    uint64_t deadline = pm_mono_ms() + (uint64_t)ms;
    while (pm_mono_ms() < deadline)
        fq_step(q);
}

/* Waits for a Credit recorded after the first `after` records; returns it or NULL. */
static inline Postmesh__Credit *fq_wait_credit_after(struct fake_queue *q, int after, int timeout_ms)
{
    uint64_t deadline = pm_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        for (int i = after; i < q->n; i++)
            if (q->rec[i].m && q->rec[i].m->body_case == POSTMESH__BUS_MESSAGE__BODY_CREDIT)
                return q->rec[i].m->credit;
        if (pm_mono_ms() >= deadline)
            return NULL;
        fq_step(q);
    }
}

/* Waits for a Credit recorded after the first `after` records and checks what it offers:
 * credits free slots and jobs_received jobs counted (FQ_ANY: not checked). Returns it. */
#define FQ_ANY (-1)
static inline Postmesh__Credit *fq_expect_credit(struct fake_queue *q, int after, int timeout_ms, int credits,
                                                 long long received)
{
    Postmesh__Credit *c = fq_wait_credit_after(q, after, timeout_ms);
    assert_non_null(c);
    if (credits != FQ_ANY)
        assert_int_equal(c->credits, credits);
    if (received != FQ_ANY)
        assert_true(c->jobs_received == (uint64_t)received);
    return c;
}

/* Whether some socket of this host still holds an open TCP connection to 127.0.0.1:port
 * (ESTABLISHED or CLOSE_WAIT): the client's DEALER, until it noticed the queue went away. */
static inline int fq_connected_to(int port)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    assert_non_null(fp);
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, fp)) {
        unsigned rport, st;
        if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &st) == 2 && (int)rport == port &&
            (st == 0x01 || st == 0x08))
            found = 1;
    }
    fclose(fp);
    return found;
}

/* The queue goes away: the ROUTER closes, and the test waits until the client's DEALER has
 * seen the connection end (before that a send could still be queued on the dying pipe). */
static inline void fq_go_away(struct fake_queue *q)
{
    pm_bus_close(q->router);
    q->router = NULL;
    uint64_t deadline = pm_mono_ms() + 5000;
    while (fq_connected_to(q->port) && pm_mono_ms() < deadline)
        fq_step(q);
    assert_false(fq_connected_to(q->port));
    fq_run_for(q, 50); /* the DEALER's own thread learns of the closed pipe through its ZMQ_FD */
}

/* The queue comes back at the same endpoint (the closed listener may take a moment to go). */
static inline void fq_come_back(struct fake_queue *q)
{
    uint64_t deadline = pm_mono_ms() + 5000;
    while (!(q->router = pm_bus_bind(q->base, ZMQ_ROUTER, q->endpoint, &fq_policy, fq_on_router, q)) &&
           pm_mono_ms() < deadline)
        fq_run_for(q, 20);
    assert_non_null(q->router);
}

/* The worker's logic is under test, not CurveZMQ: plain tcp on loopback (group setup). */
static inline int fq_setup_security(void **state)
{
    (void)state;
    static struct pm_config cfg;
    cfg.bus.curve = 0;
    cfg.state_dir = "/nonexistent";
    cfg.queue.endpoint = "";
    cfg.queue.control = "";
    cfg.resolver.endpoint = "";
    pm_bus_security_init(&cfg, "fake-queue-test");
    return 0;
}

static inline int fq_teardown_context(void **state)
{
    (void)state;
    pm_bus_context_term();
    return 0;
}

#endif
