/* Maildir/subscriptions: one folder name a line, rewritten whole (folder.h). Dovecot's
 * version 2 file ("V\t2" line, an empty line, names with '\t' as the hierarchy separator)
 * is read as well, so a store Dovecot served keeps its subscriptions. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "folder_int.h"
#include "store_int.h"

#define SUBS_FILE "subscriptions"
#define SUBS_FILE_MAX (IMAP_SUBSCRIPTIONS_MAX * (IMAP_FOLDER_NAME_MAX + 2) + 64)

int imap_subs_lock(const char *maildir)
{
    char path[IMAP_FOLDER_PATH_MAX];
    if (imap_path(path, sizeof path, "%s/" SUBS_FILE ".lock", maildir) < 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

int imap_subs_read(const char *maildir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    char path[IMAP_FOLDER_PATH_MAX];
    if (imap_path(path, sizeof path, "%s/" SUBS_FILE, maildir) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        close(fd); /* not a file we wrote (a FIFO would block): no subscriptions */
        return 0;
    }
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    char *buf = malloc(SUBS_FILE_MAX + 1);
    size_t len = 0;
    ssize_t r = 0;
    while (buf && len < SUBS_FILE_MAX &&
           ((r = read(fd, buf + len, SUBS_FILE_MAX - len)) > 0 || (r < 0 && errno == EINTR)))
        len += r > 0 ? (size_t)r : 0;
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0'; /* a longer file is read up to the bound: the rest is not subscribed */
    int v2 = len >= 3 && memcmp(buf, "V\t2", 3) == 0 && (len == 3 || buf[3] == '\n');
    size_t cap = 0;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && *n < IMAP_SUBSCRIPTIONS_MAX;
         line = strtok_r(NULL, "\n", &save)) {
        if (v2 && line == buf)
            continue; /* the version line */
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r')
            line[--l] = '\0';
        if (v2)
            for (char *p = line; *p; p++)
                if (*p == '\t')
                    *p = '/';
        char canon[IMAP_FOLDER_NAME_MAX + 1];
        if (imap_folder_canon(line, l, 0, canon, sizeof canon) < 0)
            continue; /* not a name we could have written: skipped */
        int dup = 0;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = strcmp((*names)[i], canon) == 0;
        if (dup)
            continue;
        if (imap_names_push(names, n, &cap, canon) < 0) {
            rc = -1;
            break;
        }
    }
    free(buf);
    if (rc < 0) {
        imap_folder_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

int imap_subs_write(const char *maildir, char *const *names, size_t n)
{
    char tmp[IMAP_FOLDER_PATH_MAX], path[IMAP_FOLDER_PATH_MAX];
    if (imap_path(tmp, sizeof tmp, "%s/" SUBS_FILE ".tmp", maildir) < 0 ||
        imap_path(path, sizeof path, "%s/" SUBS_FILE, maildir) < 0)
        return -1;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *buf = malloc(len + 1), *o = buf;
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s\n", names[i]);
    int rc = imap_write_whole(maildir, tmp, path, buf, len);
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}

int imap_folder_subscribed(const char *maildir, const char *name, size_t len)
{
    char canon[IMAP_FOLDER_NAME_MAX + 1];
    if (imap_folder_canon(name, len, 0, canon, sizeof canon) < 0)
        return 0;
    char **subs;
    size_t n;
    if (imap_subs_read(maildir, &subs, &n) < 0)
        return -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(subs[i], canon) == 0;
    imap_folder_names_free(subs, n);
    return found;
}

int imap_folder_subscribe(const char *maildir, const char *name, size_t len, int on)
{
    char canon[IMAP_FOLDER_NAME_MAX + 1];
    if (imap_folder_canon(name, len, 1, canon, sizeof canon) < 0)
        return IMAP_FOLDER_INVALID;
    int lock = imap_subs_lock(maildir);
    if (lock < 0)
        return IMAP_FOLDER_ERR;
    char **subs;
    size_t n;
    int rc = IMAP_FOLDER_ERR;
    if (imap_subs_read(maildir, &subs, &n) < 0)
        goto out_unlock;
    size_t at = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i], canon) == 0)
            at = i;
    if ((on && at < n) || (!on && at == n)) {
        rc = IMAP_FOLDER_OK; /* already as asked */
    } else if (on && n >= IMAP_SUBSCRIPTIONS_MAX) {
        rc = IMAP_FOLDER_LIMIT;
    } else if (on) {
        char **nv = realloc(subs, (n + 1) * sizeof *nv);
        if (nv) {
            subs = nv;
            if ((subs[n] = strdup(canon))) {
                n++;
                rc = imap_subs_write(maildir, subs, n) == 0 ? IMAP_FOLDER_OK : IMAP_FOLDER_ERR;
            }
        }
    } else {
        free(subs[at]);
        subs[at] = subs[--n];
        rc = imap_subs_write(maildir, subs, n) == 0 ? IMAP_FOLDER_OK : IMAP_FOLDER_ERR;
    }
    imap_folder_names_free(subs, n);
out_unlock:
    close(lock);
    return rc;
}
