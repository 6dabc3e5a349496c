/* Test hook: fill the store with many deferred messages fast, for the deep-queue tests and
 * scripts/deepqueue.py (compiled out of the release build, like smtpd's testhook.c).
 *
 *   POSTMESH_TEST_QUEUE_FILL=N             write N deferred messages, then exit 0
 *   POSTMESH_TEST_QUEUE_FILL_DUE=S         their next attempt: S seconds from now (86400)
 *   POSTMESH_TEST_QUEUE_FILL_RCPT=ADDR     their recipient (user@deferred.invalid)
 *   POSTMESH_TEST_QUEUE_FILL_SOON=S        the last one is due S seconds from now instead
 *   POSTMESH_TEST_QUEUE_FILL_SOON_RCPT=A   ... and goes to A
 *   POSTMESH_TEST_QUEUE_FILL_NOINDEX=1     no due-index entries nor marker: a store of an older version
 *
 * Records, bodies and due-index entries are written as the queue writes them (store.c,
 * index.c), 20,000 per transaction. Ids are taken from ticks before now, so they never run
 * ahead of the ids the queue hands out later. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "addr.h"
#include "log.h"
#include "queue.h"

#ifndef POSTMESH_NO_TEST_HOOKS
static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

int queue_testhook_fill(struct queue *q)
{
    const char *n_s = getenv("POSTMESH_TEST_QUEUE_FILL");
    if (!n_s || !*n_s)
        return -1;
    long long n = atoll(n_s), due_in = atoll(env_or("POSTMESH_TEST_QUEUE_FILL_DUE", "86400"));
    const char *rcpt = env_or("POSTMESH_TEST_QUEUE_FILL_RCPT", "user@deferred.invalid");
    const char *soon_s = getenv("POSTMESH_TEST_QUEUE_FILL_SOON");
    const char *soon_rcpt = env_or("POSTMESH_TEST_QUEUE_FILL_SOON_RCPT", rcpt);
    int noindex = atoi(env_or("POSTMESH_TEST_QUEUE_FILL_NOINDEX", "0"));
    uint64_t now = queue_now();
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t tick = ((uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec) / 64 - (uint64_t)n - 1000;
    uint32_t tag = (uint32_t)(tv.tv_usec ^ (tv.tv_sec << 7)) & 0x3ffff;
    static const char body_fmt[] = "Received: from fill by test\r\nFrom: <fill@example.test>\r\nTo: <%s>\r\n"
                                   "Subject: deep queue %lld\r\nMessage-ID: <%lld@fill.test>\r\n\r\n"
                                   "A deferred message written by the fill hook.\r\n";
    long long written = 0;
    uint64_t soon_due = 0;
    char last_id[QUEUE_ID_LEN + 1] = "";
    int rc = 0;
    while (written < n && !rc) {
        MDB_txn *txn;
        if ((rc = mdb_txn_begin(q->env, NULL, 0, &txn)) != 0)
            break;
        if (!noindex && written == 0 && (rc = queue_store_put_marker(q, txn)) != 0) {
            mdb_txn_abort(txn);
            break;
        }
        for (int k = 0; k < 20000 && written < n && !rc; k++, written++) {
            int soon = soon_s && written == n - 1;
            const char *to = soon ? soon_rcpt : rcpt;
            char id[QUEUE_ID_LEN + 1], body[512];
            snprintf(id, sizeof id, "%016llX", (unsigned long long)(((tick + (uint64_t)written) << 18) | tag));
            int blen = snprintf(body, sizeof body, body_fmt, to, written, written);
            Postmesh__StoredRecipient r = POSTMESH__STORED_RECIPIENT__INIT, *rp = &r;
            r.address = r.original = (char *)to;
            r.local = pm_config_is_local_domain(q->cfg, pm_addr_domain(to));
            r.state = POSTMESH__STORED_RECIPIENT__STATE__DEFERRED;
            r.attempts = 1;
            r.last_attempt = now;
            r.next_attempt = soon ? now + (uint64_t)atoll(soon_s) : now + (uint64_t)due_in;
            r.last_error = (char *)"4.4.1 test fill: connection refused";
            r.dsn_status = (char *)"4.4.1";
            if (soon)
                soon_due = r.next_attempt;
            memcpy(last_id, id, sizeof last_id);
            Postmesh__StoredMessage m = POSTMESH__STORED_MESSAGE__INIT;
            m.version = 1;
            m.queue_id = id;
            m.arrival_time = now;
            m.sender = (char *)"fill@example.test";
            m.client_address = (char *)"127.0.0.1";
            m.helo = (char *)"fill.test";
            m.size = (uint64_t)blen;
            m.recipients = &rp;
            m.n_recipients = 1;
            uint8_t key[QUEUE_DUE_KEY_LEN], state = queue_stored_state(&m);
            queue_due_key(key, queue_stored_due(q->cfg, &m), id);
            size_t len = postmesh__stored_message__get_packed_size(&m);
            MDB_val mk = {QUEUE_ID_LEN, id}, mv = {len, NULL}, bv = {(size_t)blen, body};
            MDB_val dk = {sizeof key, key}, dv = {1, &state};
            rc = mdb_put(txn, q->db_meta, &mk, &mv, MDB_RESERVE);
            if (!rc)
                postmesh__stored_message__pack(&m, mv.mv_data);
            if (!rc)
                rc = mdb_put(txn, q->db_body, &mk, &bv, 0);
            if (!rc && !noindex)
                rc = mdb_put(txn, q->db_due, &dk, &dv, 0);
        }
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
    }
    if (rc) {
        pm_log(PM_ERR, "event=test_fill_failed written=%lld error=\"%s\"", written, mdb_strerror(rc));
        return 1;
    }
    pm_log(PM_WARN, "event=test_fill messages=%lld due=%llu soon_due=%llu last_id=%s", written,
           (unsigned long long)(now + (uint64_t)due_in), (unsigned long long)soon_due, last_id);
    return 0;
}
#else
int queue_testhook_fill(struct queue *q)
{
    (void)q;
    return -1;
}
#endif
