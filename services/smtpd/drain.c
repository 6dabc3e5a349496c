/* Graceful stop (drain.h). Why each step:
 * - The listening sockets are the parent's, shared with this sandbox. shutdown(SHUT_RD) on a
 *   listening socket takes it out of the listening state for every holder, so a new client
 *   is refused at once (RST), and the connections still in the backlog are reset, instead of
 *   waiting in a backlog nobody accepts from until the parent exits.
 * - An idle session (no transaction, nothing unread) loses nothing by a 421 now (Postfix
 *   does the same); a client in the middle of a transaction gets the deadline to finish, and
 *   a message whose DATA has ended is answered as the queue answers (250 once committed).
 * - After the deadline every session is told 421 at its next command; one that is still
 *   waiting for the queue or a password check gets DRAIN_GRACE_MS for the answer, then 421
 *   and the process exits, so the whole smtpd is gone soon after drain_timeout. */
#include "drain.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <sys/socket.h>

#include "log.h"
#include "proxywait.h"
#include "server.h"
#include "session.h"
#include "metrics.h"
#include "tally.h"

#define DRAIN_GRACE_MS 1000

static void shut_up(struct smtpd_session *s)
{
    smtpd_reply(s, "421 4.3.2 %s shutting down", s->srv->cfg->hostname);
    smtpd_session_close(s, "shutdown");
}

/* Waiting for the client's next command with no transaction open: nothing to lose. */
static int idle(const struct smtpd_session *s)
{
    if (s->state == SMTPD_ST_GREETING)
        return 1;
    return s->state == SMTPD_ST_COMMAND && !s->txn.active && !s->out_blocked &&
           evbuffer_get_length(bufferevent_get_input(s->bev)) == 0;
}

/* Would take client input now (its next command, or DATA octets; in the greet pause too). */
static int wants_input(const struct smtpd_session *s)
{
    return s->state == SMTPD_ST_GREETING || smtpd_session_wants_input(s);
}

int smtpd_drain_session(struct smtpd_session *s, int before)
{
    struct smtpd_server *srv = s->srv;
    if (!srv->draining || s->state == SMTPD_ST_CLOSING)
        return 0;
    if (srv->drain_expired ? wants_input(s) : !before && idle(s)) {
        shut_up(s);
        return 1;
    }
    return 0;
}

void smtpd_drain_settled(struct smtpd_server *srv)
{
    if (srv->draining && srv->nsessions - srv->nlinger <= 0)
        event_base_loopbreak(srv->base);
}

/* Visits every session; safe against closing (nothing is freed synchronously). */
static void each_session(struct smtpd_server *srv, int before)
{
    for (struct smtpd_session *s = srv->sessions; s; s = s->next) {
        smtpd_drain_session(s, before);
        smtpd_session_settle(s);
    }
}

static void on_final(evutil_socket_t fd, short what, void *arg);

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_server *srv = arg;
    srv->drain_expired = 1;
    pm_log(PM_INFO, "event=drain_deadline sessions=%ld", srv->nsessions - srv->nlinger);
    each_session(srv, 0);
    event_assign(srv->ev_drain, srv->base, -1, 0, on_final, srv);
    struct timeval tv = {0, DRAIN_GRACE_MS * 1000};
    event_add(srv->ev_drain, &tv);
    smtpd_drain_settled(srv);
}

static void on_final(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_server *srv = arg;
    long left = 0;
    for (struct smtpd_session *s = srv->sessions; s; s = s->next) {
        if (s->state != SMTPD_ST_CLOSING) {
            left++;
            shut_up(s); /* a 4xx for a message still waiting for the queue: never silence */
        }
    }
    pm_log(PM_INFO, "event=drain_end cut=%ld", left);
    event_base_loopbreak(srv->base);
}

void smtpd_drain_start(struct smtpd_server *srv, int sig)
{
    if (srv->draining)
        return;
    srv->draining = 1;
    pm_metrics_set_unready("draining"); /* a load balancer's readiness probe stops sending us clients */
    smtpd_tally_set_draining(smtpd_tally_mine, 1); /* and the other sandboxes' probes too */
    for (int i = 0; i < srv->nlisteners; i++) {
        struct smtpd_listener *l = &srv->listeners[i];
        evconnlistener_disable(l->lev);
        evtimer_del(l->retry);
        shutdown(evconnlistener_get_fd(l->lev), SHUT_RD);
    }
    pm_proxy_waits_close_all(srv->proxy, "shutdown");
    pm_log(PM_INFO, "event=draining signal=%d sessions=%ld timeout=%lld", sig, srv->nsessions,
           srv->cfg->smtpd.drain_timeout);
    each_session(srv, 0);
    srv->ev_drain = evtimer_new(srv->base, on_deadline, srv);
    struct timeval tv = {(time_t)srv->cfg->smtpd.drain_timeout, 0};
    if (srv->ev_drain)
        evtimer_add(srv->ev_drain, &tv);
    else
        on_final(-1, 0, srv);
    smtpd_drain_settled(srv);
}

void smtpd_drain_free(struct smtpd_server *srv)
{
    if (srv->ev_drain)
        event_free(srv->ev_drain);
    srv->ev_drain = NULL;
}
