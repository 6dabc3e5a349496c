/* The metrics and health HTTP server of a service (metrics.h), and what "ready" means.
 *
 * A deliberately small HTTP/1.x server on libevent bufferevents rather than evhttp: the
 * libevent 2.1 of Debian 12 has no connection cap for evhttp (evhttp_set_max_connections
 * came in 2.2), and this port lives in the same process as the SMTP sessions. It answers
 * GET or HEAD of /metrics, /health (readiness) and /live (liveness: the loop runs) and
 * closes; every connection is bounded: at most MAX_CONNS at once (the listener pauses,
 * later ones wait in the kernel's backlog) and MAX_CONNS_PER_PEER from one address (more
 * are closed at once), a request line and headers of at most MAX_REQUEST bytes, whole
 * within REQUEST_SECONDS of the accept, CONN_SECONDS for reading the answer.
 *
 * Ready means: every bus socket this process connects has a live connection (a ZeroMQ
 * socket monitor reports handshakes and disconnects; connections to queue shards count as
 * one group, any live shard will do), binding sockets are bound, the service's own callback
 * has no objection, and nobody said otherwise (pm_metrics_set_unready, e.g. draining). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "net.h"

#define MAX_CONNS 8
#define MAX_CONNS_PER_PEER 2 /* one peer holding every slot would blind the probes */
#define MAX_REQUEST 8192 /* request line + headers */
#define REQUEST_SECONDS 2 /* the whole request, from the accept */
#define CONN_SECONDS 10   /* the whole connection, once the answer is queued */
#define MAX_WATCH 160 /* bus sockets watched for readiness: up to 64 shards x 2 (the bouncer) + the rest */

/* ---- which address ---- */

static const struct {
    const char *service;
    size_t offset;
} addresses[] = {
    {"queue", offsetof(struct pm_config, queue.metrics)},
    {"resolver", offsetof(struct pm_config, resolver.metrics)},
    {"smtpd", offsetof(struct pm_config, smtpd.metrics)},
    {"mta", offsetof(struct pm_config, mta.metrics)},
    {"delivery", offsetof(struct pm_config, delivery.metrics)},
    {"bouncer", offsetof(struct pm_config, bouncer.metrics)},
    {"pop3d", offsetof(struct pm_config, pop3d.metrics)},
    {"imapd", offsetof(struct pm_config, imapd.metrics)},
};

const char *pm_metrics_address(const struct pm_config *cfg, const char *service)
{
    for (size_t i = 0; i < sizeof addresses / sizeof addresses[0]; i++)
        if (strcmp(addresses[i].service, service) == 0) {
            const char *a = *(char *const *)((const char *)cfg + addresses[i].offset);
            return a ? a : "";
        }
    return NULL;
}

static int listen_fd = -1;
static const struct pm_config *config; /* lives as long as the process (main's) */

int pm_metrics_listen(const struct pm_config *cfg, const char *service)
{
    const char *addr = pm_metrics_address(cfg, service);
    pm_metrics_set_service(service);
    config = cfg;
    if (!addr || !addr[0])
        return 0;
    listen_fd = pm_listen_tcp(addr, 16);
    if (listen_fd < 0)
        return -1;
    pm_log(PM_INFO, "event=listening address=%s mode=metrics", addr);
    return 0;
}

int pm_metrics_holds_listener(void)
{
    int on = 0;
    socklen_t len = sizeof on;
    return listen_fd >= 0 && getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* ---- readiness ---- */

struct watch {
    void *sock;         /* the bus socket */
    void *mon;          /* PAIR receiving its monitor events */
    struct event *ev;
    int connecting;     /* DEALER: ready only while up */
    int up;
    char group[256];    /* "queue" for any shard, else the endpoint */
};

static struct watch watches[MAX_WATCH];
static int nwatches;
static const char *unready_reason;
static pm_metrics_ready_fn ready_cb;
static void *ready_arg;

static void drain_monitor(struct watch *w)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, w->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 6)
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) { /* the second frame: the endpoint */
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, w->mon, 0);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            w->up = 1;
        else
            w->up = 0; /* disconnected, closed, or a handshake that failed */
    }
}

static void on_monitor(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain_monitor(arg);
}

void pm_metrics_bus_opened(struct event_base *base, void *zsock, int type, const char *endpoint)
{
    if (listen_fd < 0)
        return; /* nobody asks */
    int slot = 0;
    while (slot < nwatches && watches[slot].sock)
        slot++;
    if (slot == MAX_WATCH)
        return;
    struct watch *w = &watches[slot];
    *w = (struct watch){.sock = zsock, .connecting = type != ZMQ_ROUTER};
    int shard = 0;
    for (int i = 0; config && i < config->queue.endpoints.n; i++)
        shard |= strcmp(config->queue.endpoints.v[i], endpoint) == 0;
    snprintf(w->group, sizeof w->group, "%s", shard ? "queue" : endpoint);
    if (w->connecting) {
        static unsigned serial;
        char name[64];
        snprintf(name, sizeof name, "inproc://pm-metrics-monitor-%u", serial++);
        w->mon = zmq_socket(pm_bus_context(), ZMQ_PAIR);
        int zero = 0;
        if (!w->mon || zmq_setsockopt(w->mon, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
            zmq_socket_monitor(zsock, name,
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
            zmq_connect(w->mon, name) < 0) {
            pm_log(PM_WARN, "event=metrics_error step=monitor endpoint=%s error=\"%s\"", endpoint,
                   zmq_strerror(errno));
            if (w->mon)
                zmq_close(w->mon);
            *w = (struct watch){0};
            return;
        }
        int fd;
        size_t sz = sizeof fd;
        if (base && zmq_getsockopt(w->mon, ZMQ_FD, &fd, &sz) == 0) {
            w->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_monitor, w);
            if (w->ev)
                event_add(w->ev, NULL);
        }
    }
    if (slot == nwatches)
        nwatches++;
}

static void unwatch(struct watch *w)
{
    if (w->ev)
        event_free(w->ev);
    if (w->mon) {
        zmq_socket_monitor(w->sock, NULL, 0);
        zmq_close(w->mon);
    }
}

/* NULL: every one (before the ZeroMQ context ends: an open PAIR would keep it waiting). */
void pm_metrics_bus_closed(void *zsock)
{
    for (int i = 0; i < nwatches; i++) {
        struct watch *w = &watches[i];
        if (w->sock && (!zsock || w->sock == zsock)) {
            unwatch(w);
            *w = (struct watch){0}; /* a free slot (slots never move: their events point at them) */
        }
    }
    while (nwatches && !watches[nwatches - 1].sock)
        nwatches--;
}

void pm_metrics_set_unready(const char *reason) { unready_reason = reason; }

const char *pm_metrics_health(void)
{
    static char why[320];
    if (unready_reason)
        return unready_reason;
    for (int i = 0; i < nwatches; i++)
        if (watches[i].mon)
            drain_monitor(&watches[i]);
    for (int i = 0; i < nwatches; i++) {
        if (!watches[i].sock || !watches[i].connecting)
            continue;
        int up = 0;
        for (int j = 0; j < nwatches; j++)
            up |= watches[j].sock && watches[j].up && strcmp(watches[j].group, watches[i].group) == 0;
        if (!up) {
            snprintf(why, sizeof why, "not connected to %s", watches[i].group);
            return why;
        }
    }
    return ready_cb ? ready_cb(ready_arg) : NULL;
}

/* ---- HTTP ---- */

struct conn {
    struct conn *prev, *next;
    char peer[64]; /* the client's IP, for the per-peer cap */
    struct bufferevent *bev;
    struct event *deadline;
    int lines;   /* request line + headers read so far */
    int answered;    /* 1: answer queued, 2: sent and half-closed */
    int client_done; /* the client half-closed before the answer was out */
    char method[8];
    char path[256];
};

static struct evconnlistener *listener;
static struct conn *conns;
static int nconns;

static void conn_free(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    event_free(c->deadline);
    free(c);
    if (nconns-- == MAX_CONNS && listener)
        evconnlistener_enable(listener);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_free(arg);
}

static void answer(struct conn *c, int status, const char *reason, const char *type, const char *body, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                        "%sConnection: close\r\n\r\n",
                        status, reason, type, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (strcmp(c->method, "HEAD") != 0)
        evbuffer_add(out, body, len);
    c->answered = 1;
    struct timeval all = {CONN_SECONDS, 0}; /* time to read the answer */
    evtimer_add(c->deadline, &all);
}

static void answer_text(struct conn *c, int status, const char *reason, const char *text)
{
    char body[400];
    int n = snprintf(body, sizeof body, "%s\n", text);
    answer(c, status, reason, "text/plain; charset=utf-8", body, n < (int)sizeof body ? (size_t)n : sizeof body - 1);
}

static void route(struct conn *c)
{
    if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "HEAD") != 0) {
        answer_text(c, 405, "Method Not Allowed", "GET or HEAD only");
    } else if (strcmp(c->path, "/metrics") == 0) {
        const char *why = pm_metrics_health();
        pm_metric_set(PM_M_READY, why ? 0 : 1, NULL, NULL);
        size_t len = 0;
        char *text = pm_metrics_text(&len);
        if (text)
            answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len);
        else
            answer_text(c, 500, "Internal Server Error", "out of memory");
        free(text);
    } else if (strcmp(c->path, "/live") == 0) {
        /* Liveness: the loop answers. Not the dependencies: a queue that is down must make
         * us unready, never get us restarted. */
        answer_text(c, 200, "OK", "ok");
    } else if (strcmp(c->path, "/health") == 0) {
        const char *why = pm_metrics_health();
        if (why)
            answer_text(c, 503, "Service Unavailable", why);
        else
            answer_text(c, 200, "OK", "ok");
    } else {
        answer_text(c, 404, "Not Found", "try /metrics, /health or /live");
    }
}

/* "GET /path?query HTTP/1.1": method and path kept (the query ignored); 0 or -1. */
static int parse_request_line(struct conn *c, const char *line)
{
    char target[256];
    int n = 0;
    if (sscanf(line, "%7[A-Z] %255s HTTP/1.%*1[01]%n", c->method, target, &n) != 2 || n == 0 || line[n])
        return -1;
    target[strcspn(target, "?#")] = '\0';
    snprintf(c->path, sizeof c->path, "%s", target);
    return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->answered) { /* after our answer: read and forget until the client closes */
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    char *line;
    size_t n;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
        int first = c->lines++ == 0;
        if (first && parse_request_line(c, line) < 0) {
            snprintf(c->method, sizeof c->method, "GET");
            answer_text(c, 400, "Bad Request", "bad request line");
        } else if (!first && n == 0) {
            route(c);
        } else if (c->lines > 100) {
            answer_text(c, 431, "Request Header Fields Too Large", "too many header fields");
        }
        free(line);
        if (c->answered) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
    }
    /* The read high-water mark stops reading at MAX_REQUEST: no line end by then is too much. */
    if (evbuffer_get_length(in) >= MAX_REQUEST) {
        snprintf(c->method, sizeof c->method, "GET");
        answer_text(c, 431, "Request Header Fields Too Large", "request too large");
        evbuffer_drain(in, evbuffer_get_length(in));
    }
}

/* The answer is out: half-close, and wait for the client's close (a close now, with its bytes
 * still unread, could reset the connection before it read the answer). */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->answered != 1 || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;
    if (c->client_done) {
        conn_free(c);
        return;
    }
    c->answered = 2;
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if ((what & BEV_EVENT_EOF) && c->answered == 1 && evbuffer_get_length(bufferevent_get_output(bev))) {
        c->client_done = 1; /* it half-closed after its request: the answer still goes out */
        bufferevent_disable(bev, EV_READ);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)salen;
    struct event_base *base = arg;
    char peer[64];
    pm_sockaddr_ip(sa, peer, sizeof peer);
    int same = 0;
    for (const struct conn *o = conns; o; o = o->next)
        same += strcmp(o->peer, peer) == 0;
    if (same >= MAX_CONNS_PER_PEER) {
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c) {
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->deadline = evtimer_new(base, on_deadline, c);
    }
    if (!c || !c->bev || !c->deadline) {
        if (c && c->bev)
            bufferevent_free(c->bev);
        else
            close(fd);
        if (c && c->deadline)
            event_free(c->deadline);
        free(c);
        return;
    }
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    if (++nconns == MAX_CONNS)
        evconnlistener_disable(l);
    struct timeval io = {CONN_SECONDS, 0}, all = {REQUEST_SECONDS, 0};
    bufferevent_set_timeouts(c->bev, &io, &io);
    bufferevent_setwatermark(c->bev, EV_READ, 0, MAX_REQUEST);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    evtimer_add(c->deadline, &all);
}

int pm_metrics_serve(struct event_base *base, pm_metrics_ready_fn ready, void *arg)
{
    ready_cb = ready;
    ready_arg = arg;
    if (listen_fd < 0)
        return 0;
    /* backlog 0: the socket already listens (no listen() after the sandbox) */
    listener = evconnlistener_new(base, on_accept, base, LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (!listener) {
        pm_log(PM_ERR, "event=metrics_error step=serve error=\"%s\"", strerror(errno));
        return -1;
    }
    return 0;
}
