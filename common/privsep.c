/* Privilege separation (privsep.h): becoming a service's user in its chroot, the refusal to
 * run without root, the ownership of the state a service's user must reach, and what a
 * chroot holds so a host name on the bus resolves inside it. The seccomp profiles
 * themselves are seccomp.c's. */
#include "privsep.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "runas.h"

int pm_privsep_lookup(const char *user, unsigned *uid, unsigned *gid)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || !res)
        return -1;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

static int lookup_group(const char *group, unsigned *gid)
{
    struct group gr, *res = NULL;
    char buf[16384];
    if (getgrnam_r(group, &gr, buf, sizeof buf, &res) != 0 || !res)
        return -1;
    *gid = gr.gr_gid;
    return 0;
}

int pm_privsep_mkdirs(const char *path, unsigned mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(buf, (mode_t)mode);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST ? -1 : 0;
}

int pm_privsep_is_dir(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ trees of state */
/* nftw has no argument for its callback: the walk's target, set by the caller. */
static struct {
    uid_t uid;
    gid_t gid;
    int share; /* 1: fix the group and its bits only (shared tree), 0: owner and group */
    size_t toplen;
} walk;

#define RESOLVER_DIR "etc" /* below a chroot: where glibc looks for its files */

/* In a shared tree (the mail store), root's etc/ and what root owns in it are the resolver
 * files pm_privsep_drop puts there (see below): they stay root's and read-only. */
static int resolver_entry(const char *path, const struct stat *st)
{
    const char *rel = path + walk.toplen;
    size_t n = sizeof "/" RESOLVER_DIR - 1;
    return walk.share && st->st_uid == 0 && strncmp(rel, "/" RESOLVER_DIR, n) == 0 && (rel[n] == '/' || !rel[n]);
}

static int fix_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (ftw->level == 0 || flag == FTW_NS || S_ISLNK(st->st_mode) || resolver_entry(path, st))
        return 0; /* the top is a chroot (pm_privsep_drop's); a symlink is never followed nor changed */
    uid_t uid = walk.share && st->st_uid != 0 ? st->st_uid : walk.uid;
    if ((st->st_uid != uid || st->st_gid != walk.gid) && lchown(path, uid, walk.gid) < 0)
        pm_log(PM_WARN, "event=chown_failed path=%s error=\"%s\"", path, strerror(errno));
    if (walk.share && (S_ISDIR(st->st_mode) || S_ISREG(st->st_mode))) {
        /* The group gets what the owner has, read and write (and search): a Maildir written
         * by delivery is renamed and deleted by pop3d. */
        mode_t want = (st->st_mode & 07777) | ((st->st_mode & (S_IRUSR | S_IWUSR | S_IXUSR)) >> 3);
        if (want != (st->st_mode & 07777) && chmod(path, want) < 0)
            pm_log(PM_WARN, "event=chmod_failed path=%s error=\"%s\"", path, strerror(errno));
    }
    return 0;
}

static int walk_tree(const char *path, uid_t uid, gid_t gid, int share)
{
    walk.uid = uid;
    walk.gid = gid;
    walk.share = share;
    walk.toplen = strlen(path);
    return nftw(path, fix_entry, 32, FTW_PHYS);
}

int pm_privsep_chown_tree(const char *path, const char *user)
{
    unsigned uid, gid;
    if (geteuid() != 0)
        return 0;
    if (pm_privsep_lookup(user, &uid, &gid) < 0) {
        pm_log(PM_ERR, "event=privsep_error reason=\"no such user (run scripts/install-deps.sh)\" user=%s", user);
        return -1;
    }
    return walk_tree(path, uid, gid, 0);
}

int pm_privsep_share_tree(const char *path, const char *user, const char *group)
{
    unsigned uid, gid, gid_ignored;
    if (geteuid() != 0)
        return 0;
    if (pm_privsep_lookup(user, &uid, &gid_ignored) < 0 || lookup_group(group, &gid) < 0) {
        pm_log(PM_ERR, "event=privsep_error reason=\"no such user or group (run scripts/install-deps.sh)\" "
               "user=%s group=%s", user, group);
        return -1;
    }
    return walk_tree(path, uid, gid, 1);
}

/* ------------------------------------------------------------------ host names on the bus */
/* In containers every service reaches the bus by name ("tcp://queue:7701"). ZeroMQ resolves
 * that name with glibc's getaddrinfo in its I/O thread on every connect and reconnect (a
 * restarted queue container comes back with a new address, found only because ZeroMQ asks
 * again), so the resolving happens inside the sandbox. Two ways were weighed:
 *  - resolving outside (the parent or outside.c's reader) and connecting by address would
 *    need ZeroMQ's reconnect replaced by our own (a socket monitor, re-resolve, disconnect,
 *    connect) in bus.c and every client, and CurveZMQ's server key is found by the endpoint
 *    the client names;
 *  - giving glibc what it reads: the chroot gets etc/ with root's read-only copies of hosts
 *    and resolv.conf and our own nsswitch.conf ("hosts: files dns": glibc 2.34+ has both
 *    modules in libc.so, nothing is loaded), and the profile read-only opens (PM_SC_RESOLVE).
 *    The chroot (empty but for those three files; the store for delivery, which opens files
 *    anyway) bounds what such an open can reach. Everything else getaddrinfo does, a
 *    connecting profile had already: UDP (and TCP) sockets to the name servers, newfstatat
 *    (resolv.conf changes), a UDP connect to sort several answers; its netlink probe is
 *    refused (EAFNOSUPPORT) and glibc then assumes both families; host.conf and gai.conf are
 *    absent (ENOENT: glibc's defaults). (strace of getaddrinfo in such a chroot.)
 * The second is small and leaves ZeroMQ's own re-resolution alone: it is the one. Only a
 * process whose row connects to an endpoint that names a host gets any of it; with IP
 * literals profile and chroot are what they were. */
static unsigned named; /* PM_CONNECTS_* whose endpoints name a host */

int pm_privsep_endpoint_names_host(const char *endpoint)
{
    if (!endpoint || strncmp(endpoint, "tcp://", 6) != 0)
        return 0;
    const char *addr = endpoint + 6, *semi = strrchr(addr, ';'); /* "tcp://source;host:port" */
    if (semi)
        addr = semi + 1;
    const char *colon = strrchr(addr, ':');
    size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
    char host[256];
    if (len >= sizeof host)
        return 1;
    memcpy(host, addr, len);
    host[len] = '\0';
    char *h = host;
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h[len - 1] = '\0';
        h++;
    }
    char *zone = strchr(h, '%'); /* fe80::1%eth0 */
    if (zone)
        *zone = '\0';
    unsigned char buf[16];
    return !(strcmp(h, "*") == 0 || inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1);
}

void pm_privsep_note_endpoints(const struct pm_config *cfg)
{
    named = 0;
    for (int i = 0; i < cfg->queue.endpoints.n; i++)
        if (pm_privsep_endpoint_names_host(cfg->queue.endpoints.v[i]))
            named |= PM_CONNECTS_QUEUE;
    if (pm_privsep_endpoint_names_host(cfg->queue.endpoint))
        named |= PM_CONNECTS_QUEUE;
    if (pm_privsep_endpoint_names_host(cfg->resolver.endpoint))
        named |= PM_CONNECTS_RESOLVER;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One file into etc/ (dfd), root's and 0444, written under a temporary name and renamed: the
 * empty chroot is shared by services starting at once, none may read half a copy. */
static int put_file(int dfd, const char *name, const char *data, size_t len)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".%s.%ld", name, (long)getpid());
    unlinkat(dfd, tmp, 0);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (fd < 0)
        return -1;
    int ok = write_all(fd, data, len) == 0 && fchown(fd, 0, 0) == 0 && fchmod(fd, 0444) == 0;
    int err = errno;
    close(fd);
    if (!ok || renameat(dfd, tmp, dfd, name) < 0) {
        err = ok ? errno : err;
        unlinkat(dfd, tmp, 0);
        errno = err;
        return -1;
    }
    return 0;
}

#define RESOLVER_FILE_MAX (1 << 20)

/* /etc/<name> copied into etc/; a file the system lacks is removed, so glibc's default for
 * it applies inside as it does outside. */
static int copy_file(int dfd, const char *name)
{
    char src[64];
    snprintf(src, sizeof src, "/etc/%s", name);
    int fd = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            return -1;
        return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    }
    char *buf = malloc(RESOLVER_FILE_MAX);
    size_t len = 0;
    ssize_t n = 0;
    while (buf && len < RESOLVER_FILE_MAX && (n = read(fd, buf + len, RESOLVER_FILE_MAX - len)) > 0)
        len += (size_t)n;
    int rc = -1;
    if (buf && n >= 0 && len < RESOLVER_FILE_MAX)
        rc = put_file(dfd, name, buf, len);
    else if (buf && n >= 0)
        errno = EFBIG;
    free(buf);
    close(fd);
    return rc;
}

static const char *const resolver_files[] = {"hosts", "resolv.conf", "nsswitch.conf"};

/* etc/ of the chroot (cfd) as root's, 0755; refused when it is anything else (a symlink, a
 * directory the sandboxed users could write: a mail domain's). The descriptor, or -1. */
static int open_resolver_dir(int cfd, int create)
{
    if (create && mkdirat(cfd, RESOLVER_DIR, 0755) < 0 && errno != EEXIST)
        return -1;
    int dfd = openat(cfd, RESOLVER_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dfd < 0 || fstat(dfd, &st) < 0)
        return -1;
    if (st.st_uid != 0) {
        close(dfd);
        errno = EEXIST;
        return -1;
    }
    if ((st.st_mode & 07777) != 0755 && fchmod(dfd, 0755) < 0) {
        close(dfd);
        return -1;
    }
    return dfd;
}

static int install_resolver_files(int cfd, const char *dir)
{
    static const char nsswitch[] = "hosts: files dns\n"; /* the system's may name modules the chroot lacks */
    int dfd = open_resolver_dir(cfd, 1);
    int rc = dfd < 0 ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < 2; i++)
        rc = copy_file(dfd, resolver_files[i]);
    if (rc == 0)
        rc = put_file(dfd, resolver_files[2], nsswitch, sizeof nsswitch - 1);
    if (rc < 0)
        pm_log(PM_ERR, "event=privsep_error step=resolver_files path=%s/" RESOLVER_DIR " error=\"%s\"%s", dir,
               strerror(errno), errno == EEXIST ? " reason=\"not root's: a mail domain named etc?\"" : "");
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* With no host name on the bus, the copies an earlier configuration needed go (only ours:
 * root's etc/, our three names, and the directory if that left it empty). */
static void remove_resolver_files(int cfd)
{
    int dfd = openat(cfd, RESOLVER_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (dfd < 0)
        return;
    if (fstat(dfd, &st) == 0 && st.st_uid == 0) {
        for (size_t i = 0; i < sizeof resolver_files / sizeof *resolver_files; i++)
            unlinkat(dfd, resolver_files[i], 0);
        unlinkat(cfd, RESOLVER_DIR, AT_REMOVEDIR);
    }
    close(dfd);
}

/* ------------------------------------------------------------------ the drop */
/* The chroot directory, entered through a descriptor so a symlink swapped in at the last
 * moment is refused, not followed. It stays root's: a sandboxed user who owned its root
 * could chmod it open to every local user. A profile that writes there gets it through the
 * group. Leaves the process chrooted with "/" as its working directory. */
static int enter_chroot(const char *dir, gid_t gid, int writable, int shared, int names)
{
    if (pm_privsep_mkdirs(dir, 0750) < 0) {
        pm_log(PM_ERR, "event=privsep_error step=mkdir path=%s error=\"%s\"", dir, strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        pm_log(PM_ERR, "event=privsep_error step=chroot path=%s error=\"%s\" reason=\"not a directory (or a symlink)\"",
               dir, strerror(errno));
        return -1;
    }
    int rc = -1;
    /* A store shared through a group is sticky while a host name is on the bus, and so is a
     * writable chroot of one service that resolves names in it (the mta's): the group may
     * then not rename root's etc/ away and put its own hosts file in its place. */
    mode_t mode = writable ? ((shared && named) || names ? 01770 : 0770) : 0755;
    if (fchown(fd, 0, writable ? gid : 0) < 0 || fchmod(fd, mode) < 0) {
        pm_log(PM_ERR, "event=privsep_error step=chroot_owner path=%s error=\"%s\"", dir, strerror(errno));
        goto out;
    }
    if (names && install_resolver_files(fd, dir) < 0)
        goto out; /* logged */
    if (!named)
        remove_resolver_files(fd);
    if (fchdir(fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
        pm_log(PM_ERR, "event=privsep_error step=chroot path=%s error=\"%s\"", dir, strerror(errno));
    else
        rc = 0;
out:
    close(fd);
    return rc;
}

int pm_privsep_drop(const struct pm_sandbox *sb)
{
    tzset(); /* read the time zone while /etc is still visible */
    const struct pm_runas *row = pm_runas_find_user(sb->user);
    const struct pm_seccomp_profile *profile = sb->profile ? sb->profile : row ? &row->seccomp : NULL;
    const char *group = sb->group ? sb->group : row ? row->group : NULL;
    if (!profile) {
        pm_log(PM_ERR, "event=privsep_error reason=\"no seccomp profile: user is in no row of common/runas.c\" user=%s",
               sb->user);
        return -1;
    }
    /* A host name in an endpoint this process connects to: resolvable in here (see above). */
    int names = row && (row->connects & named) != 0;
    struct pm_seccomp_profile resolving = *profile;
    if (names) {
        resolving.allow |= PM_SC_RESOLVE;
        profile = &resolving;
    }
    int was_root = geteuid() == 0;
    int pdeathsig = 0; /* a supervisor's "die with me" is cleared by setuid: keep it */
    prctl(PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0);
    pid_t parent = getppid();
    if (was_root) {
        unsigned uid, gid;
        if (pm_privsep_lookup(sb->user, &uid, &gid) < 0 || (group && lookup_group(group, &gid) < 0)) {
            pm_log(PM_ERR, "event=privsep_error reason=\"no such user or group (run scripts/install-deps.sh)\" "
                   "user=%s group=%s", sb->user, group ? group : "-");
            return -1;
        }
        int writes = (profile->allow & PM_SC_WRITE) != 0;
        if (sb->chroot_dir && enter_chroot(sb->chroot_dir, gid, writes, group != NULL, names) < 0)
            return -1;
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
            pm_log(PM_ERR, "event=privsep_error step=setuid user=%s error=\"%s\"", sb->user, strerror(errno));
            return -1;
        }
        if (setuid(0) == 0) { /* must be impossible now */
            pm_log(PM_ERR, "event=privsep_error step=verify reason=\"could regain root\"");
            return -1;
        }
    }
    /* What a sandboxed process creates is its own, or its group's when it shares a store. */
    umask(group ? 007 : 077);
    if (pdeathsig) {
        prctl(PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0);
        if (getppid() != parent)
            raise(pdeathsig);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        pm_log(PM_ERR, "event=privsep_error step=no_new_privs error=\"%s\"", strerror(errno));
        return -1;
    }
    if (pm_seccomp_install_profile(profile) < 0)
        return -1;
    if (was_root)
        pm_log(PM_INFO, "event=privsep user=%s chroot=%s uid=%u gid=%u no_new_privs=1 seccomp=%s%s", sb->user,
               sb->chroot_dir ? sb->chroot_dir : "-", (unsigned)getuid(), (unsigned)getgid(), profile->name,
               names ? " bus_names=1" : "");
    else
        pm_log(PM_INFO, "event=privsep_limited reason=\"not started as root\" skipped=chroot,setuid "
               "uid=%u no_new_privs=1 seccomp=%s%s", (unsigned)getuid(), profile->name, names ? " bus_names=1" : "");
    return 0;
}

/* The store's domains are its top directories: a domain "etc" would be the resolver's etc/. */
static int store_clash(const struct pm_config *cfg, const char *service)
{
    const struct pm_runas *row = pm_runas_find(service);
    if (!row || !row->chroot_rel || strcmp(row->chroot_rel, "mail") != 0 || !(row->connects & named))
        return 0;
    for (int i = 0; i < cfg->domains.n; i++)
        if (strcasecmp(cfg->domains.v[i], RESOLVER_DIR) == 0) {
            pm_log(PM_ERR, "event=startup_failed service=%s reason=\"a host name on the bus needs etc/ in the mail "
                   "store, where the local domain etc keeps its mailboxes\" fix=\"use IP addresses in queue.endpoint\"",
                   service);
            return -1;
        }
    return 0;
}

int pm_privsep_preflight(const struct pm_config *cfg, const char *service)
{
    /* First, so whichever service starts first makes it 0750, not the mode of a later mkdir. */
    if (pm_privsep_mkdirs(cfg->state_dir, 0750) < 0) {
        pm_log(PM_ERR, "event=startup_failed service=%s reason=\"cannot create state_dir %s: %s\"", service,
               cfg->state_dir, strerror(errno));
        return -1;
    }
    pm_privsep_note_endpoints(cfg);
    if (store_clash(cfg, service) < 0)
        return -1;
    if (geteuid() == 0)
        return 0;
    if (!cfg->privsep.allow_unprivileged) {
        pm_log(PM_ERR, "event=privsep_refused service=%s uid=%u reason=\"not started as root: every process would "
               "share one uid, so a compromised sandbox could read the users file and its parent's memory\" "
               "fix=\"start as root, or set privsep = { allow_unprivileged = true; } for development\"",
               service, (unsigned)geteuid());
        return -1;
    }
    /* Same uid as the sandbox: only a non-dumpable parent (and the helper it forks, which
     * inherits this) keeps /proc/<pid>/mem, environ and fd closed to it. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        pm_log(PM_ERR, "event=privsep_error step=dumpable error=\"%s\"", strerror(errno));
        return -1;
    }
    return 0;
}
