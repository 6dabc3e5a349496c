/* Waiting for the PROXY header of accepted connections (proxywait.h). Each waiting
 * connection is a small struct with one event (read + timeout). Reads peek: the parser
 * (proxy.h) says how many of the peeked octets are header, and exactly those are then
 * consumed, so no octet of the client's is ever taken out of the socket here. */
#include "proxywait.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "proxy.h"

#define PEEK_MAX 512 /* a whole ordinary header at once; longer TLV tails take more turns */

struct wait {
    struct pm_proxy_waits *w;
    struct wait *prev, *next;
    int fd;
    void *listener;
    struct event *ev;        /* read, one-shot, with the time left as its timeout */
    uint64_t deadline_ms;    /* monotonic: the whole header by then */
    struct sockaddr_storage peer;
    struct pm_proxy_parser parser;
};

struct pm_proxy_waits {
    struct event_base *base;
    const struct pm_strlist *networks;
    long timeout_ms;
    pm_proxy_ready_cb ready;
    void *arg;
    struct wait *head;
    long n;
};

static void peer_text(const struct sockaddr *sa, char *dst, size_t size)
{
    char ip[64];
    pm_sockaddr_ip(sa, ip, sizeof ip);
    snprintf(dst, size, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, pm_sockaddr_port(sa));
}

static void unlink_wait(struct wait *x)
{
    struct pm_proxy_waits *w = x->w;
    if (x->prev)
        x->prev->next = x->next;
    else
        w->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    w->n--;
    event_free(x->ev);
}

static void refuse(struct wait *x, const char *reason, const char *error)
{
    char peer[96], v[PM_LOGV_SIZE];
    peer_text((struct sockaddr *)&x->peer, peer, sizeof peer);
    pm_log(PM_WARN, "event=proxy_refused proxy=%s reason=%s%s%s", peer, reason, error ? " error=" : "",
           error ? PM_LV(v, error) : "");
    unlink_wait(x);
    close(x->fd);
    free(x);
}

/* Waits for more octets, within what is left of the deadline. 0, or -1 when it passed. */
static int rearm(struct wait *x)
{
    uint64_t now = pm_mono_ms();
    if (now >= x->deadline_ms)
        return -1;
    uint64_t left = x->deadline_ms - now;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    event_add(x->ev, &tv);
    return 0;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct wait *x = arg;
    if (what & EV_TIMEOUT) {
        refuse(x, "timeout", NULL);
        return;
    }
    unsigned char buf[PEEK_MAX];
    ssize_t r = recv(x->fd, buf, sizeof buf, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (rearm(x) < 0)
            refuse(x, "timeout", NULL);
        return;
    }
    if (r <= 0) {
        refuse(x, r == 0 ? "eof" : "error", r == 0 ? NULL : strerror(errno));
        return;
    }
    size_t used;
    struct pm_proxy_header h;
    enum pm_proxy_status st = pm_proxy_feed(&x->parser, buf, (size_t)r, &used, &h);
    if (st == PM_PROXY_ERROR) {
        refuse(x, "bad_header", x->parser.error);
        return;
    }
    /* Take out of the socket exactly what the parser consumed: all of it header. */
    ssize_t got = recv(x->fd, buf, used, 0);
    if (got != (ssize_t)used) {
        refuse(x, "error", got < 0 ? strerror(errno) : "short read");
        return;
    }
    if (st == PM_PROXY_MORE) {
        if (rearm(x) < 0)
            refuse(x, "timeout", NULL);
        return;
    }
    int cfd = x->fd;
    void *listener = x->listener;
    struct sockaddr_storage peer = x->peer;
    struct pm_proxy_waits *w = x->w;
    unlink_wait(x);
    free(x);
    const struct sockaddr *client = h.local ? (struct sockaddr *)&peer : (struct sockaddr *)&h.src;
    w->ready(cfd, client, (struct sockaddr *)&peer, listener, w->arg);
}

struct pm_proxy_waits *pm_proxy_waits_new(struct event_base *base, const struct pm_strlist *networks,
                                          long timeout_ms, pm_proxy_ready_cb ready, void *arg)
{
    struct pm_proxy_waits *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->base = base;
    w->networks = networks;
    w->timeout_ms = timeout_ms;
    w->ready = ready;
    w->arg = arg;
    return w;
}

void pm_proxy_waits_add(struct pm_proxy_waits *w, int fd, const struct sockaddr *peer, void *listener)
{
    char ip[64], text[96];
    pm_sockaddr_ip(peer, ip, sizeof ip);
    /* A PROXY header is a claim about someone else's address: only our own proxies may
     * make it, or anyone could pick the address that relay policy and limits see. */
    if (!pm_ip_in_networks(ip, w->networks->v, w->networks->n)) {
        peer_text(peer, text, sizeof text);
        pm_log(PM_WARN, "event=proxy_refused proxy=%s reason=not_in_proxy_networks", text);
        close(fd);
        return;
    }
    struct wait *x = calloc(1, sizeof *x);
    if (x)
        x->ev = event_new(w->base, fd, EV_READ, on_ready, x);
    if (!x || !x->ev) {
        peer_text(peer, text, sizeof text);
        pm_log(PM_ERR, "event=proxy_refused proxy=%s reason=no_memory", text);
        free(x);
        close(fd);
        return;
    }
    x->w = w;
    x->fd = fd;
    x->listener = listener;
    memcpy(&x->peer, peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    pm_proxy_init(&x->parser);
    x->next = w->head;
    if (x->next)
        x->next->prev = x;
    w->head = x;
    w->n++;
    /* The timeout counts from the accept, not from the last octet: a header trickled an
     * octet at a time must still be whole within it. */
    x->deadline_ms = pm_mono_ms() + (uint64_t)w->timeout_ms;
    rearm(x);
}

long pm_proxy_waits_count(const struct pm_proxy_waits *w) { return w ? w->n : 0; }

void pm_proxy_waits_close_all(struct pm_proxy_waits *w, const char *reason)
{
    while (w && w->head)
        refuse(w->head, reason, NULL);
}

void pm_proxy_waits_free(struct pm_proxy_waits *w)
{
    if (!w)
        return;
    pm_proxy_waits_close_all(w, "shutdown");
    free(w);
}
