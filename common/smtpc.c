/* The client dialogue: one row per step (its name and what its reply leads to), the
 * dialects, and the recipients' verdicts. */
#include "smtpc.h"
#include "smtpc_dsn.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

const struct pm_smtpc_dialect pm_smtpc_smtp = {.hello = "EHLO", .helo_fallback = 1, .reply_per_rcpt = 0};
const struct pm_smtpc_dialect pm_smtpc_lmtp = {.hello = "LHLO", .helo_fallback = 0, .reply_per_rcpt = 1};

typedef enum pm_smtpc_action step_fn(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out);
static step_fn on_greeting, on_ehlo, on_helo, on_starttls, on_auth, on_mail, on_rcpt, on_data, on_dot, on_quit;

static const struct {
    const char *name;
    step_fn *on_reply; /* NULL: no reply may come in this step */
} steps[] = {
    [PM_SMTPC_STEP_GREETING] = {"greeting", on_greeting},
    [PM_SMTPC_STEP_EHLO] = {"EHLO", on_ehlo}, /* named after the dialect's hello */
    [PM_SMTPC_STEP_HELO] = {"HELO", on_helo},
    [PM_SMTPC_STEP_STARTTLS] = {"STARTTLS", on_starttls},
    [PM_SMTPC_STEP_TLS] = {"TLS handshake", NULL},
    [PM_SMTPC_STEP_AUTH] = {"AUTH", on_auth},
    [PM_SMTPC_STEP_MAIL] = {"MAIL FROM", on_mail},
    [PM_SMTPC_STEP_RCPT] = {"RCPT TO", on_rcpt},
    [PM_SMTPC_STEP_DATA] = {"DATA", on_data},
    [PM_SMTPC_STEP_BODY] = {"message body", NULL},
    [PM_SMTPC_STEP_DOT] = {"end of DATA", on_dot},
    [PM_SMTPC_STEP_QUIT] = {"QUIT", on_quit},
};

const char *pm_smtpc_stage(const struct pm_smtpc *s)
{
    if (s->step == PM_SMTPC_STEP_EHLO && s->dialect)
        return s->dialect->hello;
    if (s->bdat && (s->step == PM_SMTPC_STEP_BODY || s->step == PM_SMTPC_STEP_DOT))
        return "BDAT";
    return (unsigned)s->step < sizeof steps / sizeof steps[0] ? steps[s->step].name : "?";
}

void pm_smtpc_init(struct pm_smtpc *s)
{
    if (!s->dialect)
        s->dialect = &pm_smtpc_smtp;
    s->step = PM_SMTPC_STEP_GREETING;
    s->tls_active = 0;
    memset(&s->ext, 0, sizeof s->ext);
    s->mail_failed = s->cur = s->accepted = s->dot_sent = s->data_discard = s->bdat = 0;
    s->error[0] = s->error_dsn[0] = '\0';
    s->error_perm = s->replied = s->loop = 0;
    s->peer_helo[0] = '\0';
    for (int i = 0; i < s->nrcpts; i++) {
        s->rcpts[i].state = PM_SMTPC_RCPT_PENDING;
        s->rcpts[i].dsn[0] = s->rcpts[i].text[0] = '\0';
        s->rcpts[i].stage = NULL;
    }
}

void pm_smtpc_fail(struct pm_smtpc *s, const char *dsn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    snprintf(s->error_dsn, sizeof s->error_dsn, "%s", dsn);
}

static int cls(const struct pm_smtpc_reply *r) { return r->code / 100; }

/* The recipient's verdict from reply r at the current step. */
static void set_rcpt(struct pm_smtpc *s, struct pm_smtpc_rcpt *rc, const struct pm_smtpc_reply *r, int delivered_ok)
{
    int c = cls(r);
    rc->state = c == 2 ? (delivered_ok ? PM_SMTPC_RCPT_DELIVERED : PM_SMTPC_RCPT_ACCEPTED)
              : c == 5 ? PM_SMTPC_RCPT_PERMFAIL
                       : PM_SMTPC_RCPT_TEMPFAIL; /* 4xx, and any nonsense code: try again later */
    pm_smtpc_reply_enhanced(r, rc->dsn, sizeof rc->dsn);
    if (!rc->dsn[0])
        snprintf(rc->dsn, sizeof rc->dsn, "%s",
                 rc->state == PM_SMTPC_RCPT_PERMFAIL   ? "5.0.0"
                 : rc->state == PM_SMTPC_RCPT_TEMPFAIL ? "4.0.0"
                                                       : "2.0.0");
    else if (rc->state == PM_SMTPC_RCPT_TEMPFAIL && rc->dsn[0] != '4')
        rc->dsn[0] = '4';
    pm_smtpc_reply_oneline(r, rc->text, sizeof rc->text);
    rc->stage = pm_smtpc_stage(s);
    rc->peer_dsn = s->ext.dsn;
}

static enum pm_smtpc_action quit(struct pm_smtpc *s, struct evbuffer *out)
{
    evbuffer_add_printf(out, "QUIT\r\n");
    s->step = PM_SMTPC_STEP_QUIT;
    return PM_SMTPC_QUIT;
}

static enum pm_smtpc_action give_up(struct pm_smtpc *s, const struct pm_smtpc_reply *r, int perm)
{
    char line[PM_SMTPC_TEXT_MAX];
    pm_smtpc_reply_oneline(r, line, sizeof line);
    pm_smtpc_fail(s, perm ? "5.0.0" : "4.0.0", "%s (in reply to %s)", line, pm_smtpc_stage(s));
    char enh[16];
    pm_smtpc_reply_enhanced(r, enh, sizeof enh);
    if (enh[0] && (enh[0] == '5') == perm)
        snprintf(s->error_dsn, sizeof s->error_dsn, "%s", enh);
    s->error_perm = perm;
    return PM_SMTPC_ABORT;
}

/* Everyone still undecided shares the verdict of reply r (refused MAIL, 5xx before MAIL). */
static void set_all(struct pm_smtpc *s, const struct pm_smtpc_reply *r)
{
    for (int i = 0; i < s->nrcpts; i++)
        if (s->rcpts[i].state == PM_SMTPC_RCPT_PENDING || s->rcpts[i].state == PM_SMTPC_RCPT_ACCEPTED)
            set_rcpt(s, &s->rcpts[i], r, 0);
}

/* Does the first word of the reply's first line name us ("mx.example.test" or with a
 * trailing dot)? The word is the server's own name in a greeting and an EHLO/HELO reply. */
static int names_self(const struct pm_smtpc *s, const struct pm_smtpc_reply *r)
{
    if (!s->self_name || !s->self_name[0])
        return 0;
    size_t n = strcspn(r->text, " \t\n"), want = strlen(s->self_name);
    if (n == want + 1 && r->text[want] == '.')
        n = want;
    return n == want && strncasecmp(r->text, s->self_name, n) == 0;
}

/* Keeps the first word of an EHLO/HELO reply as the server's name, if it looks like one
 * (letters, digits, '.', '-', '_', or an address literal's '[', ']', ':'); else "". */
static void note_peer_helo(struct pm_smtpc *s, const struct pm_smtpc_reply *r)
{
    size_t n = strcspn(r->text, " \t\n");
    s->peer_helo[0] = '\0';
    if (n == 0 || n >= sizeof s->peer_helo)
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)r->text[i];
        if (!isalnum(ch) && !strchr(".-_[]:", ch))
            return;
    }
    memcpy(s->peer_helo, r->text, n);
    s->peer_helo[n] = '\0';
}

static enum pm_smtpc_action loop_detected(struct pm_smtpc *s, struct evbuffer *out)
{
    pm_smtpc_fail(s, "5.4.6", "server %s with our own hostname %s",
                  s->step == PM_SMTPC_STEP_GREETING ? "greeted us" : "answered EHLO/HELO", s->self_name);
    s->loop = 1;
    return quit(s, out);
}

static void send_rcpt(struct pm_smtpc *s, struct evbuffer *out, int i)
{
    evbuffer_add_printf(out, "RCPT TO:<%s>", s->rcpts[i].address);
    if (s->ext.dsn)
        pm_smtpc_dsn_rcpt(out, s->rcpts[i].dsn_notify, s->rcpts[i].dsn_orcpt);
    evbuffer_add_printf(out, "\r\n");
}

/* The policy requires TLS and this server cannot give it: nothing goes in the clear. */
static enum pm_smtpc_action tls_missing(struct pm_smtpc *s, struct evbuffer *out)
{
    pm_smtpc_fail(s, "4.7.4", "4.7.4 TLS is required, but was not offered by %s",
                  s->server_name ? s->server_name : "the server");
    return quit(s, out);
}

/* After EHLO/HELO (TLS, AUTH): MAIL, and with PIPELINING every RCPT and DATA too. */
static enum pm_smtpc_action begin_transaction(struct pm_smtpc *s, struct evbuffer *out)
{
    const char *why = NULL, *dsn = NULL;
    if (s->need_smtputf8 && !s->ext.smtputf8)
        why = "remote server does not support SMTPUTF8", dsn = "5.6.7";
    else if (s->ext.size && s->ext.size_max && s->body_size > s->ext.size_max)
        why = "message is larger than the remote server accepts", dsn = "5.3.4";
    int requiretls = s->tls_active && s->ext.requiretls; /* RFC 8689 2: only over TLS */
    if (!why && s->requiretls == PM_SMTPC_REQUIRETLS_MUST && !requiretls) {
        /* RFC 8689 4.2.1: QUIT, and the next MX host may do; with none left the message
         * is returned with 5.7.30, or 5.7.10 when there was no TLS at all (the caller's to
         * decide: a 5.x.x reason, error_perm 0). */
        const char *name = s->server_name ? s->server_name : "the server";
        if (s->tls_active)
            pm_smtpc_fail(s, "5.7.30", "5.7.30 REQUIRETLS support required, but %s does not offer it", name);
        else
            pm_smtpc_fail(s, "5.7.10", "5.7.10 REQUIRETLS needs TLS, but there is no TLS session with %s", name);
        return quit(s, out);
    }
    if (why) {
        for (int i = 0; i < s->nrcpts; i++) {
            s->rcpts[i].state = PM_SMTPC_RCPT_PERMFAIL;
            snprintf(s->rcpts[i].dsn, sizeof s->rcpts[i].dsn, "%s", dsn);
            snprintf(s->rcpts[i].text, sizeof s->rcpts[i].text, "%s %s", dsn, why);
            s->rcpts[i].stage = s->dialect->hello;
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
    if (s->requiretls && requiretls)
        evbuffer_add_printf(out, " REQUIRETLS");
    if (s->ext.dsn)
        pm_smtpc_dsn_mail(out, s->dsn_ret, s->dsn_envid);
    evbuffer_add_printf(out, "\r\n");
    s->step = PM_SMTPC_STEP_MAIL;
    /* RFC 3030: BDAT is sent once the RCPT replies are in (nothing to send for nobody). */
    s->bdat = s->ext.chunking && s->body_crlf;
    if (s->ext.pipelining) {
        /* RFC 2920: DATA may end the group; the replies come back in order. */
        for (int i = 0; i < s->nrcpts; i++)
            send_rcpt(s, out, i);
        if (!s->bdat)
            evbuffer_add_printf(out, "DATA\r\n");
    }
    return PM_SMTPC_WAIT;
}

/* The greeting is done (and TLS, when there is any): AUTH when asked, then the mail. */
static enum pm_smtpc_action after_hello(struct pm_smtpc *s, struct evbuffer *out)
{
    if (!s->auth_user)
        return begin_transaction(s, out);
    /* RFC 4616: authzid (empty) NUL authcid NUL passwd, sent as the initial response. */
    unsigned char raw[1024];
    char b64[sizeof raw / 3 * 4 + 8];
    const char *pass = s->auth_pass ? s->auth_pass : "";
    size_t ulen = strlen(s->auth_user), plen = strlen(pass);
    long n = -1;
    if (ulen + plen + 2 <= sizeof raw) {
        raw[0] = '\0';
        memcpy(raw + 1, s->auth_user, ulen + 1);
        memcpy(raw + 2 + ulen, pass, plen);
        n = pm_base64_encode(raw, ulen + plen + 2, b64, sizeof b64);
        explicit_bzero(raw, sizeof raw);
    }
    const char *why = s->auth_needs_tls && !s->tls_active ? "no TLS to protect AUTH"
                      : !s->ext.auth_plain                ? "server does not offer AUTH PLAIN"
                      : n < 0                             ? "AUTH credentials too long"
                                                          : NULL;
    if (!why)
        evbuffer_add_printf(out, "AUTH PLAIN %s\r\n", b64);
    explicit_bzero(b64, sizeof b64);
    if (why) {
        pm_smtpc_fail(s, "4.7.0", "%s (in reply to %s)", why, pm_smtpc_stage(s));
        return quit(s, out);
    }
    s->step = PM_SMTPC_STEP_AUTH;
    return PM_SMTPC_WAIT;
}

static enum pm_smtpc_action after_rcpts(struct pm_smtpc *s, struct evbuffer *out)
{
    s->step = PM_SMTPC_STEP_DATA;
    if (s->bdat) {
        if (s->accepted == 0)
            return quit(s, out);
        evbuffer_add_printf(out, "BDAT %zu LAST\r\n", s->body_size);
        s->step = PM_SMTPC_STEP_BODY;
        return PM_SMTPC_BODY;
    }
    if (s->ext.pipelining)
        return PM_SMTPC_WAIT; /* DATA is already on its way */
    if (s->accepted == 0)
        return quit(s, out);
    evbuffer_add_printf(out, "DATA\r\n");
    return PM_SMTPC_WAIT;
}

static enum pm_smtpc_action on_greeting(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (cls(r) != 2)
        return give_up(s, r, 0); /* 4xx and 5xx greetings: skip this server (like Postfix) */
    if (names_self(s, r))
        return loop_detected(s, out);
    evbuffer_add_printf(out, "%s %s\r\n", s->dialect->hello, s->helo_name);
    s->step = PM_SMTPC_STEP_EHLO;
    return PM_SMTPC_WAIT;
}

static enum pm_smtpc_action on_ehlo(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (cls(r) == 5 && s->dialect->helo_fallback) {
        evbuffer_add_printf(out, "HELO %s\r\n", s->helo_name);
        s->step = PM_SMTPC_STEP_HELO;
        return PM_SMTPC_WAIT;
    }
    if (cls(r) != 2)
        return give_up(s, r, 0);
    if (names_self(s, r))
        return loop_detected(s, out);
    note_peer_helo(s, r);
    pm_smtpc_ehlo_parse(r, &s->ext);
    if (!s->tls_active && s->tls_required && !s->ext.starttls)
        return tls_missing(s, out);
    if (!s->tls_active && (s->tls_allowed || s->tls_required) && s->ext.starttls) {
        evbuffer_add_printf(out, "STARTTLS\r\n");
        s->step = PM_SMTPC_STEP_STARTTLS;
        return PM_SMTPC_WAIT;
    }
    return after_hello(s, out);
}

static enum pm_smtpc_action on_helo(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (cls(r) != 2)
        return give_up(s, r, cls(r) == 5);
    if (names_self(s, r))
        return loop_detected(s, out);
    note_peer_helo(s, r);
    if (s->tls_required && !s->tls_active) /* HELO: no extensions, so no STARTTLS */
        return tls_missing(s, out);
    memset(&s->ext, 0, sizeof s->ext);
    return after_hello(s, out);
}

static enum pm_smtpc_action on_starttls(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (cls(r) == 2) {
        s->step = PM_SMTPC_STEP_TLS;
        return PM_SMTPC_STARTTLS;
    }
    if (s->tls_required) {
        char line[PM_SMTPC_TEXT_MAX];
        pm_smtpc_reply_oneline(r, line, sizeof line);
        pm_smtpc_fail(s, "4.7.5", "4.7.5 TLS is required, but %s refused STARTTLS: %.300s",
                      s->server_name ? s->server_name : "the server", line);
        return quit(s, out);
    }
    return after_hello(s, out); /* RFC 3207: the client may go on in the clear */
}

static enum pm_smtpc_action on_auth(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (cls(r) != 2)
        return give_up(s, r, 0);
    return begin_transaction(s, out);
}

static enum pm_smtpc_action on_mail(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (cls(r) != 2) {
        s->mail_failed = 1;
        set_all(s, r);
        if (!s->ext.pipelining)
            return quit(s, out);
    } else if (!s->ext.pipelining && s->nrcpts > 0) {
        send_rcpt(s, out, 0);
    }
    s->step = PM_SMTPC_STEP_RCPT;
    s->cur = 0;
    if (s->nrcpts == 0)
        return after_rcpts(s, out);
    return PM_SMTPC_WAIT;
}

static enum pm_smtpc_action on_rcpt(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (!s->mail_failed) {
        set_rcpt(s, &s->rcpts[s->cur], r, 0);
        s->accepted += s->rcpts[s->cur].state == PM_SMTPC_RCPT_ACCEPTED;
    }
    if (++s->cur < s->nrcpts) {
        if (!s->ext.pipelining)
            send_rcpt(s, out, s->cur);
        return PM_SMTPC_WAIT;
    }
    return after_rcpts(s, out);
}

static enum pm_smtpc_action on_data(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (r->code == 354) {
        if (s->accepted > 0) {
            s->step = PM_SMTPC_STEP_BODY;
            return PM_SMTPC_BODY;
        }
        /* Pipelined DATA accepted with no recipient: end the empty message at once. LMTP
         * answers it for no one (one reply per accepted recipient): nothing to wait for. */
        evbuffer_add_printf(out, ".\r\n");
        s->data_discard = 1;
        s->step = PM_SMTPC_STEP_DOT;
        return s->dialect->reply_per_rcpt ? quit(s, out) : PM_SMTPC_WAIT;
    }
    if (s->accepted > 0 && !s->mail_failed) {
        for (int i = 0; i < s->nrcpts; i++)
            if (s->rcpts[i].state == PM_SMTPC_RCPT_ACCEPTED) {
                set_rcpt(s, &s->rcpts[i], r, 0);
                if (s->rcpts[i].state == PM_SMTPC_RCPT_ACCEPTED) /* 2xx to DATA is nonsense */
                    s->rcpts[i].state = PM_SMTPC_RCPT_TEMPFAIL, s->rcpts[i].dsn[0] = '4';
            }
    }
    return quit(s, out);
}

/* SMTP: the reply is every accepted recipient's. LMTP: it is the next one's, in RCPT order,
 * and QUIT waits for the last. */
static enum pm_smtpc_action on_dot(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    if (s->data_discard)
        return quit(s, out);
    if (!s->dialect->reply_per_rcpt) {
        for (int i = 0; i < s->nrcpts; i++)
            if (s->rcpts[i].state == PM_SMTPC_RCPT_ACCEPTED)
                set_rcpt(s, &s->rcpts[i], r, 1);
        return quit(s, out);
    }
    int i = 0;
    while (i < s->nrcpts && s->rcpts[i].state != PM_SMTPC_RCPT_ACCEPTED)
        i++;
    if (i < s->nrcpts)
        set_rcpt(s, &s->rcpts[i], r, 1);
    while (++i < s->nrcpts)
        if (s->rcpts[i].state == PM_SMTPC_RCPT_ACCEPTED)
            return PM_SMTPC_WAIT;
    return quit(s, out);
}

static enum pm_smtpc_action on_quit(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    (void)s, (void)r, (void)out;
    return PM_SMTPC_QUIT;
}

enum pm_smtpc_action pm_smtpc_on_reply(struct pm_smtpc *s, const struct pm_smtpc_reply *r, struct evbuffer *out)
{
    s->replied = 1;
    if ((unsigned)s->step < sizeof steps / sizeof steps[0] && steps[s->step].on_reply)
        return steps[s->step].on_reply(s, r, out);
    /* A reply nobody asked for (talking during the handshake or the body). */
    pm_smtpc_fail(s, "4.5.0", "unexpected reply during %s", pm_smtpc_stage(s));
    return PM_SMTPC_ABORT;
}

void pm_smtpc_tls_ready(struct pm_smtpc *s, struct evbuffer *out)
{
    s->tls_active = 1;
    memset(&s->ext, 0, sizeof s->ext);
    evbuffer_add_printf(out, "%s %s\r\n", s->dialect->hello, s->helo_name);
    s->step = PM_SMTPC_STEP_EHLO;
}

void pm_smtpc_body_sent(struct pm_smtpc *s)
{
    s->dot_sent = 1;
    s->step = PM_SMTPC_STEP_DOT;
}
