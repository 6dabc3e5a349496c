/* ETRN on the queue: which domains a request names (exact, without case, "@domain" for it and
 * its subdomains on a label boundary), which recipients it starts (deferred, remote, of that
 * domain, not held, not in flight), the store walk under it (every record visited once in
 * chunks, wherever it is), and a whole request against a real LMDB store and a real ROUTER:
 * records and due entries rewritten together, messages in memory changed there, the answer
 * counting messages. */
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

#include "fake_queue.h"
#include "queue/queue.h"
#include "queue_store.h"

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

static void test_domain_match(void **state)
{
    (void)state;
    assert_true(queue_etrn_match("example.net", "example.net"));
    assert_true(queue_etrn_match("Example.NET", "example.net"));
    assert_true(queue_etrn_match("example.net", "EXAMPLE.net"));
    /* exact: not a subdomain, not another domain */
    assert_false(queue_etrn_match("example.net", "mx.example.net"));
    assert_false(queue_etrn_match("example.net", "example.org"));
    assert_false(queue_etrn_match("example.net", "example.net.evil"));
    /* "@": the domain itself and its subdomains, on a label boundary only */
    assert_true(queue_etrn_match("@example.net", "example.net"));
    assert_true(queue_etrn_match("@example.net", "mx.example.net"));
    assert_true(queue_etrn_match("@Example.Net", "a.b.EXAMPLE.net"));
    assert_false(queue_etrn_match("@example.net", "badexample.net"));
    assert_false(queue_etrn_match("@example.net", "xample.net"));
    assert_false(queue_etrn_match("@example.net", "net"));
    assert_false(queue_etrn_match("@example.net", "example.net.evil"));
    /* nothing names no domain */
    assert_false(queue_etrn_match("", ""));
    assert_false(queue_etrn_match("@", ""));
    assert_false(queue_etrn_match("@", "example.net"));
    assert_false(queue_etrn_match("example.net", ""));
}

static Postmesh__StoredRecipient *rcpt(const char *addr, Postmesh__StoredRecipient__State s, int local,
                                       uint64_t next_attempt)
{
    Postmesh__StoredRecipient *r = calloc(1, sizeof *r);
    postmesh__stored_recipient__init(r);
    r->address = strdup(addr);
    r->original = strdup(addr);
    r->state = s;
    r->local = local;
    r->next_attempt = next_attempt;
    return r;
}

/* A record with n recipients (freed with free_unpacked: everything is malloc'd). */
static Postmesh__StoredMessage *record(const char *id, int hold, size_t n, Postmesh__StoredRecipient **r)
{
    Postmesh__StoredMessage *rec = calloc(1, sizeof *rec);
    postmesh__stored_message__init(rec);
    rec->queue_id = strdup(id);
    rec->sender = strdup("a@example.test");
    rec->arrival_time = queue_now() - 600;
    rec->hold = hold;
    rec->recipients = calloc(n, sizeof *rec->recipients);
    memcpy(rec->recipients, r, n * sizeof *r);
    rec->n_recipients = n;
    return rec;
}

static void test_flush_picks_deferred_remote_recipients_of_the_domain(void **state)
{
    (void)state;
    uint64_t now = 1000000, later = now + 3600;
    Postmesh__StoredRecipient *r[] = {
        rcpt("a@example.net", ST(DEFERRED), 0, later),    /* 0: started */
        rcpt("b@EXAMPLE.net", ST(DEFERRED), 0, later),    /* 1: started (case) */
        rcpt("c@example.net", ST(DEFERRED), 1, later),    /* 2: local: not ETRN's */
        rcpt("d@example.net", ST(PENDING), 0, 0),         /* 3: not deferred */
        rcpt("e@example.net", ST(DELIVERED), 0, later),   /* 4: done */
        rcpt("f@example.net", ST(FAILED), 0, later),      /* 5: waits for its bounce */
        rcpt("g@mx.example.net", ST(DEFERRED), 0, later), /* 6: a subdomain */
        rcpt("h@badexample.net", ST(DEFERRED), 0, later), /* 7: another domain */
        rcpt("i@example.net", ST(DEFERRED), 0, later),    /* 8: in flight */
        rcpt("j@example.net", ST(DEFERRED), 0, now - 5),  /* 9: due already */
    };
    enum { N = sizeof r / sizeof r[0] };
    Postmesh__StoredMessage *rec = record("00000000000000E1", 0, N, r);
    uint8_t inflight[N] = {0};
    inflight[8] = 1;
    int changed;
    assert_int_equal(queue_etrn_flush(rec, inflight, "example.net", now, 0, &changed), 3); /* 0, 1, 9 */
    assert_true(changed);
    assert_int_equal(r[0]->next_attempt, now);
    assert_int_equal(r[1]->next_attempt, now);
    assert_int_equal(r[9]->next_attempt, now - 5); /* never later than it was */
    for (int i = 2; i < 9; i++)
        assert_int_equal(r[i]->next_attempt, i == 3 ? 0 : later);
    /* again: they wait for the domain, nothing left to change */
    assert_int_equal(queue_etrn_flush(rec, inflight, "example.net", now, 0, &changed), 3);
    assert_false(changed);
    /* "@": the subdomain too, still not the other domain, the local one or the one in flight */
    assert_int_equal(queue_etrn_flush(rec, inflight, "@example.net", now, 0, &changed), 4);
    assert_true(changed);
    assert_int_equal(r[6]->next_attempt, now);
    assert_int_equal(r[7]->next_attempt, later);
    assert_int_equal(r[8]->next_attempt, later);
    /* without an in-flight map (a record only in the store) the one in flight counts */
    assert_int_equal(queue_etrn_flush(rec, NULL, "example.net", now, 0, &changed), 4);
    /* held: nothing */
    r[8]->next_attempt = later;
    rec->hold = 1;
    assert_int_equal(queue_etrn_flush(rec, NULL, "example.net", now, 0, &changed), 0);
    assert_false(changed);
    assert_int_equal(r[8]->next_attempt, later);
    postmesh__stored_message__free_unpacked(rec, NULL);
}

/* Within a node's ETRN window a recipient tried since the window began is not made due
 * again (it had the attempt ETRN gave it); one not tried since is, and both count. */
static void test_flush_gives_one_attempt_per_window(void **state)
{
    (void)state;
    uint64_t now = 1000000, later = now + 3600, began = now - 4;
    Postmesh__StoredRecipient *r[] = {
        rcpt("a@example.net", ST(DEFERRED), 0, later), /* tried after the window began */
        rcpt("b@example.net", ST(DEFERRED), 0, later), /* tried before it */
        rcpt("c@example.net", ST(DEFERRED), 0, later), /* tried the second it began */
    };
    r[0]->last_attempt = now - 2;
    r[1]->last_attempt = now - 60;
    r[2]->last_attempt = began;
    Postmesh__StoredMessage *rec = record("00000000000000E2", 0, 3, r);
    int changed;
    assert_int_equal(queue_etrn_flush(rec, NULL, "example.net", now, began, &changed), 3);
    assert_true(changed);
    assert_int_equal(r[0]->next_attempt, later);
    assert_int_equal(r[1]->next_attempt, now);
    assert_int_equal(r[2]->next_attempt, later);
    /* outside a window (0) every one is made due */
    assert_int_equal(queue_etrn_flush(rec, NULL, "example.net", now, 0, &changed), 3);
    assert_int_equal(r[0]->next_attempt, now);
    assert_int_equal(r[2]->next_attempt, now);
    postmesh__stored_message__free_unpacked(rec, NULL);
}

/* ---- against a real store and bus ---- */

static void open_store(struct queue *q, struct pm_config *cfg)
{
    qs_open(q, cfg, 5 * 86400);
    q->active_limit = 100;
    q->base = event_base_new();
}

static void close_store(struct queue *q)
{
    queue_etrn_free(q);
    qs_close(q);
    if (q->commit_ev)
        event_free(q->commit_ev);
    event_base_free(q->base);
}

/* Stores rec with its due entry, as a commit writes them; frees rec. */
static void put_rec(struct queue *q, Postmesh__StoredMessage *rec)
{
    uint8_t buf[2048], key[QUEUE_DUE_KEY_LEN], state = queue_stored_state(rec);
    size_t len = postmesh__stored_message__pack(rec, buf);
    queue_due_key(key, queue_stored_due(q->cfg, rec), rec->queue_id);
    MDB_txn *t;
    assert_int_equal(mdb_txn_begin(q->env, NULL, 0, &t), 0);
    MDB_val mk = {QUEUE_ID_LEN, rec->queue_id}, mv = {len, buf}, dk = {sizeof key, key}, dv = {1, &state};
    assert_int_equal(mdb_put(t, q->db_meta, &mk, &mv, 0), 0);
    assert_int_equal(mdb_put(t, q->db_due, &dk, &dv, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    q->nstored++;
    q->depth[state]++;
    postmesh__stored_message__free_unpacked(rec, NULL);
}

static void put_one(struct queue *q, const char *id, const char *addr, int hold, uint64_t next_attempt)
{
    Postmesh__StoredRecipient *r = rcpt(addr, ST(DEFERRED), 0, next_attempt);
    put_rec(q, record(id, hold, 1, &r));
}

/* The due entries: how many, and the due time of id's (UINT64_MAX if none, 0 if several). */
static size_t entries_of(struct queue *q, const char *id, uint64_t *due)
{
    MDB_txn *t;
    MDB_cursor *c;
    MDB_val k, v;
    size_t n = 0, mine = 0;
    *due = UINT64_MAX;
    assert_int_equal(mdb_txn_begin(q->env, NULL, MDB_RDONLY, &t), 0);
    assert_int_equal(mdb_cursor_open(t, q->db_due, &c), 0);
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        n++;
        if (memcmp((const uint8_t *)k.mv_data + 8, id, QUEUE_ID_LEN) == 0) {
            mine++;
            *due = queue_due_key_time(k.mv_data);
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    if (mine > 1)
        *due = 0;
    return n;
}

static uint64_t stored_next_attempt(struct queue *q, const char *id, size_t i)
{
    Postmesh__StoredMessage *rec = queue_store_record(q, NULL, id, NULL);
    assert_non_null(rec);
    uint64_t t = rec->recipients[i]->next_attempt;
    postmesh__stored_message__free_unpacked(rec, NULL);
    return t;
}

struct visits {
    int seen[16];
    int in_memory;
};

static int visit_index(const char *id) { return (int)strtol(id + 14, NULL, 16); }

static void count_in_memory(struct queue *q, struct qmsg *m, void *arg)
{
    (void)q;
    struct visits *v = arg;
    v->seen[visit_index(m->rec->queue_id)]++;
    v->in_memory++;
}

static int count_stored(struct queue *q, Postmesh__StoredMessage *rec, void *arg)
{
    (void)q;
    ((struct visits *)arg)->seen[visit_index(rec->queue_id)]++;
    return 0;
}

static void test_walk_visits_every_record_once_wherever_it_is(void **state)
{
    (void)state;
    struct queue q = {0};
    struct pm_config cfg;
    open_store(&q, &cfg);
    uint64_t later = queue_now() + 86400;
    char id[QUEUE_ID_LEN + 1];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "00000000000000%02X", i);
        put_one(&q, id, "x@example.net", 0, later);
    }
    struct visits v = {0};
    struct queue_rewrite w = {0};
    const struct queue_rewrite_ops ops = {NULL, count_in_memory, count_stored, NULL};
    const struct queue_rewrite_limits lim = {.visit = 3, .decode = 3, .ms = 1000};
    /* Chunks of 3; between them messages come into memory (behind the walk and ahead of it)
     * and one leaves again: each is still visited exactly once. */
    assert_int_equal(queue_store_rewrite(&q, &w, &lim, &ops, &v), 0);
    assert_int_equal(w.visited, 3);
    assert_false(w.done);
    assert_non_null(queue_msg_find(&q, "0000000000000001")); /* behind */
    struct qmsg *m5 = queue_msg_find(&q, "0000000000000005"); /* ahead */
    assert_non_null(m5);
    assert_int_equal(queue_store_rewrite(&q, &w, &lim, &ops, &v), 0);
    assert_non_null(queue_msg_find(&q, "0000000000000008"));
    assert_int_equal(queue_msg_evict_blocked(&q, m5), 1);
    for (int k = 0; k < 5 && !w.done; k++)
        assert_int_equal(queue_store_rewrite(&q, &w, &lim, &ops, &v), 0);
    assert_true(w.done);
    assert_int_equal(w.visited, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(v.seen[i], 1);
    assert_int_equal(v.in_memory, 2); /* 5 (in memory when reached) and 8 */
    close_store(&q);
}

static void on_bus(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    (void)bus, (void)peer, (void)peerlen, (void)m;
    (*(int *)arg)++;
}

static const struct pm_bus_rule rules[] = {{POSTMESH__BUS_MESSAGE__BODY_PING, ~0u, 0}, {0, 0, 0}};
static const struct pm_bus_policy policy = {.max_message = 1 << 20, .rules = rules};

/* Open sockets, closed by the group's teardown too: a failed assertion leaves the test at
 * once, and the context would wait for them for ever. */
static void *smtpd_sock;
static struct pm_bus *queue_bus;

static void close_sockets(void)
{
    if (smtpd_sock)
        zmq_close(smtpd_sock);
    if (queue_bus)
        pm_bus_close(queue_bus);
    smtpd_sock = NULL;
    queue_bus = NULL;
}

static int teardown(void **state)
{
    close_sockets();
    return fq_teardown_context(state);
}

/* The queue's ROUTER and smtpd's end: a DEALER named "smtpd-test" that has said hello. */
static void *connect_smtpd(struct queue *q, int *hello)
{
    q->bus = queue_bus = pm_bus_bind(q->base, ZMQ_ROUTER, "tcp://127.0.0.1:*", &policy, on_bus, hello);
    assert_non_null(q->bus);
    char endpoint[128];
    size_t len = sizeof endpoint;
    assert_int_equal(zmq_getsockopt(pm_bus_socket(q->bus), ZMQ_LAST_ENDPOINT, endpoint, &len), 0);
    void *s = smtpd_sock = zmq_socket(pm_bus_context(), ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_ROUTING_ID, "smtpd-test", 10);
    assert_int_equal(zmq_connect(s, endpoint), 0);
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
    m.ping = &ping;
    assert_int_equal(pm_bus_send_frame(s, &m, 0), 0);
    uint64_t deadline = pm_mono_ms() + 5000;
    while (!*hello && pm_mono_ms() < deadline)
        event_base_loop(q->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_true(*hello);
    return s;
}

/* Sends Etrn{want} as from the DEALER and returns the reply (runs the loop until then). */
static Postmesh__BusMessage *etrn(struct queue *q, void *s, const char *want, uint64_t rid)
{
    Postmesh__Etrn e = POSTMESH__ETRN__INIT;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    e.domain = (char *)want;
    m.request_id = rid;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_ETRN;
    m.etrn = &e;
    queue_on_etrn(q, (const uint8_t *)"smtpd-test", 10, &m);
    uint64_t deadline = pm_mono_ms() + 5000;
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    while (pm_mono_ms() < deadline) {
        event_base_loop(q->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (zmq_poll(&it, 1, 10) > 0)
            return pm_bus_recv_frame(s, ZMQ_DONTWAIT);
    }
    return NULL;
}

static void expect_reply(Postmesh__BusMessage *r, uint64_t rid, Postmesh__EtrnReply__Status st, uint32_t n)
{
    assert_non_null(r);
    assert_int_equal(r->body_case, POSTMESH__BUS_MESSAGE__BODY_ETRN_REPLY);
    assert_int_equal(r->request_id, rid);
    assert_int_equal(r->etrn_reply->status, st);
    assert_int_equal(r->etrn_reply->messages, n);
    postmesh__bus_message__free_unpacked(r, NULL);
}

static void test_etrn_starts_what_waits_for_the_domain(void **state)
{
    (void)state;
    struct queue q = {0};
    struct pm_config cfg;
    open_store(&q, &cfg);
    uint64_t now = queue_now(), later = now + 86400;
    put_one(&q, "00000000000000A1", "u@example.net", 0, later);
    put_one(&q, "00000000000000A2", "u@EXAMPLE.NET", 0, later);
    put_one(&q, "00000000000000A3", "u@mx.example.net", 0, later); /* only for "@example.net" */
    put_one(&q, "00000000000000A4", "u@badexample.net", 0, later); /* never */
    put_one(&q, "00000000000000A5", "u@example.net", 1, later);    /* held: stays held */
    put_one(&q, "00000000000000A6", "u@other.test", 0, later);
    Postmesh__StoredRecipient *two[] = {rcpt("u@other.test", ST(DEFERRED), 0, later),
                                        rcpt("v@example.net", ST(DEFERRED), 0, later)};
    put_rec(&q, record("00000000000000A7", 0, 2, two)); /* counts once, other.test untouched */
    put_one(&q, "00000000000000B1", "u@example.net", 0, later); /* in memory, in flight */
    put_one(&q, "00000000000000B2", "u@example.net", 0, later); /* in memory, waiting */
    struct qmsg *b1 = queue_msg_find(&q, "00000000000000B1"), *b2 = queue_msg_find(&q, "00000000000000B2");
    assert_non_null(b1);
    assert_non_null(b2);
    b1->inflight[0] = 1;
    b2->next_due = later;
    size_t deferred = q.depth[QSTATE_DEFERRED], held = q.depth[QSTATE_HOLD];
    int hello = 0;
    void *s = connect_smtpd(&q, &hello);

    expect_reply(etrn(&q, s, "Example.Net", 7), 7, POSTMESH__ETRN_REPLY__STATUS__STARTED, 4); /* A1 A2 A7 B2 */
    uint64_t due;
    for (const char *const *id = (const char *const[]){"00000000000000A1", "00000000000000A2", NULL}; *id; id++) {
        uint64_t t = stored_next_attempt(&q, *id, 0);
        assert_true(t >= now && t <= queue_now());
        assert_int_equal(entries_of(&q, *id, &due), 9); /* one entry per record, none left behind */
        assert_int_equal(due, t);                        /* the entry moved with the record */
    }
    assert_int_equal(stored_next_attempt(&q, "00000000000000A7", 0), later);
    assert_true(stored_next_attempt(&q, "00000000000000A7", 1) <= queue_now());
    for (const char *const *id = (const char *const[]){"00000000000000A3", "00000000000000A4", "00000000000000A5",
                                                       "00000000000000A6", NULL};
         *id; id++)
        assert_int_equal(stored_next_attempt(&q, *id, 0), later);
    /* in memory: changed there and written by the next commit (the loop ran it); the one in
     * flight not at all */
    assert_true(b2->rec->recipients[0]->next_attempt <= queue_now());
    assert_int_equal(b2->next_due, 0);
    uint64_t deadline = pm_mono_ms() + 5000;
    while (b2->dirty && pm_mono_ms() < deadline)
        event_base_loop(q.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_true(stored_next_attempt(&q, "00000000000000B2", 0) <= queue_now());
    assert_int_equal(b1->rec->recipients[0]->next_attempt, later);
    assert_false(b1->dirty);
    assert_int_equal(stored_next_attempt(&q, "00000000000000B1", 0), later);
    assert_int_equal(q.depth[QSTATE_DEFERRED], deferred);
    assert_int_equal(q.depth[QSTATE_HOLD], held);
    assert_int_equal(queue_etrn_turn(&q), 0); /* answered: nothing left to do */

    /* "@": the subdomain too (the others, due already, still count) */
    expect_reply(etrn(&q, s, "@example.net", 8), 8, POSTMESH__ETRN_REPLY__STATUS__STARTED, 5);
    assert_true(stored_next_attempt(&q, "00000000000000A3", 0) <= queue_now());
    assert_int_equal(stored_next_attempt(&q, "00000000000000A4", 0), later);
    assert_int_equal(stored_next_attempt(&q, "00000000000000A5", 0), later);
    /* nothing for other domains, nor for a request without a domain */
    expect_reply(etrn(&q, s, "nothing.test", 9), 9, POSTMESH__ETRN_REPLY__STATUS__NOTHING, 0);
    expect_reply(etrn(&q, s, "@", 10), 10, POSTMESH__ETRN_REPLY__STATUS__NOTHING, 0);
    assert_int_equal(entries_of(&q, "00000000000000A3", &due), 9);

    close_sockets();
    close_store(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_match),
        cmocka_unit_test(test_flush_picks_deferred_remote_recipients_of_the_domain),
        cmocka_unit_test(test_flush_gives_one_attempt_per_window),
        cmocka_unit_test(test_walk_visits_every_record_once_wherever_it_is),
        cmocka_unit_test(test_etrn_starts_what_waits_for_the_domain),
    };
    return cmocka_run_group_tests(tests, fq_setup_security, teardown);
}
