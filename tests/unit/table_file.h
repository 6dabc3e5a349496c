/* A table file (users, aliases) for unit tests of its loader: one file in a fresh directory
 * under /tmp, replaced atomically as `postmesh user` does (a new inode every time).
 * Header-only, as fake_queue.h: each test program is one file plus its libraries. */
#ifndef TABLE_FILE_H
#define TABLE_FILE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dir = mkdtemp(tmpl) ("/tmp/...XXXXXX", shorter than dir), path = dir/name. 0 or -1. */
static inline int tf_open(char *dir, const char *tmpl, char *path, size_t pathsize, const char *name)
{
    strcpy(dir, tmpl);
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, pathsize, "%s/%s", dir, name);
    return 0;
}

/* Removes path, what tf_replace may have left beside it, and dir. */
static inline void tf_close(const char *dir, const char *path)
{
    char tmp[160];
    unlink(path);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    unlink(tmp);
    rmdir(dir);
}

/* path's content becomes text, through a rename. */
static inline void tf_replace(const char *path, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

#endif
