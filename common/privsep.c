/* Privilege separation (privsep.h): becoming a service's user in its chroot, the refusal to
 * run without root, and the ownership of the state a service's user must reach. The
 * seccomp profiles themselves are seccomp.c's. */
#include "privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* ------------------------------------------------------------------ trees of state */
/* nftw has no argument for its callback: the walk's target, set by the caller. */
static struct {
    uid_t uid;
    gid_t gid;
    int share; /* 1: fix the group and its bits only (shared tree), 0: owner and group */
} walk;

static int fix_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (ftw->level == 0 || flag == FTW_NS || S_ISLNK(st->st_mode))
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

/* ------------------------------------------------------------------ the drop */
/* The chroot directory, entered through a descriptor so a symlink swapped in at the last
 * moment is refused, not followed. It stays root's: a sandboxed user who owned its root
 * could chmod it open to every local user. A profile that writes there gets it through the
 * group. Leaves the process chrooted with "/" as its working directory. */
static int enter_chroot(const char *dir, gid_t gid, int writable)
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
    if (fchown(fd, 0, writable ? gid : 0) < 0 || fchmod(fd, writable ? 0770 : 0755) < 0)
        pm_log(PM_ERR, "event=privsep_error step=chroot_owner path=%s error=\"%s\"", dir, strerror(errno));
    else if (fchdir(fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
        pm_log(PM_ERR, "event=privsep_error step=chroot path=%s error=\"%s\"", dir, strerror(errno));
    else
        rc = 0;
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
        if (sb->chroot_dir && enter_chroot(sb->chroot_dir, gid, writes) < 0)
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
        pm_log(PM_INFO, "event=privsep user=%s chroot=%s uid=%u gid=%u no_new_privs=1 seccomp=%s", sb->user,
               sb->chroot_dir ? sb->chroot_dir : "-", (unsigned)getuid(), (unsigned)getgid(), profile->name);
    else
        pm_log(PM_INFO, "event=privsep_limited reason=\"not started as root\" skipped=chroot,setuid "
               "uid=%u no_new_privs=1 seccomp=%s", (unsigned)getuid(), profile->name);
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
    if (geteuid() == 0)
        return 0;
    if (!cfg->privsep.allow_unprivileged) {
        pm_log(PM_ERR, "event=privsep_refused service=%s uid=%u reason=\"not started as root: every process would "
               "share one uid, so a compromised worker could read the users file and its parent's memory\" "
               "fix=\"start as root, or set privsep = { allow_unprivileged = true; } for development\"",
               service, (unsigned)geteuid());
        return -1;
    }
    /* Same uid as the worker: only a non-dumpable parent (and the helper it forks, which
     * inherits this) keeps /proc/<pid>/mem, environ and fd closed to it. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        pm_log(PM_ERR, "event=privsep_error step=dumpable error=\"%s\"", strerror(errno));
        return -1;
    }
    return 0;
}
