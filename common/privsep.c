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

#include "log.h"

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

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_NS && st->st_uid == chown_uid && st->st_gid == chown_gid)
        return 0; /* already right: a big mail store costs a walk, not a write per file */
    if (lchown(path, chown_uid, chown_gid) < 0)
        pm_log(PM_WARN, "event=chown_failed path=%s error=\"%s\"", path, strerror(errno));
    return 0;
}

int pm_privsep_chown_tree(const char *path, const char *user)
{
    unsigned uid, gid;
    if (geteuid() != 0)
        return 0;
    if (pm_privsep_lookup(user, &uid, &gid) < 0) {
        pm_log(PM_ERR, "event=privsep_error reason=\"no such user\" user=%s", user);
        return -1;
    }
    chown_uid = uid;
    chown_gid = gid;
    return nftw(path, chown_one, 32, FTW_PHYS);
}

int pm_privsep_drop(const struct pm_sandbox *sb)
{
    tzset(); /* read the time zone while /etc is still visible */
    int was_root = geteuid() == 0;
    int pdeathsig = 0; /* a supervisor's "die with me" is cleared by setuid: keep it */
    prctl(PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0);
    pid_t parent = getppid();
    if (was_root) {
        unsigned uid, gid;
        if (pm_privsep_lookup(sb->user, &uid, &gid) < 0) {
            pm_log(PM_ERR, "event=privsep_error reason=\"no such user (run scripts/install-deps.sh)\" user=%s", sb->user);
            return -1;
        }
        if (sb->chroot_dir) {
            if (mkdir(sb->chroot_dir, 0755) < 0 && errno != EEXIST) {
                pm_log(PM_ERR, "event=privsep_error step=mkdir path=%s error=\"%s\"", sb->chroot_dir, strerror(errno));
                return -1;
            }
            if (chroot(sb->chroot_dir) < 0 || chdir("/") < 0) {
                pm_log(PM_ERR, "event=privsep_error step=chroot path=%s error=\"%s\"", sb->chroot_dir, strerror(errno));
                return -1;
            }
        }
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
            pm_log(PM_ERR, "event=privsep_error step=setuid user=%s error=\"%s\"", sb->user, strerror(errno));
            return -1;
        }
        if (setuid(0) == 0) { /* must be impossible now */
            pm_log(PM_ERR, "event=privsep_error step=verify reason=\"could regain root\"");
            return -1;
        }
    }
    if (pdeathsig) {
        prctl(PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0);
        if (getppid() != parent)
            raise(pdeathsig);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        pm_log(PM_ERR, "event=privsep_error step=no_new_privs error=\"%s\"", strerror(errno));
        return -1;
    }
    if (pm_seccomp_install() < 0)
        return -1;
    if (was_root)
        pm_log(PM_INFO, "event=privsep user=%s chroot=%s uid=%u no_new_privs=1 seccomp=1", sb->user,
               sb->chroot_dir ? sb->chroot_dir : "-", (unsigned)getuid());
    else
        pm_log(PM_INFO, "event=privsep_limited reason=\"not started as root\" skipped=chroot,setuid "
               "uid=%u no_new_privs=1 seccomp=1", (unsigned)getuid());
    return 0;
}
