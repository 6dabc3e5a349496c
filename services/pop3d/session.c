/* Session I/O and lifecycle: accepting (with the per-address limit), reading bounded command
 * lines, replies, timeouts, the login delay timer, streaming messages with back-pressure,
 * STLS, and teardown.
 *
 * Three clocks, as in smtpd: the read timeout (pop3d.timeout) catches a silent client; a
 * command must be complete within pop3d.timeout of the previous one however its bytes
 * trickle in; and a session ends after POP3_SESSION_TIMEOUTS periods whatever it does. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <stdarg.h>
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
#include "session_int.h"
#include "tls.h"
#include "tls_server.h"

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

void pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
    if (s->state == ST_CLOSING)
        return;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

/* The next command must be complete by now + timeout, however slowly its bytes come. */
static void command_deadline(struct pop3_session *s) { s->deadline = pm_mono_coarse_s() + s->srv->cfg->pop3d.timeout; }

void pop3_auth_over(struct pop3_session *s)
{
    pm_passdb_cancel(s->authreq); /* an answer now would find nobody to talk to */
    s->authreq = NULL;
    if (s->auth_running)
        pm_clients_auth_end(s->srv->clients, s->peer);
    s->auth_running = 0;
}

static void session_free(struct pop3_session *s)
{
    struct pop3_server *srv = s->srv;
    char uv[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=disconnect session=%llu client=%s user=%s", s->id, s->client, PM_LV(uv, s->login));
    pop3_auth_over(s);
    free(s->checking_user);
    if (s->delay_ev)
        event_free(s->delay_ev);
    if (s->free_ev)
        event_free(s->free_ev);
    if (s->limit_ev)
        event_free(s->limit_ev);
    if (s->stream_fd >= 0)
        close(s->stream_fd);
    pop3_maildrop_close(s->drop); /* releases the lock; nothing is deleted */
    if (s->bev && s->tls)
        pm_tls_bev_close_notify(s->bev); /* after the last reply, which has left */
    pm_linger_free_bev(srv->base, s->bev, s->fd, s->bev_owns_fd); /* no RST over the last reply */
    PM_DLIST_REMOVE(srv->sessions, s);
    srv->nsessions--;
    pm_clients_disconnect(srv->clients, s->peer, time(NULL));
    free(s);
    pop3_drain_settled(srv);
}

static void on_free(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_free(arg);
}

/* Frees on the next loop turn, so no handler ever runs on a freed session. */
static void schedule_free(struct pop3_session *s)
{
    s->state = ST_CLOSING;
    pop3_auth_over(s);
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    event_active(s->free_ev, EV_TIMEOUT, 0);
}

void pop3_close_after_reply(struct pop3_session *s)
{
    s->state = ST_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
        schedule_free(s);
    /* else on_write frees once the output is flushed */
}

void pop3_bad_command(struct pop3_session *s, const char *reply)
{
    pop3_reply(s, "%s", reply);
    if (++s->errors >= POP3_MAX_ERRORS) {
        pop3_reply(s, "-ERR too many errors, closing");
        pop3_close_after_reply(s);
    }
}

int pop3_auth_allowed(const struct pop3_session *s)
{
    static char *const loopback[] = {"127.0.0.0/8", "::1/128"};
    return s->tls || (s->srv->cfg->pop3d.plaintext_auth_loopback && pm_ip_in_networks(s->ip, loopback, 2));
}

/* ------------------------------------------------------------------ commands */

static void handle_line(struct pop3_session *s, const char *line, size_t len)
{
    if (s->wait == WAIT_AUTH_RESPONSE) {
        pop3_auth_response(s, line, len);
        return;
    }
    struct pop3_command cmd;
    int rc = pop3_parse_command(line, len, &cmd);
    if (rc == POP3_PARSE_EMPTY || rc == POP3_PARSE_UNKNOWN) {
        pop3_bad_command(s, "-ERR unknown command");
        return;
    }
    if (rc == POP3_PARSE_BAD_BYTES) {
        pop3_bad_command(s, "-ERR control characters in command");
        return;
    }
    if (rc == POP3_PARSE_SYNTAX) {
        pop3_bad_command(s, "-ERR syntax error in arguments");
        return;
    }
    pm_log(PM_DEBUG, "event=command session=%llu verb=%s", s->id, pop3_verb_name(cmd.verb));
    pop3_dispatch(s, &cmd);
    explicit_bzero(&cmd, sizeof cmd); /* PASS/AUTH arguments */
}

/* Runs every complete command line that is buffered, while nothing is pending and the
 * client keeps reading its output. */
static void process_input(struct pop3_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    char line[POP3_MAX_AUTH_LINE + 1];
    while (s->state != ST_CLOSING && (s->wait == WAIT_NONE || s->wait == WAIT_AUTH_RESPONSE)) {
        if (evbuffer_get_length(out) > POP3_OUT_HIGH)
            return; /* on_write resumes */
        if (pop3_drain_session(s, 1))
            return; /* past the drain deadline: -ERR instead of the next command */
        size_t max = s->wait == WAIT_AUTH_RESPONSE ? POP3_MAX_AUTH_LINE : POP3_MAX_COMMAND_LINE;
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (eol.pos < 0 ? evbuffer_get_length(in) > max : (size_t)eol.pos > max) {
            /* Never truncate and execute a line: refuse and close. */
            pm_log(PM_WARN, "event=line_too_long session=%llu client=%s", s->id, s->client);
            pop3_reply(s, "-ERR line too long");
            pop3_close_after_reply(s);
            return;
        }
        if (eol.pos < 0) {
            pop3_drain_session(s, 0); /* draining: a session with nothing to lose goes now */
            return; /* wait for the rest of the line */
        }
        size_t len = (size_t)eol.pos;
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        handle_line(s, line, len);
        explicit_bzero(line, len); /* may have held a password */
        command_deadline(s);
    }
}

void pop3_resume_input(struct pop3_session *s)
{
    if (s->state == ST_CLOSING)
        return;
    command_deadline(s);
    bufferevent_enable(s->bev, EV_READ);
    process_input(s);
}

/* ------------------------------------------------------------------ login delay */

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pop3_session *s = arg;
    if (s->wait != WAIT_DELAY)
        return;
    s->wait = WAIT_NONE;
    pop3_reply(s, "%s", s->delay_reply);
    if (s->close_after_delay) {
        pop3_close_after_reply(s);
        return;
    }
    pop3_resume_input(s);
}

void pop3_delay_reply(struct pop3_session *s, const char *reply, int close_after)
{
    snprintf(s->delay_reply, sizeof s->delay_reply, "%s", reply);
    s->close_after_delay = close_after;
    s->wait = WAIT_DELAY;
    bufferevent_disable(s->bev, EV_READ);
    if (!s->delay_ev)
        s->delay_ev = evtimer_new(s->srv->base, on_delay, s);
    struct timeval tv = {(time_t)s->srv->cfg->pop3d.auth_delay, 0};
    evtimer_add(s->delay_ev, &tv);
}

/* ------------------------------------------------------------------ RETR / TOP */

static void stream_end(struct pop3_session *s)
{
    close(s->stream_fd);
    s->stream_fd = -1;
}

/* Produces output until the buffer is full enough or the message ends. */
static void stream_fill(struct pop3_session *s)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    char in[16384], buf[POP3_STUFF_OUT_MAX(16384)];
    while (s->wait == WAIT_STREAM && evbuffer_get_length(out) < POP3_OUT_HIGH) {
        ssize_t r = s->stuffer.done ? 0 : read(s->stream_fd, in, sizeof in);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            /* Half a message was sent: there is no way to say -ERR now; drop the session
             * (no UPDATE, so nothing is lost). */
            pm_log(PM_ERR, "event=read_error session=%llu error=\"%s\"", s->id, strerror(errno));
            stream_end(s);
            schedule_free(s);
            return;
        }
        if (r == 0) {
            size_t n = pop3_stuff_finish(&s->stuffer, buf);
            evbuffer_add(out, buf, n);
            stream_end(s);
            s->wait = WAIT_NONE;
            command_deadline(s);
            bufferevent_enable(s->bev, EV_READ);
            return;
        }
        size_t n = pop3_stuff(&s->stuffer, in, (size_t)r, buf);
        evbuffer_add(out, buf, n);
    }
}

void pop3_stream_start(struct pop3_session *s, int fd, long body_lines)
{
    s->stream_fd = fd;
    pop3_stuff_init(&s->stuffer, body_lines);
    s->wait = WAIT_STREAM;
    bufferevent_disable(s->bev, EV_READ); /* the write timeout watches a slow reader */
    stream_fill(s);
}

/* ------------------------------------------------------------------ callbacks */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct pop3_session *s = arg;
    if (bev != s->bev)
        return;
    if (s->state != ST_CLOSING && (s->wait == WAIT_NONE || s->wait == WAIT_AUTH_RESPONSE) && pm_mono_coarse_s() > s->deadline) {
        /* Bytes keep coming, never a whole command: the read timeout would never fire. */
        pm_log(PM_INFO, "event=timeout session=%llu client=%s reason=deadline", s->id, s->client);
        pop3_reply(s, "-ERR autologout: command not completed in time");
        pop3_close_after_reply(s);
        return;
    }
    process_input(s);
}

/* The session's absolute deadline. Mid-stream there is no way to say -ERR: the connection
 * just ends (no UPDATE: nothing is deleted). */
static void on_limit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pop3_session *s = arg;
    if (s->state == ST_CLOSING)
        return;
    pm_log(PM_INFO, "event=timeout session=%llu client=%s reason=session_limit seconds=%lld", s->id, s->client,
           POP3_SESSION_LIMIT(s->srv->cfg));
    if (s->wait == WAIT_STREAM) {
        schedule_free(s);
        return;
    }
    pop3_reply(s, "-ERR [SYS/TEMP] session time limit reached");
    pop3_close_after_reply(s);
}

static void start_tls_now(struct pop3_session *s);

static void on_write(struct bufferevent *bev, void *arg)
{
    struct pop3_session *s = arg;
    if (bev != s->bev)
        return;
    size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
    if (s->state == ST_CLOSING) {
        if (pending == 0)
            schedule_free(s);
        return;
    }
    if (s->wait == WAIT_STLS) {
        if (pending == 0)
            start_tls_now(s);
        return;
    }
    if (s->wait == WAIT_STREAM) {
        stream_fill(s);
        if (s->wait == WAIT_STREAM || s->state == ST_CLOSING)
            return;
    }
    if (pending < POP3_OUT_HIGH)
        process_input(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct pop3_session *s = arg;
    if (bev != s->bev)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        if (ssl) {
            char desc[128];
            pop3_tls_describe(ssl, desc, sizeof desc);
            pm_log(PM_INFO, "event=tls session=%llu client=%s tls=\"%s\"", s->id, s->client, desc);
        }
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && s->state != ST_CLOSING) {
        pm_log(PM_INFO, "event=timeout session=%llu client=%s reason=idle", s->id, s->client);
        pop3_reply(s, "-ERR autologout: idle for too long");
        pop3_close_after_reply(s);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = pm_tls_bev_error(bev);
        if (e) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            char v[PM_LOGV_SIZE];
            pm_log(PM_INFO, "event=tls_error session=%llu client=%s error=%s", s->id, s->client, PM_LOGV(v, buf));
        }
    }
    if (s->state != ST_CLOSING)
        schedule_free(s);
}

static void setup_bev(struct pop3_session *s)
{
    struct timeval tv = {(time_t)s->srv->cfg->pop3d.timeout, 0};
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    bufferevent_setwatermark(s->bev, EV_READ, 0, POP3_IN_MAX);
    bufferevent_setwatermark(s->bev, EV_WRITE, POP3_OUT_LOW, 0);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static struct bufferevent *tls_bev(struct pop3_session *s)
{
    struct bufferevent *bev = pm_tls_accept_bev(s->srv->base, s->fd, s->srv->loop->tls);
    if (!bev)
        return NULL;
    s->bev_owns_fd = 1;
    s->tls = 1;
    return bev;
}

void pop3_start_tls(struct pop3_session *s)
{
    pop3_reply(s, "+OK begin TLS negotiation");
    s->wait = WAIT_STLS;
    bufferevent_disable(s->bev, EV_READ);
}

static void start_tls_now(struct pop3_session *s)
{
    /* RFC 2595 / CVE-2011-0411: whatever the client pipelined after STLS is discarded. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t dropped = evbuffer_get_length(in);
    if (dropped)
        pm_log(PM_WARN, "event=stls_pipelined_dropped session=%llu client=%s bytes=%zu", s->id, s->client, dropped);
    bufferevent_free(s->bev); /* the plain one does not own the fd */
    s->bev = tls_bev(s);
    if (!s->bev) {
        pm_log(PM_ERR, "event=tls_error session=%llu reason=setup", s->id);
        s->state = ST_CLOSING;
        event_active(s->free_ev, EV_TIMEOUT, 0);
        return;
    }
    setup_bev(s);
    command_deadline(s);
    s->have_user = 0; /* RFC 2595: forget what was said before TLS */
    s->wait = WAIT_NONE;
}

void pop3_session_start(struct pop3_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int implicit_tls,
                        const struct sockaddr *proxy)
{
    char ip[64];
    pm_sockaddr_ip(sa, ip, sizeof ip);
    if (srv->nsessions >= srv->cfg->pop3d.max_connections || (implicit_tls && !srv->loop->tls)) {
        pm_mailfront_refuse(fd, ip, implicit_tls, "-ERR [SYS/TEMP] too many connections, try again later\r\n",
                            "max_connections");
        return;
    }
    enum pm_client_verdict verdict;
    struct pm_client *peer = pm_clients_connect(srv->clients, ip, time(NULL), &verdict);
    if (!peer) {
        if (verdict == PM_CLIENT_TOO_MANY)
            pm_mailfront_refuse(fd, ip, implicit_tls, "-ERR [SYS/TEMP] too many connections from your address\r\n",
                                "max_connections_per_ip");
        else
            pm_mailfront_refuse(fd, ip, implicit_tls, "-ERR [SYS/TEMP] too many clients, try again later\r\n",
                                verdict == PM_CLIENT_TABLE_FULL ? "client_table_full" : "no_memory");
        return;
    }
    struct pop3_session *s = calloc(1, sizeof *s);
    if (!s) {
        pm_clients_disconnect(srv->clients, peer, time(NULL));
        close(fd);
        return;
    }
    s->srv = srv;
    s->peer = peer;
    s->id = ++srv->next_id;
    s->fd = fd;
    s->stream_fd = -1;
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    snprintf(s->client, sizeof s->client, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, pm_sockaddr_port(sa));
    s->free_ev = event_new(srv->base, -1, 0, on_free, s);
    s->limit_ev = evtimer_new(srv->base, on_limit, s);
    pm_socket_nodelay(fd); /* a response is written whole (bufferevent); none waits on Nagle */
    s->bev = implicit_tls ? tls_bev(s) : bufferevent_socket_new(srv->base, fd, BEV_OPT_DEFER_CALLBACKS);
    if (!s->bev || !s->free_ev || !s->limit_ev) {
        if (s->free_ev)
            event_free(s->free_ev);
        if (s->limit_ev)
            event_free(s->limit_ev);
        if (s->bev)
            bufferevent_free(s->bev);
        if (!s->bev_owns_fd)
            close(fd);
        pm_clients_disconnect(srv->clients, peer, time(NULL));
        free(s);
        return;
    }
    PM_DLIST_PUSH(srv->sessions, s);
    srv->nsessions++;
    pm_metric_inc(PM_M_POP3D_CONNECTIONS);
    setup_bev(s);
    command_deadline(s);
    struct timeval limit = {(time_t)POP3_SESSION_LIMIT(srv->cfg), 0};
    evtimer_add(s->limit_ev, &limit);
    char via[96] = "";
    if (proxy) {
        char pip[64];
        pm_sockaddr_ip(proxy, pip, sizeof pip);
        snprintf(via, sizeof via, strchr(pip, ':') ? " proxy=[%s]:%d" : " proxy=%s:%d", pip, pm_sockaddr_port(proxy));
    }
    pm_log(PM_INFO, "event=connect session=%llu client=%s tls=%d%s", s->id, s->client, implicit_tls, via);
    pop3_reply(s, "+OK %s POP3 server ready", srv->cfg->hostname);
}

void pop3_session_close_all(struct pop3_server *srv)
{
    while (srv->sessions)
        session_free(srv->sessions);
}
