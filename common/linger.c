/* Lingering close: see linger.h. One small event per socket; nothing of the session it
 * came from is kept, so the session is freed (and stops counting) at once. */
#include "linger.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

struct lingering {
    evutil_socket_t fd;
    struct event *ev;
};

static long lingering_now;

static void finish(struct lingering *l)
{
    event_free(l->ev);
    close(l->fd);
    free(l);
    lingering_now--;
}

static void on_lingering(evutil_socket_t fd, short what, void *arg)
{
    struct lingering *l = arg;
    if (what & EV_TIMEOUT) {
        finish(l);
        return;
    }
    char sink[16384];
    for (int turns = 0; turns < 4; turns++) { /* a flood is read a little at a time, fairly */
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        finish(l); /* the client's FIN, or the connection is gone */
        return;
    }
}

void pm_linger_close(struct event_base *base, evutil_socket_t fd)
{
    if (fd < 0)
        return;
    struct lingering *l = lingering_now < PM_LINGER_MAX ? calloc(1, sizeof *l) : NULL;
    struct timeval deadline = {PM_LINGER_MS / 1000, (PM_LINGER_MS % 1000) * 1000};
    if (l && (l->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_lingering, l)) && shutdown(fd, SHUT_WR) == 0 &&
        event_add(l->ev, &deadline) == 0) {
        l->fd = fd;
        lingering_now++;
        return;
    }
    /* Too many lingering, out of memory, or the connection is gone: close at once. */
    if (l && l->ev)
        event_free(l->ev);
    free(l);
    close(fd);
}

void pm_linger_free_bev(struct event_base *base, struct bufferevent *bev, evutil_socket_t fd, int bev_owns_fd)
{
    /* A bufferevent that owns its socket closes it when freed: linger on a copy. */
    evutil_socket_t keep = bev && bev_owns_fd ? dup(fd) : fd;
    if (bev)
        bufferevent_free(bev);
    pm_linger_close(base, keep);
}

long pm_linger_count(void) { return lingering_now; }
