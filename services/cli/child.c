#include "child.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* A longer line is passed on in pieces of this size; what a pipe holds at most before we
 * stop reading from it (the child then blocks on write: memory stays bounded). */
#define MAX_LINE 16384
#define HIGH_WATER (4 * MAX_LINE)

struct logpipe {
    struct bufferevent *bev;
    cli_child_started_fn fn;
    void *arg;
    unsigned generation;
    struct logpipe *next;
};

static struct logpipe *pipes;

static void put_line(const char *s, size_t n)
{
    char buf[MAX_LINE + 1];
    memcpy(buf, s, n);
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
}

static void forward(struct logpipe *lp, int at_eof)
{
    struct evbuffer *in = bufferevent_get_input(lp->bev);
    char line[MAX_LINE];
    for (;;) {
        size_t eol_len = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        size_t avail = evbuffer_get_length(in);
        size_t n;
        if (eol.pos >= 0 && (size_t)eol.pos < MAX_LINE)
            n = (size_t)eol.pos;
        else if (avail >= MAX_LINE)
            n = MAX_LINE; /* no newline in sight: pass it on in pieces */
        else if (at_eof && avail)
            n = avail;
        else
            return;
        evbuffer_remove(in, line, n);
        if (eol.pos >= 0 && (size_t)eol.pos == n)
            evbuffer_drain(in, eol_len);
        put_line(line, n);
        /* "ts=... svc=queue pid=1 level=info event=started ..." */
        if (lp->fn && memmem(line, n, " event=started", 14))
            lp->fn(lp->arg, lp->generation);
    }
}

static void free_pipe(struct logpipe *lp)
{
    for (struct logpipe **pp = &pipes; *pp; pp = &(*pp)->next)
        if (*pp == lp) {
            *pp = lp->next;
            break;
        }
    bufferevent_free(lp->bev);
    free(lp);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    forward(arg, 0);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        forward(arg, 1);
        free_pipe(arg);
    }
}

/* The environment a service gets: what it needs to run and log (PATH, the time zone, the
 * locale, where its configuration is), and in a test build the test switches; nothing else
 * of ours (a secret in the operator's shell stays there). */
static int env_passed(const char *kv)
{
    static const char *const exact[] = {"PATH", "TZ", "LANG", "LANGUAGE", "POSTMESH_CONFIG", NULL};
    static const char *const prefixes[] = {"LC_",
#ifndef POSTMESH_NO_TEST_HOOKS
                                           "POSTMESH_TEST_", "POSTMESH_SECCOMP=",
#endif
                                           NULL};
    size_t name = strcspn(kv, "=");
    if (kv[name] != '=')
        return 0;
    for (const char *const *e = exact; *e; e++)
        if (strlen(*e) == name && strncmp(kv, *e, name) == 0)
            return 1;
    for (const char *const *p = prefixes; *p; p++)
        if (strncmp(kv, *p, strlen(*p)) == 0)
            return 1;
    return 0;
}

#define MAX_ENV 64

/* In the child between fork and exec: a clean process for the service. Its own session
 * (no controlling terminal: nothing in it can type into the operator's shell with TIOCSTI
 * or be stopped by the terminal), stdin /dev/null, stdout and stderr the log pipe (no
 * descriptor of the terminal), no other descriptor of ours, a clean environment. */
static void exec_child(int wfd, const char *path, const char *config, pid_t parent)
{
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL); /* libevent's handlers must not fire in here */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Our process group is its pid, as before, so the supervisor still kills it and the
     * workers it left behind with kill(-pid); a terminal's ^C reaches the supervisor only,
     * which stops in order. */
    if (setsid() < 0)
        _exit(126);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(126); /* the supervisor is already gone */
    if (wfd <= STDERR_FILENO)
        wfd = fcntl(wfd, F_DUPFD, STDERR_FILENO + 1); /* dup2 onto itself would keep close-on-exec */
    int null = open("/dev/null", O_RDONLY);
    if (wfd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(wfd, STDOUT_FILENO) < 0 ||
        dup2(wfd, STDERR_FILENO) < 0)
        _exit(126);
    close_range(3, ~0U, 0); /* whatever the supervisor inherited or holds: libevent's, a caller's */
    char *envp[MAX_ENV + 1];
    int n = 0;
    for (char **e = environ; *e && n < MAX_ENV; e++)
        if (env_passed(*e))
            envp[n++] = *e;
    envp[n] = NULL;
    char *const argv[] = {(char *)path, (char *)"-c", (char *)config, NULL};
    execve(path, argv, envp);
    dprintf(STDERR_FILENO, "svc=postmesh pid=%d level=error event=exec_failed path=%s error=\"%s\"\n", (int)getpid(),
            path, strerror(errno));
    _exit(127);
}

pid_t cli_child_spawn(struct event_base *base, const char *path, const char *config, cli_child_started_fn fn,
                      void *arg, unsigned generation)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    struct logpipe *lp = calloc(1, sizeof *lp);
    if (!lp) {
        close(p[0]);
        close(p[1]);
        errno = ENOMEM;
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(p[1], path, config, parent);
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        free(lp);
        errno = e;
        return -1;
    }
    evutil_make_socket_nonblocking(p[0]);
    lp->bev = bufferevent_socket_new(base, p[0], BEV_OPT_CLOSE_ON_FREE);
    if (!lp->bev) {
        close(p[0]); /* the child gets EPIPE on its log lines but keeps running */
        free(lp);
        return pid;
    }
    lp->fn = fn;
    lp->arg = arg;
    lp->generation = generation;
    lp->next = pipes;
    pipes = lp;
    bufferevent_setwatermark(lp->bev, EV_READ, 0, HIGH_WATER);
    bufferevent_setcb(lp->bev, on_read, NULL, on_event, lp);
    bufferevent_enable(lp->bev, EV_READ);
    return pid;
}

int cli_child_open_pipes(void)
{
    int n = 0;
    for (struct logpipe *lp = pipes; lp; lp = lp->next)
        n++;
    return n;
}

void cli_child_close_all(void)
{
    while (pipes) {
        pipes->fn = NULL;
        forward(pipes, 1);
        free_pipe(pipes);
    }
}
