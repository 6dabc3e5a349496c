#include "filestamp.h"
#include "pinned.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static void fill(struct pm_filestamp *st, const struct stat *sb)
{
    st->exists = 1;
    st->dev = sb->st_dev;
    st->ino = sb->st_ino;
    st->size = sb->st_size;
    st->mtime = sb->st_mtim;
}

int pm_filestamp_get(const char *path, struct pm_filestamp *st)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (pm_pinned_stat(path, &sb) < 0)
        return errno == ENOENT ? 0 : -1;
    fill(st, &sb);
    return 0;
}

int pm_filestamp_fd(int fd, struct pm_filestamp *st)
{
    memset(st, 0, sizeof *st);
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -1;
    fill(st, &sb);
    return 0;
}

int pm_filestamp_equal(const struct pm_filestamp *a, const struct pm_filestamp *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}
