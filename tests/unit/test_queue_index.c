/* The due index and the active set: key order, when a stored record is due, its stored state,
 * the id hash, and when a message may leave memory; then the loader against a real LMDB store
 * in a temporary directory (what it does with orphans and corrupt records, and that it goes
 * round the due entries however fast new mail comes in). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/queue.h"
#include "queue_store.h"

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

static void test_keys_sort_by_time_then_id(void **state)
{
    (void)state;
    uint8_t a[QUEUE_DUE_KEY_LEN], b[QUEUE_DUE_KEY_LEN], c[QUEUE_DUE_KEY_LEN], d[QUEUE_DUE_KEY_LEN];
    queue_due_key(a, 255, "FFFFFFFFFFFFFFFF");
    queue_due_key(b, 256, "0000000000000000");
    queue_due_key(c, 256, "0000000000000001");
    queue_due_key(d, QUEUE_DUE_NEVER, "0000000000000000");
    /* LMDB compares keys as bytes (memcmp): big-endian time first, then the id. */
    assert_true(memcmp(a, b, sizeof a) < 0);
    assert_true(memcmp(b, c, sizeof b) < 0);
    assert_true(memcmp(c, d, sizeof c) < 0);
    assert_int_equal(queue_due_key_time(a), 255);
    assert_int_equal(queue_due_key_time(c), 256);
    assert_true(queue_due_key_time(d) == QUEUE_DUE_NEVER);
    assert_memory_equal(c + 8, "0000000000000001", QUEUE_ID_LEN);
}

struct fixture {
    struct pm_config cfg;
    Postmesh__StoredMessage rec;
    Postmesh__StoredRecipient r[2], *rp[2];
};

static void setup_rec(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->cfg.queue.max_lifetime = 1000;
    f->cfg.queue.delay_warning = 100;
    postmesh__stored_message__init(&f->rec);
    f->rec.queue_id = (char *)"0123456789ABCDEF";
    f->rec.sender = (char *)"a@example.test";
    f->rec.arrival_time = 10000;
    for (int i = 0; i < 2; i++) {
        postmesh__stored_recipient__init(&f->r[i]);
        f->rp[i] = &f->r[i];
    }
    f->rec.recipients = f->rp;
    f->rec.n_recipients = 2;
}

static void test_stored_due_follows_the_record(void **state)
{
    (void)state;
    struct fixture f;
    setup_rec(&f);
    /* pending: at once, keyed by its arrival (sorts behind what was due before it came) */
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 10000);
    assert_int_equal(queue_stored_state(&f.rec), QSTATE_QUEUED);
    /* deferred + delivered: the next attempt, bounded by the delay warning and expiry */
    f.r[0].state = ST(DEFERRED);
    f.r[0].next_attempt = 10050;
    f.r[1].state = ST(DELIVERED);
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 10050);
    assert_int_equal(queue_stored_state(&f.rec), QSTATE_DEFERRED);
    f.r[0].next_attempt = 20000;
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 10100); /* the delay warning */
    f.rec.delay_warned = 1;
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 11000); /* expiry */
    /* a failed recipient waits for its bounce: at once */
    f.r[1].state = ST(FAILED);
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 10000);
    /* held: only the expiry of its deferred recipients; without any, never */
    f.rec.hold = 1;
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 11000);
    assert_int_equal(queue_stored_state(&f.rec), QSTATE_HOLD);
    f.r[0].state = ST(PENDING);
    assert_true(queue_stored_due(&f.cfg, &f.rec) == QUEUE_DUE_NEVER);
    /* nothing left to do (held or not): due at once, to be removed */
    f.r[0].state = ST(DELIVERED);
    f.r[1].state = ST(BOUNCED);
    assert_int_equal(queue_stored_due(&f.cfg, &f.rec), 10000);
}

static void test_due_rule_in_memory(void **state)
{
    (void)state;
    struct fixture f;
    setup_rec(&f);
    uint8_t inflight[2] = {1, 0};
    f.r[0].state = ST(PENDING);
    f.r[1].state = ST(DELIVERED);
    /* in flight: waits for its job's result */
    assert_true(queue_due_rule(&f.cfg, &f.rec, inflight, 0, 0, 0) == QUEUE_DUE_NEVER);
    inflight[0] = 0;
    assert_int_equal(queue_due_rule(&f.cfg, &f.rec, inflight, 0, 0, 0), 0);
    /* a failed recipient whose DSN submission failed: at its retry; with a DSN job out: never */
    f.r[0].state = ST(FAILED);
    assert_int_equal(queue_due_rule(&f.cfg, &f.rec, inflight, 0, 10500, 0), 10500);
    assert_true(queue_due_rule(&f.cfg, &f.rec, inflight, 1, 0, 0) == QUEUE_DUE_NEVER);
    /* all done but a delay notice still out: not due until it is answered */
    f.r[0].state = ST(BOUNCED);
    assert_true(queue_due_rule(&f.cfg, &f.rec, inflight, 1, 0, 0) == QUEUE_DUE_NEVER);
    assert_int_equal(queue_due_rule(&f.cfg, &f.rec, inflight, 0, 0, 0), 0);
}

static Postmesh__StoredMessage *make_rec(int i)
{
    Postmesh__StoredMessage *rec = calloc(1, sizeof *rec);
    postmesh__stored_message__init(rec);
    rec->queue_id = malloc(QUEUE_ID_LEN + 1);
    snprintf(rec->queue_id, QUEUE_ID_LEN + 1, "%016X", (unsigned)i * 2654435761u);
    /* one recipient still to do: a message with nothing left is never evicted (it is removed) */
    rec->recipients = calloc(1, sizeof *rec->recipients);
    rec->recipients[0] = calloc(1, sizeof *rec->recipients[0]);
    postmesh__stored_recipient__init(rec->recipients[0]);
    rec->n_recipients = 1;
    return rec;
}

static void test_hash_finds_what_is_in_memory(void **state)
{
    (void)state;
    struct queue q = {0};
    enum { N = 5000 };
    struct qmsg **ms = calloc(N, sizeof *ms);
    for (int i = 0; i < N; i++)
        ms[i] = queue_msg_new(&q, make_rec(i));
    assert_int_equal(q.nmsgs, N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(queue_hash_get(&q, ms[i]->rec->queue_id), ms[i]);
    assert_null(queue_hash_get(&q, "FFFFFFFFFFFFFFF0"));
    /* every other one leaves memory (committed, not due, nothing refers to it) */
    q.active_limit = N;
    int evicted = 0;
    for (int i = 0; i < N; i += 2) {
        ms[i]->committed = ms[i]->indexed = 1;
        ms[i]->idx_due = 2000;
        evicted += queue_msg_maybe_evict(&q, ms[i], 1000);
    }
    assert_int_equal(evicted, N / 2);
    assert_int_equal(q.nmsgs, N / 2);
    for (int i = 1; i < N; i += 2)
        assert_ptr_equal(queue_hash_get(&q, ms[i]->rec->queue_id), ms[i]);
    char id[QUEUE_ID_LEN + 1];
    snprintf(id, sizeof id, "%016X", 0u);
    assert_null(queue_hash_get(&q, id));
    free(ms);
    queue_free_memory(&q);
}

static void test_eviction_keeps_what_memory_must_hold(void **state)
{
    (void)state;
    struct queue q = {.active_limit = 2};
    struct qmsg *m = queue_msg_new(&q, make_rec(1));
    /* not committed yet */
    assert_int_equal(queue_msg_maybe_evict(&q, m, 1000), 0);
    m->committed = m->indexed = 1;
    m->idx_due = 500; /* its entry says due: stays while there is room */
    assert_int_equal(queue_msg_maybe_evict(&q, m, 1000), 0);
    m->idx_due = 5000;
    m->refs++; /* a job holds it */
    assert_int_equal(queue_msg_maybe_evict(&q, m, 1000), 0);
    m->refs--;
    m->dirty = 1;
    assert_int_equal(queue_msg_maybe_evict(&q, m, 1000), 0);
    m->dirty = 0;
    m->bounce_inflight = 1;
    assert_int_equal(queue_msg_maybe_evict(&q, m, 1000), 0);
    m->bounce_inflight = 0;
    /* over the limit, a due message that nothing holds leaves too (it is loaded again) */
    struct qmsg *a = queue_msg_new(&q, make_rec(2)), *b = queue_msg_new(&q, make_rec(3));
    a->committed = a->indexed = 1;
    b->committed = b->indexed = 1;
    assert_int_equal(q.nmsgs, 3);
    assert_int_equal(queue_msg_maybe_evict(&q, a, 1000), 1);
    assert_int_equal(q.backlog, 1);
    assert_int_equal(queue_msg_maybe_evict(&q, b, 1000), 0); /* at the limit now, and due */
    assert_int_equal(queue_msg_maybe_evict(&q, m, 1000), 1); /* not due */
    assert_int_equal(q.nmsgs, 1);
    queue_free_memory(&q);
}

static void test_counters_follow_writes(void **state)
{
    (void)state;
    struct queue q = {.active_limit = 10};
    struct qmsg *m = queue_msg_new(&q, make_rec(7));
    m->new_state = QSTATE_QUEUED;
    queue_index_written(&q, m);
    assert_int_equal(q.nstored, 1);
    assert_int_equal(q.depth[QSTATE_QUEUED], 1);
    m->new_state = QSTATE_DEFERRED;
    m->new_due = 77;
    queue_index_written(&q, m);
    assert_int_equal(q.nstored, 1);
    assert_int_equal(q.depth[QSTATE_QUEUED], 0);
    assert_int_equal(q.depth[QSTATE_DEFERRED], 1);
    assert_int_equal(m->idx_due, 77);
    m->removed = 1;
    queue_index_written(&q, m);
    assert_int_equal(q.nstored, 0);
    assert_int_equal(q.depth[QSTATE_DEFERRED], 0);
    m->removed = 0;
    queue_free_memory(&q);
}

/* ---- the loader against a real store ---- */

static void open_store(struct queue *q, struct pm_config *cfg) { qs_open(q, cfg, 100000); }
static void close_store(struct queue *q) { qs_close(q); }

/* A one-recipient message: pending (next_attempt 0) or deferred until next_attempt. record:
 * 1 its record, 0 none, -1 undecodable bytes; its entry as the queue would write it. */
static void put_msg(struct queue *q, const char *id, uint64_t arrival, uint64_t next_attempt, int record)
{
    Postmesh__StoredRecipient r = POSTMESH__STORED_RECIPIENT__INIT, *rp = &r;
    r.address = r.original = (char *)"x@remote.test";
    r.state = next_attempt ? ST(DEFERRED) : ST(PENDING);
    r.next_attempt = next_attempt;
    Postmesh__StoredMessage m = POSTMESH__STORED_MESSAGE__INIT;
    m.queue_id = (char *)id;
    m.arrival_time = arrival;
    m.sender = (char *)"a@example.test";
    m.recipients = &rp;
    m.n_recipients = 1;
    uint8_t buf[512], key[QUEUE_DUE_KEY_LEN], state = queue_stored_state(&m);
    size_t len = postmesh__stored_message__pack(&m, buf);
    queue_due_key(key, queue_stored_due(q->cfg, &m), id);
    MDB_txn *t;
    assert_int_equal(mdb_txn_begin(q->env, NULL, 0, &t), 0);
    MDB_val mk = {QUEUE_ID_LEN, (void *)id}, mv = {len, buf}, bad = {3, (void *)"\xff\xff\xff"};
    MDB_val dk = {sizeof key, key}, dv = {1, &state};
    if (record)
        assert_int_equal(mdb_put(t, q->db_meta, &mk, record > 0 ? &mv : &bad, 0), 0);
    assert_int_equal(mdb_put(t, q->db_due, &dk, &dv, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    q->nstored++;
    q->depth[state]++;
}

/* A message delivered: its record and entry deleted, and it leaves memory. */
static void finish_msg(struct queue *q, struct qmsg *m)
{
    uint8_t key[QUEUE_DUE_KEY_LEN];
    queue_due_key(key, m->idx_due, m->rec->queue_id);
    MDB_txn *t;
    assert_int_equal(mdb_txn_begin(q->env, NULL, 0, &t), 0);
    MDB_val mk = {QUEUE_ID_LEN, m->rec->queue_id}, dk = {sizeof key, key};
    assert_int_equal(mdb_del(t, q->db_meta, &mk, NULL), 0);
    assert_int_equal(mdb_del(t, q->db_due, &dk, NULL), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    assert_int_equal(queue_msg_evict_blocked(q, m), 1);
}

static size_t due_entries(struct queue *q, uint64_t *never)
{
    MDB_txn *t;
    MDB_cursor *c;
    MDB_val k, v;
    size_t n = 0;
    *never = 0;
    assert_int_equal(mdb_txn_begin(q->env, NULL, MDB_RDONLY, &t), 0);
    assert_int_equal(mdb_cursor_open(t, q->db_due, &c), 0);
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        n++;
        *never += queue_due_key_time(k.mv_data) == QUEUE_DUE_NEVER;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    return n;
}

static void test_loader_drops_only_entries_without_a_record(void **state)
{
    (void)state;
    struct queue q = {.active_limit = 10};
    struct pm_config cfg;
    open_store(&q, &cfg);
    uint64_t now = queue_now();
    put_msg(&q, "00000000000000A1", now - 100, now - 10, 1);  /* due: loaded */
    put_msg(&q, "00000000000000B2", now - 100, now - 10, 0);  /* its record is gone: an orphan */
    put_msg(&q, "00000000000000C3", now - 100, now - 10, -1); /* undecodable: kept, never due */
    put_msg(&q, "00000000000000D4", now - 100, now + 900, 1); /* not due */
    queue_load_due(&q);
    assert_int_equal(q.nmsgs, 1);
    assert_non_null(queue_hash_get(&q, "00000000000000A1"));
    uint64_t never;
    assert_int_equal(due_entries(&q, &never), 3);
    assert_int_equal(never, 1);
    /* the orphan leaves the counters too (depth by state included) */
    assert_int_equal(q.nstored, 3);
    assert_int_equal(q.depth[QSTATE_DEFERRED], 3);
    queue_load_due(&q); /* nothing more to repair */
    assert_int_equal(due_entries(&q, &never), 3);
    assert_int_equal(q.nstored, 3);
    close_store(&q);
}

static void test_loader_reaches_retries_while_new_mail_keeps_coming(void **state)
{
    (void)state;
    struct queue q = {.active_limit = 2};
    struct pm_config cfg;
    open_store(&q, &cfg);
    uint64_t now = queue_now();
    char id[QUEUE_ID_LEN + 1];
    unsigned serial = 1;
    for (int i = 0; i < 4; i++, serial++) { /* new mail of a minute ago, still waiting */
        snprintf(id, sizeof id, "%016X", serial);
        put_msg(&q, id, now - 60, 0, 1);
    }
    put_msg(&q, "F000000000000001", now - 3600, now - 30, 1); /* a retry due 30 s ago */
    /* Each step the loader fills the active set (2), those two are delivered, and 3 new
     * messages arrive: more than it can take, for ever. The retry must still get its turn. */
    int found = -1;
    for (int step = 0; step < 30 && found < 0; step++) {
        queue_load_due(&q);
        assert_true(q.nmsgs <= q.active_limit);
        for (struct qmsg *m = q.head, *n; m; m = n) {
            n = m->next;
            if (strcmp(m->rec->queue_id, "F000000000000001") == 0)
                found = step;
            else
                finish_msg(&q, m);
        }
        for (int i = 0; i < 3; i++, serial++) {
            snprintf(id, sizeof id, "%016X", serial);
            put_msg(&q, id, queue_now(), 0, 1);
        }
    }
    assert_true(found >= 0);
    assert_true(found <= 3); /* behind the 4 that were due before it, not behind the new ones */
    close_store(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_sort_by_time_then_id),
        cmocka_unit_test(test_stored_due_follows_the_record),
        cmocka_unit_test(test_due_rule_in_memory),
        cmocka_unit_test(test_hash_finds_what_is_in_memory),
        cmocka_unit_test(test_eviction_keeps_what_memory_must_hold),
        cmocka_unit_test(test_counters_follow_writes),
        cmocka_unit_test(test_loader_drops_only_entries_without_a_record),
        cmocka_unit_test(test_loader_reaches_retries_while_new_mail_keeps_coming),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
