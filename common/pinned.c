#include "pinned.h"

#include <unistd.h>

#include "outside.h"

int pm_pinned_add(const char *path) { return pm_outside_add_file(path) < 0 ? -1 : 0; }

FILE *pm_pinned_fopen(const char *path)
{
    int slot = pm_outside_find(path);
    if (slot < 0)
        return fopen(path, "re");
    int fd = pm_outside_open(slot);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f)
        close(fd);
    return f;
}

int pm_pinned_stat(const char *path, struct stat *sb)
{
    int slot = pm_outside_find(path);
    return slot < 0 ? stat(path, sb) : pm_outside_stat(slot, sb);
}
