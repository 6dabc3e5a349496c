#include "pinned.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define MAX_PINNED 8

static struct {
    char path[PATH_MAX];
    int dirfd;
    const char *base;
} pinned[MAX_PINNED];
static int npinned;

int pm_pinned_add(const char *path)
{
    if (!path || !*path || npinned == MAX_PINNED)
        return -1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    int fd = open(dirname(dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    snprintf(pinned[npinned].path, sizeof pinned[npinned].path, "%s", path);
    const char *slash = strrchr(pinned[npinned].path, '/');
    pinned[npinned].base = slash ? slash + 1 : pinned[npinned].path;
    pinned[npinned].dirfd = fd;
    npinned++;
    return 0;
}

static int find(const char *path)
{
    for (int i = 0; i < npinned; i++)
        if (strcmp(pinned[i].path, path) == 0)
            return i;
    return -1;
}

FILE *pm_pinned_fopen(const char *path)
{
    int i = find(path);
    if (i < 0)
        return fopen(path, "re");
    int fd = openat(pinned[i].dirfd, pinned[i].base, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f)
        close(fd);
    return f;
}

int pm_pinned_stat(const char *path, struct stat *sb)
{
    int i = find(path);
    if (i < 0)
        return stat(path, sb);
    return fstatat(pinned[i].dirfd, pinned[i].base, sb, 0);
}
