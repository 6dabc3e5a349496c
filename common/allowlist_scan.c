/* Reading the keys directory into allowlist text (allowlist.h): what the reader outside the
 * chroot does on request, or the service itself without one. Owns which files count (name,
 * owner, mode, content), what a key file caught while it is written means, and the
 * directory's state: the digest from which a reload tells cheaply that nothing changed.
 *
 * Key files are written by whoever holds them: `postmesh keys` writes a temporary file and
 * links it (whole or not at all), but an operator's editor, `cp` or `echo KEY > f` write in
 * place, so a scan can meet a file that is empty or half a key. The directory's own mtime
 * does not change while a file is written in place, and a ZAP denial is final for the peer
 * (libzmq does not reconnect after it): so the state covers every key file's stat, and a key
 * file that is not a key yet but was modified just now is "being written" (its previous key,
 * if any, stays until it reads whole). */
#include "allowlist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"

#define MAX_KEYS PM_ALLOWLIST_MAX_KEYS
#define MAX_TEXT PM_ALLOWLIST_MAX_TEXT
#define TRAILER 32 /* room kept for the "#state" line */
#define WRITING_MS 10000 /* a key file modified this recently and not a key yet is being written */

static int root_only; /* in the reader outside the chroot: only root's files count */

void pm_allowlist_root_only(void) { root_only = 1; }

static int owner_ok(const struct stat *st) { return st->st_uid == 0 || (!root_only && st->st_uid == geteuid()); }

/* A directory entry that is a key file: <name>.pub, not hidden (a Secret volume's ..data);
 * 1 and its name, 0 if it is no key file at all, -1 (and why) if its name has no role. */
static int key_file(const char *file, char name[PM_KEY_NAME], const char **why)
{
    size_t len = strlen(file);
    if (len < 5 || file[0] == '.' || strcmp(file + len - 4, ".pub") != 0)
        return 0;
    if (len - 4 >= PM_KEY_NAME) {
        *why = "name too long";
        return -1;
    }
    memcpy(name, file, len - 4);
    name[len - 4] = '\0';
    if (pm_role_of_key_name(name) == PM_ROLE_NONE) {
        *why = "name is not <role>.pub or <role>.<replica>.pub";
        return -1;
    }
    return 1;
}

/* FNV-1a, 64 bits: a change detector, not a defence (whoever may change the files may just
 * change them). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *b = p; n--; b++)
        h = (h ^ *b) * 1099511628211ull;
    return h;
}

/* One key file's part of the state: its name and what stat(2) (following symlinks) says,
 * or the error. Summed over the files, so the directory's order does not matter. */
static uint64_t file_state(const char *file, int err, const struct stat *st)
{
    int64_t f[10] = {err};
    if (!err) {
        int64_t v[] = {err, (int64_t)st->st_dev, (int64_t)st->st_ino, st->st_size, st->st_mtim.tv_sec,
                       st->st_mtim.tv_nsec, st->st_ctim.tv_sec, st->st_ctim.tv_nsec, st->st_mode, st->st_uid};
        memcpy(f, v, sizeof f);
    }
    return fnv(fnv(14695981039346656037ull, file, strlen(file) + 1), f, sizeof f);
}

static uint64_t dir_state(const struct stat *st)
{
    int64_t f[] = {(int64_t)st->st_dev, (int64_t)st->st_ino, st->st_mtim.tv_sec, st->st_mtim.tv_nsec};
    return fnv(14695981039346656037ull, f, sizeof f);
}

/* The digest as a stat's st_size (a directory's size says nothing): never negative. */
static off_t digest_size(uint64_t d) { return (off_t)(d >> 1); }

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static long long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

struct scan {
    int dfd;
    const char *dir;
    char *text;
    size_t used;
    uint64_t digest;
    int unsure; /* a file changed while it was read: the digest cannot vouch for the text */
};

/* A "name z85" line, or "? name" (key NULL) for a key file being written. */
static void emit(struct scan *s, const char *name, const char *key)
{
    size_t room = MAX_TEXT - s->used;
    int n = key ? snprintf(s->text + s->used, room, "%s %s\n", name, key) : snprintf(s->text + s->used, room, "? %s\n", name);
    if (n > 0 && (size_t)n < room)
        s->used += (size_t)n;
}

/* 1 if line (what a read returned) is exactly one Z85 key, which it then holds alone. */
static int one_key(char *line)
{
    unsigned char bin[32];
    if (strcspn(line, "\r\n") != PM_KEY_Z85 - 1)
        return 0;
    line[PM_KEY_Z85 - 1] = '\0';
    return zmq_z85_decode(bin, line) != NULL;
}

/* One key file: its line (or nothing, logged), and its part of the state. Steady means the
 * file did not change while it was read (same stat before and after, every byte read), so
 * the state taken after the read stands for what was read. */
static void scan_one(struct scan *s, const char *file, const char *name)
{
    struct stat st, after;
    int fd = -1;
    if (fstatat(s->dfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) && !owner_ok(&st)) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"symlink of another user\" uid=%u", s->dir, file,
               (unsigned)st.st_uid);
    } else if ((fd = openat(s->dfd, file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s error=\"%s\"", s->dir, file, strerror(errno));
    } else if (!S_ISREG(st.st_mode) || (st.st_mode & 0022) || !owner_ok(&st)) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"not a file that only root or we may write\" "
               "mode=%03o uid=%u", s->dir, file, (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
    } else {
        char line[128];
        ssize_t n = read(fd, line, sizeof line - 1);
        line[n > 0 ? n : 0] = '\0';
        int err = fstatat(s->dfd, file, &after, 0) < 0 ? errno : 0; /* also catches a rename over it */
        int steady = n >= 0 && !err && same_file(&st, &after) && (n == st.st_size || st.st_size >= (off_t)sizeof line);
        int ok = one_key(line);
        long long age = ms_since(&st.st_mtim);
        if (ok && steady) {
            emit(s, name, line);
        } else if (!steady || (age > -1000 && age < WRITING_MS)) {
            pm_log(PM_WARN, "event=bus_key_incomplete dir=%s file=%s bytes=%lld age_ms=%lld reason=\"not one Z85 "
                   "public key yet: its previous key stays until it reads whole\"", s->dir, file, (long long)st.st_size, age);
            emit(s, name, NULL);
        } else {
            pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"not one Z85 public key\"", s->dir, file);
        }
        s->unsure |= !steady;
        explicit_bzero(line, sizeof line);
        close(fd);
        s->digest += file_state(file, err, &after);
        return;
    }
    if (fd >= 0)
        close(fd);
    int err = fstatat(s->dfd, file, &st, 0) < 0 ? errno : 0;
    s->digest += file_state(file, err, &st);
}

char *pm_allowlist_scan(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *text = pm_allowlist_scan_fd(fd, dir);
    int e = errno;
    close(fd);
    errno = e;
    return text;
}

/* A fresh listing of the directory (its own offset: from the start). */
static DIR *list(int dfd)
{
    int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d && lfd >= 0)
        close(lfd);
    return d;
}

char *pm_allowlist_scan_fd(int dfd, const char *dir)
{
    struct stat st;
    if (fstat(dfd, &st) < 0)
        return NULL;
    /* Others may not write it, except a sticky directory (a Secret volume is 1777): there they
     * cannot replace our files, and files they add fail the owner check below. */
    if (!S_ISDIR(st.st_mode) || ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX)) || !owner_ok(&st)) {
        pm_log(PM_ERR, "event=bus_security_error dir=%s reason=\"keys directory others may write: ignored\" mode=%03o "
               "uid=%u", dir, (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        errno = EPERM;
        return NULL;
    }
    DIR *d = list(dfd);
    struct scan s = {.dfd = dfd, .dir = dir, .text = d ? malloc(MAX_TEXT) : NULL, .digest = dir_state(&st)};
    struct dirent *e;
    while (s.text && (e = readdir(d))) {
        char name[PM_KEY_NAME];
        const char *why = NULL;
        int k = key_file(e->d_name, name, &why);
        if (k < 0)
            pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%.80s reason=\"%s\"", dir, e->d_name, why);
        if (k <= 0)
            continue;
        if (MAX_TEXT - s.used < PM_KEY_NAME + PM_KEY_Z85 + 2 + TRAILER) {
            pm_log(PM_WARN, "event=bus_key_skipped dir=%s reason=\"more than %d keys\"", dir, MAX_KEYS);
            s.unsure = 1; /* the files not read are not in the digest either */
            break;
        }
        scan_one(&s, e->d_name, name);
    }
    if (d)
        closedir(d);
    if (s.text && s.unsure) /* TRAILER kept room for this last line */
        snprintf(s.text + s.used, MAX_TEXT - s.used, "#state -\n");
    else if (s.text)
        snprintf(s.text + s.used, MAX_TEXT - s.used, "#state %llx\n", (unsigned long long)digest_size(s.digest));
    return s.text;
}

int pm_allowlist_state_fd(int dfd, struct stat *st)
{
    if (fstat(dfd, st) < 0)
        return -1;
    uint64_t digest = dir_state(st);
    DIR *d = list(dfd);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char name[PM_KEY_NAME];
        const char *why;
        if (key_file(e->d_name, name, &why) <= 0)
            continue;
        struct stat fst;
        int err = fstatat(dfd, e->d_name, &fst, 0) < 0 ? errno : 0;
        digest += file_state(e->d_name, err, &fst);
    }
    closedir(d);
    st->st_size = digest_size(digest);
    return 0;
}

int pm_allowlist_state(const char *dir, struct stat *st)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = pm_allowlist_state_fd(fd, st);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}
