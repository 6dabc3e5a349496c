#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dotstuff.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#define BODY_LOW_WATER (64 * 1024)   /* refill the output below this ... */
#define BODY_HIGH_FILL (256 * 1024)  /* ... up to about this */
#define CLOSE_GRACE 5                /* seconds to flush QUIT before closing anyway */

struct mta_session {
    struct mta_session_params p;
    char host[256], ip[64], qid[64];
    char relay[360];
    struct bufferevent *bev;
    struct event *timer;
    struct mta_reply reply;
    struct mta_dotstuff ds;
    int connected, tls_failed, closing, finished, fail_pending, local_failure;
    char tls[160];
};

int mta_session_connected(const struct mta_session *s) { return s->connected; }
int mta_session_tls_failed(const struct mta_session *s) { return s->tls_failed; }
int mta_session_local_failure(const struct mta_session *s) { return s->local_failure; }
const char *mta_session_tls(const struct mta_session *s) { return s->tls; }
const char *mta_session_relay(const struct mta_session *s) { return s->relay; }

/* Errors of socket()/connect() that say we are short of something (descriptors, ephemeral
 * ports, memory), not that the server is. */
static int local_errno(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL;
}

static void arm(struct mta_session *s, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(s->timer, &tv);
}

/* The session is over (successfully or not): stop all events and tell the owner. */
static void finish(struct mta_session *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    event_del(s->timer);
    if (s->bev) {
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    }
    s->p.done(s, s->p.arg);
}

/* Why the handshake broke: the certificate check if that was it, else OpenSSL's error. */
static const char *tls_error_text(struct mta_session *s, char *buf, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(s->bev);
    if (!e)
        e = ERR_get_error();
    ERR_clear_error();
    if (s->p.tls_verify && v != X509_V_OK)
        snprintf(buf, size, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "handshake failed");
    return buf;
}

static void fill_body(struct mta_session *s)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    while (!s->ds.done && evbuffer_get_length(out) < BODY_HIGH_FILL)
        mta_dotstuff_next(&s->ds, out, BODY_LOW_WATER);
    if (s->ds.done && s->p.smtp->step == MTA_STEP_BODY)
        mta_smtp_body_sent(s->p.smtp);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* 220 to STARTTLS: whatever the server sent after it in the clear is dropped unread (it
 * could otherwise be taken as a reply inside TLS), then the handshake starts. */
static void start_tls(struct mta_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    SSL *ssl = mta_tls_new(s->p.tls_ctx, s->host, s->p.tls_verify);
    struct bufferevent *tb =
        ssl ? bufferevent_openssl_filter_new(s->p.base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!tb) {
        if (ssl)
            SSL_free(ssl);
        s->tls_failed = 1;
        mta_smtp_fail(s->p.smtp, "4.7.5", "cannot start TLS with %s", s->relay);
        finish(s);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    s->bev = tb; /* frees the TCP bufferevent with it */
    bufferevent_setcb(tb, on_read, on_write, on_event, s);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    arm(s, s->p.command_timeout);
}

static void tls_established(struct mta_session *s)
{
    SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
    snprintf(s->tls, sizeof s->tls, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
    char relay[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=tls id=%s relay=%s version=%s cipher=%s verified=%s", s->qid, PM_LOGV(relay, s->relay),
           SSL_get_version(ssl), SSL_get_cipher_name(ssl),
           s->p.tls_verify && SSL_get_verify_result(ssl) == X509_V_OK ? "yes" : "no");
    mta_smtp_tls_ready(s->p.smtp, bufferevent_get_output(s->bev));
    arm(s, s->p.command_timeout);
}

static void protocol_error(struct mta_session *s, const char *why)
{
    mta_smtp_fail(s->p.smtp, "4.5.0", "protocol error from %s: %s (during %s)", s->relay, why,
                  mta_smtp_step_name(s->p.smtp->step));
    finish(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct mta_session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char line[MTA_REPLY_LINE_MAX + 1];
    for (;;) {
        if (s->closing) { /* the 221 and anything else: not our business any more */
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > MTA_REPLY_LINE_MAX)
                protocol_error(s, "reply line too long");
            return;
        }
        if ((size_t)p.pos > MTA_REPLY_LINE_MAX) {
            protocol_error(s, "reply line too long");
            return;
        }
        size_t len = (size_t)p.pos;
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        const char *err = NULL;
        enum mta_reply_status st = mta_reply_feed(&s->reply, line, len, &err);
        if (st == MTA_REPLY_ERROR) {
            protocol_error(s, err);
            return;
        }
        if (st == MTA_REPLY_MORE)
            continue;
        arm(s, s->p.command_timeout);
        enum mta_smtp_action act = mta_smtp_on_reply(s->p.smtp, &s->reply, bufferevent_get_output(bev));
        mta_reply_reset(&s->reply);
        switch (act) {
        case MTA_SMTP_WAIT:
            break;
        case MTA_SMTP_STARTTLS:
            start_tls(s);
            return;
        case MTA_SMTP_BODY:
            mta_dotstuff_init(&s->ds, s->p.body, s->p.body_len);
            bufferevent_setwatermark(bev, EV_WRITE, BODY_LOW_WATER, 0);
            fill_body(s);
            break;
        case MTA_SMTP_QUIT:
            s->closing = 1;
            bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
            arm(s, CLOSE_GRACE);
            break;
        case MTA_SMTP_ABORT:
            finish(s);
            return;
        }
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct mta_session *s = arg;
    if (s->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            finish(s); /* QUIT is out: the verdicts are final, nothing more to wait for */
        return;
    }
    if (s->p.smtp->step == MTA_STEP_BODY) {
        arm(s, s->p.command_timeout); /* the body is moving */
        fill_body(s);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct mta_session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (!s->connected) {
            s->connected = 1;
            arm(s, s->p.command_timeout); /* for the greeting */
        } else {
            tls_established(s);
        }
        return;
    }
    if (s->closing) {
        finish(s); /* the server closed after QUIT: fine */
        return;
    }
    char err[256];
    if (!s->connected) {
        int e = EVUTIL_SOCKET_ERROR();
        s->local_failure = local_errno(e);
        mta_smtp_fail(s->p.smtp, "4.4.1", "connect to %s: %s", s->relay,
                      e ? evutil_socket_error_to_string(e) : "connection failed");
    } else if (s->p.smtp->step == MTA_STEP_TLS) {
        s->tls_failed = 1;
        mta_smtp_fail(s->p.smtp, "4.7.5", "TLS handshake with %s failed: %s", s->relay,
                      tls_error_text(s, err, sizeof err));
    } else {
        mta_smtp_fail(s->p.smtp, "4.4.2", "lost connection with %s while %s%s", s->relay,
                      s->p.smtp->dot_sent ? "waiting for the reply to " : "in ",
                      mta_smtp_step_name(s->p.smtp->step));
    }
    finish(s);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_session *s = arg;
    if (s->fail_pending || s->closing) {
        finish(s);
        return;
    }
    if (!s->connected) {
        mta_smtp_fail(s->p.smtp, "4.4.1", "connect to %s: timed out", s->relay);
    } else {
        if (s->p.smtp->step == MTA_STEP_TLS)
            s->tls_failed = 1;
        mta_smtp_fail(s->p.smtp, "4.4.2", "conversation with %s timed out while %s%s", s->relay,
                      s->p.smtp->dot_sent ? "waiting for the reply to " : "in ",
                      mta_smtp_step_name(s->p.smtp->step));
    }
    finish(s);
}

static int make_sockaddr(const char *ip, int port, struct sockaddr_storage *ss, int *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
        return 0;
    }
    return -1;
}

struct mta_session *mta_session_start(const struct mta_session_params *p)
{
    struct mta_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = *p;
    snprintf(s->host, sizeof s->host, "%s", p->host);
    snprintf(s->ip, sizeof s->ip, "%s", p->ip);
    snprintf(s->qid, sizeof s->qid, "%s", p->queue_id ? p->queue_id : "-");
    snprintf(s->relay, sizeof s->relay, "%s[%s]:%d", s->host, s->ip, p->port);
    s->p.host = s->host;
    s->p.ip = s->ip;
    s->p.queue_id = s->qid;
    mta_reply_reset(&s->reply);
    s->timer = evtimer_new(p->base, on_timeout, s);
    s->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!s->timer || !s->bev) {
        mta_session_free(s);
        return NULL;
    }
    bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    struct sockaddr_storage ss;
    int sslen = 0;
    if (make_sockaddr(s->ip, p->port, &ss, &sslen) < 0) {
        mta_smtp_fail(p->smtp, "4.4.1", "connect to %s: not an IP address", s->relay);
        s->fail_pending = 1;
        arm(s, 0);
        return s;
    }
    arm(s, p->connect_timeout);
    if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, sslen) < 0) {
        /* libevent reports most failures as an event; this is the immediate kind. */
        s->local_failure = local_errno(errno);
        mta_smtp_fail(p->smtp, "4.4.1", "connect to %s: %s", s->relay, strerror(errno));
        s->fail_pending = 1;
        arm(s, 0);
        return s;
    }
    /* Each turn of ours (EHLO, the pipelined envelope, the body with its dot, QUIT) is
     * queued whole in the output buffer and leaves in one write; a tail of it must never
     * wait on Nagle for the server's delayed ACK. */
    pm_socket_nodelay(bufferevent_getfd(s->bev));
    return s;
}

void mta_session_free(struct mta_session *s)
{
    if (!s)
        return;
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->timer)
        event_free(s->timer);
    free(s);
}
