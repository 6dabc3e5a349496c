#include "userfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "users.h"

#define FILE_MODE 0640

static char *dir_of(const char *path)
{
    char *copy = strdup(path);
    char *d = copy ? strdup(dirname(copy)) : NULL;
    free(copy);
    return d;
}

static int take_lock(struct cli_userfile *uf, char *err, size_t errsize)
{
    char *dir = dir_of(uf->path);
    char lockpath[4200];
    snprintf(lockpath, sizeof lockpath, "%s.lock", uf->path);
    if (!dir || cli_mkdirs(dir, 0750) < 0) {
        snprintf(err, errsize, "%s: cannot create directory: %s", dir ? dir : uf->path, strerror(errno));
        free(dir);
        return -1;
    }
    free(dir);
    uf->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
    if (uf->lockfd < 0 || flock(uf->lockfd, LOCK_EX) < 0) {
        snprintf(err, errsize, "%s: cannot lock: %s", lockpath, strerror(errno));
        return -1;
    }
    return 0;
}

static int push_line(struct cli_userfile *uf, char *line)
{
    char **nv = realloc(uf->lines, ((size_t)uf->n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    uf->lines = nv;
    uf->lines[uf->n++] = line;
    return 0;
}

int cli_userfile_open(struct cli_userfile *uf, const char *path, int lock, char *err, size_t errsize)
{
    memset(uf, 0, sizeof *uf);
    uf->lockfd = -1;
    if (!(uf->path = strdup(path))) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    if (lock && take_lock(uf, err, errsize) < 0)
        return -1;
    /* Same rules as the services' loader, so we never write a file they would refuse. */
    struct pm_users *check = pm_users_load(path, err, errsize);
    if (!check)
        return -1;
    pm_users_free(check);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errsize, "%s:0: cannot read: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *copy = strdup(line);
        if (!copy || push_line(uf, copy) < 0) {
            free(copy);
            snprintf(err, errsize, "out of memory");
            rc = -1;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

void cli_userfile_close(struct cli_userfile *uf)
{
    for (int i = 0; i < uf->n; i++)
        free(uf->lines[i]);
    free(uf->lines);
    free(uf->path);
    if (uf->lockfd >= 0)
        close(uf->lockfd); /* releases the lock */
    memset(uf, 0, sizeof *uf);
    uf->lockfd = -1;
}

char *cli_userfile_address(const struct cli_userfile *uf, int i)
{
    char *address, *hash;
    const char *why;
    if (pm_users_parse_line(uf->lines[i], &address, &hash, &why) != 1)
        return NULL;
    return address; /* the copy starts with the address; hash points into it */
}

int cli_userfile_find(const struct cli_userfile *uf, const char *address)
{
    for (int i = 0; i < uf->n; i++) {
        char *a = cli_userfile_address(uf, i);
        int same = a && strcasecmp(a, address) == 0;
        free(a);
        if (same)
            return i;
    }
    return -1;
}

int cli_userfile_append(struct cli_userfile *uf, const char *line)
{
    char *copy = strdup(line);
    if (!copy || push_line(uf, copy) < 0) {
        free(copy);
        return -1;
    }
    return 0;
}

int cli_userfile_replace(struct cli_userfile *uf, int i, const char *line)
{
    char *copy = strdup(line);
    if (!copy)
        return -1;
    free(uf->lines[i]);
    uf->lines[i] = copy;
    return 0;
}

void cli_userfile_remove(struct cli_userfile *uf, int i)
{
    free(uf->lines[i]);
    memmove(&uf->lines[i], &uf->lines[i + 1], (size_t)(uf->n - i - 1) * sizeof *uf->lines);
    uf->n--;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int cli_userfile_commit(struct cli_userfile *uf, char *err, size_t errsize)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", uf->path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsize, "%s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    struct stat old;
    int failed = fchmod(fd, FILE_MODE) < 0;
    /* Keep the owner and group the services read the file as (only root may change them). */
    if (!failed && stat(uf->path, &old) == 0 && fchown(fd, old.st_uid, old.st_gid) < 0 && errno != EPERM)
        failed = 1;
    for (int i = 0; !failed && i < uf->n; i++)
        failed = write_all(fd, uf->lines[i], strlen(uf->lines[i])) < 0 || write_all(fd, "\n", 1) < 0;
    if (!failed)
        failed = fsync(fd) < 0;
    int e = errno;
    if (close(fd) < 0 && !failed)
        failed = 1, e = errno;
    if (!failed && rename(tmp, uf->path) < 0)
        failed = 1, e = errno;
    if (failed) {
        snprintf(err, errsize, "%s: cannot write: %s", uf->path, strerror(e));
        unlink(tmp);
        return -1;
    }
    /* The rename is durable only once the directory is synced. */
    char *dir = dir_of(uf->path);
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
}
