#include "smtp.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *mta_smtp_step_name(enum mta_smtp_step step)
{
    static const char *const names[] = {"greeting", "EHLO", "HELO", "STARTTLS", "TLS handshake", "MAIL FROM",
                                        "RCPT TO", "DATA", "message body", "end of DATA", "QUIT"};
    return (unsigned)step < sizeof names / sizeof names[0] ? names[step] : "?";
}

void mta_smtp_init(struct mta_smtp *s)
{
    s->step = MTA_STEP_GREETING;
    s->tls_active = 0;
    memset(&s->ext, 0, sizeof s->ext);
    s->mail_failed = s->cur = s->accepted = s->dot_sent = s->data_discard = 0;
    s->error[0] = s->error_dsn[0] = '\0';
    s->error_perm = s->replied = s->loop = 0;
    for (int i = 0; i < s->nrcpts; i++) {
        s->rcpts[i].state = MTA_RCPT_PENDING;
        s->rcpts[i].dsn[0] = s->rcpts[i].text[0] = '\0';
        s->rcpts[i].stage = NULL;
    }
}

void mta_smtp_fail(struct mta_smtp *s, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    snprintf(s->error_dsn, sizeof s->error_dsn, "%s", dsn);
}

static int cls(const struct mta_reply *r) { return r->code / 100; }

/* The recipient's verdict from reply r at the current step. */
static void set_rcpt(struct mta_smtp *s, struct mta_smtp_rcpt *rc, const struct mta_reply *r, int delivered_ok)
{
    int c = cls(r);
    rc->state = c == 2 ? (delivered_ok ? MTA_RCPT_DELIVERED : MTA_RCPT_ACCEPTED)
              : c == 5 ? MTA_RCPT_PERMFAIL
                       : MTA_RCPT_TEMPFAIL; /* 4xx, and any nonsense code: try again later */
    mta_reply_enhanced(r, rc->dsn, sizeof rc->dsn);
    if (!rc->dsn[0])
        snprintf(rc->dsn, sizeof rc->dsn, "%s",
                 rc->state == MTA_RCPT_PERMFAIL   ? "5.0.0"
                 : rc->state == MTA_RCPT_TEMPFAIL ? "4.0.0"
                                                  : "2.0.0");
    else if (rc->state == MTA_RCPT_TEMPFAIL && rc->dsn[0] != '4')
        rc->dsn[0] = '4';
    mta_reply_oneline(r, rc->text, sizeof rc->text);
    rc->stage = mta_smtp_step_name(s->step);
}

static enum mta_smtp_action quit(struct mta_smtp *s, struct evbuffer *out)
{
    evbuffer_add_printf(out, "QUIT\r\n");
    s->step = MTA_STEP_QUIT;
    return MTA_SMTP_QUIT;
}

static enum mta_smtp_action give_up(struct mta_smtp *s, const struct mta_reply *r, int perm)
{
    char line[MTA_TEXT_MAX];
    mta_reply_oneline(r, line, sizeof line);
    mta_smtp_fail(s, perm ? "5.0.0" : "4.0.0", "%s (in reply to %s)", line, mta_smtp_step_name(s->step));
    char enh[16];
    mta_reply_enhanced(r, enh, sizeof enh);
    if (enh[0] && (enh[0] == '5') == perm)
        snprintf(s->error_dsn, sizeof s->error_dsn, "%s", enh);
    s->error_perm = perm;
    return MTA_SMTP_ABORT;
}

/* Everyone still undecided shares the verdict of reply r (refused MAIL, 5xx before MAIL). */
static void set_all(struct mta_smtp *s, const struct mta_reply *r)
{
    for (int i = 0; i < s->nrcpts; i++)
        if (s->rcpts[i].state == MTA_RCPT_PENDING || s->rcpts[i].state == MTA_RCPT_ACCEPTED)
            set_rcpt(s, &s->rcpts[i], r, 0);
}

static void ehlo_keywords(struct mta_smtp *s, const struct mta_reply *r)
{
    memset(&s->ext, 0, sizeof s->ext);
    const char *t = r->text;
    const char *eol = strchr(t, '\n'); /* the first line is the server's name */
    while (eol) {
        t = eol + 1;
        eol = strchr(t, '\n');
        size_t len = eol ? (size_t)(eol - t) : strlen(t);
        char kw[64];
        size_t k = 0;
        while (k < len && k + 1 < sizeof kw && t[k] != ' ' && t[k] != '=')
            kw[k] = t[k], k++;
        kw[k] = '\0';
        if (!strcasecmp(kw, "PIPELINING"))
            s->ext.pipelining = 1;
        else if (!strcasecmp(kw, "STARTTLS"))
            s->ext.starttls = 1;
        else if (!strcasecmp(kw, "8BITMIME"))
            s->ext.eightbitmime = 1;
        else if (!strcasecmp(kw, "SMTPUTF8"))
            s->ext.smtputf8 = 1;
        else if (!strcasecmp(kw, "SIZE")) {
            s->ext.size = 1;
            s->ext.size_max = k < len ? strtoull(t + k + 1, NULL, 10) : 0;
        }
    }
}

/* Does the first word of the reply's first line name us ("mx.example.test" or with a
 * trailing dot)? The word is the server's own name in a greeting and an EHLO/HELO reply. */
static int names_self(const struct mta_smtp *s, const struct mta_reply *r)
{
    if (!s->self_name || !s->self_name[0])
        return 0;
    size_t n = strcspn(r->text, " \t\n"), want = strlen(s->self_name);
    if (n == want + 1 && r->text[want] == '.')
        n = want;
    return n == want && strncasecmp(r->text, s->self_name, n) == 0;
}

static enum mta_smtp_action loop_detected(struct mta_smtp *s, struct evbuffer *out)
{
    mta_smtp_fail(s, "5.4.6", "server %s with our own hostname %s",
                  s->step == MTA_STEP_GREETING ? "greeted us" : "answered EHLO/HELO", s->self_name);
    s->loop = 1;
    return quit(s, out);
}

static void send_rcpt(struct mta_smtp *s, struct evbuffer *out, int i)
{
    evbuffer_add_printf(out, "RCPT TO:<%s>\r\n", s->rcpts[i].address);
}

/* After EHLO/HELO (and TLS): MAIL, and with PIPELINING every RCPT and DATA too. */
static enum mta_smtp_action begin_transaction(struct mta_smtp *s, struct evbuffer *out)
{
    const char *why = NULL, *dsn = NULL;
    if (s->need_smtputf8 && !s->ext.smtputf8)
        why = "remote server does not support SMTPUTF8", dsn = "5.6.7";
    else if (s->ext.size && s->ext.size_max && s->body_size > s->ext.size_max)
        why = "message is larger than the remote server accepts", dsn = "5.3.4";
    if (why) {
        for (int i = 0; i < s->nrcpts; i++) {
            s->rcpts[i].state = MTA_RCPT_PERMFAIL;
            snprintf(s->rcpts[i].dsn, sizeof s->rcpts[i].dsn, "%s", dsn);
            snprintf(s->rcpts[i].text, sizeof s->rcpts[i].text, "%s %s", dsn, why);
            s->rcpts[i].stage = "EHLO";
        }
        return quit(s, out);
    }
    evbuffer_add_printf(out, "MAIL FROM:<%s>", s->sender);
    if (s->ext.size)
        evbuffer_add_printf(out, " SIZE=%zu", s->body_size);
    if (s->ext.eightbitmime && s->body_8bit)
        evbuffer_add_printf(out, " BODY=8BITMIME");
    if (s->need_smtputf8)
        evbuffer_add_printf(out, " SMTPUTF8");
    evbuffer_add_printf(out, "\r\n");
    s->step = MTA_STEP_MAIL;
    if (s->ext.pipelining) {
        /* RFC 2920: DATA may end the group; the replies come back in order. */
        for (int i = 0; i < s->nrcpts; i++)
            send_rcpt(s, out, i);
        evbuffer_add_printf(out, "DATA\r\n");
    }
    return MTA_SMTP_WAIT;
}

static enum mta_smtp_action after_rcpts(struct mta_smtp *s, struct evbuffer *out)
{
    s->step = MTA_STEP_DATA;
    if (s->ext.pipelining)
        return MTA_SMTP_WAIT; /* DATA is already on its way */
    if (s->accepted == 0)
        return quit(s, out);
    evbuffer_add_printf(out, "DATA\r\n");
    return MTA_SMTP_WAIT;
}

enum mta_smtp_action mta_smtp_on_reply(struct mta_smtp *s, const struct mta_reply *r, struct evbuffer *out)
{
    s->replied = 1;
    switch (s->step) {
    case MTA_STEP_GREETING:
        if (cls(r) != 2)
            return give_up(s, r, 0); /* 4xx and 5xx greetings: skip this server (like Postfix) */
        if (names_self(s, r))
            return loop_detected(s, out);
        evbuffer_add_printf(out, "EHLO %s\r\n", s->helo_name);
        s->step = MTA_STEP_EHLO;
        return MTA_SMTP_WAIT;

    case MTA_STEP_EHLO:
        if (cls(r) == 5) {
            evbuffer_add_printf(out, "HELO %s\r\n", s->helo_name);
            s->step = MTA_STEP_HELO;
            return MTA_SMTP_WAIT;
        }
        if (cls(r) != 2)
            return give_up(s, r, 0);
        if (names_self(s, r))
            return loop_detected(s, out);
        ehlo_keywords(s, r);
        if (!s->tls_active && s->tls_allowed && s->ext.starttls) {
            evbuffer_add_printf(out, "STARTTLS\r\n");
            s->step = MTA_STEP_STARTTLS;
            return MTA_SMTP_WAIT;
        }
        return begin_transaction(s, out);

    case MTA_STEP_HELO:
        if (cls(r) != 2)
            return give_up(s, r, cls(r) == 5);
        if (names_self(s, r))
            return loop_detected(s, out);
        memset(&s->ext, 0, sizeof s->ext);
        return begin_transaction(s, out);

    case MTA_STEP_STARTTLS:
        if (cls(r) == 2) {
            s->step = MTA_STEP_TLS;
            return MTA_SMTP_STARTTLS;
        }
        return begin_transaction(s, out); /* RFC 3207: the client may go on in the clear */

    case MTA_STEP_MAIL:
        if (cls(r) != 2) {
            s->mail_failed = 1;
            set_all(s, r);
            if (!s->ext.pipelining)
                return quit(s, out);
        } else if (!s->ext.pipelining && s->nrcpts > 0) {
            send_rcpt(s, out, 0);
        }
        s->step = MTA_STEP_RCPT;
        s->cur = 0;
        if (s->nrcpts == 0)
            return after_rcpts(s, out);
        return MTA_SMTP_WAIT;

    case MTA_STEP_RCPT:
        if (!s->mail_failed) {
            set_rcpt(s, &s->rcpts[s->cur], r, 0);
            s->accepted += s->rcpts[s->cur].state == MTA_RCPT_ACCEPTED;
        }
        if (++s->cur < s->nrcpts) {
            if (!s->ext.pipelining)
                send_rcpt(s, out, s->cur);
            return MTA_SMTP_WAIT;
        }
        return after_rcpts(s, out);

    case MTA_STEP_DATA:
        if (r->code == 354) {
            if (s->accepted > 0) {
                s->step = MTA_STEP_BODY;
                return MTA_SMTP_BODY;
            }
            /* Pipelined DATA accepted with no recipient: end the empty message at once. */
            evbuffer_add_printf(out, ".\r\n");
            s->data_discard = 1;
            s->step = MTA_STEP_DOT;
            return MTA_SMTP_WAIT;
        }
        if (s->accepted > 0 && !s->mail_failed) {
            for (int i = 0; i < s->nrcpts; i++)
                if (s->rcpts[i].state == MTA_RCPT_ACCEPTED) {
                    set_rcpt(s, &s->rcpts[i], r, 0);
                    if (s->rcpts[i].state == MTA_RCPT_ACCEPTED) /* 2xx to DATA is nonsense */
                        s->rcpts[i].state = MTA_RCPT_TEMPFAIL, s->rcpts[i].dsn[0] = '4';
                }
        }
        return quit(s, out);

    case MTA_STEP_DOT:
        if (!s->data_discard)
            for (int i = 0; i < s->nrcpts; i++)
                if (s->rcpts[i].state == MTA_RCPT_ACCEPTED)
                    set_rcpt(s, &s->rcpts[i], r, 1);
        return quit(s, out);

    case MTA_STEP_QUIT:
        return MTA_SMTP_QUIT;

    case MTA_STEP_TLS:
    case MTA_STEP_BODY:
        break;
    }
    /* A reply nobody asked for (talking during the handshake or the body). */
    mta_smtp_fail(s, "4.5.0", "unexpected reply during %s", mta_smtp_step_name(s->step));
    return MTA_SMTP_ABORT;
}

void mta_smtp_tls_ready(struct mta_smtp *s, struct evbuffer *out)
{
    s->tls_active = 1;
    memset(&s->ext, 0, sizeof s->ext);
    evbuffer_add_printf(out, "EHLO %s\r\n", s->helo_name);
    s->step = MTA_STEP_EHLO;
}

void mta_smtp_body_sent(struct mta_smtp *s)
{
    s->dot_sent = 1;
    s->step = MTA_STEP_DOT;
}
