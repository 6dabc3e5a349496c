/* Submission to the queue shards: building the Submit, the shard it goes to, failover,
 * and what its answer (matched by pending.c) means for the session (submit.h). */
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
#include "policy.h"
#include "queueset.h"
#include "session.h"

static void unlink_pending(struct smtpd_session *s) { smtpd_pending_unlink(s->srv, &s->submit); }

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
    if (s->state == SMTPD_ST_QUEUE) {
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
    sub.requiretls = s->txn.requiretls; /* RFC 8689: every hop onward over verified TLS */
    /* A milter quarantined it: the queue keeps it held, with the milter's reason. */
    sub.hold = s->txn.hold;
    sub.hold_reason = s->txn.hold_reason ? s->txn.hold_reason : "";
    /* Authenticated or from trusted_networks (who may relay): the queue DKIM-signs it. */
    sub.originating = smtpd_policy_may_relay(s);
    /* DSN (RFC 3461): one RecipientDsn per recipient, or none when no RCPT had NOTIFY/ORCPT. */
    sub.dsn_ret = (Postmesh__DsnRet)s->txn.dsn_ret;
    sub.dsn_envid = s->txn.dsn_envid ? s->txn.dsn_envid : "";
    size_t nd = s->txn.any_rcpt_dsn ? (size_t)s->txn.nrcpt : 0;
    Postmesh__RecipientDsn *dsn = nd ? calloc(nd, sizeof *dsn) : NULL;
    Postmesh__RecipientDsn **dsnp = nd ? calloc(nd, sizeof *dsnp) : NULL;
    if (nd && (!dsn || !dsnp)) {
        free(dsn), free(dsnp);
        errno = ENOMEM;
        return 0;
    }
    for (size_t i = 0; i < nd; i++) {
        postmesh__recipient_dsn__init(&dsn[i]);
        dsn[i].notify = s->txn.rcpt_dsn[i].notify;
        dsn[i].orcpt = s->txn.rcpt_dsn[i].orcpt ? s->txn.rcpt_dsn[i].orcpt : "";
        dsnp[i] = &dsn[i];
    }
    sub.n_recipient_dsn = nd;
    sub.recipient_dsn = dsnp;
    Postmesh__BusMessage bm = POSTMESH__BUS_MESSAGE__INIT;
    bm.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    bm.submit = &sub;
    uint64_t base = smtpd_pending_base(srv);
    int order[PM_QUEUESET_MAX], err = srv->queues ? EAGAIN : ENOTCONN;
    int n = srv->queues ? pm_queueset_order(srv->queues, avoid, order) : 0;
    for (int k = 0; k < n; k++) {
        bm.request_id = base | (uint64_t)order[k];
        if (pm_queueset_send_to(srv->queues, order[k], &bm) == 0) {
            free(dsn), free(dsnp);
            return bm.request_id;
        }
        err = errno;
    }
    free(dsn), free(dsnp);
    errno = err;
    return 0;
}

/* Sent: wait for the answer, and look again after the per-shard timeout (submit_timeout()
 * decides then). With one shard the message is not needed any more. */
static void wait_reply(struct smtpd_session *s, uint64_t rid)
{
    struct smtpd_server *srv = s->srv;
    smtpd_pending_link(srv, &s->submit, rid, s, &smtpd_submit_kind);
    if (pm_queueset_size(srv->queues) == 1)
        release_outgoing(s);
    long long left = srv->cfg->smtpd.submit_timeout * 1000 - (now_ms() - s->submit_start);
    long long wait = pm_queueset_size(srv->queues) > 1 && shard_timeout_ms(srv) < left ? shard_timeout_ms(srv) : left;
    s->state = SMTPD_ST_QUEUE;
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
        s->state = SMTPD_ST_QUEUE;
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
    int from = SMTPD_SHARD_OF(s->submit.id);
    if (!s->outgoing || !pm_queueset_other_up(srv->queues, from))
        return -1;
    uint64_t rid = send_once(s, from);
    if (!rid)
        return -1;
    pm_log(PM_WARN, "event=submit_failover client=%s from=%s to=%s reason=%s waited_ms=%lld", s->peer,
           pm_queueset_endpoint(srv->queues, from), pm_queueset_endpoint(srv->queues, SMTPD_SHARD_OF(rid)), why,
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

/* queue_id and text as a SubmitReply holds them past the edge: strings, an id if COMMITTED. */
void smtpd_submit_reply_text(int status, const char *queue_id, const char *text, char *dst, size_t size)
{
    char code[16], clean[256];
    const char *rest;
    /* The queue's text reaches the client: no control characters (the edge lets a reply's
     * prose hold them). */
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < sizeof clean; p++)
        clean[o++] = (unsigned char)*p < 32 || *p == 127 ? ' ' : *p;
    clean[o] = '\0';
    switch (status) {
    case POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED:
        snprintf(dst, size, "250 2.0.0 Ok: queued as %s", queue_id);
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

/* Validated at the edge (bus_rules.c): a COMMITTED reply names a well-formed queue id. */
static void answered(struct smtpd_pending *p, const Postmesh__BusMessage *m)
{
    struct smtpd_session *s = p->s;
    const Postmesh__SubmitReply *r = m->submit_reply;
    smtpd_session_cancel_timer(s);
    char reply[320], v[PM_LOGV_SIZE];
    smtpd_submit_reply_text(r->status, r->queue_id, r->text, reply, sizeof reply);
    char why[16];
    int queued = r->status == POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED;
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, queued ? "accepted" : "rejected", pm_metric_reason(reply, why, sizeof why));
    if (r->status == POSTMESH__SUBMIT_REPLY__STATUS__COMMITTED) {
        char from[PM_LOGV_SIZE];
        s->messages++;
        pm_log(PM_INFO, "event=queued id=%s client=%s from=%s nrcpt=%d size=%llu%s", r->queue_id, s->peer,
               PM_LOGV_PATH(from, s->txn.sender), s->txn.nrcpt, s->submit_size,
               s->txn.requiretls ? " requiretls=yes" : "");
        smtpd_reply(s, "%s", reply);
    } else {
        pm_log(PM_WARN, "event=reject client=%s stage=queue reply=%s", s->peer, PM_LV(v, reply));
        smtpd_reply_error(s, "%s", reply);
    }
    done(s);
    smtpd_session_settle(s);
}

/* The client left or timed out (it was told 451, or nothing, so it will retry), or the
 * message went to another shard meanwhile (then a COMMITTED here is a copy). */
static void late(struct smtpd_server *srv, int shard, const Postmesh__BusMessage *m)
{
    const Postmesh__SubmitReply *r = m->submit_reply;
    char idv[PM_LOGV_SIZE], v[PM_LOGV_SIZE];
    pm_log(PM_WARN, "event=submit_late request_id=%llu id=%s status=%d endpoint=%s text=%s",
           (unsigned long long)m->request_id, PM_LOGV(idv, r->queue_id), (int)r->status,
           pm_queueset_endpoint(srv->queues, shard), PM_LV(v, r->text));
}

void smtpd_submit_timeout(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    long long left = srv->cfg->smtpd.submit_timeout * 1000 - (now_ms() - s->submit_start);
    if (left > 0) {
        int shard = SMTPD_SHARD_OF(s->submit.id);
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
           (unsigned long long)s->submit.id, srv->cfg->smtpd.submit_timeout,
           pm_queueset_endpoint(srv->queues, SMTPD_SHARD_OF(s->submit.id)));
    unlink_pending(s);
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", "4.3.0");
    smtpd_reply_error(s, "451 4.3.0 Error: queue did not answer in time, try again later");
    done(s);
}

/* The shard's connection is gone, and with it the answer: the message goes to another
 * shard now, or the client hears 451 (it may have been committed before the connection
 * went: the client's retry may make a second copy, never a lost one). */
static void lost(struct smtpd_pending *p)
{
    struct smtpd_session *s = p->s;
    struct smtpd_server *srv = s->srv;
    int shard = SMTPD_SHARD_OF(p->id);
    if (failover(s, "connection_lost") == 0)
        return;
    pm_log(PM_WARN, "event=submit_lost client=%s request_id=%llu endpoint=%s", s->peer,
           (unsigned long long)s->submit.id, pm_queueset_endpoint(srv->queues, shard));
    unlink_pending(s);
    smtpd_session_cancel_timer(s);
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", "4.3.0");
    smtpd_reply_error(s, "451 4.3.0 Error: queue connection lost, try again later");
    done(s);
    smtpd_session_settle(s);
}

const struct smtpd_pending_kind smtpd_submit_kind = {
    .reply = POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY, .answered = answered, .lost = lost, .late = late,
};

void smtpd_submit_forget(struct smtpd_session *s)
{
    unlink_pending(s);
    release_outgoing(s);
}
