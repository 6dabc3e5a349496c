/* BDAT (bdat.h): the command's argument, the content checks, and the chunk state of a
 * session: the handler, reading the chunk's octets, and what its end means. */
#include "bdat.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "command_table.h"
#include "log.h"
#include "session.h"

int smtpd_bdat_parse(const char *arg, size_t len, unsigned long long *size, int *last)
{
    size_t i = 0;
    unsigned long long v = 0;
    while (i < len && arg[i] >= '0' && arg[i] <= '9') {
        unsigned d = (unsigned)(arg[i++] - '0');
        if (v > (~0ULL - d) / 10)
            return -1; /* does not fit: nobody can say where such a chunk ends */
        v = v * 10 + d;
    }
    if (i == 0)
        return -1;
    *size = v;
    *last = 0;
    if (i == len)
        return 0;
    if (arg[i] != ' ')
        return -1;
    while (i < len && arg[i] == ' ')
        i++;
    if (len - i == 4 && strncasecmp(arg + i, "LAST", 4) == 0) {
        *last = 1;
        return 0;
    }
    return -1;
}

void smtpd_bdat_text_init(struct smtpd_bdat_text *t, size_t max_line)
{
    memset(t, 0, sizeof *t);
    t->max_line = max_line;
}

static void count(struct smtpd_bdat_text *t, size_t n)
{
    t->line_len += n;
    if (t->line_len > t->max_line)
        t->long_line = 1;
}

void smtpd_bdat_text_feed(struct smtpd_bdat_text *t, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        if (t->cr) {
            t->cr = 0;
            if (*p == '\n') {
                count(t, 1);
                t->line_len = 0;
                p++;
                continue;
            }
            t->bare_cr = 1; /* *p is an ordinary octet of the line */
        }
        /* The run of ordinary octets up to the next CR or LF. */
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        const char *stop = cr ? cr : end;
        const char *lf = memchr(p, '\n', (size_t)(stop - p));
        if (lf)
            stop = lf;
        if (memchr(p, '\0', (size_t)(stop - p)))
            t->nul = 1;
        count(t, (size_t)(stop - p));
        if (stop == end)
            return;
        count(t, 1);
        if (*stop == '\n') {
            t->bare_lf = 1;
            t->line_len = 0;
        } else {
            t->cr = 1;
        }
        p = stop + 1;
    }
}

int smtpd_bdat_text_end(struct smtpd_bdat_text *t)
{
    if (t->cr) {
        t->bare_cr = 1;
        t->cr = 0;
    }
    return t->line_len > 0;
}

/* Reading a chunk: the session takes octets, not lines, until it is read. */
static void start_chunk(struct smtpd_session *s, unsigned long long size, int last, const char *refusal)
{
    s->bdat.size = s->bdat.left = size;
    s->bdat.last = last;
    snprintf(s->bdat.refusal, sizeof s->bdat.refusal, "%s", refusal ? refusal : "");
    s->state = SMTPD_ST_CHUNK;
    smtpd_session_reading(s, 1); /* DATA's timeout, and its minimum rate (data_progress) */
}

/* A size nobody can read: no way to know where the next command starts. */
static void lost_framing(struct smtpd_session *s, const char *reply)
{
    pm_log(PM_INFO, "event=reject client=%s stage=BDAT reason=bad_size", s->peer);
    smtpd_message_discard(s);
    smtpd_txn_reset(&s->txn);
    smtpd_reply_error(s, "%s", reply);
    smtpd_session_close(s, "bdat_syntax");
}

void smtpd_bdat_refused(struct smtpd_session *s, const char *arg, size_t arglen, const char *reply)
{
    unsigned long long size;
    int last;
    if (smtpd_bdat_parse(arg, arglen, &size, &last) < 0) {
        lost_framing(s, "501 5.5.4 Syntax: BDAT size [LAST]");
        return;
    }
    /* A transaction this chunk belonged to is over: its later chunks must not make a message. */
    smtpd_message_discard(s);
    smtpd_txn_reset(&s->txn);
    start_chunk(s, size, last, reply);
}

void smtpd_cmd_bdat(struct smtpd_session *s, const struct smtpd_command *c)
{
    unsigned long long size;
    int last;
    if (smtpd_bdat_parse(c->arg, c->arglen, &size, &last) < 0) {
        lost_framing(s, "501 5.5.4 Syntax: BDAT size [LAST]");
        return;
    }
    const char *refusal = NULL;
    if (s->txn.nrcpt == 0)
        refusal = s->txn.rcpt_tries ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command";
    else if (!s->txn.chunked && smtpd_body_budget_exhausted(s->srv)) {
        pm_log(PM_WARN, "event=reject client=%s stage=BDAT reason=memory_budget used=%llu budget=%llu", s->peer,
               s->srv->body_used, s->srv->body_budget);
        refusal = "452 4.3.1 Insufficient system storage";
    }
    if (refusal) {
        smtpd_bdat_refused(s, c->arg, c->arglen, refusal);
        return;
    }
    if (!s->txn.chunked) {
        s->bdat.msg_deadline = pm_mono_coarse_s() + s->srv->cfg->smtpd.timeout_data;
        smtpd_message_begin(s);
        smtpd_bdat_text_init(&s->bdat.text, SMTPD_MAX_TEXT_LINE);
        s->txn.chunked = 1;
    }
    start_chunk(s, size, last, NULL);
}

/* Back to commands, with the command timeout. */
static void to_commands(struct smtpd_session *s)
{
    s->state = SMTPD_ST_COMMAND;
    smtpd_session_reading(s, 1);
}

/* The chunk is read: its reply, and for the last one the message's end. */
static void chunk_done(struct smtpd_session *s)
{
    struct smtpd_bdat *b = &s->bdat;
    if (b->refusal[0]) {
        char reply[sizeof b->refusal];
        memcpy(reply, b->refusal, sizeof reply);
        b->refusal[0] = '\0';
        to_commands(s);
        smtpd_reply_error(s, "%s", reply);
        return;
    }
    if (b->last && smtpd_bdat_text_end(&b->text) && !b->text.bare_cr) {
        smtpd_message_append(s, "\r\n", 2); /* the queue and the mta expect CRLF line ends */
        if (b->text.line_len + 2 > b->text.max_line)
            b->text.long_line = 1; /* with it, the line must fit as it would in DATA */
    }
    if (b->text.bare_lf || b->text.bare_cr) {
        int lf = b->text.bare_lf;
        smtpd_message_refuse(s, lf ? "bare_lf" : "bare_cr",
                             lf ? "550 5.5.2 Error: bare <LF> received" : "550 5.5.2 Error: bare <CR> received");
        return;
    }
    if (smtpd_message_failed(s))
        return; /* 552 or 452; the transaction is over */
    if (!b->last) {
        to_commands(s);
        smtpd_reply(s, "250 2.0.0 %llu octets received", b->size);
        return;
    }
    s->data.long_line = b->text.long_line;
    s->data.nul = b->text.nul;
    smtpd_message_finish(s); /* the end-of-message stages, or its refusal */
}

int smtpd_bdat_input(struct smtpd_session *s)
{
    struct smtpd_bdat *b = &s->bdat;
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t avail = evbuffer_get_length(in);
    if (b->left && !avail)
        return 0;
    size_t take = b->left < avail ? (size_t)b->left : avail;
    /* Stored only while the message is still wanted; counted (data_size) in any case. */
    int store = !b->refusal[0] && !b->text.bare_lf && !b->text.bare_cr;
    if (store && take) {
        struct evbuffer_iovec v[16];
        size_t done = 0;
        while (done < take) {
            struct evbuffer_ptr pos;
            evbuffer_ptr_set(in, &pos, done, EVBUFFER_PTR_SET);
            int n = evbuffer_peek(in, (ev_ssize_t)(take - done), &pos, v, 16);
            if (n > 16)
                n = 16;
            for (int i = 0; i < n && done < take; i++) {
                size_t len = v[i].iov_len < take - done ? v[i].iov_len : take - done;
                smtpd_bdat_text_feed(&b->text, v[i].iov_base, len);
                smtpd_message_append(s, v[i].iov_base, len);
                done += len;
            }
        }
    }
    evbuffer_drain(in, take);
    b->left -= take;
    smtpd_session_data_progress(s, take);
    if (b->left == 0)
        chunk_done(s);
    return 1;
}
