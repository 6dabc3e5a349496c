/* The submitter's view of the queue shards (common/queueset.c) against two real ZeroMQ
 * ROUTERs in this process standing in for two queue shards: round robin while both answer,
 * a shard whose connection is gone reported lost and tried last, a shard that is connected
 * but silent (a hung queue) taken out after its Ping timeout, and replies handed over with
 * the shard they came from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "fake_queue.h"
#include "queueset.h"

struct shard_sim {
    struct pm_bus *bus;
    char endpoint[128];
    int silent;   /* a hung queue: reads, never answers */
    int submits;
};

struct world {
    struct event_base *base;
    struct event *tick;
    struct shard_sim sim[2];
    const char *endpoints[2];
    struct pm_queueset *qs;
    int replies[2];   /* SubmitReplies handed over, per shard */
    int lost[2];
};

static void answer(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    struct shard_sim *s = arg;
    if (s->silent)
        return;
    Postmesh__BusMessage r = POSTMESH__BUS_MESSAGE__INIT;
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    Postmesh__SubmitReply sr = POSTMESH__SUBMIT_REPLY__INIT;
    r.request_id = m->request_id;
    if (m->body_case == POSTMESH__BUS_MESSAGE__BODY_PING) {
        r.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
        r.ping = &ping;
    } else {
        s->submits++;
        sr.status = POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED;
        sr.queue_id = "0123456789ABCDEF";
        r.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY;
        r.submit_reply = &sr;
    }
    pm_bus_send_to(bus, peer, peerlen, &r);
}

static const struct pm_bus_rule rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_SUBMIT, ~0u, 0},
    {POSTMESH__BUS_MESSAGE__BODY_PING, ~0u, 0},
    {0, 0, 0},
};
static const struct pm_bus_policy policy = {.max_message = 1 << 20, .rules = rules};

static void on_reply(int shard, Postmesh__BusMessage *m, void *arg)
{
    struct world *w = arg;
    assert_int_equal(m->body_case, POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY);
    w->replies[shard]++;
}

static void on_lost(int shard, void *arg)
{
    struct world *w = arg;
    w->lost[shard]++;
}

static void bind_sim(struct world *w, int i)
{
    struct shard_sim *s = &w->sim[i];
    s->bus = pm_bus_bind(w->base, ZMQ_ROUTER, "tcp://127.0.0.1:*", &policy, answer, s);
    assert_non_null(s->bus);
    size_t len = sizeof s->endpoint;
    assert_int_equal(zmq_getsockopt(pm_bus_socket(s->bus), ZMQ_LAST_ENDPOINT, s->endpoint, &len), 0);
    w->endpoints[i] = s->endpoint;
}

static void step(struct world *w) { event_base_loop(w->base, EVLOOP_ONCE); }

static void run_for(struct world *w, int ms)
{
    uint64_t end = pm_mono_ms() + (uint64_t)ms;
    while (pm_mono_ms() < end)
        step(w);
}

/* Both shards bound, the set connected and each shard seen up (a Ping answered). */
static struct world *world_new(void)
{
    struct world *w = calloc(1, sizeof *w);
    w->base = event_base_new();
    w->tick = event_new(w->base, -1, EV_PERSIST, fq_on_tick, NULL);
    struct timeval tv = {0, 20 * 1000};
    event_add(w->tick, &tv);
    bind_sim(w, 0);
    bind_sim(w, 1);
    w->qs = pm_queueset_new(w->base, w->endpoints, 2, on_reply, on_lost, w);
    assert_non_null(w->qs);
    run_for(w, PM_QUEUESET_PING_MS + 300);
    assert_true(pm_queueset_is_up(w->qs, 0) && pm_queueset_is_up(w->qs, 1));
    return w;
}

static void world_free(struct world *w)
{
    pm_queueset_free(w->qs);
    for (int i = 0; i < 2; i++)
        pm_bus_close(w->sim[i].bus);
    event_free(w->tick);
    event_base_free(w->base);
    free(w);
}

/* One Submit to the first shard of the order that takes it; its shard or -1. */
static int submit(struct world *w, int avoid)
{
    Postmesh__Submit sub = POSTMESH__SUBMIT__INIT;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = 7;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    m.submit = &sub;
    int order[PM_QUEUESET_MAX];
    int n = pm_queueset_order(w->qs, avoid, order);
    for (int k = 0; k < n; k++)
        if (pm_queueset_send_to(w->qs, order[k], &m) == 0)
            return order[k];
    return -1;
}

static void test_round_robin_while_both_answer(void **state)
{
    (void)state;
    struct world *w = world_new();
    int seq[4];
    for (int i = 0; i < 4; i++)
        seq[i] = submit(w, -1);
    assert_true(seq[0] != seq[1] && seq[0] == seq[2] && seq[1] == seq[3]);
    assert_int_equal(submit(w, 0), 1); /* never the shard to avoid */
    uint64_t end = pm_mono_ms() + 3000;
    while (w->replies[0] + w->replies[1] < 5 && pm_mono_ms() < end)
        step(w);
    assert_int_equal(w->replies[0], w->sim[0].submits);
    assert_int_equal(w->replies[1], w->sim[1].submits);
    assert_int_equal(w->replies[0] + w->replies[1], 5);
    assert_int_equal(w->lost[0] + w->lost[1], 0);
    world_free(w);
}

static void test_a_shard_gone_is_lost_and_tried_last(void **state)
{
    (void)state;
    struct world *w = world_new();
    pm_bus_close(w->sim[0].bus);
    w->sim[0].bus = NULL;
    uint64_t end = pm_mono_ms() + 3000;
    while (!w->lost[0] && pm_mono_ms() < end)
        step(w);
    assert_int_equal(w->lost[0], 1);
    assert_false(pm_queueset_is_up(w->qs, 0));
    int order[PM_QUEUESET_MAX];
    assert_int_equal(pm_queueset_order(w->qs, -1, order), 2);
    assert_int_equal(order[0], 1); /* the shard that is up first, the other as a last resort */
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(w, -1), 1);
    assert_int_equal(submit(w, 1), -1); /* nothing else takes it */
    assert_int_equal(w->lost[1], 0);
    world_free(w);
}

static void test_a_silent_shard_is_down_but_not_lost(void **state)
{
    (void)state;
    struct world *w = world_new();
    w->sim[1].silent = 1;
    uint64_t end = pm_mono_ms() + PM_QUEUESET_PING_TIMEOUT_MS + 2000;
    while (pm_queueset_is_up(w->qs, 1) && pm_mono_ms() < end)
        step(w);
    assert_false(pm_queueset_is_up(w->qs, 1));
    assert_true(pm_queueset_other_up(w->qs, 1));
    assert_false(pm_queueset_other_up(w->qs, 0));
    assert_int_equal(w->lost[1], 0); /* connected: what it holds may still be answered */
    assert_int_equal(submit(w, -1), 0);
    /* It answers again: up with its first answer. */
    w->sim[1].silent = 0;
    end = pm_mono_ms() + 3000;
    while (!pm_queueset_is_up(w->qs, 1) && pm_mono_ms() < end)
        step(w);
    assert_true(pm_queueset_is_up(w->qs, 1));
    /* And a request the caller gave up on there marks it down at once. */
    pm_queueset_suspect(w->qs, 1, "submit_timeout");
    assert_false(pm_queueset_is_up(w->qs, 1));
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_while_both_answer),
        cmocka_unit_test(test_a_shard_gone_is_lost_and_tried_last),
        cmocka_unit_test(test_a_silent_shard_is_down_but_not_lost),
    };
    return cmocka_run_group_tests(tests, fq_setup_security, fq_teardown_context);
}
