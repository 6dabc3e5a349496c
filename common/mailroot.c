#include "mailroot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "mailstore.h"
#include "privchan.h"
#include "privsep.h"
#include "runas.h"

void pm_mailroot_init(const struct pm_config *cfg, int chrooted, char *dst, size_t size)
{
    if (chrooted)
        snprintf(dst, size, ".");
    else
        pm_config_state_path(cfg, "mail", dst, size);
}

int pm_mailroot_prepare(const struct pm_config *cfg, const char *user, char *mail_dir, size_t dirsize,
                        char *mail_root, size_t rootsize)
{
    int root = geteuid() == 0;
    pm_config_state_path(cfg, "mail", mail_dir, dirsize);
    pm_mailroot_init(cfg, root, mail_root, rootsize);
    if (pm_privsep_mkdirs(mail_dir, 0750) < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"cannot create %s: %s\"", mail_dir, strerror(errno));
        return -1;
    }
    /* A store from before the shared group (all vmail:vmail 0700/0600) keeps working. */
    return pm_privsep_share_tree(mail_dir, user, PM_RUNAS_STORE_GROUP) < 0 ? -1 : 0;
}

int pm_mailroot_maildir(const char *root, const char *address, char *dst, size_t size)
{
    char local[256], domain[512];
    if (pm_mailstore_split(address, local, sizeof local, domain, sizeof domain) < 0)
        return -1;
    int n = snprintf(dst, size, "%s/%s/%s/Maildir", root, domain, local);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* What the store wants of an entry owned as st says: the store group, the owner's bits for
 * the group, and user for what root owns. */
static void wanted(const struct stat *st, uid_t uid, uid_t *wuid, mode_t *wmode)
{
    *wuid = st->st_uid == 0 ? uid : st->st_uid;
    *wmode = (st->st_mode & 07777) | ((st->st_mode & 0700) >> 3);
}

/* 1 if fd was changed, 0 if it was right, -1 on error. */
static int fix_fd(int fd, uid_t uid, gid_t gid)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    uid_t wuid;
    mode_t wmode;
    wanted(&st, uid, &wuid, &wmode);
    if (st.st_uid == wuid && st.st_gid == gid && (st.st_mode & 07777) == wmode)
        return 0;
    return fchown(fd, wuid, gid) < 0 || fchmod(fd, wmode) < 0 ? -1 : 1;
}

/* The regular files directly in dirfd (tmp/, new/ or cur/). */
static int fix_files(int dirfd, uid_t uid, gid_t gid)
{
    int dup_fd = dup(dirfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        /* O_NOFOLLOW|O_NONBLOCK: a symlink or a FIFO a worker planted is neither followed nor waited on */
        int fd = openat(dirfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
            n += fix_fd(fd, uid, gid) > 0;
        close(fd);
    }
    closedir(d);
    return n;
}

int pm_mailroot_repair(const char *store, const char *address, const char *user)
{
    unsigned uid, gid;
    char local[256], domain[512];
    struct group *gr;
    if (geteuid() != 0)
        return 0;
    if (pm_mailstore_split(address, local, sizeof local, domain, sizeof domain) < 0 ||
        pm_privsep_lookup(user, &uid, &gid) < 0 || !(gr = getgrnam(PM_RUNAS_STORE_GROUP)))
        return -1;
    gid = gr->gr_gid;
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(store, flags);
    if (fd < 0)
        return -1;
    int fixed = 0; /* the store's root is the workers' chroot: root's (pm_privsep_drop) */
    const char *const path[] = {domain, local, "Maildir"};
    for (size_t i = 0; i < 3; i++) {
        int next = openat(fd, path[i], flags);
        close(fd);
        if (next < 0)
            return fixed; /* not there yet: the store user will create it */
        fd = next;
        fixed += fix_fd(fd, uid, gid) > 0;
    }
    fixed += fix_files(fd, uid, gid); /* pop3d.lock and the like */
    static const char *const sub[] = {"tmp", "new", "cur"};
    for (size_t i = 0; i < 3; i++) {
        int s = openat(fd, sub[i], flags);
        if (s < 0)
            continue;
        fixed += fix_fd(s, uid, gid) > 0;
        fixed += fix_files(s, uid, gid);
        close(s);
    }
    close(fd);
    return fixed;
}

void pm_mailroot_answer_repair(const char *store, const char *user, const struct pm_priv_msg *req,
                               struct pm_priv_msg *reply)
{
    char av[PM_LOGV_SIZE];
    const char *address = req->a ? req->a : "";
    reply->result = pm_mailroot_repair(store, address, user);
    pm_log(reply->result > 0 ? PM_WARN : PM_INFO, "event=mailbox_repair address=%s fixed=%d", PM_LV(av, address),
           (int)reply->result);
}
