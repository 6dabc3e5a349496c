/* Graceful stop of the pop3d sandbox (session.h, pop3_drain_*), the same shape as smtpd's
 * (services/smtpd/drain.c says why each step): the shared listening sockets are shut down
 * (refused at once for everyone, the parent included), a session waiting for a command
 * with nothing to lose is told -ERR at once (as Dovecot ends its sessions), one in the
 * middle of something (a command running, a login between USER and PASS, DELE marks that
 * only its QUIT applies) goes on until pop3d.drain_timeout. After
 * that every session is told "-ERR [SYS/TEMP] shutting down" at its next command; one still
 * streaming a message or waiting for a password check gets DRAIN_GRACE_MS more, then the
 * loop ends and pop3_session_close_all ends the rest without UPDATE (nothing is deleted). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "mailfront_loop.h"
#include "session_int.h"
#include "metrics.h"

#define DRAIN_GRACE_MS 1000

static void shut_up(struct pop3_session *s)
{
    pop3_reply(s, "-ERR [SYS/TEMP] shutting down");
    pop3_close_after_reply(s);
}

static int waits_for_command(const struct pop3_session *s)
{
    return s->state != ST_CLOSING && (s->wait == WAIT_NONE || s->wait == WAIT_AUTH_RESPONSE);
}

/* Messages marked deleted: changes that only a QUIT (UPDATE) makes real. */
static int marks_pending(const struct pop3_maildrop *d)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (d->msgs[i].deleted)
            return 1;
    return 0;
}

/* Waiting for a command with nothing unread and nothing that ending now would undo: not
 * logged in (and no USER waiting for its PASS), or logged in without DELE marks. Closing it
 * loses nothing; the client comes back to another instance. */
static int idle(const struct pop3_session *s)
{
    if (s->wait != WAIT_NONE || s->state == ST_CLOSING || evbuffer_get_length(bufferevent_get_input(s->bev)) != 0)
        return 0;
    return s->state == ST_AUTHORIZATION ? !s->have_user : !marks_pending(s->drop);
}

int pop3_drain_session(struct pop3_session *s, int before)
{
    struct pop3_server *srv = s->srv;
    if (!srv->draining || s->state == ST_CLOSING)
        return 0;
    if (srv->drain_expired ? waits_for_command(s) : !before && idle(s)) {
        shut_up(s);
        return 1;
    }
    return 0;
}

void pop3_drain_settled(struct pop3_server *srv)
{
    if (srv->draining && srv->nsessions <= 0)
        event_base_loopbreak(srv->base);
}

static void on_final(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pop3_server *srv = arg;
    long left = 0;
    for (struct pop3_session *s = srv->sessions; s; s = s->next) {
        if (s->state == ST_CLOSING)
            continue;
        left++;
        if (s->wait != WAIT_STREAM) /* mid-message an -ERR would read as message text */
            pop3_reply(s, "-ERR [SYS/TEMP] shutting down");
    }
    pm_log(PM_INFO, "event=drain_end cut=%ld", left);
    event_base_loopbreak(srv->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pop3_server *srv = arg;
    srv->drain_expired = 1;
    pm_log(PM_INFO, "event=drain_deadline sessions=%ld", srv->nsessions);
    for (struct pop3_session *s = srv->sessions; s; s = s->next)
        pop3_drain_session(s, 0); /* closing frees on a later turn: the list stays intact */
    event_assign(srv->ev_drain, srv->base, -1, 0, on_final, srv);
    struct timeval tv = {0, DRAIN_GRACE_MS * 1000};
    event_add(srv->ev_drain, &tv);
}

void pop3_drain_start(struct pop3_server *srv, int sig)
{
    if (srv->draining)
        return;
    srv->draining = 1;
    pm_metrics_set_unready("draining");
    pm_mailfront_loop_stop_accepting(srv->loop);
    pm_log(PM_INFO, "event=draining signal=%d sessions=%ld timeout=%lld", sig, srv->nsessions,
           srv->cfg->pop3d.drain_timeout);
    for (struct pop3_session *s = srv->sessions; s; s = s->next)
        pop3_drain_session(s, 0);
    srv->ev_drain = evtimer_new(srv->base, on_deadline, srv);
    struct timeval tv = {(time_t)srv->cfg->pop3d.drain_timeout, 0};
    if (srv->ev_drain)
        evtimer_add(srv->ev_drain, &tv);
    else
        on_final(-1, 0, srv);
    pop3_drain_settled(srv);
}

void pop3_drain_free(struct pop3_server *srv)
{
    if (srv->ev_drain)
        event_free(srv->ev_drain);
    srv->ev_drain = NULL;
}
