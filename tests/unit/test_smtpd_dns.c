/* smtpd's DNS over the bus (services/smtpd/dns.c) against a stand-in resolver (a ROUTER the
 * test answers by hand, without CurveZMQ): identical questions in flight share one request,
 * answers come from the event loop only (also from the cache), the cache answers a repeated
 * question without a request, a question nobody answers ends TEMPFAIL at its timeout, a
 * cancelled one is never called back, and without resolver.endpoint every lookup is TEMPFAIL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "smtpd/dns.h"
#include "smtpd/server.h"

struct got {
    int calls;
    enum smtpd_dns_status status;
    char first[64];
    size_t n;
};

static int inside_lookup;

static void done(void *arg, const struct smtpd_dns_answer *a)
{
    struct got *g = arg;
    assert_false(inside_lookup); /* never from inside smtpd_dns_lookup */
    g->calls++;
    g->status = a->status;
    g->n = a->n;
    snprintf(g->first, sizeof g->first, "%s", a->n ? a->records[0] : "");
}

static struct smtpd_dns_query *lookup(struct smtpd_server *srv, enum smtpd_dns_type t, const char *name, long ms,
                                      struct got *g)
{
    inside_lookup = 1;
    struct smtpd_dns_query *q = smtpd_dns_lookup(srv, t, name, ms, done, g);
    inside_lookup = 0;
    return q;
}

struct env {
    struct pm_config cfg;
    struct smtpd_server srv;
    void *router;
    char endpoint[64];
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Runs the loop for ms milliseconds. */
static void spin(struct env *e, long ms)
{
    long end = now_ms() + ms;
    while (now_ms() < end) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(e->srv.base, &tv);
        event_base_dispatch(e->srv.base);
    }
}

struct request {
    uint8_t peer[256];
    size_t peerlen;
    uint64_t id;
    int kind;
    char name[256];
};

/* The questions the stand-in resolver received within ms (the loop runs meanwhile). */
static int receive(struct env *e, struct request *out, int max, long ms)
{
    int n = 0;
    long end = now_ms() + ms;
    while (now_ms() < end && n < max) {
        spin(e, 5);
        for (;;) {
            int len = zmq_recv(e->router, out[n].peer, sizeof out[n].peer, ZMQ_DONTWAIT);
            if (len < 0)
                break;
            out[n].peerlen = (size_t)len;
            Postmesh__BusMessage *m = pm_bus_recv_frame(e->router, 0);
            assert_non_null(m);
            assert_int_equal(m->body_case, POSTMESH__BUS_MESSAGE__BODY_RESOLVE);
            out[n].id = m->request_id;
            out[n].kind = m->resolve->kind;
            snprintf(out[n].name, sizeof out[n].name, "%s", m->resolve->name);
            postmesh__bus_message__free_unpacked(m, NULL);
            if (++n == max)
                break;
        }
    }
    return n;
}

static void answer_txt(struct env *e, const struct request *r, const char *text, uint32_t ttl)
{
    Postmesh__ResolveReply rr = POSTMESH__RESOLVE_REPLY__INIT;
    rr.status = POSTMESH__RESOLVE_REPLY__STATUS__OK;
    rr.dsn_status = "";
    rr.text = "";
    char *texts[] = {(char *)text};
    rr.texts = texts;
    rr.n_texts = 1;
    rr.ttl = ttl;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = r->id;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY;
    m.resolve_reply = &rr;
    assert_int_equal(zmq_send(e->router, r->peer, r->peerlen, ZMQ_SNDMORE), (int)r->peerlen);
    assert_int_equal(pm_bus_send_frame(e->router, &m, 0), 0);
}

static void answer_nxdomain(struct env *e, const struct request *r)
{
    Postmesh__ResolveReply rr = POSTMESH__RESOLVE_REPLY__INIT;
    rr.status = POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL;
    rr.dsn_status = "5.1.2";
    rr.text = "no such name";
    rr.ttl = 30;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = r->id;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY;
    m.resolve_reply = &rr;
    assert_int_equal(zmq_send(e->router, r->peer, r->peerlen, ZMQ_SNDMORE), (int)r->peerlen);
    assert_int_equal(pm_bus_send_frame(e->router, &m, 0), 0);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    e->cfg.bus.curve = 0;
    e->cfg.state_dir = "/tmp";
    e->router = zmq_socket(pm_bus_context(), ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(e->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(e->router, "tcp://127.0.0.1:*"), 0);
    size_t sz = sizeof e->endpoint;
    zmq_getsockopt(e->router, ZMQ_LAST_ENDPOINT, e->endpoint, &sz);
    e->cfg.resolver.endpoint = e->endpoint;
    pm_bus_security_init(&e->cfg, "smtpd");
    e->srv.cfg = &e->cfg;
    e->srv.base = event_base_new();
    e->srv.dns = smtpd_dns_new(&e->srv);
    assert_non_null(e->srv.dns);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    smtpd_dns_free(e->srv.dns);
    event_base_free(e->srv.base);
    zmq_close(e->router);
    free(e);
    return 0;
}

static void test_identical_questions_share_one_request_then_the_cache(void **state)
{
    struct env *e = *state;
    struct got a = {0}, b = {0}, c = {0}, t = {0};
    lookup(&e->srv, SMTPD_DNS_TXT, "_dmarc.Example.TEST.", 3000, &a);
    lookup(&e->srv, SMTPD_DNS_TXT, "_dmarc.example.test", 3000, &b);
    lookup(&e->srv, SMTPD_DNS_TXT, "_dmarc.example.test", 3000, &c);
    lookup(&e->srv, SMTPD_DNS_A, "_dmarc.example.test", 3000, &t);
    struct request r[8];
    int n = receive(e, r, 8, 500);
    assert_int_equal(n, 2); /* one TXT question for three askers, one A */
    int txt = r[0].kind == POSTMESH__RESOLVE_REQUEST__KIND__TXT ? 0 : 1;
    assert_string_equal(r[txt].name, "_dmarc.example.test");
    answer_txt(e, &r[txt], "v=DMARC1; p=reject", 300);
    answer_nxdomain(e, &r[1 - txt]);
    long end = now_ms() + 2000;
    while ((a.calls + b.calls + c.calls + t.calls) < 4 && now_ms() < end)
        spin(e, 10);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(a.status, SMTPD_DNS_OK);
    assert_string_equal(c.first, "v=DMARC1; p=reject");
    assert_int_equal(t.status, SMTPD_DNS_NXDOMAIN);

    /* Again: from the cache, still from the loop, and nothing reaches the resolver. */
    struct got d = {0}, x = {0};
    lookup(&e->srv, SMTPD_DNS_TXT, "_dmarc.example.test", 3000, &d);
    lookup(&e->srv, SMTPD_DNS_A, "_dmarc.example.test", 3000, &x);
    assert_int_equal(d.calls + x.calls, 0);
    assert_int_equal(receive(e, r, 8, 200), 0);
    assert_int_equal(d.calls, 1);
    assert_string_equal(d.first, "v=DMARC1; p=reject");
    assert_int_equal(x.status, SMTPD_DNS_NXDOMAIN); /* a negative answer is kept too */
}

static void test_timeout_cancel_and_bad_names(void **state)
{
    struct env *e = *state;
    struct got slow = {0}, gone = {0}, bad = {0};
    long start = now_ms();
    lookup(&e->srv, SMTPD_DNS_A, "2.0.0.127.slow.test", 150, &slow);
    struct smtpd_dns_query *q = lookup(&e->srv, SMTPD_DNS_A, "3.0.0.127.slow.test", 150, &gone);
    smtpd_dns_cancel(q);
    lookup(&e->srv, SMTPD_DNS_TXT, "bad name", 150, &bad);
    struct request r[4];
    assert_int_equal(receive(e, r, 4, 400), 2); /* asked, never answered */
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.status, SMTPD_DNS_TEMPFAIL);
    assert_true(now_ms() - start >= 140);
    assert_int_equal(gone.calls, 0);
    assert_int_equal(bad.status, SMTPD_DNS_PERMFAIL);
    /* The late answer still fills the cache for the next asker. */
    answer_txt(e, &r[0], "ignored", 60); /* a TXT body for an A question: no addresses */
    spin(e, 100);
}

static void test_without_a_resolver_every_lookup_is_tempfail(void **state)
{
    (void)state;
    struct pm_config cfg = {0};
    cfg.resolver.endpoint = "";
    struct smtpd_server srv = {0};
    srv.cfg = &cfg;
    srv.base = event_base_new();
    srv.dns = smtpd_dns_new(&srv);
    struct got g = {0};
    inside_lookup = 1;
    assert_non_null(smtpd_dns_lookup(&srv, SMTPD_DNS_A, "x.test", 1000, done, &g));
    inside_lookup = 0;
    event_base_loop(srv.base, EVLOOP_NONBLOCK);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, SMTPD_DNS_TEMPFAIL);
    assert_int_equal(smtpd_dns_connect(&srv), -1);
    smtpd_dns_free(srv.dns);
    event_base_free(srv.base);
}

/* Nothing listens on the endpoint: the first lookup fails once the send window is over, not
 * at its own (long) timeout, and the next ones fail at once. */
static void test_resolver_down_fails_fast(void **state)
{
    struct env *e = *state;
    zmq_close(e->router); /* the stand-in resolver goes away */
    e->router = zmq_socket(pm_bus_context(), ZMQ_ROUTER);
    struct got a = {0}, b = {0};
    long start = now_ms();
    lookup(&e->srv, SMTPD_DNS_A, "first.test", 10000, &a);
    while (!a.calls && now_ms() - start < 3000)
        spin(e, 10);
    assert_int_equal(a.status, SMTPD_DNS_TEMPFAIL);
    assert_true(now_ms() - start < 1500);
    start = now_ms();
    lookup(&e->srv, SMTPD_DNS_A, "second.test", 10000, &b);
    while (!b.calls && now_ms() - start < 3000)
        spin(e, 10);
    assert_int_equal(b.status, SMTPD_DNS_TEMPFAIL);
    assert_true(now_ms() - start < 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identical_questions_share_one_request_then_the_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_cancel_and_bad_names, setup, teardown),
        cmocka_unit_test(test_without_a_resolver_every_lookup_is_tempfail),
        cmocka_unit_test_setup_teardown(test_resolver_down_fails_fast, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pm_bus_context_term();
    return rc;
}
