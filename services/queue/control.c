/* The control endpoint: what `postmesh queue ...` asks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "queue.h"

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

static void reply_list(struct queue *q, struct pm_bus *bus, const uint8_t *peer, size_t peerlen, uint64_t rid,
                       struct qmsg *only)
{
    size_t n = only ? 1 : q->nmsgs, k = 0;
    Postmesh__QueueItem *items = calloc(n + 1, sizeof *items), **itp = calloc(n + 1, sizeof *itp);
    Postmesh__QueueRecipient **rps = calloc(n + 1, sizeof *rps), ***rpps = calloc(n + 1, sizeof *rpps);
    for (struct qmsg *m = only ? only : q->head; m && k < n; m = only ? NULL : m->next) {
        rps[k] = calloc(m->rec->n_recipients + 1, sizeof **rps);
        rpps[k] = calloc(m->rec->n_recipients + 1, sizeof **rpps);
        fill_item(&items[k], rpps[k], rps[k], m);
        if (only)
            items[k].headers = headers_of(q, m->rec->queue_id);
        itp[k] = &items[k];
        k++;
    }
    Postmesh__ControlReply cr = POSTMESH__CONTROL_REPLY__INIT;
    Postmesh__BusMessage out = POSTMESH__BUS_MESSAGE__INIT;
    cr.ok = 1;
    cr.items = itp;
    cr.n_items = k;
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
    struct queue *q = arg;
    if (bm->body_case == POSTMESH__BUS_MESSAGE__BODY_PING) {
        queue_answer_ping(bus, peer, peerlen, bm);
        return;
    }
    if (bm->body_case != POSTMESH__BUS_MESSAGE__BODY_CONTROL)
        return;
    const Postmesh__ControlRequest *c = bm->control;
    char text[256];
    struct qmsg *m = NULL;
    int needs_id = c->command != POSTMESH__CONTROL_REQUEST__COMMAND__LIST &&
                   c->command != POSTMESH__CONTROL_REQUEST__COMMAND__FLUSH &&
                   c->command != POSTMESH__CONTROL_REQUEST__COMMAND__STATUS;
    if (needs_id) {
        m = c->queue_id[0] ? queue_msg_find(q, c->queue_id) : NULL;
        if (!m) {
            snprintf(text, sizeof text, "no message with id %.32s in the queue", c->queue_id);
            reply_text(bus, peer, peerlen, bm->request_id, 0, text);
            return;
        }
    }
    switch (c->command) {
    case POSTMESH__CONTROL_REQUEST__COMMAND__LIST:
        reply_list(q, bus, peer, peerlen, bm->request_id, NULL);
        return;
    case POSTMESH__CONTROL_REQUEST__COMMAND__SHOW:
        reply_list(q, bus, peer, peerlen, bm->request_id, m);
        return;
    case POSTMESH__CONTROL_REQUEST__COMMAND__FLUSH: {
        int n = 0;
        for (struct qmsg *x = q->head; x; x = x->next)
            n += flush_msg(x);
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
        snprintf(text, sizeof text, "messages=%zu jobs_in_flight=%zu workers=%zu committed_total=%llu commits_total=%llu",
                 q->nmsgs, njobs, q->nworkers, (unsigned long long)q->committed_total,
                 (unsigned long long)q->commits_total);
        break;
    }
    default:
        reply_text(bus, peer, peerlen, bm->request_id, 0, "unknown command");
        return;
    }
    /* Answer only once the change is durable. */
    queue_commit_now(q);
    reply_text(bus, peer, peerlen, bm->request_id, 1, text);
}
