/* The seccomp allowlist shared by every Postmesh process after it dropped privileges.
 * Anything not listed kills the process (SCMP_ACT_KILL_PROCESS): a compromised worker cannot
 * exec, ptrace, mount, load modules or change credentials. The list covers libevent,
 * ZeroMQ (its I/O threads get the filter too, TSYNC), OpenSSL, LMDB and ldns. */
#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "privsep.h"

static const char *const allowed[] = {
    /* memory, threads, time, signals */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "membarrier", "futex", "set_robust_list",
    "get_robust_list", "rseq", "clone", "clone3", "exit", "exit_group", "sched_yield", "sched_getaffinity",
    "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
    "getrandom", "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall", "tgkill", "tkill",
    "getrlimit", "prlimit64", "setitimer", "alarm", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "uname", "prctl", "arch_prctl", "set_tid_address", "wait4", "kill", "umask", "mlock", "munlock", "mlock2",
    "getcpu", "sysinfo", "getrusage", "times", "getitimer", "sched_getparam", "sched_getscheduler", "getpriority",
    /* libzmq re-applies its thread's (unchanged) policy when a socket's I/O thread starts after
     * the filter: harmless without CAP_SYS_NICE (no real-time class, only lowering) */
    "sched_setscheduler", "sched_setparam",
    /* file descriptors and files (the chroot bounds what can be reached) */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "close_range", "dup", "dup2", "dup3",
    "fcntl", "ioctl", "lseek", "open", "openat", "creat", "stat", "fstat", "lstat", "newfstatat", "statx",
    "statfs", "fstatfs", "access", "faccessat", "faccessat2", "getdents64", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
    "fsync", "fdatasync", "sync_file_range", "ftruncate", "truncate", "flock", "fchmod", "utimensat",
    "readlink", "readlinkat", "fadvise64", "fallocate", "msync", "mincore", "pipe", "pipe2", "eventfd2",
    "sendfile",
    /* event loops */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2",
    /* sockets */
    "socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
    "recvmmsg",
    NULL,
};

int pm_seccomp_install(void)
{
    const char *mode = getenv("POSTMESH_SECCOMP");
    if (mode && strcmp(mode, "off") == 0) {
        pm_log(PM_WARN, "event=seccomp_disabled reason=POSTMESH_SECCOMP=off");
        return 0;
    }
    uint32_t deny = mode && strcmp(mode, "log") == 0 ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (!ctx)
        return -1;
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); /* every thread, ZeroMQ's included */
    for (const char *const *n = allowed; *n; n++) {
        int nr = seccomp_syscall_resolve_name(*n);
        if (nr != __NR_SCMP_ERROR)
            seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
    int rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0) {
        pm_log(PM_ERR, "event=privsep_error step=seccomp error=\"%s\"", strerror(-rc));
        return -1;
    }
    return 0;
}
