#include "privhelper.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "privsep.h"

#define HELPER_FD 3
#define RESTART_INTERVAL 1.0 /* seconds between two starts of a helper that keeps dying */

struct pm_priv_helper {
    const struct pm_helper_spec *spec;
    pid_t pid;
    int fd; /* -1 while no helper runs */
    uint32_t seq;
    double started;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The helper process: answers until its parent closes the channel. */
static _Noreturn void helper_main(const struct pm_helper_spec *spec, int fd)
{
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(1);
    /* Ctrl-C reaches the whole process group; the helper ends when its parent does. */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Keep only stdio and the channel: no listening socket, no worker channel. */
    if (fd != HELPER_FD) {
        dup2(fd, HELPER_FD);
        close(fd);
    }
    close_range(HELPER_FD + 1, ~0U, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || pm_seccomp_install() < 0) {
        pm_log(PM_ERR, "event=helper_error helper=%s step=sandbox", spec->name);
        _exit(78);
    }
    void *state = spec->open(spec->arg);
    for (;;) {
        struct pm_priv_msg req;
        int rc = pm_priv_recv(HELPER_FD, &req);
        if (rc == 0 || (rc < 0 && errno != EINTR))
            break;
        if (rc < 0)
            continue;
        struct pm_priv_msg reply = {.id = req.id, .op = req.op, .result = -1};
        spec->answer(&req, &reply, state);
        pm_priv_msg_clear(&req);
        pm_priv_send(HELPER_FD, &reply);
        pm_priv_msg_clear(&reply);
    }
    _exit(0);
}

static int spawn(struct pm_priv_helper *h)
{
    int sv[2];
    h->started = mono();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        pm_log(PM_ERR, "event=helper_error helper=%s step=fork error=\"%s\"", h->spec->name, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        helper_main(h->spec, sv[1]);
    }
    close(sv[1]);
    h->pid = pid;
    h->fd = sv[0];
    pm_log(PM_INFO, "event=helper_started helper=%s pid=%d", h->spec->name, (int)pid);
    return 0;
}

struct pm_priv_helper *pm_priv_helper_start(const struct pm_helper_spec *spec)
{
    struct pm_priv_helper *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->spec = spec;
    h->fd = -1;
    if (spawn(h) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

static void lost(struct pm_priv_helper *h, const char *why)
{
    pm_log(PM_ERR, "event=helper_lost helper=%s pid=%d reason=%s", h->spec->name, (int)h->pid, why);
    if (strcmp(why, "timeout") == 0)
        kill(h->pid, SIGKILL); /* stuck; the supervisor's waitpid reaps it */
    close(h->fd);
    h->fd = -1;
}

/* One attempt: 1 answered, 0 no answer (helper dropped). */
static int round_trip(struct pm_priv_helper *h, const struct pm_priv_msg *req, struct pm_priv_msg *reply,
                      int timeout_ms)
{
    struct pm_priv_msg m = *req;
    m.id = ++h->seq ? h->seq : ++h->seq;
    if (pm_priv_send(h->fd, &m) < 0) {
        lost(h, "send");
        return 0;
    }
    double deadline = mono() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - mono()) * 1000);
        struct pollfd p = {h->fd, POLLIN, 0};
        int n = left > 0 ? poll(&p, 1, left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            lost(h, "timeout");
            return 0;
        }
        struct pm_priv_msg got;
        int rc = pm_priv_recv(h->fd, &got);
        if (rc <= 0) {
            lost(h, rc == 0 ? "eof" : "recv");
            return 0;
        }
        if (got.id == m.id) {
            reply->result = got.result;
            reply->a = got.a; /* handed over: freed with the reply */
            reply->b = got.b;
            return 1;
        }
        pm_priv_msg_clear(&got); /* a late answer to a request that timed out */
    }
}

void pm_priv_helper_ask(struct pm_priv_helper *h, const struct pm_priv_msg *req, struct pm_priv_msg *reply,
                        int timeout_ms)
{
    reply->result = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->fd < 0 && (mono() - h->started < RESTART_INTERVAL || spawn(h) < 0))
            return;
        if (round_trip(h, req, reply, timeout_ms))
            return;
    }
}

void pm_priv_helper_forget(struct pm_priv_helper *h)
{
    if (h && h->fd >= 0)
        close(h->fd);
}

void pm_priv_helper_stop(struct pm_priv_helper *h)
{
    if (!h)
        return;
    if (h->fd >= 0) {
        close(h->fd);
        /* It exits at EOF; a hash being computed takes a moment at most. */
        for (int i = 0; i < 200 && waitpid(h->pid, NULL, WNOHANG) == 0; i++)
            usleep(10 * 1000);
        if (waitpid(h->pid, NULL, WNOHANG) == 0) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
        }
    }
    free(h);
}
