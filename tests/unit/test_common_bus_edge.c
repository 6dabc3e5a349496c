/* The edge in common/bus.c, over real ZeroMQ sockets on loopback: a message that breaks its
 * body's rules (common/bus_valid.c) never reaches the handler, is refused with one
 * `event=bus_refused` line naming the sender, the field and the problem, a refused request is
 * answered (a Submit with PERMFAIL), the socket serves the next message, the refusals are
 * counted per body (the job client counts refused Jobs as received), and the CLI's raw
 * receive (pm_bus_recv_frame) refuses the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "config.h"
#include "fake_queue.h" /* fq_setup_security: the bus without CurveZMQ */

#define BODY(x) POSTMESH__BUS_MESSAGE__BODY_##x

struct fixture {
    struct event_base *base;
    struct event *tick;
    struct pm_bus *router, *dealer;
    char endpoint[128];
    int router_calls, dealer_calls;
    Postmesh__BusMessage__BodyCase router_last, dealer_last;
    uint64_t router_last_id;
    int dealer_reply_status; /* of the last SubmitReply the dealer got */
    char dealer_reply_text[256];
    uint8_t peer[256];
    size_t peerlen;
};

static void on_router(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    (void)bus;
    struct fixture *f = arg;
    f->router_calls++;
    f->router_last = m->body_case;
    f->router_last_id = m->request_id;
    f->peerlen = peerlen < sizeof f->peer ? peerlen : sizeof f->peer;
    memcpy(f->peer, peer, f->peerlen);
}

static void on_dealer(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    (void)bus;
    (void)peer;
    (void)peerlen;
    struct fixture *f = arg;
    f->dealer_calls++;
    f->dealer_last = m->body_case;
    if (m->body_case == BODY(SUBMIT_REPLY)) {
        f->dealer_reply_status = m->submit_reply->status;
        snprintf(f->dealer_reply_text, sizeof f->dealer_reply_text, "%s", m->submit_reply->text);
    }
}

static const struct pm_bus_rule rules[] = {
    {BODY(SUBMIT), ~0u, 0},
    {BODY(JOB_RESULT), ~0u, 0},
    {BODY(PING), ~0u, 0},
    {0, 0, 0},
};
static const struct pm_bus_policy policy = {.max_message = 1 << 20, .rules = rules};

static struct fixture *current;

static struct fixture *fixture_new(void)
{
    struct fixture *f = calloc(1, sizeof *f);
    current = f;
    f->base = event_base_new();
    f->tick = event_new(f->base, -1, EV_PERSIST, fq_on_tick, NULL);
    struct timeval tv = {0, 20 * 1000}; /* every wait below is bounded in time */
    event_add(f->tick, &tv);
    f->router = pm_bus_bind(f->base, ZMQ_ROUTER, "tcp://127.0.0.1:*", &policy, on_router, f);
    assert_non_null(f->router);
    size_t len = sizeof f->endpoint;
    assert_int_equal(zmq_getsockopt(pm_bus_socket(f->router), ZMQ_LAST_ENDPOINT, f->endpoint, &len), 0);
    f->dealer = pm_bus_connect(f->base, ZMQ_DEALER, f->endpoint, on_dealer, f);
    assert_non_null(f->dealer);
    return f;
}

static int teardown(void **state)
{
    (void)state;
    struct fixture *f = current;
    current = NULL;
    if (f) {
        pm_bus_close(f->dealer);
        pm_bus_close(f->router);
        event_free(f->tick);
        event_base_free(f->base);
        free(f);
    }
    return 0;
}

static int wait_until(struct fixture *f, const int *counter, int n)
{
    uint64_t deadline = pm_mono_ms() + 5000;
    while (*counter < n && pm_mono_ms() < deadline)
        event_base_loop(f->base, EVLOOP_ONCE);
    return *counter >= n;
}

/* Sends m from the dealer, retrying while it is not connected yet (ZMQ_IMMEDIATE). */
static void dealer_send(struct fixture *f, Postmesh__BusMessage *m)
{
    uint64_t deadline = pm_mono_ms() + 5000;
    while (pm_bus_send(f->dealer, m) < 0) {
        assert_true(pm_mono_ms() < deadline);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(10000);
    }
}

/* stderr into a file while a test runs, to read the log lines back. */
static int saved_stderr = -1;
static char log_path[] = "/tmp/test_common_bus_edge.XXXXXX";

static void capture_log(void)
{
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static char *captured_log(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    FILE *fp = fopen(log_path, "r");
    assert_non_null(fp);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(log_path);
    memcpy(log_path + strlen(log_path) - 6, "XXXXXX", 6);
    return text;
}

/* Runs until *counter reaches n (asserted, after stderr is back), then the log of that time. */
static char *logged_until(struct fixture *f, const int *counter, int n)
{
    int ok = wait_until(f, counter, n);
    char *log = captured_log();
    assert_true(ok);
    return log;
}

static void dealer_ping(struct fixture *f, uint64_t rid)
{
    Postmesh__Ping p = POSTMESH__PING__INIT;
    Postmesh__BusMessage ping = POSTMESH__BUS_MESSAGE__INIT;
    ping.body_case = BODY(PING);
    ping.ping = &p;
    ping.request_id = rid;
    dealer_send(f, &ping);
}

static Postmesh__BusMessage *submit_of(Postmesh__Submit *s, char **rcpts, size_t n, uint64_t rid)
{
    static Postmesh__BusMessage m;
    postmesh__submit__init(s);
    s->sender = "bob@example.net";
    s->recipients = rcpts;
    s->n_recipients = n;
    s->body.data = (uint8_t *)"Subject: x\r\n\r\ny\r\n";
    s->body.len = 18;
    postmesh__bus_message__init(&m);
    m.request_id = rid;
    m.body_case = BODY(SUBMIT);
    m.submit = s;
    return &m;
}

static void test_an_invalid_request_is_refused_answered_and_the_next_one_served(void **state)
{
    (void)state;
    struct fixture *f = fixture_new();
    Postmesh__Submit s;
    char *rcpt[1] = {"alice@example.test\r\nRSET"};
    capture_log();
    dealer_send(f, submit_of(&s, rcpt, 1, 7));
    char *log = logged_until(f, &f->dealer_calls, 1);
    /* The handler never saw it; the sender got a permanent error for that request. */
    assert_int_equal(f->router_calls, 0);
    assert_int_equal(f->dealer_last, BODY(SUBMIT_REPLY));
    assert_int_equal(f->dealer_reply_status, POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL);
    assert_string_equal(f->dealer_reply_text, "5.5.4 invalid submit: recipients[0] control_character");
    assert_non_null(strstr(log, "event=bus_refused endpoint="));
    assert_non_null(strstr(log, " key=- role=none body=submit reason=invalid field=recipients[0] "
                                "problem=control_character bytes="));
    assert_int_equal(pm_bus_refused(f->router, BODY(SUBMIT)), 1);

    char *good[1] = {"alice@example.test"};
    dealer_send(f, submit_of(&s, good, 1, 8));
    assert_true(wait_until(f, &f->router_calls, 1));
    assert_int_equal(f->router_last, BODY(SUBMIT));
    assert_int_equal(f->router_last_id, 8);
    assert_int_equal(pm_bus_refused(f->router, BODY(SUBMIT)), 1);
}

/* A result has nobody waiting for an answer: refused and counted, nothing sent back. */
static void test_an_invalid_result_is_dropped(void **state)
{
    (void)state;
    struct fixture *f = fixture_new();
    Postmesh__JobResult r = POSTMESH__JOB_RESULT__INIT;
    r.job_id = 3;
    r.queue_id = "0123456789abcdef"; /* lower case: not the queue's */
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = BODY(JOB_RESULT);
    m.job_result = &r;
    capture_log();
    dealer_send(f, &m);
    dealer_ping(f, 9); /* one pipe, in order: when the Ping is in, so was the result */
    char *log = logged_until(f, &f->router_calls, 1);
    assert_int_equal(f->router_last, BODY(PING));
    assert_int_equal(pm_bus_refused(f->router, BODY(JOB_RESULT)), 1);
    assert_non_null(strstr(log, "body=job_result reason=invalid field=queue_id problem=bad_queue_id"));
    assert_int_equal(f->dealer_calls, 0);
}

/* On a client socket (the job client's): a malformed Job is refused before the handler and
 * counted, so the worker can still count it as received. */
static void test_a_client_refuses_and_counts_an_invalid_job(void **state)
{
    (void)state;
    struct fixture *f = fixture_new();
    dealer_ping(f, 1);
    assert_true(wait_until(f, &f->router_calls, 1)); /* the router knows the dealer's identity */

    Postmesh__JobRecipient jr = POSTMESH__JOB_RECIPIENT__INIT;
    jr.address = "a@example.test";
    Postmesh__JobRecipient *jrs[1] = {&jr};
    Postmesh__Job job = POSTMESH__JOB__INIT;
    job.job_id = 1;
    job.queue_id = "0123456789ABCDEF";
    job.kind = POSTMESH__WORKER_KIND__WORKER_DELIVERY;
    job.recipients = jrs;
    job.n_recipients = 0; /* nothing to deliver */
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = BODY(JOB);
    m.job = &job;
    capture_log();
    assert_int_equal(pm_bus_send_to(f->router, f->peer, f->peerlen, &m), 0);
    job.job_id = 2;
    job.n_recipients = 1;
    assert_int_equal(pm_bus_send_to(f->router, f->peer, f->peerlen, &m), 0);
    char *log = logged_until(f, &f->dealer_calls, 1);
    assert_int_equal(f->dealer_last, BODY(JOB));
    assert_int_equal(pm_bus_refused(f->dealer, BODY(JOB)), 1);
    assert_non_null(strstr(log, "body=job reason=invalid field=recipients problem=missing"));
}

/* The CLI polls raw sockets: the same rules, NULL for a refused frame. */
static void test_raw_receive_refuses_too(void **state)
{
    (void)state;
    void *a = zmq_socket(pm_bus_context(), ZMQ_PAIR), *b = zmq_socket(pm_bus_context(), ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://bus-edge-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://bus-edge-test"), 0);
    Postmesh__ControlReply r = POSTMESH__CONTROL_REPLY__INIT;
    Postmesh__QueueItem it = POSTMESH__QUEUE_ITEM__INIT, *its[1] = {&it};
    it.queue_id = "not an id";
    r.ok = 1;
    r.items = its;
    r.n_items = 1;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = BODY(CONTROL_REPLY);
    m.control_reply = &r;
    capture_log();
    assert_int_equal(pm_bus_send_frame(a, &m, 0), 0);
    Postmesh__BusMessage *got = pm_bus_recv_frame(b, 0);
    char *log = captured_log();
    assert_null(got);
    assert_non_null(strstr(log, "body=control_reply reason=invalid field=items[0].queue_id problem=bad_queue_id"));
    it.queue_id = "0123456789ABCDEF";
    assert_int_equal(pm_bus_send_frame(a, &m, 0), 0);
    got = pm_bus_recv_frame(b, 0);
    assert_non_null(got);
    assert_int_equal(got->control_reply->n_items, 1);
    postmesh__bus_message__free_unpacked(got, NULL);
    zmq_close(a);
    zmq_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_an_invalid_request_is_refused_answered_and_the_next_one_served, teardown),
        cmocka_unit_test_teardown(test_an_invalid_result_is_dropped, teardown),
        cmocka_unit_test_teardown(test_a_client_refuses_and_counts_an_invalid_job, teardown),
        cmocka_unit_test_teardown(test_raw_receive_refuses_too, teardown),
    };
    return cmocka_run_group_tests(tests, fq_setup_security, fq_teardown_context);
}
