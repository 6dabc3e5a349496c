/* Submissions and the group commit. A submission is kept in memory (stolen from the bus,
 * no copy) until the commit that holds it; all submissions read in one burst from the bus
 * share one synced LMDB transaction, and only then get their COMMITTED reply. Once written, a
 * message beyond queue.active_limit (or not due) leaves memory: the store and its due index
 * keep it (index.c). */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "dsn.h"
#include "dkim_sign.h"
#include "log.h"
#include "logvalue.h"
#include "metrics.h"
#include "queue.h"
#include "tlsrpt.h"

#define MAX_HOPS 100

static void reply(struct queue *q, const uint8_t *peer, size_t peerlen, uint64_t request_id,
                  Postmesh__SubmitReply__Status status, const char *id, const char *text)
{
    Postmesh__BusMessage out = POSTMESH__BUS_MESSAGE__INIT;
    Postmesh__SubmitReply r = POSTMESH__SUBMIT_REPLY__INIT;
    r.status = status;
    r.queue_id = (char *)(id ? id : "");
    r.text = (char *)(text ? text : "");
    out.request_id = request_id;
    out.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY;
    out.submit_reply = &r;
    char reason[16];
    int ok = status == POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED;
    pm_metric_add(PM_M_QUEUE_SUBMISSIONS, 1, ok ? "committed" : "refused",
                  pm_metric_reason(r.text, reason, sizeof reason));
    if (peerlen == 0)
        return; /* the queue's own message (a TLS report: tlsrpt.c): nobody waits */
    if (pm_bus_send_to(q->bus, peer, peerlen, &out) < 0)
        pm_log(PM_WARN, "event=reply_lost id=%s error=\"%s\"", id ? id : "-", strerror(errno));
}

/* Counts "Received:" header fields in the header section: more than MAX_HOPS is a loop. */
int queue_count_received(const uint8_t *body, size_t len)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && body[eol] != '\n')
            eol++;
        size_t linelen = eol - i;
        if (linelen == 0 || (linelen == 1 && body[i] == '\r'))
            break; /* end of headers */
        if (linelen >= 9 && strncasecmp((const char *)body + i, "received:", 9) == 0)
            n++;
        i = eol + 1;
    }
    return n;
}

/* dsn: the RCPT's NOTIFY and ORCPT (NULL: none), kept by every address it expands to. */
static Postmesh__StoredRecipient *new_rcpt(const struct queue *q, const char *address, const char *original,
                                           const Postmesh__RecipientDsn *dsn)
{
    Postmesh__StoredRecipient *r = malloc(sizeof *r);
    postmesh__stored_recipient__init(r);
    r->address = strdup(address);
    r->original = strdup(original);
    r->dsn = queue_dsn_copy(dsn);
    r->local = pm_config_is_local_domain(q->cfg, pm_addr_domain(address));
    return r;
}

static void add_rcpt(Postmesh__StoredMessage *rec, size_t *cap, Postmesh__StoredRecipient *r)
{
    if (rec->n_recipients == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        rec->recipients = realloc(rec->recipients, *cap * sizeof *rec->recipients);
    }
    rec->recipients[rec->n_recipients++] = r;
}

/* Final recipients per message after alias expansion, at least what smtpd may accept
 * without aliases. Beyond it the RCPTs that do not fit fail with 5.5.3 and the sender gets
 * a DSN for them, as for an alias loop: smtpd answered 250 to each RCPT before anyone knew
 * what it expands to, so the message is kept for those that fit. */
#define MAX_EXPANDED_RCPTS 10000

static size_t max_expanded(const struct pm_config *cfg)
{
    long long m = cfg->smtpd.max_recipients;
    return m > MAX_EXPANDED_RCPTS ? (size_t)m : MAX_EXPANDED_RCPTS;
}

static void add_failed(const struct queue *q, Postmesh__StoredMessage *rec, size_t *cap, const char *rcpt,
                       const Postmesh__RecipientDsn *dsn, const char *status, const char *err)
{
    Postmesh__StoredRecipient *r = new_rcpt(q, rcpt, rcpt, dsn);
    r->state = POSTMESH__STORED_RECIPIENT__STATE__FAILED;
    queue_set_str(&r->dsn_status, status);
    queue_set_str(&r->last_error, err);
    add_rcpt(rec, cap, r);
    char to[PM_LOGV_SIZE], ev[PM_LOGV_SIZE];
    pm_log(PM_WARN, "event=alias_error id=%s to=%s status=%s error=%s", rec->queue_id, PM_LOGV(to, rcpt), status,
           PM_LOGV(ev, err));
}

/* Builds the stored record: aliases expanded, each final address remembering its RCPT (the
 * first one that gave it). */
static Postmesh__StoredMessage *make_record(struct queue *q, const Postmesh__Submit *s, const char *id)
{
    Postmesh__StoredMessage *rec = malloc(sizeof *rec);
    postmesh__stored_message__init(rec);
    rec->version = 1;
    rec->queue_id = strdup(id);
    rec->arrival_time = queue_now();
    rec->sender = strdup(s->sender);
    rec->client_address = strdup(s->client_address);
    rec->helo = strdup(s->helo);
    rec->auth_user = strdup(s->auth_user);
    rec->is_dsn = s->is_dsn;
    rec->smtputf8 = s->smtputf8;
    rec->requiretls = s->requiretls; /* RFC 8689: kept for every hop onward and its notices */
    rec->origin_id = strdup(s->origin_id);
    rec->size = s->body.len;
    rec->dsn_ret = s->dsn_ret;
    rec->dsn_envid = strdup(s->dsn_envid);
    rec->hold = s->hold; /* quarantined by a milter: held until `postmesh queue release` */
    rec->hold_reason = strdup(s->hold_reason);
    size_t cap = 0;
    struct pm_alias_expansion *x = pm_alias_expansion_new(q->aliases, q->cfg, max_expanded(q->cfg));
    for (size_t i = 0; i < s->n_recipients; i++) {
        struct pm_strlist out = {0};
        char err[256];
        int rc = x ? pm_alias_expansion_add(x, s->recipients[i], &out, err, sizeof err) : PM_ALIAS_ERROR;
        if (!x)
            snprintf(err, sizeof err, "out of memory");
        /* RFC 3461 6.2: every address an alias expands to keeps the RCPT's NOTIFY and ORCPT
         * (simplified: no "expanded" notice; each final address reports for itself). */
        const Postmesh__RecipientDsn *dsn = s->n_recipient_dsn ? s->recipient_dsn[i] : NULL;
        if (rc < 0)
            add_failed(q, rec, &cap, s->recipients[i], dsn, rc == PM_ALIAS_TOO_MANY ? "5.5.3" : "5.4.6", err);
        /* The expansion gives each final address once per message. */
        for (int j = 0; j < out.n; j++) {
            add_rcpt(rec, &cap, new_rcpt(q, out.v[j], s->recipients[i], dsn));
            free(out.v[j]);
        }
        free(out.v);
    }
    pm_alias_expansion_free(x);
    return rec;
}

void queue_on_submit(struct queue *q, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *bm)
{
    /* Validated at the edge (bus_rules.c): counts and lengths are within the bus's bounds. */
    const Postmesh__Submit *s = bm->submit;
    if (s->n_recipients == 0) {
        reply(q, peer, peerlen, bm->request_id, POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL, NULL,
              "5.5.1 no valid recipients");
        return;
    }
    if (s->n_recipient_dsn && s->n_recipient_dsn != s->n_recipients) {
        reply(q, peer, peerlen, bm->request_id, POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL, NULL,
              "5.5.4 invalid Submit: recipient_dsn does not match recipients");
        return;
    }
    if (queue_count_received(s->body.data, s->body.len) > MAX_HOPS) {
        reply(q, peer, peerlen, bm->request_id, POSTMESH__SUBMIT_REPLY__STATUS__PERMFAIL, NULL,
              "5.4.6 too many hops, mail loop detected");
        char from[PM_LOGV_SIZE], client[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=reject reason=loop from=%s client=%s", PM_LOGV_PATH(from, s->sender),
               PM_LOGV(client, s->client_address));
        return;
    }
    /* Originating mail is DKIM-signed by the pool's threads, then admitted (dkim_sign.h). */
    if (queue_dkim_pool_take(q->dkim_pool, bm, peer, peerlen)) {
        pm_bus_steal(q->bus);
        return;
    }
    queue_submit_admit(q, bm, peer, peerlen, 0, NULL);
}

/* The rest of intake: a queue id, the record, the wait for the group commit. owned: bm was
 * stolen from the bus already (signed by the pool); o: what signing came to (NULL: sign
 * here, inline). */
void queue_submit_admit(struct queue *q, Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen, int owned,
                        const struct dkim_outcome *o)
{
    const Postmesh__Submit *s = bm->submit;
    struct dkim_outcome inline_outcome;
    if (!o) {
        queue_dkim_sign_submit(q->dkim, bm->submit, &inline_outcome); /* before the record: its size counts it */
        o = &inline_outcome;
    }
    char err[256];
    if (pm_aliases_reload_if_changed(&q->aliases, err, sizeof err) < 0) {
        char ev[PM_LOGV_SIZE];
        pm_log(PM_ERR, "event=aliases_error error=%s", PM_LOGV(ev, err));
    }

    char id[QUEUE_ID_LEN + 1];
    queue_new_id(id);
    queue_dkim_log(o, id);
    struct qmsg *m = queue_msg_new(q, make_record(q, s, id));
    if (!m) {
        reply(q, peer, peerlen, bm->request_id, POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL, NULL,
              "4.3.0 queue out of memory");
        if (owned)
            postmesh__bus_message__free_unpacked(bm, NULL);
        return;
    }
    if (!owned)
        pm_bus_steal(q->bus);
    m->pending_submit = bm;
    memcpy(m->peer, peer, peerlen < sizeof m->peer ? peerlen : sizeof m->peer);
    m->peerlen = peerlen;
    m->request_id = bm->request_id;
    q->nfresh++;
    char from[PM_LOGV_SIZE], client[PM_LOGV_SIZE], origin[PM_LOGV_SIZE], reason[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=received id=%s from=%s nrcpt=%zu size=%zu client=%s%s%s%s%s%s", id,
           PM_LOGV_PATH(from, s->sender), s->n_recipients, s->body.len, PM_LOGV(client, s->client_address),
           s->is_dsn ? " dsn_for=" : "", s->is_dsn ? PM_LOGV(origin, s->origin_id) : "", s->hold ? " hold=1 hold_reason=" : "",
           s->hold ? PM_LOGV(reason, s->hold_reason) : "", /* quarantined by a milter */
           s->requiretls ? " requiretls=yes" : "");
    queue_msg_mark_dirty(q, m);
    if (++q->batch >= (size_t)q->cfg->queue.max_batch)
        queue_commit_now(q);
}

/* A new message that could not be stored: answer and forget it (it was never acknowledged). */
static void reject_new(struct queue *q, struct qmsg *m, int rc)
{
    const char *text = (rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT) ? "4.3.1 queue store full, try again later"
                                                                            : "4.3.0 queue store error, try again later";
    reply(q, m->peer, m->peerlen, m->request_id, POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL, m->rec->queue_id, text);
    pm_log(PM_ERR, "event=store_reject id=%s error=\"%s\"", m->rec->queue_id, mdb_strerror(rc));
    postmesh__bus_message__free_unpacked(m->pending_submit, NULL);
    m->pending_submit = NULL;
    q->nfresh--;
    m->dirty = 0;
    queue_msg_remove(q, m);  /* marks it dirty again: the next commit deletes nothing, harmlessly */
    queue_msg_release(q, m); /* the dirty reference it had before */
}

static void written(struct queue *q, struct qmsg *m, uint64_t now)
{
    queue_index_written(q, m);
    if (m->pending_submit) {
        q->nfresh--;
        m->committed = 1;
        /* Logged before the reply: the log reads in causal order (committed before smtpd's
         * queued), and whoever saw the 250 finds this line. */
        pm_log(PM_INFO, "event=committed id=%s", m->rec->queue_id);
        reply(q, m->peer, m->peerlen, m->request_id, POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED, m->rec->queue_id,
              "2.0.0 committed");
        postmesh__bus_message__free_unpacked(m->pending_submit, NULL);
        m->pending_submit = NULL;
        q->committed_total++;
    }
    m->dirty = 0;
    int removed = m->removed;
    if (removed)
        queue_hash_del(q, m); /* gone from the store: a look-up may no longer find it */
    queue_msg_release(q, m); /* frees a removed message no job refers to */
    if (!removed)
        queue_msg_maybe_evict(q, m, now);
}

void queue_commit_now(struct queue *q)
{
    size_t n = 0, cap = 64;
    struct qmsg **list = malloc(cap * sizeof *list);
    for (struct qmsg *m = q->dirty; m; m = m->dirty_next) {
        if (n == cap)
            list = realloc(list, (cap *= 2) * sizeof *list);
        list[n++] = m;
    }
    q->dirty = NULL;
    q->batch = 0;
    if (n == 0 && !queue_tlsrpt_pending(q)) { /* TLS report counts commit alone too */
        free(list);
        return;
    }
    uint64_t now = queue_now();
    int rc = queue_store_write(q, list, n);
    if (rc == 0) {
        q->commits_total++;
        pm_log(PM_DEBUG, "event=group_commit records=%zu", n);
        for (size_t i = 0; i < n; i++)
            written(q, list[i], now);
    } else {
        /* Slow path (store full, disk error): write the changes to known messages first (they
         * free space), then each new message alone so one that does not fit fails alone. */
        pm_log(PM_WARN, "event=commit_failed records=%zu error=\"%s\"", n, mdb_strerror(rc));
        struct qmsg **fresh = malloc(n * sizeof *fresh), **old = malloc(n * sizeof *old);
        size_t nfresh = 0, nold = 0;
        for (size_t i = 0; i < n; i++) {
            if (list[i]->pending_submit)
                fresh[nfresh++] = list[i];
            else
                old[nold++] = list[i];
        }
        if (nold && (rc = queue_store_write(q, old, nold)) != 0) {
            /* Keep them dirty: the next commit tries again. Nothing acknowledged is lost. */
            pm_log(PM_ERR, "event=commit_failed records=%zu error=\"%s\" retry=1", nold, mdb_strerror(rc));
            for (size_t i = 0; i < nold; i++) {
                old[i]->dirty_next = q->dirty;
                q->dirty = old[i];
            }
        } else {
            for (size_t i = 0; i < nold; i++)
                written(q, old[i], now);
        }
        for (size_t i = 0; i < nfresh; i++) {
            rc = queue_store_write(q, &fresh[i], 1);
            if (rc == 0)
                written(q, fresh[i], now);
            else
                reject_new(q, fresh[i], rc);
        }
        free(fresh);
        free(old);
    }
    free(list);
    if (q->backlog)
        queue_load_due(q); /* room freed by finished messages is filled from the store */
    queue_dispatch(q);
}

static void on_commit_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct queue *q = arg;
    q->commit_scheduled = 0;
    queue_commit_now(q);
}

void queue_schedule_commit(struct queue *q)
{
    if (!q->commit_ev)
        q->commit_ev = event_new(q->base, -1, 0, on_commit_event, q);
    if (!q->commit_scheduled) {
        q->commit_scheduled = 1;
        event_active(q->commit_ev, 0, 0);
    }
}
