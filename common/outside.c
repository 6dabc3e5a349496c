#include "outside.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allowlist.h"
#include "log.h"
#include "privsep.h"

#define MAX_SLOTS 8
#define ANSWER_MS 3000 /* the reader only stats and reads small local files */

enum slot_kind { SLOT_FILE = 1, SLOT_KEYS = 2 };
enum { OP_STAT = 1, OP_OPEN = 2 };

static struct {
    enum slot_kind kind;
    char path[4096];
    int dirfd; /* in the reader, a keys slot's directory, opened while still root */
} slots[MAX_SLOTS];
static int nslots;
static int chan = -1; /* our end of the reader's socketpair; -1: answer in-process */
static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;

struct request {
    uint8_t op, slot;
};

struct answer {
    int32_t err; /* 0 or an errno */
    uint32_t mode;
    uint64_t dev, ino;
    int64_t size, mtime_sec, mtime_nsec;
};

static int add(enum slot_kind kind, const char *path)
{
    if (!path || !*path || nslots == MAX_SLOTS || chan >= 0)
        return -1;
    int i = pm_outside_find(path);
    if (i >= 0 && slots[i].kind == kind)
        return i;
    slots[nslots].kind = kind;
    snprintf(slots[nslots].path, sizeof slots[nslots].path, "%s", path);
    return nslots++;
}

int pm_outside_add_file(const char *path) { return add(SLOT_FILE, path); }
int pm_outside_add_keys(const char *dir) { return add(SLOT_KEYS, dir); }

int pm_outside_find(const char *path)
{
    for (int i = 0; i < nslots; i++)
        if (strcmp(slots[i].path, path) == 0)
            return i;
    return -1;
}

int pm_outside_running(void) { return chan >= 0; }

/* What the reader (or, without one, this process) does for one request. *fd_out is a
 * descriptor to hand over, or -1. */
static void serve(const struct request *rq, struct answer *a, int *fd_out)
{
    *fd_out = -1;
    memset(a, 0, sizeof *a);
    if (rq->slot >= nslots || (rq->op != OP_STAT && rq->op != OP_OPEN)) {
        a->err = EINVAL;
        return;
    }
    const char *path = slots[rq->slot].path;
    int dfd = slots[rq->slot].kind == SLOT_KEYS ? slots[rq->slot].dirfd : -1;
    if (slots[rq->slot].kind == SLOT_KEYS && rq->op == OP_STAT) { /* has the directory changed? */
        struct stat st;
        if ((dfd >= 0 ? fstat(dfd, &st) : stat(path, &st)) < 0) {
            a->err = errno;
            return;
        }
        a->mode = st.st_mode;
        a->dev = st.st_dev;
        a->ino = st.st_ino;
        a->size = st.st_size;
        a->mtime_sec = st.st_mtim.tv_sec;
        a->mtime_nsec = st.st_mtim.tv_nsec;
        return;
    }
    if (slots[rq->slot].kind == SLOT_KEYS) {
        char *text = dfd >= 0 ? pm_allowlist_scan_fd(dfd, path) : pm_allowlist_scan(path);
        int fd = text ? memfd_create("allowlist", MFD_CLOEXEC) : -1;
        size_t len = text ? strlen(text) : 0;
        if (fd >= 0 && (write(fd, text, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)) {
            close(fd);
            fd = -1;
        }
        a->err = fd < 0 ? (errno ? errno : EIO) : 0;
        free(text);
        *fd_out = fd;
        return;
    }
    struct stat st;
    int fd = -1;
    if (rq->op == OP_OPEN) {
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &st) < 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            a->err = errno;
            return;
        }
        fcntl(fd, F_SETFL, 0); /* O_NONBLOCK only kept a FIFO from hanging the open */
    } else if (stat(path, &st) < 0) {
        a->err = errno;
        return;
    }
    if (!S_ISREG(st.st_mode)) { /* a directory descriptor would open the way out */
        if (fd >= 0)
            close(fd);
        a->err = EINVAL;
        return;
    }
    a->mode = st.st_mode;
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    a->size = st.st_size;
    a->mtime_sec = st.st_mtim.tv_sec;
    a->mtime_nsec = st.st_mtim.tv_nsec;
    *fd_out = fd;
}

static int send_answer(int s, const struct answer *a, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = (void *)a, .iov_len = sizeof *a};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof *a ? 0 : -1;
}

/* The reader's whole world: read a few files, answer on its socket. */
static int reader_seccomp(void)
{
    static const char *const allowed[] = {
        "read", "write", "writev", "recvfrom", "recvmsg", "sendto", "sendmsg", "open", "openat", "close", "fstat", "stat", "lstat",
        "newfstatat", "statx", "getdents64", "lseek", "fcntl", "memfd_create", "brk", "mmap", "munmap", "mremap",
        "madvise", "futex", "rt_sigreturn", "rt_sigprocmask", "clock_gettime", "gettimeofday", "getpid",
        "gettid", "getuid", "geteuid", "exit", "exit_group", NULL,
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        return -1;
    for (const char *const *n = allowed; *n; n++) {
        int nr = seccomp_syscall_resolve_name(*n);
        if (nr != __NR_SCMP_ERROR)
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
    int rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
}

static _Noreturn void reader_main(int s, const char *user)
{
    int uid_was_root = geteuid() == 0;
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent)
        _exit(1);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (s != 3) {
        dup2(s, 3);
        close(s);
        s = 3;
    }
    close_range(4, ~0U, 0); /* stdio for the log, and the channel: nothing else */
    /* The keys directory may sit in a state_dir only root may enter: open it now. A directory
     * descriptor is no way out for a process that is not chrooted anyway. */
    for (int i = 0; i < nslots; i++)
        slots[i].dirfd = slots[i].kind == SLOT_KEYS ? open(slots[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    unsigned uid, gid;
    if (geteuid() == 0 && (pm_privsep_lookup(user, &uid, &gid) < 0 || setgroups(0, NULL) < 0 ||
                           setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)) {
        pm_log(PM_ERR, "event=outside_error step=setuid user=%s error=\"%s\"", user, strerror(errno));
        _exit(78);
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (uid_was_root)
        pm_allowlist_root_only();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || reader_seccomp() < 0) {
        pm_log(PM_ERR, "event=outside_error step=seccomp");
        _exit(78);
    }
    for (;;) {
        struct request rq;
        ssize_t n = recv(s, &rq, sizeof rq, 0);
        if (n == 0 || (n < 0 && errno != EINTR))
            _exit(0);
        if (n != (ssize_t)sizeof rq)
            continue;
        struct answer a;
        int fd;
        serve(&rq, &a, &fd);
        send_answer(s, &a, fd);
        if (fd >= 0)
            close(fd);
    }
}

int pm_outside_start(const char *user)
{
    /* Without root too: the service's own sandbox may read no file at all (the resolver's). */
    if (chan >= 0 || nslots == 0)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        pm_log(PM_ERR, "event=outside_error step=fork error=\"%s\"", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        reader_main(sv[1], user);
    }
    close(sv[1]);
    chan = sv[0];
    pm_log(PM_INFO, "event=outside_reader pid=%d user=%s files=%d", (int)pid, user, nslots);
    return 0;
}

/* One request to the reader; the answer and, if sent, a descriptor. */
static int ask(const struct request *rq, struct answer *a, int *fd_out)
{
    *fd_out = -1;
    if (chan < 0) {
        serve(rq, a, fd_out);
        return 0;
    }
    pthread_mutex_lock(&chan_lock);
    int rc = -1;
    if (send(chan, rq, sizeof *rq, MSG_NOSIGNAL) == (ssize_t)sizeof *rq) {
        struct pollfd p = {.fd = chan, .events = POLLIN};
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {.iov_base = a, .iov_len = sizeof *a};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        if (poll(&p, 1, ANSWER_MS) == 1 && recvmsg(chan, &mh, MSG_CMSG_CLOEXEC) == (ssize_t)sizeof *a) {
            rc = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                    memcpy(fd_out, CMSG_DATA(c), sizeof(int));
        }
    }
    pthread_mutex_unlock(&chan_lock);
    if (rc < 0)
        pm_log(PM_ERR, "event=outside_error step=ask reason=\"reader gone or stuck\"");
    return rc;
}

int pm_outside_stat(int slot, struct stat *st)
{
    struct request rq = {.op = OP_STAT, .slot = (uint8_t)slot};
    struct answer a;
    int fd;
    if (slot < 0 || ask(&rq, &a, &fd) < 0) {
        errno = EIO;
        return -1;
    }
    if (fd >= 0)
        close(fd);
    if (a.err) {
        errno = a.err;
        return -1;
    }
    memset(st, 0, sizeof *st);
    st->st_mode = a.mode;
    st->st_dev = a.dev;
    st->st_ino = a.ino;
    st->st_size = a.size;
    st->st_mtim.tv_sec = a.mtime_sec;
    st->st_mtim.tv_nsec = a.mtime_nsec;
    return 0;
}

int pm_outside_open(int slot)
{
    struct request rq = {.op = OP_OPEN, .slot = (uint8_t)slot};
    struct answer a;
    int fd;
    if (slot < 0 || ask(&rq, &a, &fd) < 0) {
        errno = EIO;
        return -1;
    }
    if (a.err || fd < 0) {
        if (fd >= 0)
            close(fd);
        errno = a.err ? a.err : EIO;
        return -1;
    }
    return fd;
}
