#include "submit.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "log.h"
#include "session.h"

static struct smtpd_session **bucket(struct smtpd_server *srv, uint64_t id)
{
    return &srv->pending[id % SMTPD_PENDING_BUCKETS];
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

/* The transaction is over whatever happened: back to commands. */
static void done(struct smtpd_session *s)
{
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

/* Sends s->outgoing. EAGAIN means the DEALER has no connection to the queue right now
 * (starting up, reconnecting after a queue restart): try again every SEND_RETRY_MS for up to
 * SEND_WINDOW_MS (never past submit_timeout), then give up with 451. */
#define SEND_RETRY_MS 50
#define SEND_WINDOW_MS 1000

static void try_send(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    struct evbuffer *msg = s->outgoing;
    size_t len = evbuffer_get_length(msg);
    Postmesh__Submit sub = POSTMESH__SUBMIT__INIT;
    sub.sender = s->txn.sender;
    sub.n_recipients = (size_t)s->txn.nrcpt;
    sub.recipients = s->txn.rcpt;
    sub.body.len = len;
    sub.body.data = evbuffer_pullup(msg, -1);
    sub.client_address = s->peer;
    sub.helo = s->helo ? s->helo : "";
    sub.auth_user = s->auth_user ? s->auth_user : "";
    sub.smtputf8 = s->txn.smtputf8;
    Postmesh__BusMessage bm = POSTMESH__BUS_MESSAGE__INIT;
    bm.request_id = ++srv->next_request_id;
    bm.body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    bm.submit = &sub;
    int rc = srv->bus ? pm_bus_send(srv->bus, &bm) : -1;
    int err = srv->bus ? errno : ENOTCONN;
    long long waited = now_ms() - s->submit_start;
    long long limit = srv->cfg->smtpd.submit_timeout * 1000;
    if (rc < 0 && err == EAGAIN && waited + SEND_RETRY_MS < (limit < SEND_WINDOW_MS ? limit : SEND_WINDOW_MS)) {
        s->state = SMTPD_ST_SUBMITTING;
        smtpd_session_reading(s, 0);
        smtpd_session_set_timer(s, SMTPD_TIMER_SUBMIT_RETRY, SEND_RETRY_MS);
        return;
    }
    evbuffer_free(msg); /* sent (the bus made its own copy) or given up */
    s->outgoing = NULL;
    smtpd_body_release(s);
    if (rc < 0) {
        pm_log(PM_WARN, "event=submit_error client=%s error=\"%s\" waited_ms=%lld", s->peer,
               err == EAGAIN ? "queue not connected" : strerror(err), waited);
        smtpd_reply_error(s, "451 4.3.0 Error: queue not available, try again later");
        done(s);
        return;
    }
    if (waited > 0)
        pm_log(PM_INFO, "event=submit_retried client=%s waited_ms=%lld", s->peer, waited);
    s->request_id = bm.request_id;
    struct smtpd_session **b = bucket(srv, s->request_id);
    s->pend_next = *b;
    *b = s;
    s->state = SMTPD_ST_SUBMITTING;
    smtpd_session_reading(s, 0);
    smtpd_session_set_timer(s, SMTPD_TIMER_SUBMIT, (long)(limit - waited > 0 ? limit - waited : 1));
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

void smtpd_submit_on_bus(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    (void)bus;
    (void)peer;
    (void)peerlen;
    struct smtpd_server *srv = arg;
    if (m->body_case != POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY || !m->submit_reply) {
        pm_log(PM_WARN, "event=bus_drop reason=unexpected body=%d", (int)m->body_case);
        return;
    }
    Postmesh__SubmitReply *r = m->submit_reply;
    struct smtpd_session *s = *bucket(srv, m->request_id);
    while (s && s->request_id != m->request_id)
        s = s->pend_next;
    char v[PM_LOGV_SIZE];
    if (!s) {
        /* The client left or timed out; it was told 451 (or nothing), so it will retry. */
        char idv[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=submit_late request_id=%llu id=%s status=%d text=%s",
               (unsigned long long)m->request_id, PM_LOGV(idv, r->queue_id), (int)r->status, PM_LV(v, r->text));
        return;
    }
    unlink_pending(s);
    smtpd_session_cancel_timer(s);
    char reply[320];
    smtpd_submit_reply_text(r->status, r->queue_id, r->text, reply, sizeof reply);
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
    pm_log(PM_WARN, "event=submit_timeout client=%s request_id=%llu timeout=%lld", s->peer,
           (unsigned long long)s->request_id, s->srv->cfg->smtpd.submit_timeout);
    unlink_pending(s);
    smtpd_reply_error(s, "451 4.3.0 Error: queue did not answer in time, try again later");
    done(s);
}

void smtpd_submit_forget(struct smtpd_session *s)
{
    if (s->request_id)
        unlink_pending(s);
    if (s->outgoing)
        evbuffer_free(s->outgoing);
    s->outgoing = NULL;
    if (!s->body)
        smtpd_body_release(s);
}
