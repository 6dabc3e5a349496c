/* Change detection for files re-read while running (users, aliases): an atomic rename gives
 * a new inode, an in-place edit a new mtime or size, so together they catch both. */
#ifndef PM_FILESTAMP_H
#define PM_FILESTAMP_H
#include <sys/types.h>
#include <time.h>

struct pm_filestamp {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/* Fills st from stat(path); a missing file gives exists = 0. Returns 0, or -1 (errno) for
 * any other stat error. */
int pm_filestamp_get(const char *path, struct pm_filestamp *st);
/* The same for an open file, so the stamp describes exactly the content read from fd. */
int pm_filestamp_fd(int fd, struct pm_filestamp *st);
int pm_filestamp_equal(const struct pm_filestamp *a, const struct pm_filestamp *b);

#endif
