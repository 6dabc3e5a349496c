/* Session I/O: bufferevent callbacks, line extraction, replies, timers and closing.
 *
 * Memory per idle session is the struct plus a bufferevent with empty evbuffers. Input is
 * bounded by a read watermark, pipelined replies by OUTPUT_HIGH (we stop reading commands
 * until the client reads its replies), and the message body by max_message_size. */
#include "session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "authdb.h"
#include "clients.h"
#include "clock.h"
#include "dlist.h"
#include "drain.h"
#include "eom.h"
#include "dnsbl.h"
#include "etrn.h"
#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "net.h"
#include "parser.h"
#include "submit.h"
#include "tls.h"
#include "tls_server.h"

#define OUTPUT_HIGH (64 * 1024) /* unread replies before we stop taking commands */
#define INPUT_HIGH (64 * 1024)  /* socket data buffered per session at most */
#define CLOSE_POLL_MS 50        /* waiting for a TLS filter to flush its last record */
#define CLOSE_POLLS_MAX 100
#define LINGER_MS 2000          /* after our FIN: read and discard until the client closes */
/* Deferred callbacks: bufferevent_openssl may otherwise report an error synchronously from
 * inside smtpd_reply() and free the session under its caller's feet. */
#define BEV_OPTS (BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void setup_bev(struct smtpd_session *s)
{
    bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH);
    if (s->tls)
        bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
    smtpd_session_reading(s, 1);
    /* Plain sessions write replies themselves (flush_direct); bufferevent only takes over,
     * with EV_WRITE, what the kernel did not accept. TLS filters always write through it. */
    if (s->tls)
        bufferevent_enable(s->bev, EV_WRITE);
    else
        bufferevent_disable(s->bev, EV_WRITE);
}

/* A reply to a plain session goes straight to the socket: one writev and no epoll_ctl,
 * where bufferevent would arm EV_WRITE for every reply and disarm it again afterwards
 * (two system calls per reply, most of smtpd's per-message overhead). */
static void flush_direct(struct smtpd_session *s)
{
    if (s->tls)
        return;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    /* A socket bufferevent keeps its output's start frozen except while it writes itself;
     * do as it does. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(s->bev, EV_WRITE); /* the rest (or the error) is bufferevent's */
}

/* Taking message octets: DATA's text or a BDAT chunk. */
static int in_body(const struct smtpd_session *s) { return s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_CHUNK; }

static long long state_timeout(const struct smtpd_session *s)
{
    const struct pm_config *cfg = s->srv->cfg;
    return in_body(s) ? cfg->smtpd.timeout_data : cfg->smtpd.timeout_command;
}

/* A deadline, but never past the chunked message's own (bdat.h). */
static long long within_message(const struct smtpd_session *s, long long deadline)
{
    return s->txn.chunked && s->bdat.msg_deadline < deadline ? s->bdat.msg_deadline : deadline;
}

void smtpd_session_reading(struct smtpd_session *s, int on)
{
    /* Two clocks: the read timeout catches a silent client, the deadline one that trickles
     * a byte now and then to keep a session (and its memory) forever. */
    struct timeval rd = {state_timeout(s), 0};
    struct timeval wr = {s->srv->cfg->smtpd.timeout_command, 0};
    bufferevent_set_timeouts(s->bev, &rd, &wr);
    if (on) {
        s->deadline = within_message(s, pm_mono_coarse_s() + state_timeout(s));
        s->data_credit = 0;
        if (!s->in_eof) /* a socket at EOF would only report it again */
            bufferevent_enable(s->bev, EV_READ);
    }
    /* Pausing leaves EV_READ armed: drive() does not consume input while the session waits
     * (queue, lookup, auth delay), the INPUT_HIGH watermark bounds what can pile up, and a
     * hang-up is noticed at once. Disarming and re-arming would cost two epoll_ctl per wait. */
}

void smtpd_session_data_progress(struct smtpd_session *s, size_t octets)
{
    s->data_credit += octets;
    long long more = (long long)(s->data_credit / SMTPD_MIN_DATA_RATE);
    s->deadline += more;
    if (s->txn.chunked)
        s->bdat.msg_deadline += more;
    s->data_credit %= SMTPD_MIN_DATA_RATE;
}

static void timed_out(struct smtpd_session *s, const char *why)
{
    pm_log(PM_INFO, "event=timeout client=%s state=%s reason=%s", s->peer, in_body(s) ? "data" : "command",
           why);
    smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->cfg->hostname);
    smtpd_session_close(s, "timeout");
    smtpd_session_settle(s);
}

static void refuse(int fd, const char *text, int plain)
{
    /* Cheap refusal without a session: one write, then close. */
    if (plain) {
        ssize_t w = send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    close(fd);
}

void smtpd_session_new(struct smtpd_server *srv, int fd, const struct sockaddr *sa, enum smtpd_mode mode,
                       const struct sockaddr *proxy)
{
    const struct pm_config *cfg = srv->cfg;
    char ip[64], line[300];
    pm_sockaddr_ip(sa, ip, sizeof ip);
    int port = pm_sockaddr_port(sa);
    int plain = mode != SMTPD_MODE_SMTPS;
    if (srv->nsessions >= srv->max_sessions) {
        pm_log(PM_WARN, "event=reject client=%s:%d reason=max_connections limit=%lld", ip, port,
               srv->max_sessions);
        snprintf(line, sizeof line, "421 4.7.0 %s Error: too many connections\r\n", cfg->hostname);
        refuse(fd, line, plain);
        return;
    }
    enum pm_client_verdict verdict;
    struct pm_client *cl = pm_clients_connect(srv->clients, ip, time(NULL), &verdict);
    if (!cl) {
        static const char *const reasons[] = {[PM_CLIENT_OK] = "no_memory", [PM_CLIENT_TOO_MANY] = "max_connections_per_ip",
                                              [PM_CLIENT_TOO_FAST] = "connection_rate",
                                              [PM_CLIENT_TABLE_FULL] = "client_table_full"};
        pm_log(PM_WARN, "event=reject client=%s:%d reason=%s", ip, port, reasons[verdict]);
        if (verdict == PM_CLIENT_TABLE_FULL || verdict == PM_CLIENT_OK)
            snprintf(line, sizeof line, "421 4.7.0 %s Error: too many clients, try again later\r\n", cfg->hostname);
        else
            snprintf(line, sizeof line, "421 4.7.0 %s Error: too many connections%s from %s\r\n", cfg->hostname,
                     verdict == PM_CLIENT_TOO_FAST ? " per minute" : "", ip);
        refuse(fd, line, plain);
        return;
    }
    struct smtpd_session *s = calloc(1, sizeof *s);
    if (!s) {
        pm_clients_disconnect(srv->clients, cl, time(NULL));
        close(fd);
        return;
    }
    s->srv = srv;
    s->client = cl;
    s->mode = mode;
    pm_socket_nodelay(fd);
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    s->port = port;
    snprintf(s->peer, sizeof s->peer, "%s:%d", ip, port);
    if (mode == SMTPD_MODE_SMTPS) {
        SSL *ssl = srv->tls ? smtpd_tls_new_ssl(srv->tls) : NULL;
        s->bev = ssl ? bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPTS)
                     : NULL;
        if (!s->bev && ssl)
            SSL_free(ssl);
        s->tls = 1;
    } else {
        s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPTS);
    }
    if (!s->bev) {
        pm_log(PM_ERR, "event=session_error client=%s reason=bufferevent", s->peer);
        pm_clients_disconnect(srv->clients, cl, time(NULL));
        close(fd);
        free(s);
        return;
    }
    PM_DLIST_PUSH(srv->sessions, s);
    srv->nsessions++;
    pm_metric_inc(PM_M_SMTPD_CONNECTIONS);
    s->state = SMTPD_ST_COMMAND;
    setup_bev(s);
    char via[96] = "";
    if (proxy) {
        char pip[64];
        pm_sockaddr_ip(proxy, pip, sizeof pip);
        snprintf(via, sizeof via, " proxy=%s:%d", pip, pm_sockaddr_port(proxy));
    }
    pm_log(PM_INFO, "event=connect client=%s mode=%s sessions=%ld%s", s->peer, smtpd_mode_name(mode), srv->nsessions,
           via);
    /* The DNS lists are asked now, during the greet pause if there is one (dnsbl.h). */
    int dnsbl = smtpd_dnsbl_start(s);
    /* The milters' connect too, unless a DNS list may refuse the client first (then it
     * starts with the greeting: smtpd_greet). */
    if (!dnsbl)
        smtpd_milter_connect(s);
    if (mode == SMTPD_MODE_SMTP && cfg->smtpd.greet_pause_ms > 0) {
        s->state = SMTPD_ST_GREETING;
        smtpd_session_set_timer(s, SMTPD_TIMER_GREET, (long)cfg->smtpd.greet_pause_ms);
    } else if (dnsbl && smtpd_dnsbl_pending(s)) {
        s->state = SMTPD_ST_DNSBL;
    } else {
        smtpd_dnsbl_greet(s);
    }
}

void smtpd_session_free(struct smtpd_session *s)
{
    struct smtpd_server *srv = s->srv;
    pm_log(PM_INFO, "event=disconnect client=%s commands=%lu messages=%lu errors=%d reason=%s", s->peer, s->commands,
           s->messages, s->errors, s->close_reason ? s->close_reason : "eof");
    if (s->timer)
        event_free(s->timer);
    smtpd_submit_forget(s);
    smtpd_etrn_forget(s);
    smtpd_auth_cancel(s);
    smtpd_envelope_cancel(s);
    smtpd_eom_cancel(s);
    smtpd_milter_end(s);
    smtpd_dnsbl_cancel(s);
    smtpd_txn_reset(&s->txn);
    if (s->body)
        evbuffer_free(s->body);
    s->body = NULL;
    smtpd_body_release(s);
    if (s->tls)
        smtpd_tls_push(s->bev); /* a failed handshake's alert, still in the plain buffer */
    bufferevent_free(s->bev);
    free(s->helo);
    free(s->auth_user);
    PM_DLIST_REMOVE(srv->sessions, s);
    srv->nsessions--;
    if (s->fin_sent)
        srv->nlinger--;
    pm_clients_disconnect(srv->clients, s->client, time(NULL));
    free(s);
    smtpd_drain_settled(srv);
}

void smtpd_txn_reset(struct smtpd_txn *t)
{
    free(t->sender);
    for (int i = 0; i < t->nrcpt; i++)
        free(t->rcpt[i]);
    free(t->rcpt);
    for (int i = 0; t->rcpt_dsn && i < t->nrcpt; i++)
        free(t->rcpt_dsn[i].orcpt);
    free(t->rcpt_dsn);
    free(t->dsn_envid);
    free(t->dsn_pending);
    free(t->hold_reason);
    memset(t, 0, sizeof *t);
}

static void vreply(struct smtpd_session *s, const char *fmt, va_list ap)
{
    if (s->state == SMTPD_ST_CLOSING)
        return;
    /* Built whole and added once: a TLS filter turns every evbuffer_add into a record. */
    char line[1024];
    int n = vsnprintf(line, sizeof line - 2, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 3)
        n = (int)sizeof line - 3; /* RFC 5321 allows 512; ours are far shorter */
    memcpy(line + n, "\r\n", 2);
    evbuffer_add(bufferevent_get_output(s->bev), line, (size_t)n + 2);
    /* A multi-line reply ("250-...") leaves with its last line, in one write: sent line by
     * line, its tail waited behind Nagle for the client's delayed ACK (44 ms per EHLO). */
    if (!(n >= 4 && line[3] == '-'))
        flush_direct(s);
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(s, fmt, ap);
    va_end(ap);
}

void smtpd_reply_error(struct smtpd_session *s, const char *fmt, ...)
{
    if (s->state == SMTPD_ST_CLOSING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vreply(s, fmt, ap);
    va_end(ap);
    smtpd_session_error(s);
}

void smtpd_session_error(struct smtpd_session *s)
{
    if (s->state == SMTPD_ST_CLOSING)
        return;
    if (++s->errors > s->srv->cfg->smtpd.max_errors) {
        pm_log(PM_WARN, "event=reject client=%s reason=too_many_errors errors=%d", s->peer, s->errors);
        smtpd_reply(s, "421 4.7.0 %s Error: too many errors", s->srv->cfg->hostname);
        smtpd_session_close(s, "too_many_errors");
    }
}

void smtpd_session_close(struct smtpd_session *s, const char *reason)
{
    if (s->state == SMTPD_ST_CLOSING)
        return;
    s->state = SMTPD_ST_CLOSING;
    if (!s->close_reason)
        s->close_reason = reason;
    smtpd_session_cancel_timer(s);
    smtpd_submit_forget(s);
    smtpd_etrn_forget(s);
    smtpd_auth_cancel(s);
    smtpd_envelope_cancel(s);
    smtpd_eom_cancel(s);
    smtpd_milter_end(s);
    bufferevent_disable(s->bev, EV_READ);
    /* Already written directly, so no write callback will come to finish the close. */
    if (!s->tls && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
        smtpd_session_set_timer(s, SMTPD_TIMER_CLOSE, 0);
}

/* Everything written so far has left our buffers (for a TLS filter: the socket's too). */
static int flushed(struct smtpd_session *s)
{
    if (evbuffer_get_length(bufferevent_get_output(s->bev)))
        return 0;
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    return !under || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

void smtpd_session_settle(struct smtpd_session *s)
{
    if (s->state != SMTPD_ST_CLOSING || s->fin_sent)
        return;
    /* The last reply is encrypted: our close_notify follows it, before the FIN. */
    if (s->tls)
        smtpd_tls_close_notify(s->bev);
    if (!flushed(s)) {
        /* A filter's underlying buffer gives us no callback: poll it briefly. */
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 && !(s->timer && evtimer_pending(s->timer, NULL)))
            smtpd_session_set_timer(s, SMTPD_TIMER_CLOSE, CLOSE_POLL_MS);
        return;
    }
    /* Half-close and keep reading a moment: closing with unread input would send a RST
     * that can destroy our last reply before the client reads it. */
    s->fin_sent = 1;
    s->srv->nlinger++;
    smtpd_drain_settled(s->srv); /* a draining sandbox need not wait for the client's FIN */
    shutdown(bufferevent_getfd(s->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(s->bev), evbuffer_get_length(bufferevent_get_input(s->bev)));
    bufferevent_enable(s->bev, EV_READ);
    smtpd_session_set_timer(s, SMTPD_TIMER_CLOSE, LINGER_MS);
}

void smtpd_session_line_too_long(struct smtpd_session *s)
{
    pm_log(PM_INFO, "event=reject client=%s reason=line_too_long", s->peer);
    if (s->state != SMTPD_ST_COMMAND)
        smtpd_auth_cancel(s);
    smtpd_reply_error(s, "500 5.5.2 Error: line too long");
}

static void dispatch_line(struct smtpd_session *s, const char *line, size_t len, size_t total)
{
    if (s->dnsbl_refused && !smtpd_dnsbl_command(s, line, len))
        return; /* greeted 554: 503 to everything but QUIT (RFC 5321 3.1) */
    if (s->state == SMTPD_ST_AUTH_PLAIN || s->state == SMTPD_ST_AUTH_USER || s->state == SMTPD_ST_AUTH_PASS) {
        smtpd_auth_response(s, line, len);
        return;
    }
    smtpd_command(s, line, len, total);
}

/* Takes one line out of the input if a complete one is there. 1 if it did something. */
static int next_line(struct smtpd_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t avail = evbuffer_get_length(in);
    while (s->scan_off < avail) {
        struct evbuffer_ptr pos;
        struct evbuffer_iovec v[4];
        if (evbuffer_ptr_set(in, &pos, s->scan_off, EVBUFFER_PTR_SET) < 0)
            return 0;
        int n = evbuffer_peek(in, (ev_ssize_t)(avail - s->scan_off), &pos, v, 4);
        if (n > 4)
            n = 4;
        for (int i = 0; i < n; i++) {
            size_t used;
            enum smtpd_line_status st =
                smtpd_linescan_feed(&s->scan, v[i].iov_base, v[i].iov_len, SMTPD_MAX_AUTH_LINE, &used);
            s->scan_off += used;
            if (st == SMTPD_LINE_MORE)
                continue;
            size_t total = s->scan_off;
            smtpd_linescan_reset(&s->scan);
            s->scan_off = 0;
            if (st == SMTPD_LINE_TOO_LONG) {
                evbuffer_drain(in, total);
                smtpd_session_line_too_long(s);
                return 1;
            }
            char line[SMTPD_MAX_AUTH_LINE + 8];
            evbuffer_remove(in, line, total);
            dispatch_line(s, line, smtpd_line_strip(line, total), total);
            explicit_bzero(line, total); /* it may have been a password */
            if (!in_body(s) && s->state != SMTPD_ST_CLOSING)
                s->deadline = within_message(s, pm_mono_coarse_s() + s->srv->cfg->smtpd.timeout_command);
            return 1;
        }
        if (s->scan.overflow) {
            /* Part of an overlong line: discard it now, memory stays bounded. */
            evbuffer_drain(in, s->scan_off);
            avail -= s->scan_off;
            s->scan_off = 0;
        }
    }
    return 0;
}

/* The states that consume client input; the others wait for a timer, the queue, the
 * parent or the password check. */
int smtpd_session_wants_input(const struct smtpd_session *s)
{
    switch (s->state) {
    case SMTPD_ST_COMMAND:
    case SMTPD_ST_DATA:
    case SMTPD_ST_CHUNK:
    case SMTPD_ST_AUTH_PLAIN:
    case SMTPD_ST_AUTH_USER:
    case SMTPD_ST_AUTH_PASS:
        return 1;
    default:
        return 0;
    }
}

static void drive(struct smtpd_session *s)
{
    while (smtpd_session_wants_input(s)) {
        if (smtpd_drain_session(s, 1))
            return; /* past the drain deadline: 421 instead of the next command */
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH) {
            s->out_blocked = 1; /* write_cb resumes once the client read its replies */
            return;
        }
        int progressed = s->state == SMTPD_ST_DATA    ? smtpd_data_input(s)
                         : s->state == SMTPD_ST_CHUNK ? smtpd_bdat_input(s)
                                                      : next_line(s);
        if (!progressed) {
            /* Everything the client sent before its FIN is answered; no more can come. */
            if (s->in_eof)
                smtpd_session_close(s, in_body(s) ? "eof_in_data" : "eof");
            else
                smtpd_drain_session(s, 0); /* draining: an idle session goes now */
            return;
        }
    }
}

void smtpd_session_resume(struct smtpd_session *s)
{
    if (s->state == SMTPD_ST_CLOSING)
        return;
    smtpd_session_reading(s, 1);
    drive(s);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (s->state == SMTPD_ST_CLOSING) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (s->state == SMTPD_ST_GREETING) {
        /* Talking before the greeting: a spam engine that does not wait for replies. */
        pm_log(PM_WARN, "event=reject client=%s reason=early_talker", s->peer);
        smtpd_reply(s, "554 5.5.1 %s Error: talking before the greeting", s->srv->cfg->hostname);
        smtpd_session_close(s, "early_talker");
        smtpd_session_settle(s);
        return;
    }
    if (pm_mono_coarse_s() > s->deadline && smtpd_session_wants_input(s)) {
        timed_out(s, "deadline");
        return;
    }
    drive(s);
    smtpd_session_settle(s);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtpd_session *s = arg;
    if (!s->tls)
        bufferevent_disable(bev, EV_WRITE); /* drained: replies go direct again */
    if (s->out_blocked && s->state != SMTPD_ST_CLOSING) {
        s->out_blocked = 0;
        drive(s);
    }
    smtpd_session_settle(s);
}

static const char *const state_names[] = {
    [SMTPD_ST_GREETING] = "greeting", [SMTPD_ST_COMMAND] = "command",     [SMTPD_ST_DATA] = "data",
    [SMTPD_ST_CHUNK] = "bdat",
    [SMTPD_ST_QUEUE] = "queue",       [SMTPD_ST_CHECKS] = "checks",       [SMTPD_ST_AUTH_PLAIN] = "auth",     [SMTPD_ST_AUTH_USER] = "auth",
    [SMTPD_ST_AUTH_PASS] = "auth",    [SMTPD_ST_AUTH_CHECK] = "auth_check", [SMTPD_ST_LOOKUP] = "lookup",
    [SMTPD_ST_DNSBL] = "dnsbl",       [SMTPD_ST_MILTER] = "milter",
    [SMTPD_ST_CLOSING] = "closing",
};

/* The client shut down its sending side (or closed; TCP cannot tell which). What it sent
 * before still counts: a client may send "." and QUIT in one write and half-close without
 * waiting, then read the replies. Freeing the session here would drop the 250 of a message
 * the queue is committing, and the client would send it again. So the session carries on
 * with the input it holds and the answer it waits for, and drive() closes it once nothing
 * is left. Every wait is bounded (submit timeout, auth delay, the parent's answer). */
static void client_eof(struct smtpd_session *s)
{
    s->in_eof = 1;
    drive(s);
    if (s->state != SMTPD_ST_CLOSING)
        pm_log(PM_INFO, "event=client_eof client=%s waiting=%s unread=%zu", s->peer,
               s->out_blocked ? "output" : state_names[s->state], evbuffer_get_length(bufferevent_get_input(s->bev)));
    smtpd_session_settle(s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtpd_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        s->tls_up = 1;
        char ver[32], cipher[128];
        smtpd_session_tls_info(s, ver, sizeof ver, cipher, sizeof cipher);
        pm_log(PM_INFO, "event=tls client=%s version=%s cipher=%s", s->peer, ver, cipher);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && s->state != SMTPD_ST_CLOSING) {
        timed_out(s, "idle");
        return;
    }
    /* A failed handshake can come with EOF too: libevent tries the dead SSL once more, and
     * that attempt reads as a dirty shutdown. The error is what happened. */
    if ((what & BEV_EVENT_ERROR) && s->tls && !s->tls_up)
        what &= ~BEV_EVENT_EOF;
    /* Gone before the handshake finished (a load balancer's health check, a port scan): the
     * greeting waiting behind the handshake can never leave, so there is nothing to settle;
     * waiting for it would keep the session until the write timeout. */
    if ((what & BEV_EVENT_EOF) && s->tls && !s->tls_up) {
        if (!s->close_reason)
            s->close_reason = "eof_in_tls_handshake";
        smtpd_session_free(s);
        return;
    }
    if ((what & BEV_EVENT_EOF) && !s->fin_sent) {
        if (!s->in_eof)
            client_eof(s);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e = pm_tls_bev_error(bev); /* the cause, not libevent's retry on the dead SSL */
        if (e) {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            char v[PM_LOGV_SIZE];
            pm_log(PM_INFO, "event=tls_error client=%s error=%s", s->peer, PM_LV(v, buf));
        }
        if (!s->close_reason)
            s->close_reason = e ? "tls_error" : "error";
    } else if (what & BEV_EVENT_TIMEOUT) {
        if (!s->close_reason)
            s->close_reason = "write_timeout";
    } else if (!s->close_reason) {
        s->close_reason = in_body(s) ? "eof_in_data" : "eof";
    }
    smtpd_session_free(s);
}

/* The DNS lists' verdict (dnsbl.h): the greeting goes now unless the greet pause still runs. */
void smtpd_session_dnsbl_done(struct smtpd_session *s)
{
    if (s->state != SMTPD_ST_DNSBL)
        return;
    s->state = SMTPD_ST_COMMAND;
    smtpd_dnsbl_greet(s);
    smtpd_session_resume(s); /* what the client sent meanwhile, or its hang-up */
    smtpd_session_settle(s);
}

/* The milters' connect verdict (milter.h): the greeting goes now if it waits for them. */
void smtpd_session_milter_connected(struct smtpd_session *s)
{
    if (s->state != SMTPD_ST_MILTER)
        return; /* the greet pause or the DNS lists still run: they greet */
    s->state = SMTPD_ST_COMMAND;
    smtpd_greet(s);
    smtpd_session_resume(s); /* what the client sent meanwhile, or its hang-up */
    smtpd_session_settle(s);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct smtpd_session *s = arg;
    enum smtpd_timer_kind kind = s->timer_kind;
    s->timer_kind = SMTPD_TIMER_NONE;
    switch (kind) {
    case SMTPD_TIMER_GREET:
        if (smtpd_dnsbl_pending(s)) { /* the pause is over, the lists are not: wait for them */
            s->state = SMTPD_ST_DNSBL;
            break;
        }
        s->state = SMTPD_ST_COMMAND;
        smtpd_dnsbl_greet(s);
        smtpd_session_resume(s); /* a client that hung up meanwhile is closed now */
        break;
    case SMTPD_TIMER_SUBMIT:
        smtpd_submit_timeout(s);
        break;
    case SMTPD_TIMER_SUBMIT_RETRY:
        smtpd_submit_retry(s);
        break;
    case SMTPD_TIMER_ETRN:
        smtpd_etrn_timeout(s);
        break;
    case SMTPD_TIMER_AUTH:
        smtpd_auth_delay_done(s);
        break;
    case SMTPD_TIMER_CLOSE:
        if (s->fin_sent || ++s->close_polls > CLOSE_POLLS_MAX) {
            smtpd_session_free(s);
            return;
        }
        break;
    case SMTPD_TIMER_NONE:
        break;
    }
    smtpd_session_settle(s);
}

void smtpd_session_set_timer(struct smtpd_session *s, enum smtpd_timer_kind kind, long ms)
{
    if (!s->timer)
        s->timer = evtimer_new(s->srv->base, timer_cb, s);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    s->timer_kind = kind;
    evtimer_add(s->timer, &tv);
}

void smtpd_session_cancel_timer(struct smtpd_session *s)
{
    if (s->timer)
        evtimer_del(s->timer);
    s->timer_kind = SMTPD_TIMER_NONE;
}

int smtpd_session_starttls(struct smtpd_session *s)
{
    SSL *ssl = smtpd_tls_new_ssl(s->srv->tls);
    if (!ssl) {
        smtpd_reply_error(s, "454 4.7.0 TLS not available due to temporary reason");
        return -1;
    }
    /* Anything pipelined behind STARTTLS arrived in the clear: it must not be executed
     * as if it came over TLS (CVE-2011-0411). */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t junk = evbuffer_get_length(in);
    if (junk)
        pm_log(PM_WARN, "event=starttls_discard client=%s octets=%zu", s->peer, junk);
    evbuffer_drain(in, junk);
    smtpd_linescan_reset(&s->scan);
    s->scan_off = 0;
    smtpd_reply(s, "220 2.0.0 Ready to start TLS");
    bufferevent_enable(s->bev, EV_WRITE); /* the TLS filter writes through this one */
    bufferevent_set_timeouts(s->bev, NULL, NULL);
    struct bufferevent *f =
        bufferevent_openssl_filter_new(s->srv->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPTS);
    if (!f) {
        SSL_free(ssl);
        smtpd_session_close(s, "tls_error");
        return -1;
    }
    s->bev = f;
    s->tls = 1;
    /* The filter moves every reply into the socket's bufferevent at once, so the check on
     * unread replies (drive) would never see them pile up: bounding the socket's buffer
     * keeps them in the filter's, where it looks. */
    bufferevent_setwatermark(bufferevent_get_underlying(f), EV_WRITE, 0, OUTPUT_HIGH);
    setup_bev(s);
    /* RFC 3207 4.2: forget everything the client told us before TLS. */
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    smtpd_message_discard(s); /* STARTTLS is refused inside a transaction; if one were open */
    smtpd_txn_reset(&s->txn);
    return 0;
}

void smtpd_session_tls_info(struct smtpd_session *s, char *ver, size_t vsize, char *cipher, size_t csize)
{
    SSL *ssl = s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
    smtpd_tls_describe(ssl, ver, vsize, cipher, csize);
}
