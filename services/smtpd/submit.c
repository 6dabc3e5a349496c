/* Submission to the queue shards: building the Submit, the shard it goes to, failover,
 * and matching replies to sessions (submit.h). */
#include "submit.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "queueset.h"
#include "session.h"

/* A request id names its shard in the low bits, so that a lost connection finds the
 * sessions waiting on it without a second table. */
#define SHARD_BITS 8
#define SHARD_OF(rid) ((int)((rid) & ((1u << SHARD_BITS) - 1)))

static struct smtpd_session **bucket(struct smtpd_server *srv, uint64_t id)
{
    return &srv->pending[(id >> SHARD_BITS) % SMTPD_PENDING_BUCKETS];
}

static void link_pending(struct smtpd_session *s, uint64_t rid)
{
    s->request_id = rid;
    struct smtpd_session **b = bucket(s->srv, rid);
    s->pend_next = *b;
    *b = s;
}

static void unlink_pending(struct smtpd_session *s)
{
    for (struct smtpd_session **p = bucket(s->srv, s->request_id); *p; p = &(*p)->pend_next)
        if (*p == s) {
            *p = s->pend_next;
            break;
        }
    s->pend_next = NULL;
    s->request_id = 0;
}

/* The message is no longer needed here: answered, given up, or (one shard: nowhere else
 * to send it again) taken by the bus, which made its own copy. */
static void release_outgoing(struct smtpd_session *s)
{
    if (s->outgoing)
        evbuffer_free(s->outgoing);
    s->outgoing = NULL;
    if (!s->body)
        smtpd_body_release(s);
}

/* The transaction is over whatever happened: back to commands. */
static void done(struct smtpd_session *s)
{
    release_outgoing(s);
    smtpd_txn_reset(&s->txn);
    if (s->state == SMTPD_ST_SUBMITTING) {
        s->state = SMTPD_ST_COMMAND;
        smtpd_session_resume(s);
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long a shard may take to commit before the message goes to another one. Well under
 * submit_timeout, so that a second shard still has time; not so short that an ordinary
 * slow commit (a big message, a busy disk) is sent twice. */
static long long shard_timeout_ms(const struct smtpd_server *srv)
{
    long long t = srv->cfg->smtpd.submit_timeout * 1000 / 4;
    return t < 1000 ? 1000 : t > 5000 ? 5000 : t;
}

/* Sends s->outgoing to the first shard that takes it (never avoid). Returns the request id
 * (its shard in the low bits), or 0 with errno (EAGAIN: no shard is connected). */
static uint64_t send_once(struct smtpd_session *s, int avoid)
{
    struct smtpd_server *srv = s->srv;
    Postmesh__Submit sub = POSTMESH__SUBMIT__INIT;
    sub.sender = s->txn.sender;
    sub.n_recipients = (size_t)s->txn.nrcpt;
    sub.recipients = s->txn.rcpt;
    sub.body.len = evbuffer_get_length(s->outgoing);
    sub.body.data = evbuffer_pullup(s->outgoing, -1);
    sub.client_address = s->peer;
    sub.helo = s->helo ? s->helo : "";
    sub.auth_user = s->auth_user ? s->auth_user : "";
    sub.smtputf8 = s->txn.smtputf8;
    Postmesh__BusMessage bm = POSTMESH__BUS_MESSAGE__INIT;
    bm.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    bm.submit = &sub;
    uint64_t base = ++srv->next_request_id << SHARD_BITS;
    int order[PM_QUEUESET_MAX], err = srv->queues ? EAGAIN : ENOTCONN;
    int n = srv->queues ? pm_queueset_order(srv->queues, avoid, order) : 0;
    for (int k = 0; k < n; k++) {
        bm.request_id = base | (uint64_t)order[k];
        if (pm_queueset_send_to(srv->queues, order[k], &bm) == 0)
            return bm.request_id;
        err = errno;
    }
    errno = err;
    return 0;
}

/* Sent: wait for the answer, and look again after the per-shard timeout (submit_timeout()
 * decides then). With one shard the message is not needed any more. */
static void wait_reply(struct smtpd_session *s, uint64_t rid)
{
    struct smtpd_server *srv = s->srv;
    link_pending(s, rid);
    if (pm_queueset_size(srv->queues) == 1)
        release_outgoing(s);
    long long left = srv->cfg->smtpd.submit_timeout * 1000 - (now_ms() - s->submit_start);
    long long wait = pm_queueset_size(srv->queues) > 1 && shard_timeout_ms(srv) < left ? shard_timeout_ms(srv) : left;
    s->state = SMTPD_ST_SUBMITTING;
    smtpd_session_reading(s, 0);
    smtpd_session_set_timer(s, SMTPD_TIMER_SUBMIT, (long)(wait > 0 ? wait : 1));
}

/* EAGAIN means no shard has a connection right now (starting up, reconnecting after a
 * queue restart): try again every SEND_RETRY_MS for up to SEND_WINDOW_MS (never past
 * submit_timeout), then give up with 451. */
#define SEND_RETRY_MS 50
#define SEND_WINDOW_MS 1000

static void try_send(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    uint64_t rid = send_once(s, -1);
    int err = errno;
    long long waited = now_ms() - s->submit_start;
    long long limit = srv->cfg->smtpd.submit_timeout * 1000;
    if (!rid && err == EAGAIN && waited + SEND_RETRY_MS < (limit < SEND_WINDOW_MS ? limit : SEND_WINDOW_MS)) {
        s->state = SMTPD_ST_SUBMITTING;
        smtpd_session_reading(s, 0);
        smtpd_session_set_timer(s, SMTPD_TIMER_SUBMIT_RETRY, SEND_RETRY_MS);
        return;
    }
    if (!rid) {
        pm_log(PM_WARN, "event=submit_error client=%s error=\"%s\" waited_ms=%lld", s->peer,
               err == EAGAIN ? "queue not connected" : strerror(err), waited);
        pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", "4.3.0");
        smtpd_reply_error(s, "451 4.3.0 Error: queue not available, try again later");
        done(s);
        return;
    }
    if (waited > 0)
        pm_log(PM_INFO, "event=submit_retried client=%s waited_ms=%lld", s->peer, waited);
    wait_reply(s, rid);
}

/* The shard of the outstanding request will not answer in time, or not at all: send the
 * message to another shard that is up. If the first shard did commit it and only its
 * answer is missing, the message is now queued twice and delivered twice; that is the
 * price of never losing one whose shard died between commit and answer (at-least-once,
 * as everywhere else). The first shard's answer, should it still come, is only logged
 * (submit_late). 0 sent elsewhere, -1 no other shard took it. */
static int failover(struct smtpd_session *s, const char *why)
{
    struct smtpd_server *srv = s->srv;
    int from = SHARD_OF(s->request_id);
    if (!s->outgoing || !pm_queueset_other_up(srv->queues, from))
        return -1;
    uint64_t rid = send_once(s, from);
    if (!rid)
        return -1;
    pm_log(PM_WARN, "event=submit_failover client=%s from=%s to=%s reason=%s waited_ms=%lld", s->peer,
           pm_queueset_endpoint(srv->queues, from), pm_queueset_endpoint(srv->queues, SHARD_OF(rid)), why,
           now_ms() - s->submit_start);
    unlink_pending(s);
    wait_reply(s, rid);
    return 0;
}

void smtpd_submit_message(struct smtpd_session *s, struct evbuffer *msg)
{
    s->outgoing = msg;
    s->submit_size = evbuffer_get_length(msg);
    s->submit_start = now_ms();
    try_send(s);
}

void smtpd_submit_retry(struct smtpd_session *s)
{
    if (s->outgoing)
        try_send(s);
}

/* "4.3.1 rest" -> code "4.3.1" and rest; else the defaults. */
static void split_code(const char *text, char cls, const char *def, char *code, size_t csize, const char **rest)
{
    size_t n = 0;
    while (text[n] && text[n] != ' ')
        n++;
    int ok = n >= 5 && n < csize && text[0] == cls && text[1] == '.';
    for (size_t i = 2; ok && i < n; i++)
        ok = (text[i] >= '0' && text[i] <= '9') || text[i] == '.';
    if (ok) {
        memcpy(code, text, n);
        code[n] = '\0';
        *rest = text[n] ? text + n + 1 : "";
    } else {
        snprintf(code, csize, "%s", def);
        *rest = text;
    }
}

void smtpd_submit_reply_text(int status, const char *queue_id, const char *text, char *dst, size_t size)
{
    char code[16], clean[256];
    const char *rest;
    text = text ? text : "";
    /* The queue's text reaches the client: no control characters. */
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < sizeof clean; p++)
        clean[o++] = (unsigned char)*p < 32 || *p == 127 ? ' ' : *p;
    clean[o] = '\0';
    switch (status) {
    case POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED:
        snprintf(dst, size, "250 2.0.0 Ok: queued as %s", queue_id && *queue_id ? queue_id : "unknown");
        break;
    case POSTMESH__SUBMIT_REPLY__STATUS__TEMPFAIL:
        split_code(clean, '4', "4.3.0", code, sizeof code, &rest);
        if (strcmp(code, "4.3.1") == 0)
            snprintf(dst, size, "452 4.3.1 %s", *rest ? rest : "Insufficient system storage");
        else
            snprintf(dst, size, "451 4.3.0 %s", *rest ? rest : "Error: queue temporarily unavailable");
        break;
    default:
        split_code(clean, '5', "5.3.0", code, sizeof code, &rest);
        snprintf(dst, size, "554 %s %s", code, *rest ? rest : "Error: message refused");
        break;
    }
}

static void on_reply(int shard, Postmesh__BusMessage *m, void *arg)
{
    struct smtpd_server *srv = arg;
    if (m->body_case != POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY || !m->submit_reply) {
        pm_log(PM_WARN, "event=bus_drop reason=unexpected body=%d endpoint=%s", (int)m->body_case,
               pm_queueset_endpoint(srv->queues, shard));
        return;
    }
    Postmesh__SubmitReply *r = m->submit_reply;
    struct smtpd_session *s = *bucket(srv, m->request_id);
    while (s && s->request_id != m->request_id)
        s = s->pend_next;
    char v[PM_LOGV_SIZE];
    /* Only the shard a request went to may answer it: another one's COMMITTED would give a
     * 250 for a message the first shard never committed. */
    if (s && SHARD_OF(m->request_id) != shard) {
        pm_log(PM_WARN, "event=bus_drop reason=wrong_shard request_id=%llu endpoint=%s",
               (unsigned long long)m->request_id, pm_queueset_endpoint(srv->queues, shard));
        return;
    }
    if (!s) {
        /* The client left or timed out (it was told 451, or nothing, so it will retry), or
         * the message went to another shard meanwhile (then a COMMITTED here is a copy). */
        char idv[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=submit_late request_id=%llu id=%s status=%d endpoint=%s text=%s",
               (unsigned long long)m->request_id, PM_LOGV(idv, r->queue_id), (int)r->status,
               pm_queueset_endpoint(srv->queues, shard), PM_LV(v, r->text));
        return;
    }
    unlink_pending(s);
    smtpd_session_cancel_timer(s);
    char reply[320];
    smtpd_submit_reply_text(r->status, r->queue_id, r->text, reply, sizeof reply);
    char why[16];
    int queued = r->status == POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED;
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, queued ? "accepted" : "rejected", pm_metric_reason(reply, why, sizeof why));
    if (r->status == POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED) {
        char from[PM_LOGV_SIZE], idv[64];
        s->messages++;
        pm_log(PM_INFO, "event=queued id=%s client=%s from=%s nrcpt=%d size=%llu", PM_LV(idv, r->queue_id), s->peer,
               PM_LOGV_PATH(from, s->txn.sender), s->txn.nrcpt, s->submit_size);
        smtpd_reply(s, "%s", reply);
    } else {
        pm_log(PM_WARN, "event=reject client=%s stage=queue reply=%s", s->peer, PM_LV(v, reply));
        smtpd_reply_error(s, "%s", reply);
    }
    done(s);
    smtpd_session_settle(s);
}

void smtpd_submit_timeout(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    long long left = srv->cfg->smtpd.submit_timeout * 1000 - (now_ms() - s->submit_start);
    if (left > 0) {
        int shard = SHARD_OF(s->request_id);
        if (s->outgoing && pm_queueset_other_up(srv->queues, shard)) {
            pm_queueset_suspect(srv->queues, shard, "submit_timeout");
            if (failover(s, "timeout") == 0)
                return;
        }
        /* Nowhere better to go: go on waiting for this shard. */
        long long wait = shard_timeout_ms(srv) < left ? shard_timeout_ms(srv) : left;
        smtpd_session_set_timer(s, SMTPD_TIMER_SUBMIT, (long)wait);
        return;
    }
    pm_log(PM_WARN, "event=submit_timeout client=%s request_id=%llu timeout=%lld endpoint=%s", s->peer,
           (unsigned long long)s->request_id, srv->cfg->smtpd.submit_timeout,
           pm_queueset_endpoint(srv->queues, SHARD_OF(s->request_id)));
    unlink_pending(s);
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", "4.3.0");
    smtpd_reply_error(s, "451 4.3.0 Error: queue did not answer in time, try again later");
    done(s);
}

/* shard's connection is gone, and with it every answer owed on it: the sessions waiting
 * there go to another shard now, or hear 451 (the message may have been committed before
 * the connection went: the client's retry may make a second copy, never a lost one). */
static void on_lost(int shard, void *arg)
{
    struct smtpd_server *srv = arg;
    size_t n = 0, cap = 0;
    struct smtpd_session **list = NULL;
    for (int b = 0; b < SMTPD_PENDING_BUCKETS; b++)
        for (struct smtpd_session *s = srv->pending[b]; s; s = s->pend_next)
            if (SHARD_OF(s->request_id) == shard) {
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 16;
                    struct smtpd_session **nl = realloc(list, ncap * sizeof *nl);
                    if (!nl)
                        break;
                    list = nl;
                    cap = ncap;
                }
                list[n++] = s;
            }
    for (size_t i = 0; i < n; i++) {
        struct smtpd_session *s = list[i];
        if (failover(s, "connection_lost") == 0)
            continue;
        pm_log(PM_WARN, "event=submit_lost client=%s request_id=%llu endpoint=%s", s->peer,
               (unsigned long long)s->request_id, pm_queueset_endpoint(srv->queues, shard));
        unlink_pending(s);
        smtpd_session_cancel_timer(s);
        pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", "4.3.0");
        smtpd_reply_error(s, "451 4.3.0 Error: queue connection lost, try again later");
        done(s);
        smtpd_session_settle(s);
    }
    free(list);
}

struct pm_queueset *smtpd_submit_connect(struct smtpd_server *srv)
{
    const struct pm_strlist *eps = &srv->cfg->queue.endpoints;
    return pm_queueset_new(srv->base, (const char *const *)eps->v, eps->n, on_reply, on_lost, srv);
}

void smtpd_submit_disconnect(struct smtpd_server *srv)
{
    pm_queueset_free(srv->queues);
    srv->queues = NULL;
}

void smtpd_submit_forget(struct smtpd_session *s)
{
    if (s->request_id)
        unlink_pending(s);
    release_outgoing(s);
}
