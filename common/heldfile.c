#include "heldfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HELD 4 /* users and aliases at most, per process */

struct held {
    char *path;
    int fd;  /* -1: the opener failed with err */
    int err;
};

static struct held table[MAX_HELD];

int pm_heldfile_open_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat sb;
    int err = fstat(fd, &sb) < 0 ? errno : !S_ISREG(sb.st_mode) ? EINVAL : 0;
    if (err) {
        close(fd);
        errno = err;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

static struct held *find(const char *path)
{
    for (int i = 0; i < MAX_HELD; i++)
        if (table[i].path && strcmp(table[i].path, path) == 0)
            return &table[i];
    return NULL;
}

int pm_heldfile_set(const char *path, int fd, int err)
{
    struct held *h = find(path);
    for (int i = 0; !h && i < MAX_HELD; i++)
        if (!table[i].path && (table[i].path = strdup(path))) {
            h = &table[i];
            h->fd = -1;
        }
    if (!h) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (h->fd >= 0 && h->fd != fd)
        close(h->fd);
    h->fd = fd;
    h->err = fd >= 0 ? 0 : (err ? err : EBADF);
    return 0;
}

int pm_heldfile_open(const char *path, int *fd)
{
    struct held *h = path ? find(path) : NULL;
    if (!h)
        return 0;
    *fd = -1;
    if (h->fd < 0) {
        errno = h->err;
        return 1;
    }
    /* A duplicate shares the offset: rewind it, every reader starts from the top. */
    int d = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
    if (d >= 0 && lseek(d, 0, SEEK_SET) < 0) {
        int e = errno;
        close(d);
        d = -1;
        errno = e;
    }
    *fd = d;
    return 1;
}

int pm_heldfile_stamp(const char *path, struct pm_filestamp *st)
{
    struct held *h = path ? find(path) : NULL;
    if (!h)
        return 0;
    memset(st, 0, sizeof *st);
    if (h->fd >= 0)
        pm_filestamp_fd(h->fd, st);
    return 1;
}

void pm_heldfile_reset(void)
{
    for (int i = 0; i < MAX_HELD; i++) {
        if (table[i].fd >= 0 && table[i].path)
            close(table[i].fd);
        free(table[i].path);
        table[i] = (struct held){0};
    }
}
