#include "allowlist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "outside.h"

#define MAX_KEYS 4096
#define MAX_TEXT (MAX_KEYS * (PM_KEY_NAME + PM_KEY_Z85 + 2))

struct entry {
    unsigned char key[32];
    enum pm_role role;
    char name[PM_KEY_NAME];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static size_t nentries;
static unsigned generation;

static int root_only; /* in the reader outside the chroot: only root's files count */

void pm_allowlist_root_only(void) { root_only = 1; }

static int owner_ok(const struct stat *st) { return st->st_uid == 0 || (!root_only && st->st_uid == geteuid()); }

/* name.pub -> one line "name z85", or 0 if the file must not count (logged). */
static int scan_one(int dfd, const char *dir, const char *file, char *out, size_t size)
{
    size_t len = strlen(file);
    char name[PM_KEY_NAME];
    if (len - 4 >= sizeof name) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%.80s reason=\"name too long\"", dir, file);
        return 0;
    }
    memcpy(name, file, len - 4);
    name[len - 4] = '\0';
    if (pm_role_of_key_name(name) == PM_ROLE_NONE) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"name is not <role>.pub or <role>.<replica>.pub\"",
               dir, file);
        return 0;
    }
    struct stat st;
    if (fstatat(dfd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) && !owner_ok(&st)) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"symlink of another user\" uid=%u", dir, file,
               (unsigned)st.st_uid);
        return 0;
    }
    int fd = openat(dfd, file, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* follows symlinks */
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s error=\"%s\"", dir, file, strerror(errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 0022) || !owner_ok(&st)) {
        close(fd);
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"not a file that only root or we may write\" "
               "mode=%03o uid=%u", dir, file, (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
        return 0;
    }
    char line[128];
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    line[n > 0 ? n : 0] = '\0';
    unsigned char bin[32];
    if (strcspn(line, "\r\n") != PM_KEY_Z85 - 1 || (line[PM_KEY_Z85 - 1] = '\0', !zmq_z85_decode(bin, line))) {
        pm_log(PM_WARN, "event=bus_key_skipped dir=%s file=%s reason=\"not one Z85 public key\"", dir, file);
        return 0;
    }
    return snprintf(out, size, "%s %s\n", name, line);
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
    int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* its own offset: from the start */
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0)
            close(lfd);
        return NULL;
    }
    size_t used = 0;
    char *text = malloc(MAX_TEXT);
    struct dirent *e;
    while (text && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        if (MAX_TEXT - used < PM_KEY_NAME + PM_KEY_Z85 + 2) {
            pm_log(PM_WARN, "event=bus_key_skipped dir=%s reason=\"more than %d keys\"", dir, MAX_KEYS);
            break;
        }
        used += (size_t)scan_one(dirfd(d), dir, e->d_name, text + used, MAX_TEXT - used);
    }
    closedir(d);
    if (text)
        text[used] = '\0';
    return text;
}

int pm_allowlist_set(const char *text)
{
    size_t cap = 16, n = 0;
    struct entry *list = malloc(cap * sizeof *list);
    for (const char *p = text; list && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[PM_KEY_NAME + PM_KEY_Z85 + 2];
        if (len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            char *sp = strchr(line, ' ');
            struct entry e = {0};
            if (sp && (size_t)(sp - line) < sizeof e.name && strlen(sp + 1) == PM_KEY_Z85 - 1) {
                *sp = '\0';
                memcpy(e.name, line, (size_t)(sp - line) + 1);
                e.role = pm_role_of_key_name(e.name);
                int ok = e.role != PM_ROLE_NONE && zmq_z85_decode(e.key, sp + 1);
                for (size_t i = 0; i < n && ok; i++)
                    ok = memcmp(list[i].key, e.key, 32) != 0; /* one key, one role: the first file wins */
                if (ok) {
                    if (n == cap) {
                        struct entry *nl = realloc(list, (cap *= 2) * sizeof *nl);
                        if (!nl)
                            break;
                        list = nl;
                    }
                    list[n++] = e;
                }
            }
        }
        p += len + (eol ? 1 : 0);
    }
    if (!list)
        return -1;
    pthread_mutex_lock(&lock);
    free(entries);
    entries = list;
    nentries = n;
    generation++;
    pthread_mutex_unlock(&lock);
    return (int)n;
}

static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (ssize_t n; buf; len += (size_t)n) {
        if (len + 1 == cap) {
            char *nb = cap >= MAX_TEXT ? NULL : realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) {
            if (n < 0) {
                free(buf);
                return NULL;
            }
            break;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

static struct stat last_dir; /* of the keys directory at the last reload */

int pm_allowlist_reload_if_changed(const char *dir)
{
    int slot = pm_outside_find(dir);
    struct stat st;
    if ((slot >= 0 ? pm_outside_stat(slot, &st) : stat(dir, &st)) < 0)
        return -1;
    if (st.st_ino == last_dir.st_ino && st.st_dev == last_dir.st_dev &&
        st.st_mtim.tv_sec == last_dir.st_mtim.tv_sec && st.st_mtim.tv_nsec == last_dir.st_mtim.tv_nsec)
        return 0;
    return pm_allowlist_reload(dir) < 0 ? -1 : 1;
}

int pm_allowlist_reload(const char *dir)
{
    int dslot = pm_outside_find(dir);
    if ((dslot >= 0 ? pm_outside_stat(dslot, &last_dir) : stat(dir, &last_dir)) < 0)
        memset(&last_dir, 0, sizeof last_dir);
    int slot = pm_outside_running() ? pm_outside_find(dir) : -1;
    char *text;
    if (slot >= 0) {
        int fd = pm_outside_open(slot);
        text = fd >= 0 ? read_all(fd) : NULL;
        if (fd >= 0)
            close(fd);
    } else {
        text = pm_allowlist_scan(dir);
    }
    if (!text)
        return -1;
    int n = pm_allowlist_set(text);
    free(text);
    return n;
}

int pm_allowlist_find(const unsigned char key[32], enum pm_role *role, char name[PM_KEY_NAME])
{
    int found = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries && !found; i++)
        if (memcmp(entries[i].key, key, 32) == 0) {
            found = 1;
            if (role)
                *role = entries[i].role;
            if (name)
                memcpy(name, entries[i].name, PM_KEY_NAME);
        }
    pthread_mutex_unlock(&lock);
    return found;
}

int pm_allowlist_find_z85(const char *z85, enum pm_role *role, char name[PM_KEY_NAME])
{
    unsigned char bin[32];
    if (!z85 || strlen(z85) != PM_KEY_Z85 - 1 || !zmq_z85_decode(bin, z85))
        return 0;
    return pm_allowlist_find(bin, role, name);
}

unsigned pm_allowlist_generation(void)
{
    pthread_mutex_lock(&lock);
    unsigned g = generation;
    pthread_mutex_unlock(&lock);
    return g;
}
