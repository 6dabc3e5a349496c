/* CREATE, DELETE and RENAME on disk (folder.h). A folder appears and disappears by one
 * rename of its directory, so a LIST or SELECT elsewhere sees it whole or not at all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "folder_int.h"
#include "mailstore.h"
#include "mflags.h"
#include "store_int.h"

/* Removes path and what is below it, at most depth levels of directories (a folder holds
 * cur/ new/ tmp/ and files; anything deeper is no folder of ours and stays). */
static void remove_tree(const char *path, int depth)
{
    /* Never through a symlink (a folder linked to another user's Maildir): the link goes,
     * what it points at stays. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        unlink(path);
        return;
    }
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (fd >= 0 && !d)
        close(fd);
    if (d) {
        struct dirent *e;
        for (size_t seen = 0; seen < IMAP_SCAN_DIR_MAX && (e = readdir(d)); seen++) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            struct stat st;
            char sub[IMAP_FOLDER_PATH_MAX];
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            if (!S_ISDIR(st.st_mode))
                unlinkat(dirfd(d), e->d_name, 0);
            else if (depth > 0 && imap_path(sub, sizeof sub, "%s/%s", path, e->d_name) == 0)
                remove_tree(sub, depth - 1);
        }
        closedir(d);
    }
    rmdir(path);
}

/* A fresh folder directory at maildir/dn, made under a temporary name and renamed into
 * place. IMAP_FOLDER_OK, IMAP_FOLDER_EXISTS or IMAP_FOLDER_ERR. */
static int make_folder(const char *maildir, const char *dn)
{
    char target[IMAP_FOLDER_PATH_MAX], tmp[IMAP_FOLDER_PATH_MAX], key[IMAP_NAME_MAX + 1], p[IMAP_FOLDER_PATH_MAX];
    struct stat st;
    if (imap_path(target, sizeof target, "%s/%s", maildir, dn) < 0 || imap_path(p, sizeof p, "%s/cur", target) < 0)
        return IMAP_FOLDER_ERR;
    if (stat(p, &st) == 0)
        return IMAP_FOLDER_EXISTS;
    if (imap_unique_key(NULL, -1, key, sizeof key) < 0 || imap_path(tmp, sizeof tmp, "%s/..new.%s", maildir, key) < 0)
        return IMAP_FOLDER_ERR;
    static const char *const subs[] = {"cur", "new", "tmp"};
    int ok = mkdir(tmp, 0770) == 0;
    for (int i = 0; ok && i < 3; i++)
        ok = imap_path(p, sizeof p, "%s/%s", tmp, subs[i]) == 0 && mkdir(p, 0770) == 0;
    int fd = -1;
    /* maildirfolder: Maildir++ marks a folder so deliverers (and Dovecot) know it is one. */
    if (ok && (imap_path(p, sizeof p, "%s/maildirfolder", tmp) < 0 ||
               (fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660)) < 0))
        ok = 0;
    if (fd >= 0)
        close(fd);
    if (ok && renameat2(AT_FDCWD, tmp, AT_FDCWD, target, RENAME_NOREPLACE) == 0) {
        /* Commit point: the folder's entry in the Maildir is durable. */
        return pm_mailstore_fsync_dir(maildir) == 0 ? IMAP_FOLDER_OK : IMAP_FOLDER_ERR;
    }
    int err = errno;
    remove_tree(tmp, 1);
    if (ok && (err == EEXIST || err == ENOTEMPTY)) {
        /* Someone was first, or a directory without cur/ is there: complete it. */
        for (int i = 0; i < 3; i++)
            if (imap_path(p, sizeof p, "%s/%s", target, subs[i]) == 0 && mkdir(p, 0770) < 0 && errno != EEXIST)
                return IMAP_FOLDER_ERR;
        return IMAP_FOLDER_EXISTS;
    }
    return IMAP_FOLDER_ERR;
}

int imap_folder_create(const char *maildir, const char *name, size_t len)
{
    char canon[IMAP_FOLDER_NAME_MAX + 1], dn[IMAP_FOLDER_NAME_MAX + 2];
    if (imap_folder_canon(name, len, 1, canon, sizeof canon) < 0)
        return IMAP_FOLDER_INVALID;
    if (strcmp(canon, "INBOX") == 0)
        return IMAP_FOLDER_EXISTS;
    char **names;
    size_t n;
    if (imap_folder_names(maildir, &names, &n) < 0)
        return IMAP_FOLDER_ERR;
    imap_folder_names_free(names, n);
    if (n >= IMAP_FOLDER_MAX)
        return IMAP_FOLDER_LIMIT;
    /* Superiors first (RFC 9051 §6.3.4 SHOULD): "a/b/c" makes "a" and "a/b". */
    for (char *p = strchr(canon, '/');; p = strchr(p + 1, '/')) {
        size_t l = p ? (size_t)(p - canon) : strlen(canon);
        if (l == 5 && strncmp(canon, "INBOX", 5) == 0) {
            if (!p)
                break;
            continue; /* INBOX is there */
        }
        if (imap_folder_dirname(canon, l, dn, sizeof dn) < 0)
            return IMAP_FOLDER_INVALID;
        int rc = make_folder(maildir, dn);
        if (!p)
            return rc;
        if (rc == IMAP_FOLDER_ERR)
            return rc;
    }
    return IMAP_FOLDER_ERR;
}

/* 1 if some existing folder is below canon ("canon/..."), 0 if none, -1 on error. */
static int has_children(const char *maildir, const char *canon)
{
    char **names;
    size_t n;
    if (imap_folder_names(maildir, &names, &n) < 0)
        return -1;
    size_t l = strlen(canon);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = strncmp(names[i], canon, l) == 0 && names[i][l] == '/';
    imap_folder_names_free(names, n);
    return found;
}

int imap_folder_delete(const char *maildir, const char *name, size_t len)
{
    char canon[IMAP_FOLDER_NAME_MAX + 1], dn[IMAP_FOLDER_NAME_MAX + 2];
    char path[IMAP_FOLDER_PATH_MAX], gone[IMAP_FOLDER_PATH_MAX], key[IMAP_NAME_MAX + 1];
    if (imap_folder_canon(name, len, 1, canon, sizeof canon) < 0)
        return IMAP_FOLDER_INVALID;
    if (strcmp(canon, "INBOX") == 0)
        return IMAP_FOLDER_INBOX;
    if (!imap_folder_exists(maildir, canon, strlen(canon))) {
        /* RFC 3501 §6.3.4: only a \Noselect name with inferiors (a hole) is refused. */
        int kids = has_children(maildir, canon);
        return kids < 0 ? IMAP_FOLDER_ERR : kids ? IMAP_FOLDER_HASCHILDREN : IMAP_FOLDER_NONEXISTENT;
    }
    /* Children stay (the RFC: DELETE MUST NOT remove inferior names): in Maildir++ they are
     * directories of their own beside this one, so "a" becomes a hole above "a/b". */
    if (imap_folder_dirname(canon, strlen(canon), dn, sizeof dn) < 0 ||
        imap_path(path, sizeof path, "%s/%s", maildir, dn) < 0 || imap_unique_key(NULL, -1, key, sizeof key) < 0 ||
        imap_path(gone, sizeof gone, "%s/..deleted.%s", maildir, key) < 0)
        return IMAP_FOLDER_ERR;
    /* The name goes at once ("..x" is no folder name); emptying it may take a while and a
     * crash in between leaves only an invisible directory. */
    if (rename(path, gone) < 0)
        return errno == ENOENT ? IMAP_FOLDER_NONEXISTENT : IMAP_FOLDER_ERR;
    pm_mailstore_fsync_dir(maildir);
    remove_tree(gone, 1);
    return IMAP_FOLDER_OK;
}

/* Subscriptions of old and old/... become new and new/... */
static void rename_subscriptions(const char *maildir, const char *old, const char *new)
{
    int lock = imap_subs_lock(maildir);
    char **subs;
    size_t n, ol = strlen(old);
    if (lock < 0)
        return;
    if (imap_subs_read(maildir, &subs, &n) == 0) {
        int changed = 0;
        for (size_t i = 0; i < n; i++) {
            char buf[IMAP_FOLDER_NAME_MAX * 2 + 2], *nn;
            if (strncmp(subs[i], old, ol) != 0 || (subs[i][ol] != '\0' && subs[i][ol] != '/') ||
                imap_path(buf, sizeof buf, "%s%s", new, subs[i] + ol) < 0 || strlen(buf) > IMAP_FOLDER_NAME_MAX ||
                !(nn = strdup(buf)))
                continue;
            free(subs[i]);
            subs[i] = nn;
            changed = 1;
        }
        if (changed)
            imap_subs_write(maildir, subs, n);
        imap_folder_names_free(subs, n);
    }
    close(lock);
}

/* RENAME INBOX new (RFC 9051 §6.3.6): the messages move to a new folder, INBOX stays. */
static int rename_inbox(const char *maildir, const char *new)
{
    int rc = imap_folder_create(maildir, new, strlen(new));
    if (rc != IMAP_FOLDER_OK)
        return rc;
    char dir[IMAP_FOLDER_PATH_MAX];
    if (imap_folder_path(maildir, new, strlen(new), dir, sizeof dir) < 0)
        return IMAP_FOLDER_ERR;
    /* Two locks, INBOX's first: the only place holding two, so no order can deadlock. */
    int inbox_lock = imap_uidlist_lock(maildir);
    if (inbox_lock < 0)
        return IMAP_FOLDER_ERR;
    struct imap_uidlist inbox_ul, ul;
    struct imap_fsnap snap;
    int listrc;
    rc = IMAP_FOLDER_ERR;
    if (imap_refresh(maildir, &inbox_ul, &listrc, NULL, NULL, NULL, &snap) != 0) {
        imap_uidlist_free(&inbox_ul);
        imap_uidlist_unlock(inbox_lock);
        return rc;
    }
    int lock = imap_uidlist_lock(dir);
    if (lock >= 0 && imap_uidlist_load(dir, &ul) != IMAP_UIDLIST_ERR) {
        uint32_t first_recent = 0; /* what was recent in INBOX stays so (an ascending suffix) */
        for (size_t i = 0; i < snap.n; i++) { /* ascending UID: the order stays */
            const struct imap_fentry *e = &snap.v[i];
            const char *sub = e->in_new ? "new" : "cur";
            char from[IMAP_FOLDER_PATH_MAX], to[IMAP_FOLDER_PATH_MAX];
            if (imap_path(from, sizeof from, "%s/%s/%s", maildir, sub, e->name) < 0 ||
                imap_path(to, sizeof to, "%s/%s/%s", dir, sub, e->name) < 0 || rename(from, to) < 0)
                continue; /* gone meanwhile: nothing to move */
            uint32_t uid = imap_uidlist_add(&ul, e->name, imap_mflags_keylen(e->name));
            if (uid && !first_recent && imap_is_recent(&inbox_ul, e->uid, 0))
                first_recent = uid;
        }
        ul.first_recent = first_recent ? first_recent : ul.uidnext;
        char p[IMAP_FOLDER_PATH_MAX];
        if (imap_path(p, sizeof p, "%s/cur", dir) == 0)
            pm_mailstore_fsync_dir(p);
        if (imap_path(p, sizeof p, "%s/new", dir) == 0)
            pm_mailstore_fsync_dir(p);
        rc = imap_uidlist_write(dir, &ul) == 0 ? IMAP_FOLDER_OK : IMAP_FOLDER_ERR;
        imap_uidlist_free(&ul);
    }
    imap_uidlist_unlock(lock);
    imap_fsnap_free(&snap);
    imap_uidlist_free(&inbox_ul);
    imap_uidlist_unlock(inbox_lock);
    return rc;
}

int imap_folder_rename(const char *maildir, const char *oldname, size_t oldlen, const char *newname, size_t newlen)
{
    char old[IMAP_FOLDER_NAME_MAX + 1], new[IMAP_FOLDER_NAME_MAX + 1];
    if (imap_folder_canon(oldname, oldlen, 1, old, sizeof old) < 0 ||
        imap_folder_canon(newname, newlen, 1, new, sizeof new) < 0)
        return IMAP_FOLDER_INVALID;
    if (strcmp(new, "INBOX") == 0)
        return IMAP_FOLDER_EXISTS;
    if (strcmp(old, "INBOX") == 0)
        return rename_inbox(maildir, new);
    if (!imap_folder_exists(maildir, old, strlen(old)))
        return IMAP_FOLDER_NONEXISTENT;
    size_t ol = strlen(old), nl = strlen(new);
    if (strcmp(old, new) == 0 || imap_folder_exists(maildir, new, nl))
        return IMAP_FOLDER_EXISTS;
    if (nl > ol && strncmp(new, old, ol) == 0 && new[ol] == '/')
        return IMAP_FOLDER_INVALID; /* into its own child */
    char **names;
    size_t n;
    if (imap_folder_names(maildir, &names, &n) < 0)
        return IMAP_FOLDER_ERR;
    /* The folder and its children, each to its new name; every target must be free. */
    char (*moves)[2][IMAP_FOLDER_NAME_MAX + 1] = malloc((n + 1) * sizeof *moves);
    size_t nm = 0;
    int rc = moves ? IMAP_FOLDER_OK : IMAP_FOLDER_ERR;
    for (size_t i = 0; i <= n && rc == IMAP_FOLDER_OK; i++) {
        const char *from = i == n ? old : names[i];
        if (i < n && (strncmp(from, old, ol) != 0 || from[ol] != '/'))
            continue;
        char to[IMAP_FOLDER_NAME_MAX * 2 + 2];
        if (imap_path(to, sizeof to, "%s%s", new, from + ol) < 0 || !imap_folder_name_ok(to, strlen(to)))
            rc = IMAP_FOLDER_INVALID;
        else if (imap_folder_exists(maildir, to, strlen(to)))
            rc = IMAP_FOLDER_EXISTS;
        else {
            /* Both passed imap_folder_name_ok: they fit. */
            memcpy(moves[nm][0], from, strlen(from) + 1);
            memcpy(moves[nm][1], to, strlen(to) + 1);
            nm++;
        }
    }
    imap_folder_names_free(names, n);
    size_t done = 0;
    char from[IMAP_FOLDER_PATH_MAX], to[IMAP_FOLDER_PATH_MAX];
    for (; rc == IMAP_FOLDER_OK && done < nm; done++) {
        if (imap_folder_path(maildir, moves[done][0], strlen(moves[done][0]), from, sizeof from) < 0 ||
            imap_folder_path(maildir, moves[done][1], strlen(moves[done][1]), to, sizeof to) < 0)
            rc = IMAP_FOLDER_INVALID;
        else if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0)
            rc = errno == EEXIST || errno == ENOTEMPTY ? IMAP_FOLDER_EXISTS : IMAP_FOLDER_ERR;
    }
    if (rc != IMAP_FOLDER_OK) {
        /* Put back what moved: a failed RENAME changes nothing. */
        for (size_t i = 0; moves && i + 1 < done; i++)
            if (imap_folder_path(maildir, moves[i][0], strlen(moves[i][0]), from, sizeof from) == 0 &&
                imap_folder_path(maildir, moves[i][1], strlen(moves[i][1]), to, sizeof to) == 0)
                rename(to, from);
    } else {
        pm_mailstore_fsync_dir(maildir);
        rename_subscriptions(maildir, old, new);
    }
    free(moves);
    return rc;
}
