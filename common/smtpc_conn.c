#include "smtpc_conn.h"

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

#include "smtpc_dotstuff.h"
#include "log.h"
#include "net.h"

#define BODY_LOW_WATER (64 * 1024)   /* refill the output below this ... */
#define BODY_HIGH_FILL (256 * 1024)  /* ... up to about this */
#define CLOSE_GRACE 5                /* seconds to flush QUIT before closing anyway */

struct pm_smtpc_conn {
    struct pm_smtpc_conn_params p;
    char host[256], ip[64], log_id[64];
    char local_ip[64]; /* our end, once connected (TLSRPT's sending-mta-ip) */
    char relay[360];
    struct bufferevent *bev;
    struct event *timer;
    struct pm_smtpc_reply reply;
    struct pm_smtpc_dotstuff ds;
    size_t raw_off; /* BDAT: the body's octets queued so far */
    int connected, tls_failed, closing, finished, fail_pending, local_failure, tls_up;
    long verify_result;
    char tls[160];
};

int pm_smtpc_conn_connected(const struct pm_smtpc_conn *c) { return c->connected; }
int pm_smtpc_conn_tls_failed(const struct pm_smtpc_conn *c) { return c->tls_failed; }
int pm_smtpc_conn_local_failure(const struct pm_smtpc_conn *c) { return c->local_failure; }
const char *pm_smtpc_conn_tls(const struct pm_smtpc_conn *c) { return c->tls; }
const char *pm_smtpc_conn_relay(const struct pm_smtpc_conn *c) { return c->relay; }
const char *pm_smtpc_conn_local_ip(const struct pm_smtpc_conn *c) { return c->local_ip; }
SSL *pm_smtpc_conn_ssl(const struct pm_smtpc_conn *c) { return c->tls_up ? bufferevent_openssl_get_ssl(c->bev) : NULL; }
long pm_smtpc_conn_verify_result(const struct pm_smtpc_conn *c) { return c->verify_result; }

/* Errors of socket()/connect() that say we are short of something (descriptors, ephemeral
 * ports, memory), not that the server is. */
static int local_errno(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL;
}

static void arm(struct pm_smtpc_conn *c, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(c->timer, &tv);
}

/* The session is over (successfully or not): stop all events and tell the owner. */
static void finish(struct pm_smtpc_conn *c)
{
    if (c->finished)
        return;
    c->finished = 1;
    event_del(c->timer);
    if (c->bev) {
        bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    }
    c->p.done(c, c->p.arg);
}

/* Whether the hook asked for the peer's certificate to be checked (the caller's policy). */
static int verifies(SSL *ssl) { return ssl && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER); }

/* Why the handshake broke: the certificate check if that was it, else OpenSSL's error. */
static const char *tls_error_text(struct pm_smtpc_conn *c, short what, char *buf, size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    if (!e)
        e = ERR_get_error();
    ERR_clear_error();
    if (verifies(ssl))
        c->verify_result = v;
    if (verifies(ssl) && v != X509_V_OK)
        snprintf(buf, size, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    else if (e)
        ERR_error_string_n(e, buf, size);
    else if (what & BEV_EVENT_EOF)
        snprintf(buf, size, "connection closed during the handshake");
    else if ((what & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR())
        snprintf(buf, size, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else
        snprintf(buf, size, "handshake failed");
    return buf;
}

static void fill_body(struct pm_smtpc_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->p.smtp->bdat) { /* the octets as they are, BDAT said how many */
        while (c->raw_off < c->p.body_len && evbuffer_get_length(out) < BODY_HIGH_FILL) {
            size_t n = c->p.body_len - c->raw_off < BODY_LOW_WATER ? c->p.body_len - c->raw_off : BODY_LOW_WATER;
            evbuffer_add(out, c->p.body + c->raw_off, n);
            c->raw_off += n;
        }
        if (c->raw_off == c->p.body_len && c->p.smtp->step == PM_SMTPC_STEP_BODY)
            pm_smtpc_body_sent(c->p.smtp);
        return;
    }
    while (!c->ds.done && evbuffer_get_length(out) < BODY_HIGH_FILL)
        pm_smtpc_dotstuff_next(&c->ds, out, BODY_LOW_WATER);
    if (c->ds.done && c->p.smtp->step == PM_SMTPC_STEP_BODY)
        pm_smtpc_body_sent(c->p.smtp);
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* 220 to STARTTLS: whatever the server sent after it in the clear is dropped unread (it
 * could otherwise be taken as a reply inside TLS), then the handshake starts. */
static void start_tls(struct pm_smtpc_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    SSL *ssl = c->p.tls_new ? c->p.tls_new(c->host, c->p.tls_arg) : NULL;
    struct bufferevent *tb =
        ssl ? bufferevent_openssl_filter_new(c->p.base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!tb) {
        if (ssl)
            SSL_free(ssl);
        c->tls_failed = 1;
        pm_smtpc_fail(c->p.smtp, "4.7.5", "cannot start TLS with %s", c->relay);
        finish(c);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
    c->bev = tb; /* frees the TCP bufferevent with it */
    bufferevent_setcb(tb, on_read, on_write, on_event, c);
    bufferevent_enable(tb, EV_READ | EV_WRITE);
    arm(c, c->p.command_timeout);
}

static void tls_established(struct pm_smtpc_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    c->tls_up = 1;
    snprintf(c->tls, sizeof c->tls, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
    char relay[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=tls id=%s relay=%s version=%s cipher=%s verified=%s", c->log_id, PM_LOGV(relay, c->relay),
           SSL_get_version(ssl), SSL_get_cipher_name(ssl),
           verifies(ssl) && SSL_get_verify_result(ssl) == X509_V_OK ? "yes" : "no");
    pm_smtpc_tls_ready(c->p.smtp, bufferevent_get_output(c->bev));
    arm(c, c->p.command_timeout);
}

static void protocol_error(struct pm_smtpc_conn *c, const char *why)
{
    pm_smtpc_fail(c->p.smtp, "4.5.0", "protocol error from %s: %s (during %s)", c->relay, why,
                  pm_smtpc_stage(c->p.smtp));
    finish(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct pm_smtpc_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char line[PM_SMTPC_REPLY_LINE_MAX + 1];
    for (;;) {
        if (c->closing) { /* the 221 and anything else: not our business any more */
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > PM_SMTPC_REPLY_LINE_MAX)
                protocol_error(c, "reply line too long");
            return;
        }
        if ((size_t)p.pos > PM_SMTPC_REPLY_LINE_MAX) {
            protocol_error(c, "reply line too long");
            return;
        }
        size_t len = (size_t)p.pos;
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        line[len] = '\0';
        const char *err = NULL;
        enum pm_smtpc_reply_status st = pm_smtpc_reply_feed(&c->reply, line, len, &err);
        if (st == PM_SMTPC_REPLY_ERROR) {
            protocol_error(c, err);
            return;
        }
        if (st == PM_SMTPC_REPLY_MORE)
            continue;
        arm(c, c->p.command_timeout);
        enum pm_smtpc_action act = pm_smtpc_on_reply(c->p.smtp, &c->reply, bufferevent_get_output(bev));
        pm_smtpc_reply_reset(&c->reply);
        switch (act) {
        case PM_SMTPC_WAIT:
            break;
        case PM_SMTPC_STARTTLS:
            start_tls(c);
            return;
        case PM_SMTPC_BODY:
            pm_smtpc_dotstuff_init(&c->ds, c->p.body, c->p.body_len);
            c->raw_off = 0;
            bufferevent_setwatermark(bev, EV_WRITE, BODY_LOW_WATER, 0);
            fill_body(c);
            break;
        case PM_SMTPC_QUIT:
            c->closing = 1;
            bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
            arm(c, CLOSE_GRACE);
            break;
        case PM_SMTPC_ABORT:
            finish(c);
            return;
        }
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct pm_smtpc_conn *c = arg;
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            finish(c); /* QUIT is out: the verdicts are final, nothing more to wait for */
        return;
    }
    if (c->p.smtp->step == PM_SMTPC_STEP_BODY) {
        arm(c, c->p.command_timeout); /* the body is moving */
        fill_body(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct pm_smtpc_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (!c->connected) {
            c->connected = 1;
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&ss, &len) == 0)
                pm_sockaddr_ip((struct sockaddr *)&ss, c->local_ip, sizeof c->local_ip);
            arm(c, c->p.command_timeout); /* for the greeting */
        } else {
            tls_established(c);
        }
        return;
    }
    if (c->closing) {
        finish(c); /* the server closed after QUIT: fine */
        return;
    }
    char err[256];
    if (!c->connected) {
        int e = EVUTIL_SOCKET_ERROR();
        c->local_failure = local_errno(e);
        pm_smtpc_fail(c->p.smtp, "4.4.1", "connect to %s: %s", c->relay,
                      e ? evutil_socket_error_to_string(e) : "connection failed");
    } else if (c->p.smtp->step == PM_SMTPC_STEP_TLS) {
        c->tls_failed = 1;
        pm_smtpc_fail(c->p.smtp, "4.7.5", "4.7.5 TLS handshake with %s failed: %s", c->relay,
                      tls_error_text(c, what, err, sizeof err));
    } else {
        pm_smtpc_fail(c->p.smtp, "4.4.2", "lost connection with %s while %s%s", c->relay,
                      c->p.smtp->dot_sent ? "waiting for the reply to " : "in ",
                      pm_smtpc_stage(c->p.smtp));
    }
    finish(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_smtpc_conn *c = arg;
    if (c->fail_pending || c->closing) {
        finish(c);
        return;
    }
    if (!c->connected) {
        pm_smtpc_fail(c->p.smtp, "4.4.1", "connect to %s: timed out", c->relay);
    } else {
        if (c->p.smtp->step == PM_SMTPC_STEP_TLS)
            c->tls_failed = 1;
        pm_smtpc_fail(c->p.smtp, "4.4.2", "conversation with %s timed out while %s%s", c->relay,
                      c->p.smtp->dot_sent ? "waiting for the reply to " : "in ",
                      pm_smtpc_stage(c->p.smtp));
    }
    finish(c);
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

struct pm_smtpc_conn *pm_smtpc_conn_start(const struct pm_smtpc_conn_params *p)
{
    struct pm_smtpc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->p = *p;
    snprintf(c->host, sizeof c->host, "%s", p->host);
    snprintf(c->ip, sizeof c->ip, "%s", p->ip);
    snprintf(c->log_id, sizeof c->log_id, "%s", p->log_id ? p->log_id : "-");
    snprintf(c->relay, sizeof c->relay, "%s[%s]:%d", c->host, c->ip, p->port);
    c->p.host = c->host;
    c->p.ip = c->ip;
    c->p.log_id = c->log_id;
    p->smtp->body_crlf = pm_smtpc_body_is_crlf(p->body, p->body_len);
    if (!p->smtp->server_name)
        p->smtp->server_name = c->host;
    pm_smtpc_reply_reset(&c->reply);
    c->timer = evtimer_new(p->base, on_timeout, c);
    c->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->timer || !c->bev) {
        pm_smtpc_conn_free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct sockaddr_storage ss;
    int sslen = 0;
    if (make_sockaddr(c->ip, p->port, &ss, &sslen) < 0) {
        pm_smtpc_fail(p->smtp, "4.4.1", "connect to %s: not an IP address", c->relay);
        c->fail_pending = 1;
        arm(c, 0);
        return c;
    }
    arm(c, p->connect_timeout);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, sslen) < 0) {
        /* libevent reports most failures as an event; this is the immediate kind. */
        c->local_failure = local_errno(errno);
        pm_smtpc_fail(p->smtp, "4.4.1", "connect to %s: %s", c->relay, strerror(errno));
        c->fail_pending = 1;
        arm(c, 0);
        return c;
    }
    /* Each turn of ours (EHLO, the pipelined envelope, the body with its dot, QUIT) is
     * queued whole in the output buffer and leaves in one write; a tail of it must never
     * wait on Nagle for the server's delayed ACK. */
    pm_socket_nodelay(bufferevent_getfd(c->bev));
    return c;
}

void pm_smtpc_conn_free(struct pm_smtpc_conn *c)
{
    if (!c)
        return;
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->timer)
        event_free(c->timer);
    free(c);
}
