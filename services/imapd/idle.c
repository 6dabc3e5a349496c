/* IDLE (RFC 2177): "+ idling", then the selected folder's changes as they happen, until
 * DONE. One inotify instance serves the whole sandbox: a watch per folder being idled on
 * (its new/ and cur/), shared by every session idling on that folder, so thousands of
 * sessions cost one descriptor and a watch per folder, not per session. A change wakes
 * the folder's sessions, which ask imap_announce (cmd_select.c) what to tell the client:
 * delivery's rename into new/, a flag change (a rename in cur/), an expunge (an unlink).
 * A folder inotify cannot watch (no instance, or inotify_add_watch refused: the per-user
 * fs.inotify.max_user_watches reached) is looked at every IDLE_POLL_S seconds instead, so
 * its idling sessions are told late, never not at all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "session_int.h"

#define IDLE_POLL_S 2
#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW)

struct imap_idle_link { /* one watch descriptor of a folder, in srv->by_wd */
    int wd;               /* -1: none (inotify unavailable, or the directory went) */
    struct imap_idle_watch *w;
    struct imap_idle_link *next;
};

/* A folder some session idles on: its two watches and the sessions on it. Two names for
 * one directory would share the kernel's watch descriptor (both are found by it, but the
 * first to go would remove the kernel's watch); the folder names are canonical (folder.h),
 * so a folder has one name. */
struct imap_idle_watch {
    struct imap_idle_watch *next;
    char *dir;
    struct imap_idle_link link[2]; /* new/, cur/ */
    struct imap_session *sessions;
};

static struct imap_idle_link **bucket(struct imap_server *srv, int wd)
{
    return &srv->by_wd[(unsigned)wd % IMAP_IDLE_BUCKETS];
}

static void link_remove(struct imap_server *srv, struct imap_idle_link *l)
{
    if (l->wd < 0)
        return;
    for (struct imap_idle_link **pp = bucket(srv, l->wd); *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    l->wd = -1;
}

static void wake(struct imap_session *s)
{
    if (s->phase != PH_IDLE || !s->sel)
        return;
    if (imap_out_full(s)) {
        s->idle_pending = 1; /* the client reads nothing: announce once it has (on_write) */
        return;
    }
    pm_metric_inc(PM_M_IMAPD_IDLE_WAKEUPS);
    imap_announce(s, 1);
}

/* Wakes every session marked pending. They are gathered first: an announcement may end a
 * session's IDLE (and so change the watch lists) but never frees a session now. */
static void wake_pending(struct imap_server *srv)
{
    size_t n = 0;
    for (struct imap_idle_watch *w = srv->watches; w; w = w->next)
        for (struct imap_session *s = w->sessions; s; s = s->idle_next)
            n += s->idle_pending != 0;
    if (n == 0)
        return;
    struct imap_session **v = malloc(n * sizeof *v);
    size_t k = 0;
    for (struct imap_idle_watch *w = srv->watches; w; w = w->next)
        for (struct imap_session *s = w->sessions; s; s = s->idle_next)
            if (s->idle_pending) {
                s->idle_pending = 0;
                if (v)
                    v[k++] = s;
            }
    for (size_t i = 0; i < k; i++)
        wake(v[i]);
    free(v);
}

static void mark_all(struct imap_idle_watch *w)
{
    for (struct imap_session *s = w->sessions; s; s = s->idle_next)
        s->idle_pending = 1;
}

/* The poll timer: the folders with a directory no watch covers. */
static void on_idle_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct imap_server *srv = arg;
    for (struct imap_idle_watch *w = srv->watches; w; w = w->next)
        if (w->link[0].wd < 0 || w->link[1].wd < 0)
            mark_all(w);
    wake_pending(srv);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct imap_server *srv = arg;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t r = read((int)fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *e = (const struct inotify_event *)p;
            p += sizeof *e + e->len;
            if (e->mask & IN_Q_OVERFLOW) {
                for (struct imap_idle_watch *w = srv->watches; w; w = w->next)
                    mark_all(w); /* events were lost: everyone looks */
                continue;
            }
            for (struct imap_idle_link *l = *bucket(srv, e->wd), *next; l; l = next) {
                next = l->next;
                if (l->wd != e->wd)
                    continue;
                mark_all(l->w);
                if (e->mask & IN_IGNORED)
                    link_remove(srv, l); /* the directory went (folder deleted) */
            }
        }
    }
    wake_pending(srv);
}

int imap_idle_init(struct imap_server *srv)
{
    struct timeval every = {IDLE_POLL_S, 0};
    srv->idle_poll_ev = event_new(srv->base, -1, EV_PERSIST, on_idle_poll, srv);
    if (!srv->idle_poll_ev || event_add(srv->idle_poll_ev, &every) < 0)
        return -1;
    srv->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (srv->inotify_fd < 0) {
        pm_log(PM_WARN, "event=inotify_unavailable error=\"%s\" poll_seconds=%d", strerror(errno), IDLE_POLL_S);
        return 0;
    }
    srv->inotify_ev = event_new(srv->base, srv->inotify_fd, EV_READ | EV_PERSIST, on_inotify, srv);
    if (!srv->inotify_ev || event_add(srv->inotify_ev, NULL) < 0)
        return -1;
    return 0;
}

void imap_idle_free(struct imap_server *srv)
{
    if (srv->inotify_ev)
        event_free(srv->inotify_ev);
    srv->inotify_ev = NULL;
    if (srv->idle_poll_ev)
        event_free(srv->idle_poll_ev);
    srv->idle_poll_ev = NULL;
    if (srv->inotify_fd >= 0)
        close(srv->inotify_fd);
    srv->inotify_fd = -1;
}

static struct imap_idle_watch *watch_open(struct imap_server *srv, const char *dir)
{
    for (struct imap_idle_watch *w = srv->watches; w; w = w->next)
        if (strcmp(w->dir, dir) == 0)
            return w;
    struct imap_idle_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return NULL;
    }
    const char *sub[2] = {"new", "cur"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        struct imap_idle_link *l = &w->link[i];
        l->w = w;
        l->wd = -1;
        if (srv->inotify_fd < 0 || snprintf(path, sizeof path, "%s/%s", dir, sub[i]) >= (int)sizeof path)
            continue;
        l->wd = inotify_add_watch(srv->inotify_fd, path, WATCH_MASK);
        if (l->wd < 0) {
            pm_log(PM_WARN, "event=inotify_watch_failed dir=%s error=\"%s\" poll_seconds=%d", sub[i],
                   strerror(errno), IDLE_POLL_S);
            continue;
        }
        l->next = *bucket(srv, l->wd);
        *bucket(srv, l->wd) = l;
    }
    w->next = srv->watches;
    srv->watches = w;
    return w;
}

static void watch_close(struct imap_server *srv, struct imap_idle_watch *w)
{
    for (struct imap_idle_watch **pp = &srv->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    for (int i = 0; i < 2; i++) {
        int wd = w->link[i].wd;
        link_remove(srv, &w->link[i]);
        if (wd >= 0 && srv->inotify_fd >= 0)
            inotify_rm_watch(srv->inotify_fd, wd);
    }
    free(w->dir);
    free(w);
}

void imap_idle_stop(struct imap_session *s)
{
    struct imap_idle_watch *w = s->idle_watch;
    if (!w)
        return;
    for (struct imap_session **pp = &w->sessions; *pp; pp = &(*pp)->idle_next)
        if (*pp == s) {
            *pp = s->idle_next;
            break;
        }
    s->idle_watch = NULL;
    s->idle_next = NULL;
    s->idle_pending = 0;
    if (!w->sessions)
        watch_close(s->srv, w);
}

void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, cmd, "IDLE takes no arguments");
        return;
    }
    imap_continue(s, PH_IDLE, "idling");
    if (!s->sel || !s->sel_dir)
        return; /* nothing to announce, but DONE is still awaited */
    struct imap_idle_watch *w = watch_open(s->srv, s->sel_dir);
    if (w) {
        s->idle_watch = w;
        s->idle_next = w->sessions;
        w->sessions = s;
    }
    imap_announce(s, 1); /* what changed since the last command */
}

void imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
    imap_idle_stop(s);
    if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
        imap_tagged(s, s->cmd, "OK", "IDLE terminated");
    else
        imap_bad(s, s->cmd, "Expected DONE");
}
