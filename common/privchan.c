/* The privchan channel (privchan.h): its framing, the sandbox's asynchronous client, and
 * the parent's supervisor that forks, serves and restarts its sandboxes. */
#include "privchan.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "listeners.h"
#include "log.h"
#include "privhelper.h"

#define HDR 20
#define MAX_FRAME (HDR + 2 * PM_PRIV_MAX_FIELD + 2)

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

int pm_priv_send_fd(int fd, const struct pm_priv_msg *m, int passfd)
{
    size_t la = m->a ? strnlen(m->a, PM_PRIV_MAX_FIELD) : 0, lb = m->b ? strnlen(m->b, PM_PRIV_MAX_FIELD) : 0;
    uint8_t *buf = malloc(HDR + la + lb);
    if (!buf)
        return -1;
    put32(buf, m->id);
    put32(buf + 4, m->op);
    put32(buf + 8, (uint32_t)m->result);
    put32(buf + 12, (uint32_t)la);
    put32(buf + 16, (uint32_t)lb);
    if (la)
        memcpy(buf + HDR, m->a, la);
    if (lb)
        memcpy(buf + HDR + la, m->b, lb);
    struct iovec iov = {buf, HDR + la + lb};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (passfd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.space;
        mh.msg_controllen = sizeof ctl.space;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &passfd, sizeof(int));
    }
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    explicit_bzero(buf, HDR + la + lb); /* may hold a password */
    free(buf);
    return n == (ssize_t)(HDR + la + lb) ? 0 : -1;
}

int pm_priv_send(int fd, const struct pm_priv_msg *m) { return pm_priv_send_fd(fd, m, -1); }

/* Parses a received frame into m. 1, or -1 if malformed. */
static int parse(const uint8_t *buf, ssize_t n, struct pm_priv_msg *m)
{
    if (n < HDR) {
        errno = EBADMSG;
        return -1;
    }
    uint32_t la = get32(buf + 12), lb = get32(buf + 16);
    if (la > PM_PRIV_MAX_FIELD || lb > PM_PRIV_MAX_FIELD || (size_t)n != HDR + la + lb) {
        errno = EBADMSG;
        return -1;
    }
    m->id = get32(buf);
    m->op = get32(buf + 4);
    m->result = (int32_t)get32(buf + 8);
    m->a = strndup((const char *)buf + HDR, la);
    m->b = strndup((const char *)buf + HDR + la, lb);
    return 1;
}

int pm_priv_recv_fd(int fd, struct pm_priv_msg *m, int *gotfd)
{
    uint8_t *buf = malloc(MAX_FRAME);
    memset(m, 0, sizeof *m);
    *gotfd = -1;
    if (!buf)
        return -1;
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    struct iovec iov = {buf, MAX_FRAME};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (*gotfd < 0)
                *gotfd = got;
            else
                close(got); /* one descriptor per frame at most */
        }
    }
    int rc = n == 0 ? 0 : n > 0 ? parse(buf, n, m) : -1;
    explicit_bzero(buf, n > 0 ? (size_t)n : 0);
    free(buf);
    if (rc <= 0 && *gotfd >= 0) {
        close(*gotfd);
        *gotfd = -1;
    }
    return rc;
}

/* Without a control buffer the kernel closes whatever descriptor a peer sent along: a
 * parent never takes one from its sandbox. */
int pm_priv_recv(int fd, struct pm_priv_msg *m)
{
    uint8_t *buf = malloc(MAX_FRAME);
    memset(m, 0, sizeof *m);
    if (!buf)
        return -1;
    ssize_t n = recv(fd, buf, MAX_FRAME, 0);
    int rc = n == 0 ? 0 : n > 0 ? parse(buf, n, m) : -1;
    explicit_bzero(buf, n > 0 ? (size_t)n : 0);
    free(buf);
    return rc;
}

void pm_priv_msg_clear(struct pm_priv_msg *m)
{
    if (m->a) {
        explicit_bzero(m->a, strlen(m->a));
        free(m->a);
    }
    if (m->b) {
        explicit_bzero(m->b, strlen(m->b));
        free(m->b);
    }
    m->a = m->b = NULL;
}

/* ------------------------------------------------------------------ sandbox side */
struct pending {
    uint32_t id;
    pm_priv_cb cb;
    void *arg;
    struct pending *next;
};

struct pm_priv_client {
    int fd;
    struct event *ev;
    struct pending *pending;
    uint32_t next_id;
    pm_priv_push_cb push;
    void *push_arg;
};

static void fail_all(struct pm_priv_client *c)
{
    while (c->pending) {
        struct pending *p = c->pending;
        c->pending = p->next;
        if (p->cb)
            p->cb(-1, p->arg);
        free(p);
    }
}

static void on_parent(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct pm_priv_client *c = arg;
    for (;;) {
        struct pm_priv_msg m;
        int rc = pm_priv_recv(fd, &m);
        if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            pm_log(PM_ERR, "event=parent_gone");
            event_del(c->ev);
            fail_all(c);
            return;
        }
        if (rc < 0)
            return;
        if (m.id == 0) {
            if (c->push)
                c->push(&m, c->push_arg);
        } else {
            for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
                if ((*pp)->id == m.id) {
                    struct pending *p = *pp;
                    *pp = p->next;
                    if (p->cb)
                        p->cb(m.result, p->arg);
                    free(p);
                    break;
                }
            }
        }
        pm_priv_msg_clear(&m);
    }
}

struct pm_priv_client *pm_priv_client_new(struct event_base *base, int fd, pm_priv_push_cb push, void *push_arg)
{
    struct pm_priv_client *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->push = push;
    c->push_arg = push_arg;
    evutil_make_socket_nonblocking(fd);
    c->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_parent, c);
    event_add(c->ev, NULL);
    return c;
}

uint32_t pm_priv_request(struct pm_priv_client *c, enum pm_priv_op op, const char *a, const char *b, pm_priv_cb cb,
                         void *arg)
{
    uint32_t id = ++c->next_id ? c->next_id : ++c->next_id;
    struct pm_priv_msg m = {.id = id, .op = op, .a = (char *)a, .b = (char *)b};
    if (pm_priv_send(c->fd, &m) < 0) {
        cb(-1, arg);
        return 0;
    }
    struct pending *p = calloc(1, sizeof *p);
    p->id = id;
    p->cb = cb;
    p->arg = arg;
    p->next = c->pending;
    c->pending = p;
    return id;
}

void pm_priv_cancel(struct pm_priv_client *c, uint32_t handle)
{
    for (struct pending *p = c->pending; p; p = p->next)
        if (p->id == handle)
            p->cb = NULL; /* the answer will be dropped */
}

void pm_priv_client_free(struct pm_priv_client *c)
{
    if (!c)
        return;
    event_free(c->ev);
    while (c->pending) {
        struct pending *p = c->pending;
        c->pending = p->next;
        free(p);
    }
    free(c);
}

/* ------------------------------------------------------------------ parent side */
#define MAX_SANDBOXES 64
#define MAX_HELPERS 8
#define REQUESTS_PER_TURN 64 /* then the helpers' answers get their turn */

static int sandbox_index; /* the child's own, set before sandbox_main */

int pm_privsep_sandbox_index(void) { return sandbox_index; }

struct sandbox {
    pid_t pid;       /* <= 0 while not running */
    int chan;        /* parent's end of its channel, -1 while none */
    unsigned gen;    /* unique per start: answers for an earlier sandbox in this slot are dropped */
    double started, backoff, restart_at;
};

struct supervisor {
    const struct pm_sandbox_spec *spec;
    struct sandbox w[MAX_SANDBOXES];
    int n;
    unsigned next_gen;
};

/* pm_priv_sandbox_fd_fn: the channel of the sandbox started as gen, -1 once it is gone. */
static int fd_of_gen(unsigned gen, void *arg)
{
    struct supervisor *sv = arg;
    for (int i = 0; i < sv->n; i++)
        if (sv->w[i].gen == gen)
            return sv->w[i].pid > 0 ? sv->w[i].chan : -1;
    return -1;
}

static pid_t spawn(struct supervisor *sv, int index)
{
    const struct pm_sandbox_spec *spec = sv->spec;
    struct sandbox *w = &sv->w[index];
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pair[0]);
        close(pair[1]);
        return -1;
    }
    if (pid == 0) {
        close(pair[0]);
        /* The other sandboxes' channels stay the parent's: with one, this sandbox could
         * read their questions (passwords) or answer in their name. */
        for (int i = 0; i < sv->n; i++)
            if (i != index && sv->w[i].chan >= 0)
                close(sv->w[i].chan);
        sandbox_index = index;
        /* A sandbox never outlives its parent (kill -9 of the parent, a crash): it would keep
         * serving with nobody to answer its checks. pm_privsep_drop keeps this across setuid. */
        pid_t parent = getppid();
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (pm_privsep_drop(&spec->sandbox) < 0)
            _exit(78); /* EX_CONFIG: do not restart in a tight loop, the supervisor backs off */
        _exit(spec->sandbox_main(pair[1], spec->arg));
    }
    close(pair[1]);
    /* Never blocks on a sandbox that does not read its answers: it only harms itself. */
    fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK);
    w->pid = pid;
    w->chan = pair[0];
    w->gen = ++sv->next_gen ? sv->next_gen : ++sv->next_gen;
    w->started = pm_mono_s();
    pm_log(PM_INFO, "event=sandbox_started sandbox=%s pid=%d index=%d", spec->name, (int)pid, index);
    return pid;
}

/* One sandbox's questions: each is answered in the parent or forwarded to its helper. */
static void serve_sandbox(struct supervisor *sv, struct sandbox *w)
{
    const struct pm_sandbox_spec *spec = sv->spec;
    for (int i = 0; i < REQUESTS_PER_TURN && w->chan >= 0; i++) {
        struct pm_priv_msg req;
        int rc = pm_priv_recv(w->chan, &req);
        if (rc < 0 && errno == EBADMSG) { /* a bug in the sandbox: dropped */
            pm_log(PM_WARN, "event=sandbox_request_malformed sandbox=%s", spec->name);
            continue;
        }
        if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            close(w->chan); /* the sandbox is going away; SIGCHLD follows */
            w->chan = -1;
        }
        if (rc != 1)
            return;
        struct pm_priv_helper *h = spec->route ? spec->route(&req, spec->arg) : NULL;
        if (h) {
            pm_priv_helper_forward(h, &req, w->gen, fd_of_gen, sv);
        } else {
            struct pm_priv_msg reply = {.id = req.id, .op = req.op, .result = 0};
            spec->answer(&req, &reply, spec->arg);
            if (pm_priv_send(w->chan, &reply) < 0)
                pm_log(PM_WARN, "event=sandbox_answer_dropped sandbox=%s op=%u error=\"%s\"", spec->name,
                       (unsigned)req.op, strerror(errno));
            pm_priv_msg_clear(&reply);
        }
        pm_priv_msg_clear(&req);
    }
}

/* A sandbox's own listening sockets, before it starts again (a draining predecessor may
 * have shut them down). */
static void rearm(const struct pm_sandbox_spec *spec, int index)
{
    if (spec->listener_sets > 1)
        pm_listeners_rearm(spec->listeners + (size_t)index * (size_t)spec->nlisteners, spec->nlisteners);
    else
        pm_listeners_rearm(spec->listeners, spec->nlisteners);
}

static void reap(struct supervisor *sv, int stopping)
{
    int status;
    pid_t dead;
    while ((dead = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < sv->n; i++) {
            struct sandbox *w = &sv->w[i];
            if (w->pid != dead)
                continue;
            pm_log(stopping ? PM_INFO : PM_ERR, "event=sandbox_exited sandbox=%s pid=%d index=%d %s=%d",
                   sv->spec->name, (int)dead, i, WIFSIGNALED(status) ? "signal" : "status",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            w->pid = -1;
            if (w->chan >= 0)
                close(w->chan);
            w->chan = -1;
            if (sv->spec->exited)
                sv->spec->exited(i, sv->spec->arg);
            if (!stopping) {
                if (pm_mono_s() - w->started > 30)
                    w->backoff = 0.2;
                w->restart_at = pm_mono_s() + w->backoff;
                w->backoff = w->backoff * 2 > 10 ? 10 : w->backoff * 2;
            }
        }
    }
}

int pm_privsep_supervise(const struct pm_sandbox_spec *spec)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    int nhelpers = 0;
    while (spec->helpers && spec->helpers[nhelpers] && nhelpers < MAX_HELPERS)
        nhelpers++;

    static struct supervisor sv; /* static: fd_of_gen needs it for as long as helpers answer */
    memset(&sv, 0, sizeof sv);
    sv.spec = spec;
    sv.n = spec->nsandboxes < 1 ? 1 : spec->nsandboxes > MAX_SANDBOXES ? MAX_SANDBOXES : spec->nsandboxes;
    for (int i = 0; i < sv.n; i++)
        sv.w[i] = (struct sandbox){.pid = -1, .chan = -1, .backoff = 0.2};
    for (int i = 0; i < sv.n; i++)
        spawn(&sv, i);
    int stopping = 0;
    for (;;) {
        int running = 0;
        for (int i = 0; i < sv.n; i++)
            running += sv.w[i].pid > 0;
        if (stopping && !running)
            break;
        struct pollfd pfd[1 + MAX_SANDBOXES + MAX_HELPERS];
        int hix[MAX_HELPERS], wix[MAX_SANDBOXES], n = 0;
        pfd[n++] = (struct pollfd){sfd, POLLIN, 0};
        int timeout = -1; /* every sandbox runs: sleep until a signal, a request or an answer */
        for (int i = 0; i < sv.n; i++) {
            struct sandbox *w = &sv.w[i];
            wix[i] = w->chan >= 0 ? n : -1;
            if (w->chan >= 0)
                pfd[n++] = (struct pollfd){w->chan, POLLIN, 0};
            if (w->pid <= 0 && !stopping) {
                int t = (int)((w->restart_at - pm_mono_s()) * 1000) + 1;
                t = t < 0 ? 0 : t;
                if (timeout < 0 || t < timeout)
                    timeout = t;
            }
        }
        for (int i = 0; i < nhelpers; i++) {
            int fd = pm_priv_helper_fd(spec->helpers[i]);
            hix[i] = fd >= 0 ? n : -1;
            if (fd >= 0)
                pfd[n++] = (struct pollfd){fd, POLLIN, 0};
            int t = pm_priv_helper_timeout_ms(spec->helpers[i]);
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < sv.n && !stopping; i++) {
            if (sv.w[i].pid <= 0 && pm_mono_s() >= sv.w[i].restart_at) {
                rearm(spec, i);
                if (spawn(&sv, i) < 0) { /* no fork now: try again later, not in a loop */
                    pm_log(PM_ERR, "event=sandbox_error sandbox=%s index=%d step=fork error=\"%s\"", spec->name, i,
                           strerror(errno));
                    sv.w[i].restart_at = pm_mono_s() + sv.w[i].backoff;
                }
                wix[i] = -1; /* not polled this turn */
            }
        }
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    stopping = 1;
                    for (int i = 0; i < sv.n; i++)
                        if (sv.w[i].pid > 0)
                            kill(sv.w[i].pid, SIGTERM);
                } else if (si.ssi_signo == SIGHUP && spec->reload) {
                    /* Also while no sandbox runs (-1): the next one starts with the new files. */
                    int told = 0;
                    for (int i = 0; i < sv.n; i++)
                        if (sv.w[i].chan >= 0) {
                            spec->reload(sv.w[i].chan, spec->arg);
                            told++;
                        }
                    if (!told)
                        spec->reload(-1, spec->arg);
                }
            }
            reap(&sv, stopping);
        }
        /* Answers first: they free helper slots for the questions read next. */
        for (int i = 0; i < nhelpers; i++) {
            if (hix[i] >= 0 && (pfd[hix[i]].revents & (POLLIN | POLLHUP | POLLERR)))
                pm_priv_helper_deliver(spec->helpers[i], fd_of_gen, &sv);
            pm_priv_helper_expire(spec->helpers[i], fd_of_gen, &sv);
        }
        for (int i = 0; i < sv.n; i++)
            if (wix[i] >= 0 && sv.w[i].chan >= 0 && (pfd[wix[i]].revents & (POLLIN | POLLHUP | POLLERR)))
                serve_sandbox(&sv, &sv.w[i]);
    }
    close(sfd);
    return 0;
}
