/* The control endpoint: what `postmesh queue ...` asks. A listing pages through the store (a
 * message in memory is shown as it is there, with what is in flight); one message is found
 * by id in the active set or read from the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue.h"
#include "tlsrpt.h"

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

const char *queue_msg_state(const struct qmsg *m)
{
    if (m->rec->hold)
        return "hold";
    int deferred = 0;
    for (size_t i = 0; i < m->rec->n_recipients; i++) {
        if (m->inflight[i])
            return "active";
        deferred |= m->rec->recipients[i]->state == ST(DEFERRED);
    }
    return deferred ? "deferred" : "queued";
}

/* Fills item from m. Strings are borrowed from m->rec except the ones allocated here. */
static void fill_item(Postmesh__QueueItem *it, Postmesh__QueueRecipient **rp, Postmesh__QueueRecipient *r,
                      const struct qmsg *m)
{
    postmesh__queue_item__init(it);
    it->queue_id = m->rec->queue_id;
    it->arrival_time = m->rec->arrival_time;
    it->size = m->rec->size;
    it->sender = m->rec->sender;
    it->state = (char *)queue_msg_state(m);
    it->client_address = m->rec->client_address;
    it->helo = m->rec->helo;
    it->hold_reason = m->rec->hold && m->rec->hold_reason ? m->rec->hold_reason : ""; /* a milter's quarantine */
    it->requiretls = m->rec->requiretls;
    for (size_t i = 0; i < m->rec->n_recipients; i++) {
        const Postmesh__StoredRecipient *s = m->rec->recipients[i];
        postmesh__queue_recipient__init(&r[i]);
        r[i].address = s->address;
        r[i].state = (char *)(m->inflight[i] ? "active" : queue_rcpt_state_name(s->state));
        r[i].attempts = s->attempts;
        r[i].next_attempt = s->next_attempt;
        r[i].last_error = s->last_error;
        rp[i] = &r[i];
    }
    it->recipients = rp;
    it->n_recipients = m->rec->n_recipients;
}

static char *headers_of(struct queue *q, const char *id)
{
    MDB_txn *txn;
    MDB_val body;
    if (queue_store_body(q, &txn, id, &body))
        return strdup("");
    const char *b = body.mv_data;
    size_t n = body.mv_size;
    for (size_t i = 0; i + 3 < body.mv_size; i++)
        if (memcmp(b + i, "\r\n\r\n", 4) == 0) {
            n = i + 2;
            break;
        }
    char *h = strndup(b, n);
    mdb_txn_abort(txn);
    return h;
}

/* One page of the listing (SHOW: only that message). Items of messages not in memory are
 * decoded from the store and freed once the reply is sent. A page is bounded in items and in
 * bytes (messages with many recipients), whatever the request asks: limit 0 (all at once,
 * as an older CLI asked) gets a full page with `more` set, not a million items. */
#define LIST_PAGE_MAX 5000
#define LIST_PAGE_BYTES (4u << 20) /* packed items per reply */

static void reply_list(struct queue *q, struct pm_bus *bus, const uint8_t *peer, size_t peerlen, uint64_t rid,
                       struct qmsg *only, const Postmesh__ControlRequest *c)
{
    size_t cap = only ? 1 : c->limit && c->limit < LIST_PAGE_MAX ? c->limit : LIST_PAGE_MAX, bytes = 0;
    Postmesh__QueueItem *items = calloc(cap + 1, sizeof *items), **itp = calloc(cap + 1, sizeof *itp);
    Postmesh__QueueRecipient **rps = calloc(cap + 1, sizeof *rps), ***rpps = calloc(cap + 1, sizeof *rpps);
    struct qmsg *tmp = calloc(cap + 1, sizeof *tmp); /* stand-ins for records read from the store */
    size_t k = 0, ntmp = 0;
    int more = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    if (!items || !itp || !rps || !rpps || !tmp) {
        cap = 0;
    } else if (!only && (mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn) || mdb_cursor_open(txn, q->db_meta, &cur))) {
        if (txn)
            mdb_txn_abort(txn);
        txn = NULL;
        cap = 0;
    }
    MDB_val key, val;
    int rc = MDB_NOTFOUND;
    if (cur) {
        size_t alen = strlen(c->after);
        key = (MDB_val){alen, c->after};
        rc = mdb_cursor_get(cur, &key, &val, alen ? MDB_SET_RANGE : MDB_FIRST);
        if (rc == 0 && alen && key.mv_size == alen && memcmp(key.mv_data, c->after, alen) == 0)
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    for (;;) {
        const struct qmsg *m = only;
        if (!only) {
            if (rc)
                break;
            if (k == cap || bytes >= LIST_PAGE_BYTES) {
                more = 1;
                break;
            }
            if (key.mv_size == QUEUE_ID_LEN) {
                char id[QUEUE_ID_LEN + 1];
                memcpy(id, key.mv_data, QUEUE_ID_LEN);
                id[QUEUE_ID_LEN] = '\0';
                m = queue_hash_get(q, id);
                if (!m) {
                    Postmesh__StoredMessage *rec = postmesh__stored_message__unpack(NULL, val.mv_size, val.mv_data);
                    if (rec) {
                        tmp[ntmp].rec = rec;
                        tmp[ntmp].inflight = calloc(rec->n_recipients + 1, 1);
                        m = &tmp[ntmp++];
                    }
                }
            }
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
        if (m && m->inflight && !m->removed) {
            rps[k] = calloc(m->rec->n_recipients + 1, sizeof **rps);
            rpps[k] = calloc(m->rec->n_recipients + 1, sizeof **rpps);
            fill_item(&items[k], rpps[k], rps[k], m);
            if (only)
                items[k].headers = headers_of(q, m->rec->queue_id);
            itp[k] = &items[k];
            bytes += postmesh__queue_item__get_packed_size(&items[k]);
            k++;
        }
        if (only)
            break;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    Postmesh__ControlReply cr = POSTMESH__CONTROL_REPLY__INIT;
    Postmesh__BusMessage out = POSTMESH__BUS_MESSAGE__INIT;
    cr.ok = 1;
    cr.items = itp;
    cr.n_items = k;
    cr.more = more;
    out.request_id = rid;
    out.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY;
    out.control_reply = &cr;
    pm_bus_send_to(bus, peer, peerlen, &out);
    for (size_t i = 0; i < k; i++) {
        if (only)
            free(items[i].headers);
        free(rps[i]);
        free(rpps[i]);
    }
    for (size_t i = 0; i < ntmp; i++) {
        postmesh__stored_message__free_unpacked(tmp[i].rec, NULL);
        free(tmp[i].inflight);
    }
    free(tmp);
    free(items);
    free(itp);
    free(rps);
    free(rpps);
}

static void reply_text(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, uint64_t rid, int ok, const char *text)
{
    Postmesh__ControlReply cr = POSTMESH__CONTROL_REPLY__INIT;
    Postmesh__BusMessage out = POSTMESH__BUS_MESSAGE__INIT;
    cr.ok = ok;
    cr.text = (char *)text;
    out.request_id = rid;
    out.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY;
    out.control_reply = &cr;
    pm_bus_send_to(bus, peer, peerlen, &out);
}

static int flush_msg(struct qmsg *m)
{
    int n = 0;
    for (size_t i = 0; i < m->rec->n_recipients; i++)
        if (m->rec->recipients[i]->state == ST(DEFERRED)) {
            m->rec->recipients[i]->next_attempt = 0;
            n++;
        }
    m->bounce_retry_at = 0;
    m->next_due = 0;
    return n;
}

void queue_answer_ping(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, const Postmesh__BusMessage *bm)
{
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = bm->request_id;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
    m.ping = &ping;
    pm_bus_send_to(bus, peer, peerlen, &m);
}

void queue_on_control(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *bm, void *arg)
{
    /* Validated at the edge (bus_rules.c): only a Ping or a ControlRequest gets here (the
     * control policy, endpoints.c), a command that names a message names a queue id. */
    struct queue *q = arg;
    if (bm->body_case == POSTMESH__BUS_MESSAGE__BODY_PING) {
        queue_answer_ping(bus, peer, peerlen, bm);
        return;
    }
    const Postmesh__ControlRequest *c = bm->control;
    char text[256];
    struct qmsg *m = NULL;
    int needs_id = c->command != POSTMESH__CONTROL_REQUEST__COMMAND__LIST &&
                   c->command != POSTMESH__CONTROL_REQUEST__COMMAND__FLUSH &&
                   c->command != POSTMESH__CONTROL_REQUEST__COMMAND__STATUS &&
                   c->command != POSTMESH__CONTROL_REQUEST__COMMAND__TLSRPT;
    if (needs_id) {
        m = queue_msg_find(q, c->queue_id);
        if (!m) {
            snprintf(text, sizeof text, "no message with id %s in the queue", c->queue_id);
            reply_text(bus, peer, peerlen, bm->request_id, 0, text);
            return;
        }
    }
    switch (c->command) {
    case POSTMESH__CONTROL_REQUEST__COMMAND__LIST:
        reply_list(q, bus, peer, peerlen, bm->request_id, NULL, c);
        return;
    case POSTMESH__CONTROL_REQUEST__COMMAND__SHOW:
        reply_list(q, bus, peer, peerlen, bm->request_id, m, c);
        return;
    case POSTMESH__CONTROL_REQUEST__COMMAND__FLUSH: {
        int n = 0;
        for (struct qmsg *x = q->head; x; x = x->next) {
            int k = flush_msg(x);
            if (k)
                queue_msg_mark_dirty(q, x); /* written, so that leaving memory does not undo it */
            n += k;
        }
        n += queue_store_flush(q);
        queue_load_due(q);
        snprintf(text, sizeof text, "%d deferred recipients scheduled now", n);
        pm_log(PM_INFO, "event=flush recipients=%d", n);
        break;
    }
    case POSTMESH__CONTROL_REQUEST__COMMAND__DELETE:
        pm_log(PM_INFO, "event=removed id=%s reason=operator", m->rec->queue_id);
        queue_msg_remove(q, m);
        snprintf(text, sizeof text, "%s deleted", c->queue_id);
        break;
    case POSTMESH__CONTROL_REQUEST__COMMAND__HOLD:
    case POSTMESH__CONTROL_REQUEST__COMMAND__RELEASE: {
        int hold = c->command == POSTMESH__CONTROL_REQUEST__COMMAND__HOLD;
        m->rec->hold = hold;
        if (!hold && m->rec->hold_reason && m->rec->hold_reason[0])
            m->rec->hold_reason[0] = '\0'; /* a quarantine's reason ends with it (heap, not "") */
        if (!hold)
            flush_msg(m);
        queue_msg_mark_dirty(q, m);
        pm_log(PM_INFO, "event=%s id=%s", hold ? "hold" : "release", m->rec->queue_id);
        snprintf(text, sizeof text, "%s %s", c->queue_id, hold ? "on hold" : "released");
        break;
    }
    case POSTMESH__CONTROL_REQUEST__COMMAND__STATUS: {
        size_t njobs = 0;
        for (struct job *j = q->jobs; j; j = j->next)
            njobs++;
        snprintf(text, sizeof text,
                 "messages=%zu jobs_in_flight=%zu workers=%zu committed_total=%llu commits_total=%llu "
                 "in_memory=%zu active_limit=%zu deferred=%zu hold=%zu",
                 q->nstored + q->nfresh, njobs, q->nworkers, (unsigned long long)q->committed_total,
                 (unsigned long long)q->commits_total, q->nmsgs, q->active_limit, q->depth[QSTATE_DEFERRED],
                 q->depth[QSTATE_HOLD]);
        break;
    }
    case POSTMESH__CONTROL_REQUEST__COMMAND__TLSRPT: {
        /* Every day counted, today's too: each report committed with its day's deletion. */
        int n = queue_tlsrpt_send(q, 1, text, sizeof text);
        pm_log(PM_INFO, "event=tlsrpt_requested queued=%d", n);
        if (n < 0) {
            reply_text(bus, peer, peerlen, bm->request_id, 0, text);
            return;
        }
        break;
    }
    default: /* only a command added to the proto and not here: the edge admits no other value */
        reply_text(bus, peer, peerlen, bm->request_id, 0, "unknown command");
        return;
    }
    /* Answer only once the change is durable. */
    queue_commit_now(q);
    reply_text(bus, peer, peerlen, bm->request_id, 1, text);
}
