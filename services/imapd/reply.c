/* What handlers say (session_int.h): untagged and tagged responses, continuation requests,
 * BAD counting, yielding long output, the held-back answer of a failed login, and the end
 * of a command (the next one may then run). Every response is added whole to the output
 * buffer; the transport (session.c) decides when it leaves. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "session_int.h"

long long imap_timeout(const struct imap_session *s)
{
    return s->login ? s->srv->cfg->imapd.idle_timeout : s->srv->cfg->imapd.timeout;
}

struct evbuffer *imap_out(struct imap_session *s) { return bufferevent_get_output(s->bev); }

int imap_out_full(struct imap_session *s) { return evbuffer_get_length(imap_out(s)) > IMAP_OUT_HIGH; }

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
    if (s->phase == PH_CLOSING)
        return;
    struct evbuffer *out = imap_out(s);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add(out, "* ", 2);
    evbuffer_add_vprintf(out, fmt, ap);
    evbuffer_add(out, "\r\n", 2);
    va_end(ap);
}

/* on_resume on a later loop turn. A zero timer, not event_active: libevent runs events
 * activated during its active queue in the same pass, so a yield that re-activated itself
 * never let other sessions' input in (a long SEARCH starved every session of the sandbox);
 * timers wait for the next pass, after the poll. */
static void resume_soon(struct imap_session *s)
{
    static const struct timeval now = {0, 0};
    event_add(s->resume_ev, &now);
}

/* The command is over: input is read again (on a later loop turn, so a handler that
 * answered from a callback never finds itself re-entered). */
static void command_over(struct imap_session *s)
{
    s->running = 0;
    if (s->phase == PH_RUNNING || s->phase == PH_CONTINUE || s->phase == PH_IDLE || s->phase == PH_DELAY)
        s->phase = PH_COMMAND;
    s->deadline = pm_mono_coarse_s() + imap_timeout(s);
    resume_soon(s);
}

static const char *tag_of(const struct imap_session *s, const struct imap_command *cmd)
{
    return cmd ? cmd->tag : s->cur_tag;
}

void imap_tagged(struct imap_session *s, const struct imap_command *cmd, const char *status, const char *fmt, ...)
{
    if (s->phase != PH_CLOSING) {
        const struct imap_command_row *row = s->row;
        if (s->sel && row && !(row->flags & IMAP_F_NO_UPDATES))
            imap_announce(s, !(row->flags & IMAP_F_NO_EXPUNGE) || (cmd && cmd->uid));
        struct evbuffer *out = imap_out(s);
        va_list ap;
        va_start(ap, fmt);
        evbuffer_add_printf(out, "%s %s ", tag_of(s, cmd), status);
        evbuffer_add_vprintf(out, fmt, ap);
        evbuffer_add(out, "\r\n", 2);
        va_end(ap);
    }
    command_over(s);
}

void imap_reply_tag(struct imap_session *s, const char *tag, const char *status, const char *text)
{
    if (s->phase != PH_CLOSING)
        evbuffer_add_printf(imap_out(s), "%s %s %s\r\n", tag, status, text);
    command_over(s);
}

void imap_count_error(struct imap_session *s)
{
    if (++s->errors < IMAP_MAX_ERRORS || s->phase == PH_CLOSING)
        return;
    pm_log(PM_INFO, "event=too_many_errors session=%llu client=%s", s->id, s->client);
    imap_untagged(s, "BYE Too many invalid commands");
    imap_close_after_reply(s);
}

void imap_bad(struct imap_session *s, const struct imap_command *cmd, const char *text)
{
    if (cmd)
        imap_reply_tag(s, cmd->tag, "BAD", text);
    else
        imap_untagged(s, "BAD %s", text);
    imap_count_error(s);
}

void imap_yield(struct imap_session *s, void (*fn)(struct imap_session *, void *), void *arg,
                void (*cleanup)(void *))
{
    s->yield_fn = fn;
    s->yield_arg = arg;
    s->yield_cleanup = cleanup;
    if (evbuffer_get_length(imap_out(s)) <= IMAP_OUT_LOW)
        resume_soon(s);
    /* else on_write runs it once the client has read down to the low watermark */
}

void imap_run_yield(struct imap_session *s)
{
    void (*fn)(struct imap_session *, void *) = s->yield_fn;
    void *arg = s->yield_arg;
    s->yield_fn = NULL;
    s->yield_arg = NULL;
    s->yield_cleanup = NULL;
    fn(s, arg);
}

void imap_drop_yield(struct imap_session *s)
{
    void (*cleanup)(void *) = s->yield_cleanup;
    void *arg = s->yield_arg;
    s->yield_fn = NULL;
    s->yield_arg = NULL;
    s->yield_cleanup = NULL;
    if (cleanup)
        cleanup(arg);
}

void imap_continue(struct imap_session *s, enum imap_phase phase, const char *text)
{
    if (s->phase == PH_CLOSING)
        return;
    evbuffer_add_printf(imap_out(s), "+ %s\r\n", text);
    s->phase = phase;
    resume_soon(s); /* the response may already be buffered */
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_session *s = arg;
    if (s->phase != PH_DELAY)
        return;
    imap_reply_tag(s, tag_of(s, s->cmd), "NO", s->delay_status);
    if (s->close_after_delay) {
        imap_untagged(s, "BYE Too many authentication failures");
        imap_close_after_reply(s);
        return;
    }
    bufferevent_enable(s->bev, EV_READ);
}

void imap_delay_tagged(struct imap_session *s, const char *status_text, int close_after)
{
    snprintf(s->delay_status, sizeof s->delay_status, "%s", status_text);
    s->close_after_delay = close_after;
    s->phase = PH_DELAY;
    bufferevent_disable(s->bev, EV_READ);
    if (!s->delay_ev)
        s->delay_ev = evtimer_new(s->srv->base, on_delay, s);
    struct timeval tv = {(time_t)s->srv->cfg->imapd.auth_delay, 0};
    if (!s->delay_ev || evtimer_add(s->delay_ev, &tv) < 0)
        on_delay(-1, 0, s);
}

void imap_start_tls(struct imap_session *s, const struct imap_command *cmd)
{
    imap_tagged(s, cmd, "OK", "Begin TLS negotiation now");
    s->phase = PH_STARTTLS;
    bufferevent_disable(s->bev, EV_READ);
}
