/* STATUS without selecting, the folders a first login makes and the tmp/ sweep of every
 * login (folder.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "folder_int.h"
#include "mflags.h"
#include "store_int.h"

#define INIT_MARK "postmesh-folders"

/* Maildir convention (as pop3d's maildrop): a reader removes tmp/ files untouched for 36
 * hours. Here they are APPEND literals of a session that died (input.c streams them into
 * INBOX's tmp/ and unlinks them itself otherwise) or deliveries that died mid-write. A
 * bounded walk: a login pays at most IMAP_TMP_SWEEP_MAX entries. */
#define IMAP_TMP_SWEEP_MAX 10000
#define IMAP_TMP_MAX_AGE (36 * 3600)

static void sweep_tmp(const char *maildir)
{
    char path[IMAP_FOLDER_PATH_MAX];
    if (imap_path(path, sizeof path, "%s/tmp", maildir) < 0)
        return;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    time_t cutoff = time(NULL) - IMAP_TMP_MAX_AGE;
    struct dirent *e;
    for (int n = 0; n < IMAP_TMP_SWEEP_MAX && (e = readdir(d)); n++) {
        struct stat st;
        if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_atime < cutoff && st.st_mtime < cutoff)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int imap_folders_init(const char *maildir)
{
    char mark[IMAP_FOLDER_PATH_MAX];
    struct stat st;
    sweep_tmp(maildir);
    if (imap_path(mark, sizeof mark, "%s/" INIT_MARK, maildir) < 0)
        return -1;
    if (stat(mark, &st) == 0)
        return 0; /* done at an earlier login: what the user deleted since stays deleted */
    static const char *const special[] = {"Sent", "Drafts", "Trash", "Junk", "Archive"};
    int rc = 0;
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        int c = imap_folder_create(maildir, special[i], strlen(special[i]));
        if ((c != IMAP_FOLDER_OK && c != IMAP_FOLDER_EXISTS) ||
            imap_folder_subscribe(maildir, special[i], strlen(special[i]), 1) != IMAP_FOLDER_OK)
            rc = -1;
    }
    if (imap_folder_subscribe(maildir, "INBOX", 5, 1) != IMAP_FOLDER_OK)
        rc = -1;
    if (rc == 0) {
        /* Only a complete setup is marked: a failed one is tried again at the next login. */
        int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
        if (fd < 0)
            return -1;
        close(fd);
    }
    return rc;
}

int imap_folder_status(const char *dir, unsigned want, struct imap_status *st, int *recovered)
{
    *st = (struct imap_status){0};
    if (recovered)
        *recovered = 0;
    int kind = imap_folder_dir_check(dir);
    if (kind <= 0)
        return kind == 0 ? IMAP_FOLDER_NONEXISTENT : IMAP_FOLDER_ERR;
    /* Under the lock: messages nobody numbered yet get their UIDs now, so UIDNEXT is the
     * number the next new message will really get (mbsync relies on it). */
    int lock = imap_uidlist_lock(dir);
    if (lock < 0)
        return IMAP_FOLDER_ERR;
    struct imap_uidlist ul;
    struct imap_fsnap snap;
    int listrc;
    int rc = imap_refresh(dir, &ul, &listrc, NULL, NULL, NULL, &snap);
    imap_uidlist_unlock(lock);
    if (rc != 0) {
        imap_uidlist_free(&ul);
        return rc == 1 ? IMAP_FOLDER_NONEXISTENT : IMAP_FOLDER_ERR;
    }
    if (recovered)
        *recovered = listrc == IMAP_UIDLIST_RESET;
    st->messages = (uint32_t)snap.n;
    st->uidnext = ul.uidnext;
    st->uidvalidity = ul.uidvalidity;
    for (size_t i = 0; i < snap.n; i++) {
        struct imap_fentry *e = &snap.v[i];
        st->recent += imap_is_recent(&ul, e->uid, e->in_new);
        st->unseen += !(imap_mflags_from_name(e->name) & IMAP_F_SEEN);
        if (!(want & IMAP_ST_SIZE))
            continue;
        char path[IMAP_FOLDER_PATH_MAX];
        struct stat fs;
        if (e->size < 0 && imap_path(path, sizeof path, "%s/%s/%s", dir, e->in_new ? "new" : "cur", e->name) == 0 &&
            stat(path, &fs) == 0)
            e->size = (int64_t)fs.st_size;
        if (e->size > 0)
            st->size += (uint64_t)e->size;
    }
    imap_fsnap_free(&snap);
    imap_uidlist_free(&ul);
    return IMAP_FOLDER_OK;
}
