/* Graceful stop of the imapd sandbox (session.h, imap_drain_*), the shape of pop3d's and
 * smtpd's (services/smtpd/drain.c says why each step): the shared listening sockets are
 * shut down (refused at once for everyone, the parent included), a session waiting for a
 * command or idling is told "* BYE Server shutting down" at once (nothing of an IMAP
 * session is lost by ending between commands: every change is on disk when its tagged OK
 * leaves), one in the middle of a command finishes it and is told BYE then. Past
 * imapd.drain_timeout every session is told BYE at its next response boundary; after
 * DRAIN_GRACE_MS more the loop ends and imap_session_close_all ends the rest. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "mailfront_loop.h"
#include "metrics.h"
#include "session_int.h"

#define DRAIN_GRACE_MS 1000
#define BYE "BYE Server shutting down"

static void shut_up(struct imap_session *s)
{
    imap_untagged(s, BYE);
    imap_close_after_reply(s);
}

/* Between commands with nothing read of the next one, or idling: ending now loses nothing. */
static int between_commands(const struct imap_session *s)
{
    if (s->phase == PH_IDLE)
        return 1;
    return !s->running && !s->in_command && s->phase == PH_COMMAND && !s->yield_fn;
}

int imap_drain_session(struct imap_session *s)
{
    struct imap_server *srv = s->srv;
    if (!srv->draining || s->phase == PH_CLOSING || !between_commands(s))
        return 0;
    /* Before the deadline a session with pipelined commands runs them. */
    if (!srv->drain_expired && s->phase != PH_IDLE && evbuffer_get_length(bufferevent_get_input(s->bev)) != 0)
        return 0;
    shut_up(s);
    return 1;
}

void imap_drain_settled(struct imap_server *srv)
{
    if (srv->draining && srv->nsessions <= 0)
        event_base_loopbreak(srv->base);
}

static void on_final(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_server *srv = arg;
    long left = 0;
    for (struct imap_session *s = srv->sessions; s; s = s->next) {
        if (s->phase == PH_CLOSING)
            continue;
        left++;
        if (!s->yield_fn) /* a yielding FETCH may be inside a literal: no line now */
            imap_untagged(s, BYE);
    }
    pm_log(PM_INFO, "event=drain_end cut=%ld", left);
    event_base_loopbreak(srv->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_server *srv = arg;
    srv->drain_expired = 1;
    pm_log(PM_INFO, "event=drain_deadline sessions=%ld", srv->nsessions);
    for (struct imap_session *s = srv->sessions; s; s = s->next)
        imap_drain_session(s); /* closing frees on a later turn: the list stays intact */
    event_assign(srv->ev_drain, srv->base, -1, 0, on_final, srv);
    struct timeval tv = {0, DRAIN_GRACE_MS * 1000};
    event_add(srv->ev_drain, &tv);
}

void imap_drain_start(struct imap_server *srv, int sig)
{
    if (srv->draining)
        return;
    srv->draining = 1;
    pm_metrics_set_unready("draining");
    pm_mailfront_loop_stop_accepting(srv->loop);
    pm_log(PM_INFO, "event=draining signal=%d sessions=%ld timeout=%lld", sig, srv->nsessions,
           srv->cfg->imapd.drain_timeout);
    for (struct imap_session *s = srv->sessions; s; s = s->next)
        imap_drain_session(s);
    srv->ev_drain = evtimer_new(srv->base, on_deadline, srv);
    struct timeval tv = {(time_t)srv->cfg->imapd.drain_timeout, 0};
    if (srv->ev_drain)
        evtimer_add(srv->ev_drain, &tv);
    else
        on_final(-1, 0, srv);
    imap_drain_settled(srv);
}

void imap_drain_free(struct imap_server *srv)
{
    if (srv->ev_drain)
        event_free(srv->ev_drain);
    srv->ev_drain = NULL;
}
