/* sandbox_probe: what an attacker who owns a Postmesh process would try, tried from inside
 * that process's real sandbox. It drops exactly as the service does (pm_runas_sandbox +
 * pm_privsep_drop: its user, group, chroot and seccomp profile) and then makes one attack,
 * printing what happened; an attack the filter answers by killing ends the probe with
 * SIGSYS, which the caller sees as the exit status. tests/integration/test_sandbox*.py run
 * it as root.
 *
 *   sandbox_probe STATE_DIR SERVICE ATTACK [ARG]
 *       one attack as SERVICE ("queue", ..., "auth"), chrooted below STATE_DIR; prints
 *       "attack=NAME result=allowed" or "attack=NAME result=refused errno=ENAME".
 *       With PROBE_BUS_ENDPOINT=tcp://HOST:PORT in the environment, that is the queue's and
 *       the resolver's endpoint (as in a configuration; a host name there changes the
 *       sandbox of a process that connects to it, privsep.h); PROBE_RESOLVER_ENDPOINT then
 *       sets the resolver's alone.
 *   postmesh-<service> -c CONFIG        (the probe installed under a service's name)
 *       started by `postmesh run` like that service: reports on stderr which of its
 *       descriptors 0-2 are terminals and whether it has a controlling terminal, drops as
 *       the service, then makes the attacks in $POSTMESH_TEST_PROBE ("tiocsti:1,kill:0").
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/netlink.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "privsep.h"
#include "runas.h"

static pid_t victim = -1; /* a process of the same user, outside the filter */

static long num(const char *arg) { return arg ? strtol(arg, NULL, 10) : 0; }

static int a_kill_other(const char *arg) { (void)arg; return kill(victim, 0); }
static int a_kill_self(const char *arg) { (void)arg; return kill(getpid(), 0); }
static int a_kill_group(const char *arg) { (void)arg; return kill(0, 0); }
static int a_kill_all(const char *arg) { (void)arg; return kill(-1, 0); }
static int a_tgkill_other(const char *arg) { (void)arg; return (int)syscall(SYS_tgkill, victim, victim, 0); }
static int a_ptrace(const char *arg) { (void)arg; return (int)ptrace(PTRACE_ATTACH, victim, NULL, NULL); }
static int a_setuid(const char *arg) { (void)arg; return setuid(0); }
static int a_dumpable(const char *arg) { (void)arg; return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); }
static int a_fork_syscall(const char *arg)
{
    (void)arg;
    long pid = syscall(SYS_fork);
    if (pid == 0)
        _exit(0);
    return pid < 0 ? -1 : 0;
}

static int a_fork(const char *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    return pid < 0 ? -1 : 0;
}

static void *idle(void *arg) { return arg; }

static int a_thread(const char *arg)
{
    (void)arg;
    pthread_t t;
    int rc = pthread_create(&t, NULL, idle, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pthread_join(t, NULL) == 0 ? 0 : -1;
}

static int open_socket(int family, int type, int proto)
{
    int fd = socket(family, type, proto);
    if (fd >= 0)
        close(fd);
    return fd < 0 ? -1 : 0;
}

static int a_socket_netlink(const char *arg) { (void)arg; return open_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }
static int a_socket_packet(const char *arg) { (void)arg; return open_socket(AF_PACKET, SOCK_DGRAM, 0); }
static int a_socket_inet(const char *arg) { (void)arg; return open_socket(AF_INET, SOCK_STREAM, 0); }

static int a_socket_udp(const char *arg) { (void)arg; return open_socket(AF_INET, SOCK_DGRAM, 0); }

/* A path read (one byte) or opened for writing (created if missing). */
static int a_open_read(const char *arg)
{
    int fd = open(arg ? arg : "/", O_RDONLY | O_CLOEXEC);
    char c;
    int rc = fd >= 0 && read(fd, &c, 1) >= 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

static int a_open_write(const char *arg)
{
    int fd = open(arg ? arg : "/x", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    return fd < 0 ? -1 : 0;
}

/* Root's etc/ (the resolver copies) moved away, for a hosts file of our own in its place. */
static int a_rename_etc(const char *arg)
{
    (void)arg;
    return rename("/etc", "/etc.moved");
}

/* A host name as ZeroMQ resolves one for a connect (IPv4, no AI_ADDRCONFIG); the first
 * address on stderr. A failure is EHOSTUNREACH (getaddrinfo has no errno of its own). */
static int a_resolve(const char *arg)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(arg ? arg : "localhost", NULL, &hints, &res);
    if (rc != 0) {
        dprintf(STDERR_FILENO, "probe resolve error=\"%s\"\n", gai_strerror(rc));
        errno = EHOSTUNREACH;
        return -1;
    }
    char text[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text, sizeof text);
    dprintf(STDERR_FILENO, "probe resolve address=%s\n", text);
    freeaddrinfo(res);
    return 0;
}

static int a_bind(const char *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc;
}

/* A listening socket made after the drop: nobody may, the resolver's source-port bind
 * (PM_SC_SOURCE_PORT) included. */
static int a_listen(const char *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc == 0)
        rc = listen(fd, 1);
    close(fd);
    return rc;
}

static int a_connect(const char *arg)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)num(arg)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc;
}

static int a_tiocsti(const char *arg)
{
    char c = '#';
    return ioctl((int)num(arg), TIOCSTI, &c);
}

static int a_tcgets(const char *arg)
{
    struct termios t;
    return ioctl((int)num(arg), TCGETS, &t);
}

static int a_fionread(const char *arg)
{
    (void)arg;
    int p[2], n = 0;
    if (pipe(p) < 0)
        return -1;
    int rc = ioctl(p[0], FIONREAD, &n);
    close(p[0]);
    close(p[1]);
    return rc;
}

static int a_exec(const char *arg)
{
    (void)arg;
    char *const argv[] = {"true", NULL}, *const envp[] = {NULL};
    return execve("/bin/true", argv, envp);
}

/* Another process's memory: /proc/<pid>/mem at the start of its first readable mapping. */
static int a_procmem(const char *arg)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%ld/maps", num(arg));
    FILE *maps = fopen(path, "r");
    if (!maps)
        return -1;
    unsigned long start = 0;
    while (fgets(line, sizeof line, maps))
        if (sscanf(line, "%lx-%*x r", &start) == 1 && strstr(line, " r"))
            break;
    fclose(maps);
    snprintf(path, sizeof path, "/proc/%ld/mem", num(arg));
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    char byte;
    ssize_t n = pread(fd, &byte, 1, (off_t)start);
    close(fd);
    return n == 1 ? 0 : -1;
}

/* inotify: only a profile with PM_SC_NOTIFY (imapd's IDLE) may make an instance. With a
 * path, a watch on it too (added and removed, as IDLE does on a folder's new/ and cur/). */
static int a_inotify(const char *arg)
{
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (arg) {
        int wd = inotify_add_watch(fd, arg, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
        rc = wd < 0 ? -1 : inotify_rm_watch(fd, wd);
    }
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

static const struct attack {
    const char *name;
    int (*run)(const char *arg);
} attacks[] = {
    {"kill_other", a_kill_other}, {"kill_self", a_kill_self}, {"kill_group", a_kill_group},
    {"kill_all", a_kill_all}, {"tgkill_other", a_tgkill_other}, {"ptrace", a_ptrace},
    {"setuid", a_setuid}, {"dumpable", a_dumpable}, {"fork", a_fork}, {"fork_syscall", a_fork_syscall},
    {"thread", a_thread}, {"socket_netlink", a_socket_netlink}, {"socket_packet", a_socket_packet},
    {"socket_inet", a_socket_inet}, {"socket_udp", a_socket_udp}, {"open_read", a_open_read},
    {"open_write", a_open_write}, {"rename_etc", a_rename_etc}, {"resolve", a_resolve}, {"bind", a_bind}, {"listen", a_listen}, {"connect", a_connect},
    {"tiocsti", a_tiocsti}, {"tcgets", a_tcgets}, {"fionread", a_fionread}, {"exec", a_exec}, {"procmem", a_procmem},
    {"inotify", a_inotify},
};

static void report(const char *name, int rc, int err)
{
    if (rc == 0)
        dprintf(STDERR_FILENO, "probe attack=%s result=allowed\n", name);
    else
        dprintf(STDERR_FILENO, "probe attack=%s result=refused errno=%s\n", name, strerrorname_np(err));
}

static int run_attack(const char *spec)
{
    char name[64];
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    snprintf(name, sizeof name, "%.*s", (int)len, spec);
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++)
        if (strcmp(attacks[i].name, name) == 0) {
            errno = 0;
            int rc = attacks[i].run(colon ? colon + 1 : NULL);
            report(name, rc, errno);
            return 0;
        }
    dprintf(STDERR_FILENO, "probe unknown attack %s\n", name);
    return -1;
}

/* Before the drop: a process of the same user, for the attacks on "another process". */
static void start_victim(const char *user)
{
    unsigned uid, gid;
    int p[2];
    if (pm_privsep_lookup(user, &uid, &gid) < 0 || pipe(p) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (geteuid() == 0 && (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0))
            _exit(1);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* cleared by setuid */
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char c;
    close(p[1]);
    if (pid > 0 && read(p[0], &c, 1) == 1)
        victim = pid;
    close(p[0]);
}

static void report_terminal(void)
{
    for (int fd = 0; fd <= 2; fd++)
        dprintf(STDERR_FILENO, "probe fd=%d tty=%s\n", fd, isatty(fd) ? "yes" : "no");
    int t = open("/dev/tty", O_RDWR | O_NOCTTY);
    dprintf(STDERR_FILENO, "probe ctty=%s\n", t >= 0 ? "yes" : "no");
    if (t >= 0)
        close(t);
}

/* Installed as postmesh-<service> and started by the supervisor. */
static int as_service(const char *service, int argc, char **argv)
{
    struct pm_config cfg;
    char err[1024], dir[4096];
    if (argc != 3 || strcmp(argv[1], "-c") != 0 || pm_config_load(argv[2], &cfg, err, sizeof err) < 0) {
        dprintf(STDERR_FILENO, "probe: usage: postmesh-%s -c CONFIG (%s)\n", service, argc == 3 ? err : "");
        return 2;
    }
    pm_log_init(service);
    report_terminal();
    struct pm_sandbox sb;
    pm_privsep_note_endpoints(&cfg); /* as pm_privsep_preflight does for a service */
    if (pm_runas_sandbox(&cfg, service, &sb, dir, sizeof dir) < 0 || pm_privsep_drop(&sb) < 0)
        return 1;
    const char *list = getenv("POSTMESH_TEST_PROBE");
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", list ? list : "");
    for (char *save, *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save))
        run_attack(a);
    dprintf(STDERR_FILENO, "probe done\n");
    for (;;)
        pause(); /* the supervisor stops us */
}

int main(int argc, char **argv)
{
    const char *self = basename(argv[0]);
    if (strncmp(self, "postmesh-", 9) == 0)
        return as_service(self + 9, argc, argv);
    if (argc < 4) {
        fprintf(stderr, "usage: sandbox_probe STATE_DIR SERVICE ATTACK [ARG]\n");
        return 2;
    }
    struct pm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.state_dir = argv[1];
    char *endpoint = getenv("PROBE_BUS_ENDPOINT");
    cfg.queue.endpoint = cfg.resolver.endpoint = endpoint;
    cfg.queue.endpoints = (struct pm_strlist){endpoint ? &endpoint : NULL, endpoint ? 1 : 0};
    if (getenv("PROBE_RESOLVER_ENDPOINT"))
        cfg.resolver.endpoint = getenv("PROBE_RESOLVER_ENDPOINT");
    pm_privsep_note_endpoints(&cfg);
    pm_log_init("probe");
    char dir[4096], spec[256];
    struct pm_sandbox sb;
    if (pm_runas_sandbox(&cfg, argv[2], &sb, dir, sizeof dir) < 0) {
        fprintf(stderr, "probe: no runas row %s\n", argv[2]);
        return 2;
    }
    start_victim(sb.user);
    if (pm_privsep_drop(&sb) < 0)
        return 1;
    snprintf(spec, sizeof spec, "%s%s%s", argv[3], argc > 4 ? ":" : "", argc > 4 ? argv[4] : "");
    return run_attack(spec) < 0 ? 2 : 0;
}
