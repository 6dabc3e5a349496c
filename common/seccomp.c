/* The seccomp filters of every Postmesh process after it dropped privileges: a base every
 * process needs plus the groups its profile names (privsep.h, profiles in runas.c). What is
 * in no list kills the process (SCMP_ACT_KILL_PROCESS): a compromised process cannot exec,
 * fork, ptrace, mount, load modules, change credentials, or signal, trace or reach another
 * process. A few calls get an error instead of death where libraries probe and cope:
 * clone3 (ENOSYS: glibc falls back to clone, whose flags a filter can see), a terminal
 * query (ENOTTY), a socket of another family (EAFNOSUPPORT), a path in a process that opens
 * none (ENOENT, as in its empty chroot), kill and tgkill of another process and a clone
 * that would make a process (EPERM).
 * The lists cover libevent, ZeroMQ (its I/O threads get the filter too, TSYNC), OpenSSL,
 * libsodium, LMDB, ldns and glibc, as an strace of the integration suite showed them. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "privsep.h"
#include "runas.h"

static const char *const base[] = {
    /* memory (libsodium mlocks and un-dumps key pages) */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "mlock", "munlock", "mlock2", "membarrier",
    /* threads: creating one is clone() below */
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "exit", "exit_group", "sched_yield",
    "sched_getaffinity", "sched_getparam", "sched_getscheduler", "getcpu",
    /* libzmq re-applies its thread's (unchanged) policy when a socket's I/O thread starts after
     * the filter: harmless without CAP_SYS_NICE (no real-time class, only lowering) */
    "sched_setscheduler", "sched_setparam",
    /* identity, time, limits */
    "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "getrandom", "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "setitimer", "getitimer", "alarm", "getrlimit", "getrusage",
    "times", "sysinfo", "uname", "umask", "arch_prctl",
    /* signals (sending one is kill/tgkill below) */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack", "restart_syscall",
    /* descriptors it holds (fstat is newfstatat with AT_EMPTY_PATH in glibc; a stat in the
     * chroot tells nothing the chroot does not bound) */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
    "lseek", "fstat", "stat", "lstat", "newfstatat", "statx", "fstatfs", "statfs", "fsync", "fdatasync", "fadvise64",
    "pipe", "pipe2", "eventfd2", "getcwd",
    /* event loops */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2",
    /* sockets it holds */
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername",
    "setsockopt", "getsockopt",
    NULL,
};

/* Calls naming a path, per group. Without PM_SC_READ these answer ENOENT. */
static const char *const open_calls[] = {"open", "openat", NULL};
static const char *const look_calls[] = {"access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64",
                                         NULL};
/* utimensat/futimens: APPEND sets a message's INTERNALDATE as its file's mtime (imapd). */
static const char *const write_calls[] = {"mkdir", "mkdirat", "ftruncate", "msync", "flock", "utimensat", NULL};
static const char *const name_calls[] = {"rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat",
                                         "rmdir", NULL};
static const char *const accept_calls[] = {"accept", "accept4", NULL};
static const char *const bind_calls[] = {"bind", "listen", NULL};
/* inotify_add_watch names a path: a profile gets it only with PM_SC_READ (it reads no more
 * than the directory listing it may already make). */
static const char *const notify_calls[] = {"inotify_init1", "inotify_add_watch", "inotify_rm_watch", NULL};

/* ioctl requests: FIONREAD (libevent sizes its reads with it: the only one the integration
 * suite's strace showed) and those that only change the descriptor itself; a terminal query
 * (stdio's isatty()) is told "not a terminal". Everything else kills: TIOCSTI would type
 * into the terminal that started us. */
static const unsigned long ioctl_allowed[] = {FIONREAD, FIONBIO, FIOCLEX, FIONCLEX};
static const unsigned long ioctl_enotty[] = {TCGETS, TIOCGWINSZ, TIOCGPGRP};

/* prctl options seen in libzmq (thread names) and our own checks, and harmless queries;
 * never PR_SET_DUMPABLE (a non-dumpable process keeps its memory closed to a same-uid
 * sandbox) nor anything that changes the process's privileges. */
static const int prctl_allowed[] = {PR_SET_NAME, PR_GET_NAME, PR_GET_SECCOMP, PR_GET_NO_NEW_PRIVS, PR_GET_DUMPABLE,
                                    PR_GET_PDEATHSIG};

static const int families[] = {AF_UNIX, AF_INET, AF_INET6};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct build {
    scmp_filter_ctx ctx;
    int failed;
};

/* A rule the running libseccomp cannot express is a filter we must not load. */
static void rule(struct build *b, uint32_t action, int nr, unsigned nargs, const struct scmp_arg_cmp *args)
{
    if (nr == __NR_SCMP_ERROR)
        return; /* a name this architecture does not have */
    int rc = seccomp_rule_add_array(b->ctx, action, nr, nargs, args);
    if (rc < 0) {
        pm_log(PM_ERR, "event=privsep_error step=seccomp_rule syscall=%d error=\"%s\"", nr, strerror(-rc));
        b->failed = 1;
    }
}

static void all(struct build *b, uint32_t action, const char *const *names)
{
    for (const char *const *n = names; *n; n++)
        rule(b, action, seccomp_syscall_resolve_name(*n), 0, NULL);
}

static void arg_eq(struct build *b, uint32_t action, int nr, unsigned arg, uint64_t value)
{
    struct scmp_arg_cmp c = {arg, SCMP_CMP_EQ, value, 0};
    rule(b, action, nr, 1, &c);
}

/* The process's own signals only: kill(2) and tgkill(2) of its pid; a pid of 0 or -1 (the
 * process group, everyone) or another process is EPERM. tkill cannot tell (a bare tid). */
static void signals(struct build *b)
{
    uint64_t self = (uint64_t)getpid();
    const char *const calls[] = {"kill", "tgkill"};
    for (size_t i = 0; i < NELEM(calls); i++) {
        int nr = seccomp_syscall_resolve_name(calls[i]);
        arg_eq(b, SCMP_ACT_ALLOW, nr, 0, self);
        struct scmp_arg_cmp other = {0, SCMP_CMP_NE, self, 0};
        rule(b, SCMP_ACT_ERRNO(EPERM), nr, 1, &other);
    }
    rule(b, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tkill), 0, NULL);
}

/* Threads, never processes: clone with CLONE_THREAD. clone3 keeps its flags in memory a
 * filter cannot read, so it is ENOSYS and glibc (2.34+) retries with clone. */
static void threads(struct build *b)
{
    struct scmp_arg_cmp thread = {0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD};
    struct scmp_arg_cmp process = {0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0};
    rule(b, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thread);
    rule(b, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &process);
    rule(b, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL);
}

static void ioctls(struct build *b)
{
    for (size_t i = 0; i < NELEM(ioctl_allowed); i++)
        arg_eq(b, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, ioctl_allowed[i]);
    for (size_t i = 0; i < NELEM(ioctl_enotty); i++)
        arg_eq(b, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 1, ioctl_enotty[i]);
}

static void prctls(struct build *b)
{
    for (size_t i = 0; i < NELEM(prctl_allowed); i++)
        arg_eq(b, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 0, (uint64_t)prctl_allowed[i]);
}

/* Own limits only (getrlimit is prlimit64(0, r, NULL, &old) in glibc). */
static void limits(struct build *b)
{
    arg_eq(b, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 0, 0);
}

/* socket/socketpair of the three families we speak; any other family (netlink, packet, ...)
 * is EAFNOSUPPORT. A profile without PM_SC_SOCKET gets EACCES for socket and connect. */
static void sockets(struct build *b, unsigned allow)
{
    arg_eq(b, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 0, AF_UNIX);
    if (!(allow & PM_SC_SOCKET)) {
        rule(b, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 0, NULL);
        rule(b, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(connect), 0, NULL);
        return;
    }
    for (size_t i = 0; i < NELEM(families); i++)
        arg_eq(b, SCMP_ACT_ALLOW, SCMP_SYS(socket), 0, (uint64_t)families[i]);
    /* every other family: each value below AF_INET6 and one range above (a rule compares an
     * argument once, so "none of these three" is spelled out) */
    for (uint64_t f = 0; f <= AF_INET6; f++)
        if (f != AF_UNIX && f != AF_INET && f != AF_INET6)
            arg_eq(b, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 0, f);
    struct scmp_arg_cmp above = {0, SCMP_CMP_GT, AF_INET6, 0};
    rule(b, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, &above);
    rule(b, SCMP_ACT_ALLOW, SCMP_SYS(connect), 0, NULL);
}

/* Read-only opens: no write access, create, truncate, append or O_PATH. open(2) has its
 * flags in argument 1, openat(2) in argument 2. */
static const uint64_t open_writes = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_PATH;

static void read_only_opens(struct build *b)
{
    struct scmp_arg_cmp ro_open = {1, SCMP_CMP_MASKED_EQ, open_writes, 0};
    struct scmp_arg_cmp ro_openat = {2, SCMP_CMP_MASKED_EQ, open_writes, 0};
    rule(b, SCMP_ACT_ALLOW, SCMP_SYS(open), 1, &ro_open);
    rule(b, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, &ro_openat);
}

/* PM_SC_RESOLVE alone: read-only opens (getaddrinfo's etc/ copies, privsep.c) and every
 * other open ENOENT, as in a profile without files: one rule per write bit (a flags value
 * with several matches several rules of one action, never the read-only one). */
static void resolver_opens(struct build *b)
{
    read_only_opens(b);
    const uint64_t bits[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_PATH};
    for (size_t i = 0; i < NELEM(bits); i++) {
        struct scmp_arg_cmp w_open = {1, SCMP_CMP_MASKED_EQ, bits[i], bits[i]};
        struct scmp_arg_cmp w_openat = {2, SCMP_CMP_MASKED_EQ, bits[i], bits[i]};
        rule(b, SCMP_ACT_ERRNO(ENOENT), SCMP_SYS(open), 1, &w_open);
        rule(b, SCMP_ACT_ERRNO(ENOENT), SCMP_SYS(openat), 1, &w_openat);
    }
    all(b, SCMP_ACT_ERRNO(ENOENT), look_calls);
}

/* Files: read-only opens with PM_SC_READ, any open with PM_SC_WRITE, every path ENOENT with
 * neither; PM_SC_RESOLVE adds read-only opens to a profile that had none. */
static void files(struct build *b, unsigned allow)
{
    if (allow & PM_SC_WRITE) {
        all(b, SCMP_ACT_ALLOW, open_calls);
        all(b, SCMP_ACT_ALLOW, look_calls);
        all(b, SCMP_ACT_ALLOW, write_calls);
    } else if (allow & PM_SC_READ) {
        read_only_opens(b);
        all(b, SCMP_ACT_ALLOW, look_calls);
    } else if (allow & PM_SC_RESOLVE) {
        resolver_opens(b);
    } else {
        all(b, SCMP_ACT_ERRNO(ENOENT), open_calls);
        all(b, SCMP_ACT_ERRNO(ENOENT), look_calls);
    }
    if (allow & PM_SC_NAMES)
        all(b, SCMP_ACT_ALLOW, name_calls);
}

/* POSTMESH_SECCOMP=log|off for debugging a test build; a release build has no such switch. */
static uint32_t default_action(int *off)
{
    *off = 0;
#ifndef POSTMESH_NO_TEST_HOOKS
    const char *mode = getenv("POSTMESH_SECCOMP");
    if (mode && strcmp(mode, "off") == 0) {
        *off = 1;
        return SCMP_ACT_ALLOW;
    }
    if (mode && strcmp(mode, "log") == 0)
        return SCMP_ACT_LOG;
#endif
    return SCMP_ACT_KILL_PROCESS;
}

int pm_seccomp_install_profile(const struct pm_seccomp_profile *profile)
{
    int off;
    uint32_t deny = default_action(&off);
    if (off) {
        pm_log(PM_WARN, "event=seccomp_disabled reason=POSTMESH_SECCOMP=off");
        return 0;
    }
    struct build b = {seccomp_init(deny), 0};
    if (!b.ctx)
        return -1;
    seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_TSYNC, 1); /* every thread, ZeroMQ's included */
    all(&b, SCMP_ACT_ALLOW, base);
    signals(&b);
    threads(&b);
    ioctls(&b);
    prctls(&b);
    limits(&b);
    sockets(&b, profile->allow);
    files(&b, profile->allow);
    /* A process serving metrics accepts on the socket it bound before the drop (metrics.h);
     * without bind and listen it cannot make another one to accept on. */
    if ((profile->allow & PM_SC_ACCEPT) || pm_metrics_holds_listener())
        all(&b, SCMP_ACT_ALLOW, accept_calls);
    if (profile->allow & PM_SC_BIND)
        all(&b, SCMP_ACT_ALLOW, bind_calls);
    else if (profile->allow & PM_SC_SOURCE_PORT)
        rule(&b, SCMP_ACT_ALLOW, SCMP_SYS(bind), 0, NULL);
    if ((profile->allow & PM_SC_NOTIFY) && (profile->allow & PM_SC_READ))
        all(&b, SCMP_ACT_ALLOW, notify_calls);
    int rc = b.failed ? -EINVAL : seccomp_load(b.ctx);
    seccomp_release(b.ctx);
    if (rc < 0) {
        pm_log(PM_ERR, "event=privsep_error step=seccomp profile=%s error=\"%s\"", profile->name, strerror(-rc));
        return -1;
    }
    return 0;
}

int pm_seccomp_install(void)
{
    const struct pm_runas *auth = pm_runas_find("auth");
    return pm_seccomp_install_profile(&auth->seccomp);
}
