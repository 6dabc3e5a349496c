#include "outside.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allowlist.h"
#include "log.h"
#include "privchan.h"
#include "privsep.h"

#define MAX_SLOTS 8
#define ANSWER_MS 3000 /* the reader only stats and reads small local files */

enum slot_kind { SLOT_FILE = 1, SLOT_KEYS = 2 };
enum { OP_STAT = 1, OP_OPEN = 2 };

static struct {
    enum slot_kind kind;
    char path[4096];
    int dirfd; /* in the reader, opened while still root: a keys slot's directory, or the
                * directory a file slot's file is in (the file is then opened relative to
                * it, so a root-only directory above it, e.g. /root, hides nothing) */
} slots[MAX_SLOTS];
static int nslots;
static int chan = -1; /* our end of the reader's socketpair; -1: answer in-process */
static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;

static int add(enum slot_kind kind, const char *path)
{
    if (!path || !*path || nslots == MAX_SLOTS || chan >= 0)
        return -1;
    int i = pm_outside_find(path);
    if (i >= 0 && slots[i].kind == kind)
        return i;
    slots[nslots].kind = kind;
    slots[nslots].dirfd = -1; /* opened by the reader; answered in-process, by path */
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

/* What the reader (or, without one, this process) does for one request: 0 or an errno; *st
 * filled for a stat or a file, *fd_out a descriptor to hand over or -1. */
static int serve(unsigned op, unsigned slot, struct stat *st, int *fd_out)
{
    *fd_out = -1;
    if (slot >= (unsigned)nslots || (op != OP_STAT && op != OP_OPEN))
        return EINVAL;
    const char *path = slots[slot].path;
    if (slots[slot].kind == SLOT_KEYS) {
        int dfd = slots[slot].dirfd;
        if (op == OP_STAT) /* could a scan give another list? (a key file written in place too) */
            return (dfd >= 0 ? pm_allowlist_state_fd(dfd, st) : pm_allowlist_state(path, st)) < 0 ? errno : 0;
        char *text = dfd >= 0 ? pm_allowlist_scan_fd(dfd, path) : pm_allowlist_scan(path);
        int fd = text ? memfd_create("allowlist", MFD_CLOEXEC) : -1;
        size_t len = text ? strlen(text) : 0;
        if (fd >= 0 && (write(fd, text, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)) {
            close(fd);
            fd = -1;
        }
        int err = fd < 0 ? (errno ? errno : EIO) : 0;
        free(text);
        *fd_out = fd;
        return err;
    }
    int fd = -1, dfd = slots[slot].dirfd;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (op == OP_OPEN) {
        fd = dfd >= 0 ? openat(dfd, base, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, st) < 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            return err;
        }
        fcntl(fd, F_SETFL, 0); /* O_NONBLOCK only kept a FIFO from hanging the open */
    } else if ((dfd >= 0 ? fstatat(dfd, base, st, 0) : stat(path, st)) < 0) {
        return errno;
    }
    if (!S_ISREG(st->st_mode)) { /* a directory descriptor would open the way out */
        if (fd >= 0)
            close(fd);
        return EINVAL;
    }
    *fd_out = fd;
    return 0;
}

/* The stat fields a caller uses, as text in the answer's first field (privchan frames carry
 * strings). */
static void put_stat(char *dst, size_t size, const struct stat *st)
{
    snprintf(dst, size, "%u %llu %llu %lld %lld %ld", (unsigned)st->st_mode, (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
             (long)st->st_mtim.tv_nsec);
}

static int get_stat(const char *src, struct stat *st)
{
    unsigned mode;
    unsigned long long dev, ino;
    long long size, sec;
    long nsec;
    if (!src || sscanf(src, "%u %llu %llu %lld %lld %ld", &mode, &dev, &ino, &size, &sec, &nsec) != 6)
        return -1;
    memset(st, 0, sizeof *st);
    st->st_mode = mode;
    st->st_dev = dev;
    st->st_ino = ino;
    st->st_size = size;
    st->st_mtim.tv_sec = sec;
    st->st_mtim.tv_nsec = nsec;
    return 0;
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
    for (int i = 0; i < nslots; i++) {
        char dir[sizeof slots[i].path];
        snprintf(dir, sizeof dir, "%s", slots[i].path);
        if (slots[i].kind == SLOT_FILE) { /* its directory: the file itself may come and go */
            char *slash = strrchr(dir, '/');
            if (!slash)
                strcpy(dir, ".");
            else
                slash[slash == dir ? 1 : 0] = '\0'; /* "/x" -> "/", "a/b" -> "a" */
        }
        slots[i].dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
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
        struct pm_priv_msg rq;
        int rc = pm_priv_recv(s, &rq);
        if (rc == 0 || (rc < 0 && errno != EINTR && errno != EBADMSG))
            _exit(0);
        if (rc < 0)
            continue;
        struct stat st = {0};
        char text[128] = "";
        int fd;
        int err = serve(rq.op, (unsigned)rq.result, &st, &fd);
        if (!err)
            put_stat(text, sizeof text, &st);
        struct pm_priv_msg reply = {.id = rq.id, .op = rq.op, .result = err, .a = text};
        pm_priv_send_fd(s, &reply, fd);
        pm_priv_msg_clear(&rq);
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

/* One request, to the reader or answered here: 0, or -1 with errno; *fd_out a descriptor
 * or -1. */
static int ask(unsigned op, int slot, struct stat *st, int *fd_out)
{
    *fd_out = -1;
    if (slot < 0) {
        errno = EINVAL;
        return -1;
    }
    int err;
    if (chan < 0) {
        err = serve(op, (unsigned)slot, st, fd_out);
    } else {
        struct pm_priv_msg rq = {.op = op, .result = slot}, reply = {0};
        struct pollfd p = {.fd = chan, .events = POLLIN};
        pthread_mutex_lock(&chan_lock);
        int ok = pm_priv_send(chan, &rq) == 0 && poll(&p, 1, ANSWER_MS) == 1 &&
                 pm_priv_recv_fd(chan, &reply, fd_out) == 1 && (reply.result || get_stat(reply.a, st) == 0);
        pthread_mutex_unlock(&chan_lock);
        err = ok ? reply.result : EIO;
        pm_priv_msg_clear(&reply);
        if (!ok)
            pm_log(PM_ERR, "event=outside_error step=ask reason=\"reader gone or stuck\"");
    }
    if (err && *fd_out >= 0) {
        close(*fd_out);
        *fd_out = -1;
    }
    errno = err;
    return err ? -1 : 0;
}

int pm_outside_stat(int slot, struct stat *st)
{
    int fd, rc = ask(OP_STAT, slot, st, &fd);
    if (fd >= 0) /* a stat comes without one; never keep what a confused peer sent */
        close(fd);
    return rc;
}

int pm_outside_open(int slot)
{
    struct stat st;
    int fd;
    if (ask(OP_OPEN, slot, &st, &fd) < 0)
        return -1;
    if (fd < 0)
        errno = EIO;
    return fd;
}
