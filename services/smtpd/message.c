/* The message a session receives: decoder feeding for DATA, size limit, the sandbox's memory
 * budget for bodies, end-of-data checks and the Received: header; the finished message goes
 * through the end-of-message stages (eom.h) to submit.c. BDAT (bdat.c) stores its chunks and
 * finishes its message with the same functions (smtpd_message_*, session.h).
 *
 * The budget: every byte of body a session holds (while it is received, and until the bus
 * took the message) counts in srv->body_used. A message that would take it past
 * srv->body_budget is dropped at once (its bytes given back) and refused with 452 4.3.1 at
 * its end; DATA itself is refused while less than DATA_RESERVE of it is left. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "parser.h"
#include "eom.h"
#include "received.h"
#include "session.h"
#include "submit.h"

#define DECODE_SLICE 16384
/* Giving back a body this big also gives the memory back to the system (malloc_trim): freed
 * chains in the middle of the heap would otherwise stay resident. */
#define TRIM_AFTER (1024 * 1024)

/* Room a new message needs at least: with less left, it would be refused at its end anyway,
 * after the client sent all of it. */
#define DATA_RESERVE (64 * 1024)

int smtpd_body_budget_exhausted(const struct smtpd_server *srv)
{
    return srv->body_used + DATA_RESERVE > srv->body_budget;
}

void smtpd_body_release(struct smtpd_session *s)
{
    if (!s->body_held)
        return;
    s->srv->body_used -= s->body_held;
    if (s->body_held >= TRIM_AFTER)
        malloc_trim(0);
    s->body_held = 0;
}

void smtpd_message_discard(struct smtpd_session *s)
{
    if (!s->body)
        return;
    evbuffer_free(s->body);
    s->body = NULL;
    smtpd_body_release(s);
}

void smtpd_message_begin(struct smtpd_session *s)
{
    smtpd_message_discard(s); /* none is left over; if one were, it must not leak */
    s->body = evbuffer_new();
    smtpd_data_init(&s->data, SMTPD_MAX_TEXT_LINE);
    s->data_size = 0;
    s->too_big = 0;
    s->over_budget = 0;
}

void smtpd_data_begin(struct smtpd_session *s)
{
    smtpd_message_begin(s);
    s->state = SMTPD_ST_DATA;
    smtpd_session_reading(s, 1); /* the DATA timeout applies now */
    smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* Keep reading to the end of data, storing nothing more. */
static void stop_storing(struct smtpd_session *s)
{
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    smtpd_body_release(s);
}

void smtpd_message_append(struct smtpd_session *s, const char *p, size_t n)
{
    struct smtpd_server *srv = s->srv;
    s->data_size += n;
    if (s->too_big || s->over_budget)
        return;
    if (s->data_size > (unsigned long long)srv->cfg->smtpd.max_message_size) {
        s->too_big = 1;
        stop_storing(s);
        return;
    }
    if (srv->body_used + n > srv->body_budget) {
        s->over_budget = 1;
        pm_log(PM_WARN, "event=body_budget_exceeded client=%s size=%llu used=%llu budget=%llu", s->peer, s->data_size,
               srv->body_used, srv->body_budget);
        stop_storing(s);
        return;
    }
    evbuffer_add(s->body, p, n);
    srv->body_used += n;
    s->body_held += n;
}

static void drop_message(struct smtpd_session *s)
{
    smtpd_message_discard(s);
    smtpd_txn_reset(&s->txn);
    s->state = SMTPD_ST_COMMAND;
    smtpd_session_reading(s, 1);
}

void smtpd_message_refuse(struct smtpd_session *s, const char *reason, const char *reply)
{
    char from[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=reject client=%s stage=%s reason=%s from=%s nrcpt=%d size=%llu", s->peer,
           s->txn.chunked ? "BDAT" : "DATA", reason, PM_LOGV_PATH(from, s->txn.sender), s->txn.nrcpt, s->data_size);
    drop_message(s);
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", pm_metric_reason(reply, from, sizeof from));
    smtpd_reply_error(s, "%s", reply);
}

int smtpd_message_failed(struct smtpd_session *s)
{
    if (s->too_big)
        smtpd_message_refuse(s, "size", "552 5.3.4 Error: message file too big");
    else if (s->over_budget)
        smtpd_message_refuse(s, "memory_budget", "452 4.3.1 Insufficient system storage");
    else
        return 0;
    return 1;
}

void smtpd_message_finish(struct smtpd_session *s)
{
    if (smtpd_message_failed(s))
        return;
    if (s->data.long_line) {
        smtpd_message_refuse(s, "line_too_long", "500 5.5.2 Error: message line too long (over 1000 octets)");
        return;
    }
    if (s->data.nul) {
        smtpd_message_refuse(s, "nul", "554 5.6.0 Error: message contains NUL octets");
        return;
    }
    char ver[32], cipher[128], hdr[2048];
    smtpd_session_tls_info(s, ver, sizeof ver, cipher, sizeof cipher);
    struct smtpd_received r = {
        .helo = s->helo, .ip = s->ip, .hostname = s->srv->cfg->hostname,
        .esmtp = s->esmtp, .tls = s->tls, .auth = s->auth_user != NULL, .smtputf8 = s->txn.smtputf8,
        .tls_version = ver, .tls_cipher = cipher,
        .rcpt = s->txn.nrcpt == 1 ? s->txn.rcpt[0] : NULL, .when = time(NULL),
    };
    size_t n = smtpd_received_format(&r, hdr, sizeof hdr);
    evbuffer_prepend(s->body, hdr, n);
    struct evbuffer *msg = s->body;
    s->body = NULL;
    smtpd_eom_start(s, msg);
}

int smtpd_data_input(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    if (evbuffer_get_length(in) == 0)
        return 0;
    struct evbuffer_iovec v[8];
    int nv = evbuffer_peek(in, -1, NULL, v, 8);
    if (nv > 8)
        nv = 8;
    char out[DECODE_SLICE + 2];
    size_t consumed = 0;
    enum smtpd_data_status st = SMTPD_DATA_MORE;
    for (int i = 0; i < nv && st == SMTPD_DATA_MORE; i++) {
        const char *p = v[i].iov_base;
        size_t left = v[i].iov_len;
        while (left && st == SMTPD_DATA_MORE) {
            size_t chunk = left < DECODE_SLICE ? left : DECODE_SLICE, o, used;
            st = smtpd_data_feed(&s->data, p, chunk, out, &o, &used);
            smtpd_message_append(s, out, o);
            p += used;
            left -= used;
            consumed += used;
        }
    }
    evbuffer_drain(in, consumed);
    smtpd_session_data_progress(s, consumed);
    switch (st) {
    case SMTPD_DATA_MORE:
        return 1;
    case SMTPD_DATA_END:
        smtpd_message_finish(s);
        return 1;
    default: {
        /* SMTP smuggling: a bare CR or LF could make us and the next hop disagree on where
         * the message ends. Refuse and hang up: nothing after it is trusted. */
        int lf = st == SMTPD_DATA_BARE_LF;
        smtpd_message_refuse(s, lf ? "bare_lf" : "bare_cr", lf ? "550 5.5.2 Error: bare <LF> received" : "550 5.5.2 Error: bare <CR> received");
        smtpd_session_close(s, lf ? "bare_lf" : "bare_cr");
        return 0;
    }
    }
}
