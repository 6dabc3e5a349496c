/* The queue's DSN notice decision (RFC 3461 4.1, 5.2.2): which notices each NOTIFY asks for. */
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

/* Every NOTIFY the parser lets through, and the notices each event gets. */
static void test_every_notify(void **state)
{
    (void)state;
    static const struct {
        uint32_t notify;
        int failed, delayed, delivered, relayed, passed_on;
    } rows[] = {
        {0, 1, 1, 0, 0, 0}, /* not given: FAILURE and DELAY (RFC 3461 4.1) */
        {N, 0, 0, 0, 0, 0},
        {S, 0, 0, 1, 1, 0},
        {F, 1, 0, 0, 0, 0},
        {D, 0, 1, 0, 0, 0},
        {S | F, 1, 0, 1, 1, 0},
        {S | D, 0, 1, 1, 1, 0},
        {F | D, 1, 1, 0, 0, 0},
        {S | F | D, 1, 1, 1, 1, 0},
        {N | S, 0, 0, 0, 0, 0}, /* refused by smtpd; NEVER wins if it ever came */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint32_t n = rows[i].notify;
        assert_int_equal(queue_dsn_wants(n, QUEUE_DSN_FAILED), rows[i].failed);
        assert_int_equal(queue_dsn_wants(n, QUEUE_DSN_DELAYED), rows[i].delayed);
        assert_int_equal(queue_dsn_wants(n, QUEUE_DSN_DELIVERED_LOCAL), rows[i].delivered);
        assert_int_equal(queue_dsn_wants(n, QUEUE_DSN_RELAYED), rows[i].relayed);
        assert_int_equal(queue_dsn_wants(n, QUEUE_DSN_PASSED_ON), rows[i].passed_on);
    }
}

static void test_actions(void **state)
{
    (void)state;
    assert_string_equal(queue_dsn_action(QUEUE_DSN_FAILED), "failed");
    assert_string_equal(queue_dsn_action(QUEUE_DSN_DELAYED), "delayed");
    assert_string_equal(queue_dsn_action(QUEUE_DSN_DELIVERED_LOCAL), "delivered");
    assert_string_equal(queue_dsn_action(QUEUE_DSN_RELAYED), "relayed");
    assert_null(queue_dsn_action(QUEUE_DSN_PASSED_ON));
}

static void test_copy(void **state)
{
    (void)state;
    Postmesh__RecipientDsn d = POSTMESH__RECIPIENT_DSN__INIT;
    assert_null(queue_dsn_copy(NULL));
    assert_null(queue_dsn_copy(&d)); /* says nothing: none stored */
    d.notify = S;
    Postmesh__RecipientDsn *c = queue_dsn_copy(&d);
    assert_non_null(c);
    assert_int_equal(c->notify, S);
    assert_string_equal(c->orcpt, "");
    postmesh__recipient_dsn__free_unpacked(c, NULL);
    d.notify = 0;
    d.orcpt = "rfc822;bob@example.test";
    c = queue_dsn_copy(&d);
    assert_non_null(c);
    assert_string_equal(c->orcpt, "rfc822;bob@example.test");
    assert_ptr_not_equal(c->orcpt, d.orcpt);
    postmesh__recipient_dsn__free_unpacked(c, NULL);
}

/* A success notice owed keeps the message (stored or in memory) due until it is sent: a
 * delivered recipient with success_owed is work, like a failed one waiting for its bounce. */
static void test_owed_notice_keeps_the_message_due(void **state)
{
    (void)state;
    struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.queue.max_lifetime = 1000;
    Postmesh__StoredRecipient r = POSTMESH__STORED_RECIPIENT__INIT;
    Postmesh__StoredRecipient *rp = &r;
    Postmesh__StoredMessage m = POSTMESH__STORED_MESSAGE__INIT;
    m.arrival_time = 500;
    m.sender = "alice@example.test";
    m.recipients = &rp;
    m.n_recipients = 1;
    r.state = POSTMESH__STORED_RECIPIENT__STATE__DELIVERED;
    uint8_t inflight = 0;
    /* Nothing owed: done (due "at once" to be removed), never after a DSN job is out. */
    assert_int_equal(queue_due_rule(&cfg, &m, &inflight, 0, 0, 7), 7);
    assert_int_equal(queue_stored_due(&cfg, &m), 500);
    assert_int_equal(queue_due_rule(&cfg, &m, &inflight, 0, 900, 7), 7); /* a DSN retry does not hold it */
    r.success_owed = 1;
    assert_int_equal(queue_due_rule(&cfg, &m, &inflight, 0, 0, 7), 7);
    assert_int_equal(queue_due_rule(&cfg, &m, &inflight, 1, 0, 7), QUEUE_DUE_NEVER); /* the notice is out */
    assert_int_equal(queue_due_rule(&cfg, &m, &inflight, 0, 900, 7), 900);            /* its retry */
    assert_int_equal(queue_stored_due(&cfg, &m), 500); /* after a restart: at once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_notify),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_owed_notice_keeps_the_message_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
