/* The queue's DSN decisions at their edges: NOTIFY bits nobody defined (a peer's bug or a
 * hostile Submit) must not silence the failure notice the RFC's default asks for; a message
 * whose only work left is an owed success notice is neither finished nor forgotten, also
 * when held or when a bouncer job is out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "queue/dsn.h"
#include "queue/queue.h"

#define S POSTMESH__DSN_NOTIFY__DSN_NOTIFY_SUCCESS
#define F POSTMESH__DSN_NOTIFY__DSN_NOTIFY_FAILURE
#define D POSTMESH__DSN_NOTIFY__DSN_NOTIFY_DELAY
#define N POSTMESH__DSN_NOTIFY__DSN_NOTIFY_NEVER
#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

/* Bits outside SUCCESS|FAILURE|DELAY|NEVER say nothing: the rest decides, and with nothing
 * else it is the default (FAILURE and DELAY, RFC 3461 4.1). */
static void test_unknown_notify_bits_are_ignored(void **state)
{
    (void)state;
    uint32_t junk[] = {0x10, 0x80000000u, 0xfffffff0u};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        assert_int_equal(queue_dsn_wants(junk[i], QUEUE_DSN_FAILED), 1);
        assert_int_equal(queue_dsn_wants(junk[i], QUEUE_DSN_DELAYED), 1);
        assert_int_equal(queue_dsn_wants(junk[i], QUEUE_DSN_DELIVERED_LOCAL), 0);
        assert_int_equal(queue_dsn_wants(junk[i] | S, QUEUE_DSN_DELIVERED_LOCAL), 1);
        assert_int_equal(queue_dsn_wants(junk[i] | S, QUEUE_DSN_FAILED), 0);
        assert_int_equal(queue_dsn_wants(junk[i] | N, QUEUE_DSN_FAILED), 0);
    }
    assert_int_equal(queue_dsn_wants(0xffffffffu, QUEUE_DSN_FAILED), 0); /* NEVER is in it */
}

struct one {
    Postmesh__StoredRecipient r[2];
    Postmesh__StoredRecipient *rp[2];
    Postmesh__StoredMessage m;
    uint8_t inflight[2];
    struct qmsg q;
};

static void make(struct one *o, size_t n)
{
    memset(o, 0, sizeof *o);
    postmesh__stored_message__init(&o->m);
    for (size_t i = 0; i < n; i++) {
        postmesh__stored_recipient__init(&o->r[i]);
        o->rp[i] = &o->r[i];
    }
    o->m.arrival_time = 500;
    o->m.sender = "alice@example.test";
    o->m.recipients = o->rp;
    o->m.n_recipients = n;
    o->q.rec = &o->m;
    o->q.inflight = o->inflight;
}

static void test_owed_notice_is_not_finished(void **state)
{
    (void)state;
    struct one o;
    make(&o, 2);
    o.r[0].state = ST(DELIVERED);
    o.r[1].state = ST(BOUNCED);
    assert_true(queue_msg_finished(&o.q));
    o.r[0].success_owed = 1;
    assert_false(queue_msg_finished(&o.q));
    o.r[0].success_owed = 0;
    o.q.bounce_inflight = 1; /* its notice is out and not answered yet */
    assert_false(queue_msg_finished(&o.q));
}

/* Held by the operator after a NOTIFY=SUCCESS delivery: the notice waits for the release
 * (nothing is due, the message is still open), and is due again at once after it. */
static void test_held_owed_notice_waits_for_release(void **state)
{
    (void)state;
    struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.queue.max_lifetime = 1000;
    cfg.queue.delay_warning = 100;
    struct one o;
    make(&o, 2);
    o.r[0].state = ST(DELIVERED);
    o.r[0].success_owed = 1;
    o.r[1].state = ST(DEFERRED);
    o.r[1].next_attempt = 800;
    o.m.hold = 1;
    assert_int_equal(queue_due_rule(&cfg, &o.m, o.inflight, 0, 0, 7), 1500); /* its expiry only */
    o.r[1].state = ST(BOUNCED);
    assert_int_equal(queue_due_rule(&cfg, &o.m, o.inflight, 0, 0, 7), QUEUE_DUE_NEVER);
    assert_false(queue_msg_finished(&o.q)); /* never removed while held */
    o.m.hold = 0;
    assert_int_equal(queue_due_rule(&cfg, &o.m, o.inflight, 0, 0, 7), 7);
    /* The notice of a recipient still in flight elsewhere: the recipient waits for its job. */
    o.inflight[0] = 1;
    assert_int_equal(queue_due_rule(&cfg, &o.m, o.inflight, 0, 0, 7), QUEUE_DUE_NEVER);
}

/* The null sender and DSNs never owe anything: decided where success_owed is set
 * (dispatch.c), shown here for the event table alone. */
static void test_passed_on_never_owes(void **state)
{
    (void)state;
    for (uint32_t n = 0; n < 16; n++)
        assert_int_equal(queue_dsn_wants(n, QUEUE_DSN_PASSED_ON), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_notify_bits_are_ignored),
        cmocka_unit_test(test_owed_notice_is_not_finished),
        cmocka_unit_test(test_held_owed_notice_waits_for_release),
        cmocka_unit_test(test_passed_on_never_owes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
