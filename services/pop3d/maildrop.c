#include "maildrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mailstore.h"

/* Scan-time entry: sorted by arrival before becoming message numbers. */
struct entry {
    struct pop3_msg msg;
    struct timespec mtime;
    const char *name; /* inside msg.path */
};

void pop3_uidl_from_name(const char *name, char *dst)
{
    size_t n = strcspn(name, ":");
    int ok = n > 0 && n <= POP3_UIDL_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)name[i] > 0x20 && (unsigned char)name[i] < 0x7f;
    if (ok) {
        memcpy(dst, name, n);
        dst[n] = '\0';
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(name, n, md, &mdlen, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    dst[o++] = 'h';
    for (unsigned i = 0; i < mdlen && o + 2 <= POP3_UIDL_MAX; i++) {
        dst[o++] = hex[md[i] >> 4];
        dst[o++] = hex[md[i] & 15];
    }
    dst[o] = '\0';
}

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Appends the regular files of maildir/sub to *v. Returns 0 or -1. */
static int scan_dir(const char *maildir, const char *sub, struct entry **v, size_t *n, size_t *cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", maildir, sub);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && *n < POP3_MAX_MESSAGES && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue; /* vanished, or not a message */
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            struct entry *nv = realloc(*v, ncap * sizeof *nv);
            if (!nv) {
                rc = -1;
                break;
            }
            *v = nv;
            *cap = ncap;
        }
        struct entry *en = &(*v)[*n];
        size_t plen = strlen(path) + 1 + strlen(e->d_name) + 1;
        en->msg = (struct pop3_msg){.path = malloc(plen), .size = st.st_size};
        if (!en->msg.path) {
            rc = -1;
            break;
        }
        snprintf(en->msg.path, plen, "%s/%s", path, e->d_name);
        en->name = en->msg.path + strlen(path) + 1;
        en->mtime = st.st_mtim;
        pop3_uidl_from_name(en->name, en->msg.uidl);
        (*n)++;
    }
    closedir(d);
    return rc;
}

/* Maildir convention: a reader removes tmp/ files untouched for 36 hours (left by a
 * delivery that died mid-write; the queue delivered the message again since). */
static void sweep_tmp(const char *maildir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tmp", maildir);
    DIR *d = opendir(path);
    if (!d)
        return;
    time_t cutoff = time(NULL) - 36 * 3600;
    struct dirent *e;
    for (int n = 0; n < 10000 && (e = readdir(d)); n++) {
        struct stat st;
        if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && st.st_atime < cutoff && st.st_mtime < cutoff)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

static int take_lock(const char *maildir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/pop3d.lock", maildir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    /* flock: per open file, so two sessions of the same process exclude each other too. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int pop3_maildrop_open(const char *maildir, struct pop3_maildrop **out)
{
    *out = NULL;
    int fd = take_lock(maildir);
    if (fd < 0)
        return errno == EWOULDBLOCK ? POP3_DROP_LOCKED : POP3_DROP_ERROR;
    struct entry *v = NULL;
    size_t n = 0, cap = 0;
    struct pop3_maildrop *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(maildir)) || scan_dir(maildir, "new", &v, &n, &cap) < 0 ||
        scan_dir(maildir, "cur", &v, &n, &cap) < 0) {
        for (size_t i = 0; i < n; i++)
            free(v[i].msg.path);
        free(v);
        if (d)
            free(d->dir);
        free(d);
        close(fd);
        return POP3_DROP_ERROR;
    }
    sweep_tmp(maildir);
    if (n)
        qsort(v, n, sizeof *v, cmp_entry);
    d->lock_fd = fd;
    d->msgs = calloc(n ? n : 1, sizeof *d->msgs);
    for (size_t i = 0; i < n; i++) {
        if (d->msgs)
            d->msgs[i] = v[i].msg;
        else
            free(v[i].msg.path);
    }
    free(v);
    if (!d->msgs) {
        pop3_maildrop_close(d);
        return POP3_DROP_ERROR;
    }
    d->n = n;
    *out = d;
    return POP3_DROP_OK;
}

void pop3_maildrop_close(struct pop3_maildrop *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i].path);
    free(d->msgs);
    free(d->dir);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    free(d);
}

void pop3_maildrop_stat(const struct pop3_maildrop *d, size_t *count, unsigned long long *octets)
{
    *count = 0;
    *octets = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->msgs[i].deleted)
            continue;
        (*count)++;
        *octets += (unsigned long long)d->msgs[i].size;
    }
}

struct pop3_msg *pop3_maildrop_get(struct pop3_maildrop *d, unsigned long number)
{
    return number >= 1 && number <= d->n ? &d->msgs[number - 1] : NULL;
}

void pop3_maildrop_undelete_all(struct pop3_maildrop *d)
{
    for (size_t i = 0; i < d->n; i++)
        d->msgs[i].deleted = 0;
}

int pop3_maildrop_relocate(struct pop3_maildrop *d, struct pop3_msg *m)
{
    const char *base = strrchr(m->path, '/');
    base = base ? base + 1 : m->path;
    size_t keylen = strcspn(base, ":");
    static const char *const subs[] = {"cur", "new"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", d->dir, subs[i]);
        DIR *dir = opendir(path);
        if (!dir)
            continue;
        struct dirent *e;
        char *found = NULL;
        while (!found && (e = readdir(dir))) {
            if (strncmp(e->d_name, base, keylen) != 0 || (e->d_name[keylen] != '\0' && e->d_name[keylen] != ':'))
                continue;
            size_t plen = strlen(path) + 1 + strlen(e->d_name) + 1;
            if ((found = malloc(plen)))
                snprintf(found, plen, "%s/%s", path, e->d_name);
        }
        closedir(dir);
        if (found) {
            free(m->path);
            m->path = found;
            return 0;
        }
    }
    return -1;
}

size_t pop3_maildrop_update(struct pop3_maildrop *d, size_t *removed)
{
    size_t failed = 0;
    *removed = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!d->msgs[i].deleted)
            continue;
        int rc = unlink(d->msgs[i].path);
        if (rc < 0 && errno == ENOENT) {
            /* An IMAP session may have renamed it since (new/ -> cur/, flags): follow it. */
            rc = pop3_maildrop_relocate(d, &d->msgs[i]) == 0 ? unlink(d->msgs[i].path) : 0;
        }
        if (rc == 0 || errno == ENOENT) {
            (*removed)++;
        } else {
            char pv[PM_LOGV_SIZE];
            pm_log(PM_WARN, "event=unlink_failed path=%s error=\"%s\"", PM_LV(pv, d->msgs[i].path), strerror(errno));
            failed++;
        }
    }
    if (*removed) {
        /* Make the removal durable so a crash does not bring deleted mail back. */
        char path[4096];
        snprintf(path, sizeof path, "%s/new", d->dir);
        pm_mailstore_fsync_dir(path);
        snprintf(path, sizeof path, "%s/cur", d->dir);
        pm_mailstore_fsync_dir(path);
    }
    return failed;
}
