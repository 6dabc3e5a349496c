/* One milter connection (milter_conn.h). */
#include "milter_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "milter_proto.h"
#include "net.h"

/* PROGRESS starts the timeout again, but one answer may take at most this many timeouts:
 * a milter saying "still working" forever must not hold a session forever. */
#define PROGRESS_TIMEOUTS 10

struct milter_conn {
    struct bufferevent *bev;
    struct event *timer;
    struct timeval timeout;
    milter_conn_cb *cb;
    void *arg;
    int negotiated;
    int waiting;      /* a reply is due */
    long long wait_start; /* monotonic ms the wait began */
    long timeout_ms;
    int in_callback;  /* the callback is running: close only marks */
    int closed;
    uint32_t actions, protocol;
};

int milter_reply_is_final(char code)
{
    switch (code) {
    case SMFIR_ACCEPT:
    case SMFIR_CONTINUE:
    case SMFIR_DISCARD:
    case SMFIR_REJECT:
    case SMFIR_TEMPFAIL:
    case SMFIR_REPLYCODE:
    case SMFIR_SKIP:
        return 1;
    default:
        return 0;
    }
}

static void destroy(struct milter_conn *mc)
{
    if (mc->timer)
        event_free(mc->timer);
    if (mc->bev)
        bufferevent_free(mc->bev);
    free(mc);
}

/* Calls the callback; 1 if the conn is gone afterwards (the caller must not touch it). */
static int notify(struct milter_conn *mc, enum milter_event ev, const struct milter_reply *r, const char *reason)
{
    mc->in_callback++;
    mc->cb(mc->arg, ev, r, reason);
    mc->in_callback--;
    if (mc->closed && !mc->in_callback) {
        destroy(mc);
        return 1;
    }
    return mc->closed;
}

static void fail(struct milter_conn *mc, const char *reason)
{
    if (mc->closed)
        return;
    evtimer_del(mc->timer);
    bufferevent_disable(mc->bev, EV_READ | EV_WRITE);
    mc->waiting = 0;
    mc->closed = 1; /* no further callbacks; freed once the callback returns */
    mc->in_callback++;
    mc->cb(mc->arg, MILTER_EV_FAIL, NULL, reason);
    mc->in_callback--;
    if (!mc->in_callback)
        destroy(mc);
}

static void arm(struct milter_conn *mc) { evtimer_add(mc->timer, &mc->timeout); }

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct milter_conn *mc = arg;
    fail(mc, mc->negotiated ? "timeout" : "timeout_negotiating");
}

static int negotiated(struct milter_conn *mc, const struct milter_reply *r)
{
    if (r->code != SMFIC_OPTNEG) {
        fail(mc, "protocol_error_optneg");
        return 1;
    }
    /* Versions 2 to 6 speak the same packets. Actions and steps the milter asks for but we
     * did not offer are masked off, as Sendmail and Postfix do (rspamd asks for every action
     * at once): a reply using an action we did not offer still ends the connection. */
    if (r->version < 2 || r->version > MILTER_VERSION) {
        fail(mc, "optneg_version");
        return 1;
    }
    mc->actions = r->actions & MILTER_OUR_ACTIONS;
    mc->protocol = r->protocol & MILTER_OUR_PROTOCOL;
    mc->negotiated = 1;
    mc->waiting = 0;
    evtimer_del(mc->timer);
    return notify(mc, MILTER_EV_READY, r, NULL);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct milter_conn *mc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        char cmd;
        unsigned char *data;
        size_t len;
        int rc = milter_frame(in, &cmd, &data, &len);
        if (rc == 0)
            return;
        if (rc < 0) {
            fail(mc, "protocol_error_length");
            return;
        }
        struct milter_reply r;
        char why[128];
        int bad = milter_decode_reply(cmd, data, len, &r, why, sizeof why) < 0;
        int gone;
        if (bad || !mc->waiting) {
            free(data);
            fail(mc, bad ? "protocol_error" : "protocol_error_unasked");
            return;
        }
        if (!mc->negotiated) {
            gone = negotiated(mc, &r);
        } else if (r.code == SMFIR_PROGRESS) {
            if ((long long)pm_mono_ms() - mc->wait_start > (long long)PROGRESS_TIMEOUTS * mc->timeout_ms) {
                free(data);
                fail(mc, "progress_limit");
                return;
            }
            arm(mc); /* the milter is still at it: a fresh timeout */
            gone = 0;
        } else if (r.code == SMFIR_SHUTDOWN || r.code == SMFIR_CONN_FAIL) {
            free(data);
            fail(mc, "milter_shutdown");
            return;
        } else {
            if (milter_reply_is_final(r.code)) {
                mc->waiting = 0;
                evtimer_del(mc->timer);
            }
            gone = notify(mc, MILTER_EV_REPLY, &r, NULL);
        }
        free(data);
        if (gone)
            return;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg);

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct milter_conn *mc = arg;
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
    bufferevent_setcb(bev, read_cb, NULL, event_cb, mc);
    if (!mc->waiting)
        evtimer_del(mc->timer);
    notify(mc, MILTER_EV_DRAINED, NULL, NULL);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct milter_conn *mc = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    fail(mc, (what & BEV_EVENT_EOF) ? "closed" : mc->negotiated ? "io_error" : "connect_failed");
}

struct milter_conn *milter_conn_open(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                                     long timeout_ms, milter_conn_cb *cb, void *arg, char *reason, size_t rsize)
{
    struct milter_conn *mc = calloc(1, sizeof *mc);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!mc || fd < 0) {
        snprintf(reason, rsize, "socket_%s", fd < 0 ? strerror(errno) : "no_memory");
        for (char *p = reason; *p; p++)
            if (*p == ' ')
                *p = '_';
        if (fd >= 0)
            close(fd);
        free(mc);
        return NULL;
    }
    mc->cb = cb;
    mc->arg = arg;
    mc->timeout_ms = timeout_ms;
    mc->timeout.tv_sec = timeout_ms / 1000;
    mc->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    mc->timer = evtimer_new(base, timer_cb, mc);
    mc->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!mc->timer || !mc->bev) {
        if (!mc->bev)
            close(fd);
        destroy(mc);
        snprintf(reason, rsize, "no_memory");
        return NULL;
    }
    pm_socket_nodelay(fd);
    bufferevent_setcb(mc->bev, read_cb, NULL, event_cb, mc);
    bufferevent_setwatermark(mc->bev, EV_READ, 0, MILTER_MAX_PACKET + 64);
    /* A connect that fails at once is reported through event_cb like a later failure, so
     * the caller sees one path. */
    bufferevent_socket_connect(mc->bev, (struct sockaddr *)sa, (int)salen);
    bufferevent_enable(mc->bev, EV_READ | EV_WRITE);
    milter_enc_optneg(bufferevent_get_output(mc->bev), MILTER_VERSION, MILTER_OUR_ACTIONS, MILTER_OUR_PROTOCOL);
    mc->waiting = 1;
    mc->wait_start = (long long)pm_mono_ms();
    arm(mc);
    return mc;
}

struct evbuffer *milter_conn_output(struct milter_conn *mc) { return bufferevent_get_output(mc->bev); }

void milter_conn_expect(struct milter_conn *mc)
{
    mc->waiting = 1;
    mc->wait_start = (long long)pm_mono_ms();
    arm(mc);
}

void milter_conn_want_drained(struct milter_conn *mc, size_t low)
{
    bufferevent_setwatermark(mc->bev, EV_WRITE, low, 0);
    bufferevent_setcb(mc->bev, read_cb, write_cb, event_cb, mc);
    arm(mc); /* a milter that stops reading is as one that stops answering */
}

size_t milter_conn_pending_output(struct milter_conn *mc) { return evbuffer_get_length(bufferevent_get_output(mc->bev)); }

uint32_t milter_conn_actions(const struct milter_conn *mc) { return mc->actions; }
uint32_t milter_conn_protocol(const struct milter_conn *mc) { return mc->protocol; }

void milter_conn_close(struct milter_conn *mc)
{
    if (!mc || mc->closed)
        return;
    mc->closed = 1;
    if (mc->negotiated) {
        /* One try at a polite QUIT; a milter that does not read it sees the close. */
        struct evbuffer *out = bufferevent_get_output(mc->bev);
        milter_enc_simple(out, SMFIC_QUIT);
        evbuffer_unfreeze(out, 1); /* a socket bufferevent freezes its output's start */
        evbuffer_write(out, bufferevent_getfd(mc->bev));
    }
    if (!mc->in_callback)
        destroy(mc);
}
