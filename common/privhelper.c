/* The helper processes (privhelper.h): the helper's own loop and privilege drop, and the
 * parent's side, which forwards questions, passes answers back to the sandbox by id, caps
 * what is in flight, replaces a dead or stuck helper, and hands over declared files. */
#include "privhelper.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "filestamp.h"
#include "heldfile.h"
#include "log.h"
#include "privsep.h"

#define HELPER_FD 3
#define RESTART_INTERVAL 1.0 /* seconds between two starts of a helper that keeps dying */
#define DEFAULT_TIMEOUT_MS 10000 /* a password hash takes milliseconds; this is a stuck helper */

struct pending {
    uint32_t seq;        /* the id the helper sees */
    uint32_t sandbox_id; /* the id the sandbox used */
    uint32_t op;
    unsigned gen;
    double deadline;
    struct pending *next;
};

struct sent_file {
    const char *path;
    struct pm_filestamp stamp; /* what the helper reads now */
    int known;
};

struct pm_priv_helper {
    const struct pm_helper_spec *spec;
    pid_t pid;
    int fd; /* -1 while no helper runs */
    uint32_t seq;
    double started;
    struct pending *head, *tail; /* in the order asked: the helper answers in that order */
    int npending;
    struct sent_file files[PM_PRIV_HELPER_MAX_FILES];
    int nfiles;
};

/* ------------------------------------------------------------------ the helper process */

/* Root only: the declared user, no supplementary groups, and no capability in any set
 * (setresuid away from 0 empties the permitted and effective sets; the bounding,
 * inheritable and ambient sets are emptied here too). */
static int drop(const struct pm_helper_spec *spec)
{
    if (!spec->user || geteuid() != 0)
        return 0;
    unsigned uid, gid;
    if (pm_privsep_lookup(spec->user, &uid, &gid) < 0) {
        pm_log(PM_ERR, "event=helper_error helper=%s step=drop reason=\"no such user (run scripts/install-deps.sh)\" "
               "user=%s", spec->name, spec->user);
        return -1;
    }
    pid_t parent = getppid();
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
            break; /* past the last capability this kernel knows */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 || setuid(0) == 0) {
        pm_log(PM_ERR, "event=helper_error helper=%s step=drop user=%s error=\"%s\"", spec->name, spec->user,
               strerror(errno));
        return -1;
    }
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[2];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &hdr, none) < 0) {
        pm_log(PM_ERR, "event=helper_error helper=%s step=capset error=\"%s\"", spec->name, strerror(errno));
        return -1;
    }
    /* A credential change clears "die with the parent": set it again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(1);
    pm_log(PM_INFO, "event=helper_dropped helper=%s user=%s uid=%u", spec->name, spec->user, uid);
    return 0;
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
    /* Keep only stdio and the channel: no listening socket, no sandbox channel. */
    if (fd != HELPER_FD) {
        dup2(fd, HELPER_FD);
        close(fd);
    }
    fcntl(HELPER_FD, F_SETFD, FD_CLOEXEC);
    close_range(HELPER_FD + 1, ~0U, 0);
    /* Still root: open what only root may read, then become nobody in particular. */
    for (const char *const *f = spec->files; f && *f; f++) {
        int held = pm_heldfile_open_path(*f);
        pm_heldfile_set(*f, held, held < 0 ? errno : 0);
    }
    if (drop(spec) < 0)
        _exit(78);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || pm_seccomp_install() < 0) {
        pm_log(PM_ERR, "event=helper_error helper=%s step=sandbox", spec->name);
        _exit(78);
    }
    void *state = spec->open(spec->arg);
    for (;;) {
        struct pm_priv_msg req;
        int passed;
        int rc = pm_priv_recv_fd(HELPER_FD, &req, &passed);
        if (rc == 0 || (rc < 0 && errno != EINTR))
            break;
        if (rc < 0)
            continue;
        if (req.op == PM_PRIV_HELD_FILE) { /* the parent opened a changed file for us */
            int declared = 0;
            for (const char *const *f = spec->files; f && *f; f++)
                declared |= strcmp(*f, req.a) == 0;
            if (declared)
                pm_heldfile_set(req.a, passed, req.result < 0 ? -req.result : EBADF);
            else if (passed >= 0)
                close(passed);
            pm_priv_msg_clear(&req);
            continue;
        }
        if (passed >= 0)
            close(passed);
        struct pm_priv_msg reply = {.id = req.id, .op = req.op, .result = -1};
        spec->answer(&req, &reply, state);
        pm_priv_msg_clear(&req);
        pm_priv_send(HELPER_FD, &reply);
        pm_priv_msg_clear(&reply);
    }
    _exit(0);
}

/* ------------------------------------------------------------------ the parent's side */

static int spawn(struct pm_priv_helper *h)
{
    int sv[2];
    h->started = pm_mono_s();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    /* What the new helper will open itself: it needs the files again only after a change. */
    for (int i = 0; i < h->nfiles; i++)
        h->files[i].known = pm_filestamp_get(h->files[i].path, &h->files[i].stamp) == 0;
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
    /* Never blocks: a full channel means the helper is far behind, and the question is refused. */
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
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
    for (const char *const *f = spec->files; f && *f && h->nfiles < PM_PRIV_HELPER_MAX_FILES; f++)
        h->files[h->nfiles++].path = *f;
    if (spawn(h) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

static int max_pending(const struct pm_priv_helper *h)
{
    return h->spec->max_pending > 0 ? h->spec->max_pending : PM_PRIV_HELPER_MAX_PENDING;
}

static int timeout_ms(const struct pm_priv_helper *h)
{
    return h->spec->timeout_ms > 0 ? h->spec->timeout_ms : DEFAULT_TIMEOUT_MS;
}

static void answer_sandbox(int sandbox_fd, uint32_t id, uint32_t op, int32_t result, char *a, char *b)
{
    struct pm_priv_msg m = {.id = id, .op = op, .result = result, .a = a, .b = b};
    if (sandbox_fd >= 0 && pm_priv_send(sandbox_fd, &m) < 0)
        pm_log(PM_WARN, "event=sandbox_answer_dropped op=%u error=\"%s\"", (unsigned)op, strerror(errno));
}

/* Every question in flight: answered -1 to the sandbox it came from (if it still runs). */
static void fail_pending(struct pm_priv_helper *h, pm_priv_sandbox_fd_fn fd_of, void *arg)
{
    while (h->head) {
        struct pending *p = h->head;
        h->head = p->next;
        answer_sandbox(fd_of(p->gen, arg), p->sandbox_id, p->op, -1, NULL, NULL);
        free(p);
    }
    h->tail = NULL;
    h->npending = 0;
}

static void lost(struct pm_priv_helper *h, const char *why)
{
    pm_log(PM_ERR, "event=helper_lost helper=%s pid=%d reason=%s", h->spec->name, (int)h->pid, why);
    if (strcmp(why, "timeout") == 0)
        kill(h->pid, SIGKILL); /* stuck; the supervisor's waitpid reaps it */
    close(h->fd);
    h->fd = -1;
}

/* A helper runs (started again if it died over a second ago)? */
static int running(struct pm_priv_helper *h)
{
    return h->fd >= 0 || (pm_mono_s() - h->started >= RESTART_INTERVAL && spawn(h) == 0);
}

/* A declared file changed since the helper opened it: open it again, for the helper. The
 * parent opens it (root), never reads it. */
static void sync_files(struct pm_priv_helper *h)
{
    for (int i = 0; i < h->nfiles && h->fd >= 0; i++) {
        struct sent_file *f = &h->files[i];
        struct pm_filestamp now;
        if (pm_filestamp_get(f->path, &now) < 0 || (f->known && pm_filestamp_equal(&now, &f->stamp)))
            continue;
        int fd = now.exists ? pm_heldfile_open_path(f->path) : -1;
        int err = fd >= 0 ? 0 : now.exists ? errno : ENOENT;
        if (fd >= 0)
            pm_filestamp_fd(fd, &now); /* exactly what the helper will read */
        struct pm_priv_msg m = {.op = PM_PRIV_HELD_FILE, .result = -err, .a = (char *)f->path};
        if (pm_priv_send_fd(h->fd, &m, fd) == 0) {
            f->stamp = now;
            f->known = 1;
        }
        if (fd >= 0)
            close(fd);
    }
}

static uint32_t next_seq(struct pm_priv_helper *h) { return ++h->seq ? h->seq : ++h->seq; }

void pm_priv_helper_forward(struct pm_priv_helper *h, const struct pm_priv_msg *req, unsigned gen,
                            pm_priv_sandbox_fd_fn fd_of, void *arg)
{
    int sandbox_fd = fd_of(gen, arg);
    if (h->npending >= max_pending(h)) {
        answer_sandbox(sandbox_fd, req->id, req->op, PM_PRIV_BUSY, NULL, NULL);
        return;
    }
    if (!running(h)) {
        answer_sandbox(sandbox_fd, req->id, req->op, -1, NULL, NULL);
        return;
    }
    sync_files(h);
    struct pending *p = calloc(1, sizeof *p);
    struct pm_priv_msg m = *req;
    m.id = next_seq(h);
    if (!p || pm_priv_send(h->fd, &m) < 0) {
        int full = p && (errno == EAGAIN || errno == EWOULDBLOCK);
        free(p);
        if (!full && h->fd >= 0) {
            lost(h, "send");
            fail_pending(h, fd_of, arg);
        }
        answer_sandbox(sandbox_fd, req->id, req->op, full ? PM_PRIV_BUSY : -1, NULL, NULL);
        return;
    }
    *p = (struct pending){.seq = m.id, .sandbox_id = req->id, .op = req->op, .gen = gen,
                          .deadline = pm_mono_s() + timeout_ms(h) / 1000.0};
    if (h->tail)
        h->tail->next = p;
    else
        h->head = p;
    h->tail = p;
    h->npending++;
}

/* Takes the question answered by seq out of the list (NULL if none: a late answer). */
static struct pending *take(struct pm_priv_helper *h, uint32_t seq)
{
    struct pending *prev = NULL;
    for (struct pending *p = h->head; p; prev = p, p = p->next) {
        if (p->seq != seq)
            continue;
        if (prev)
            prev->next = p->next;
        else
            h->head = p->next;
        if (h->tail == p)
            h->tail = prev;
        h->npending--;
        return p;
    }
    return NULL;
}

void pm_priv_helper_deliver(struct pm_priv_helper *h, pm_priv_sandbox_fd_fn fd_of, void *arg)
{
    while (h->fd >= 0) {
        struct pm_priv_msg got;
        int rc = pm_priv_recv(h->fd, &got);
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (rc <= 0) {
            lost(h, rc == 0 ? "eof" : "recv");
            fail_pending(h, fd_of, arg);
            return;
        }
        struct pending *p = take(h, got.id);
        if (p)
            answer_sandbox(fd_of(p->gen, arg), p->sandbox_id, p->op, got.result, got.a, got.b);
        free(p);
        pm_priv_msg_clear(&got);
    }
}

int pm_priv_helper_timeout_ms(const struct pm_priv_helper *h)
{
    if (!h->head)
        return -1;
    double left = h->head->deadline - pm_mono_s();
    return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

void pm_priv_helper_expire(struct pm_priv_helper *h, pm_priv_sandbox_fd_fn fd_of, void *arg)
{
    if (!h->head || pm_mono_s() < h->head->deadline)
        return;
    if (h->fd >= 0)
        lost(h, "timeout");
    fail_pending(h, fd_of, arg);
}

int pm_priv_helper_pending(const struct pm_priv_helper *h) { return h->npending; }

int pm_priv_helper_fd(const struct pm_priv_helper *h) { return h->fd; }

/* One synchronous attempt: 1 answered, 0 no answer (helper dropped). */
static int round_trip(struct pm_priv_helper *h, const struct pm_priv_msg *req, struct pm_priv_msg *reply,
                      int timeout_ms)
{
    struct pm_priv_msg m = *req;
    m.id = next_seq(h);
    if (pm_priv_send(h->fd, &m) < 0) {
        lost(h, "send");
        return 0;
    }
    double deadline = pm_mono_s() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - pm_mono_s()) * 1000);
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
        if (rc < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
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
    if (h->npending)
        return; /* their answers would be taken for ours */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!running(h))
            return;
        sync_files(h);
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
    while (h->head) {
        struct pending *p = h->head;
        h->head = p->next;
        free(p);
    }
    free(h);
}
