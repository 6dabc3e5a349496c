/* Session transport and lifecycle: accepting (with the per-address limit), the greeting,
 * the bufferevent callbacks (read, write with the yield watermarks, errors, timeouts),
 * STARTTLS and implicit TLS, the session's absolute deadline, and teardown. Reading
 * commands is input.c's, replies are reply.c's.
 *
 * Three clocks, as pop3d's: the read timeout (imapd.timeout before login, imapd.idle_timeout
 * after) catches a silent client; a command must be whole within that long of the previous
 * one however its bytes trickle in; and a session ends after IMAP_SESSION_LIMIT whatever
 * it does. */
#include <errno.h>
#include <openssl/err.h>
#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clients.h"
#include "clock.h"
#include "dlist.h"
#include "linger.h"
#include "log.h"
#include "mailfront_loop.h"
#include "metrics.h"
#include "net.h"
#include "passdb.h"
#include "session_int.h"
#include "tls_server.h"

int imap_auth_allowed(const struct imap_session *s)
{
    static char *const loopback[] = {"127.0.0.0/8", "::1/128"};
    return s->tls || (s->srv->cfg->imapd.plaintext_auth_loopback && pm_ip_in_networks(s->ip, loopback, 2));
}

void imap_auth_over(struct imap_session *s)
{
    pm_passdb_cancel(s->authreq); /* an answer now would find nobody to talk to */
    s->authreq = NULL;
    if (s->auth_running)
        pm_clients_auth_end(s->srv->clients, s->peer);
    s->auth_running = 0;
}

void imap_set_timeouts(struct imap_session *s)
{
    struct timeval tv = {(time_t)imap_timeout(s), 0};
    bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void imap_selected(struct imap_session *s, struct imap_view *v, int readonly, const char *dir)
{
    imap_idle_stop(s); /* IDLE watches the old folder: a new selection is never made while idling */
    free(s->sel_dir);
    s->sel_dir = v && dir ? strdup(dir) : NULL;
    s->sel = v;
    s->readonly = v ? readonly : 0;
}

static void session_free(struct imap_session *s)
{
    struct imap_server *srv = s->srv;
    char uv[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=disconnect session=%llu client=%s user=%s", s->id, s->client,
           PM_LV(uv, s->login ? s->login : ""));
    imap_auth_over(s);
    imap_drop_yield(s);
    imap_idle_stop(s);
    imap_end_command(s);
    imap_reset_reader(s);
    if (s->sel)
        imap_unselect(s);
    free(s->sel_dir);
    free(s->checking_user);
    free(s->auth_user);
    free(s->login);
    free(s->maildir);
    evbuffer_free(s->cmdbuf);
    if (s->delay_ev)
        event_free(s->delay_ev);
    event_free(s->free_ev);
    event_free(s->limit_ev);
    event_free(s->resume_ev);
    if (s->bev && s->tls)
        pm_tls_bev_close_notify(s->bev); /* after the last reply, which has left */
    pm_linger_free_bev(srv->base, s->bev, s->fd, s->bev_owns_fd); /* no RST over the last reply */
    PM_DLIST_REMOVE(srv->sessions, s);
    srv->nsessions--;
    pm_clients_disconnect(srv->clients, s->peer, time(NULL));
    free(s);
    imap_drain_settled(srv);
}

static void on_free(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_free(arg);
}

/* Frees on the next loop turn, so no handler ever runs on a freed session. */
static void schedule_free(struct imap_session *s)
{
    s->phase = PH_CLOSING;
    imap_auth_over(s);
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    event_active(s->free_ev, EV_TIMEOUT, 0);
}

void imap_close_after_reply(struct imap_session *s)
{
    s->phase = PH_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
    if (evbuffer_get_length(imap_out(s)) == 0)
        schedule_free(s);
    /* else on_write frees once the output is flushed */
}

/* Input again after a command, a yield's turn, or a continuation. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_session *s = arg;
    if (s->phase == PH_CLOSING)
        return;
    if (s->yield_fn) {
        if (evbuffer_get_length(imap_out(s)) <= IMAP_OUT_LOW)
            imap_run_yield(s);
        return;
    }
    imap_process_input(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct imap_session *s = arg;
    if (bev != s->bev)
        return;
    int reading = s->phase == PH_COMMAND || s->phase == PH_LITERAL || s->phase == PH_APPEND || s->phase == PH_SKIP;
    if (reading && pm_mono_coarse_s() > s->deadline) {
        /* Bytes keep coming, never a whole command: the read timeout would never fire. */
        pm_log(PM_INFO, "event=timeout session=%llu client=%s reason=deadline", s->id, s->client);
        imap_untagged(s, "BYE Autologout; command not completed in time");
        imap_close_after_reply(s);
        return;
    }
    imap_process_input(s);
}

/* The session's absolute deadline: BYE between responses (a yielding command writes whole
 * responses before it yields, so the BYE never lands inside one). */
static void on_limit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_session *s = arg;
    if (s->phase == PH_CLOSING)
        return;
    pm_log(PM_INFO, "event=timeout session=%llu client=%s reason=session_limit seconds=%lld", s->id, s->client,
           IMAP_SESSION_LIMIT(s->srv->cfg));
    imap_untagged(s, "BYE Session time limit reached");
    imap_close_after_reply(s);
}

static void start_tls_now(struct imap_session *s);

static void on_write(struct bufferevent *bev, void *arg)
{
    struct imap_session *s = arg;
    if (bev != s->bev)
        return;
    size_t pending = evbuffer_get_length(imap_out(s));
    if (s->phase == PH_CLOSING) {
        if (pending == 0)
            schedule_free(s);
        return;
    }
    if (s->phase == PH_STARTTLS) {
        if (pending == 0)
            start_tls_now(s);
        return;
    }
    if (s->yield_fn) {
        if (pending <= IMAP_OUT_LOW)
            imap_run_yield(s);
        return;
    }
    if (s->phase == PH_IDLE && s->idle_pending && s->sel && pending <= IMAP_OUT_LOW) {
        s->idle_pending = 0; /* a wake-up held back while the output was full (idle.c) */
        imap_announce(s, 1);
    }
    if (pending <= IMAP_OUT_LOW)
        imap_process_input(s); /* input.c paused at the high watermark */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct imap_session *s = arg;
    if (bev != s->bev)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        if (ssl)
            pm_log(PM_INFO, "event=tls session=%llu client=%s tls=\"%s %s\"", s->id, s->client, SSL_get_version(ssl),
                   SSL_get_cipher_name(ssl));
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && s->phase != PH_CLOSING) {
        pm_log(PM_INFO, "event=timeout session=%llu client=%s reason=%s", s->id, s->client,
               what & BEV_EVENT_READING ? "idle" : "write");
        if (what & BEV_EVENT_READING) {
            imap_untagged(s, "BYE Autologout; idle for too long");
            imap_close_after_reply(s);
        } else {
            schedule_free(s); /* the client reads nothing: a BYE would not leave either */
        }
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = pm_tls_bev_error(bev);
        if (e) {
            char buf[256], v[PM_LOGV_SIZE];
            ERR_error_string_n(e, buf, sizeof buf);
            pm_log(PM_INFO, "event=tls_error session=%llu client=%s error=%s", s->id, s->client, PM_LOGV(v, buf));
        }
    }
    if (s->phase != PH_CLOSING)
        schedule_free(s);
}

/* Read watermark: a line of imapd.max_line must fit, and a little more (pipelining). */
static size_t input_max(const struct imap_server *srv) { return (size_t)srv->cfg->imapd.max_line + 16384; }

static void setup_bev(struct imap_session *s)
{
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    imap_set_timeouts(s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, input_max(s->srv));
    bufferevent_setwatermark(s->bev, EV_WRITE, IMAP_OUT_LOW, 0);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static struct bufferevent *tls_bev(struct imap_session *s)
{
    struct bufferevent *bev = pm_tls_accept_bev(s->srv->base, s->fd, s->srv->loop->tls);
    if (!bev)
        return NULL;
    s->bev_owns_fd = 1;
    s->tls = 1;
    return bev;
}

static void start_tls_now(struct imap_session *s)
{
    /* RFC 9051 §6.2.1 / CVE-2011-0411: whatever the client pipelined after STARTTLS is
     * discarded, never read as if it came over TLS. */
    size_t dropped = evbuffer_get_length(bufferevent_get_input(s->bev));
    if (dropped)
        pm_log(PM_WARN, "event=starttls_pipelined_dropped session=%llu client=%s bytes=%zu", s->id, s->client, dropped);
    bufferevent_free(s->bev); /* the plain one does not own the fd */
    s->bev = tls_bev(s);
    if (!s->bev) {
        pm_log(PM_ERR, "event=tls_error session=%llu reason=setup", s->id);
        s->phase = PH_CLOSING;
        event_active(s->free_ev, EV_TIMEOUT, 0);
        return;
    }
    imap_reset_reader(s);
    setup_bev(s);
    s->phase = PH_COMMAND;
    s->deadline = pm_mono_coarse_s() + imap_timeout(s);
}

static struct imap_session *session_new(struct imap_server *srv, evutil_socket_t fd, struct pm_client *peer,
                                        const char *ip, const struct sockaddr *sa, int implicit_tls)
{
    struct imap_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->srv = srv;
    s->peer = peer;
    s->id = ++srv->next_id;
    s->fd = fd;
    s->append_fd = -1;
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    snprintf(s->client, sizeof s->client, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, pm_sockaddr_port(sa));
    s->free_ev = event_new(srv->base, -1, 0, on_free, s);
    s->limit_ev = evtimer_new(srv->base, on_limit, s);
    s->resume_ev = event_new(srv->base, -1, 0, on_resume, s);
    s->cmdbuf = evbuffer_new();
    pm_socket_nodelay(fd); /* a response is written whole (bufferevent); none waits on Nagle */
    s->bev = implicit_tls ? tls_bev(s) : bufferevent_socket_new(srv->base, fd, BEV_OPT_DEFER_CALLBACKS);
    if (s->bev && s->free_ev && s->limit_ev && s->resume_ev && s->cmdbuf)
        return s;
    if (s->free_ev)
        event_free(s->free_ev);
    if (s->limit_ev)
        event_free(s->limit_ev);
    if (s->resume_ev)
        event_free(s->resume_ev);
    if (s->cmdbuf)
        evbuffer_free(s->cmdbuf);
    if (s->bev)
        bufferevent_free(s->bev);
    if (!s->bev_owns_fd)
        close(fd);
    free(s);
    return NULL;
}

void imap_session_start(struct imap_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int implicit_tls,
                        const struct sockaddr *proxy)
{
    char ip[64];
    pm_sockaddr_ip(sa, ip, sizeof ip);
    if (srv->nsessions >= srv->cfg->imapd.max_connections || (implicit_tls && !srv->loop->tls)) {
        pm_mailfront_refuse(fd, ip, implicit_tls, "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
                            "max_connections");
        return;
    }
    enum pm_client_verdict verdict;
    struct pm_client *peer = pm_clients_connect(srv->clients, ip, time(NULL), &verdict);
    if (!peer) {
        if (verdict == PM_CLIENT_TOO_MANY)
            pm_mailfront_refuse(fd, ip, implicit_tls, "* BYE [UNAVAILABLE] Too many connections from your address\r\n",
                                "max_connections_per_ip");
        else
            pm_mailfront_refuse(fd, ip, implicit_tls, "* BYE [UNAVAILABLE] Too many clients, try again later\r\n",
                                verdict == PM_CLIENT_TABLE_FULL ? "client_table_full" : "no_memory");
        return;
    }
    struct imap_session *s = session_new(srv, fd, peer, ip, sa, implicit_tls);
    if (!s) {
        pm_clients_disconnect(srv->clients, peer, time(NULL));
        return;
    }
    PM_DLIST_PUSH(srv->sessions, s);
    srv->nsessions++;
    pm_metric_inc(PM_M_IMAPD_CONNECTIONS);
    setup_bev(s);
    s->deadline = pm_mono_coarse_s() + imap_timeout(s);
    struct timeval limit = {(time_t)IMAP_SESSION_LIMIT(srv->cfg), 0};
    evtimer_add(s->limit_ev, &limit);
    char via[96] = "";
    if (proxy) {
        char pip[64];
        pm_sockaddr_ip(proxy, pip, sizeof pip);
        snprintf(via, sizeof via, strchr(pip, ':') ? " proxy=[%s]:%d" : " proxy=%s:%d", pip, pm_sockaddr_port(proxy));
    }
    pm_log(PM_INFO, "event=connect session=%llu client=%s tls=%d%s", s->id, s->client, implicit_tls, via);
    char caps[IMAP_CAPABILITY_MAX];
    imap_session_capabilities(s, caps, sizeof caps);
    imap_untagged(s, "OK [CAPABILITY %s] %s Postmesh IMAP ready", caps, srv->cfg->hostname);
}

void imap_session_close_all(struct imap_server *srv)
{
    while (srv->sessions)
        session_free(srv->sessions);
}
