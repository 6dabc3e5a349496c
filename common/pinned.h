/* Files a process keeps reading after it chroots away from them (the queue re-reads the
 * aliases file from inside its LMDB directory): pin the file's directory while it is still
 * visible, and later opens/stats of that path go through the pinned directory descriptor. */
#ifndef PM_PINNED_H
#define PM_PINNED_H
#include <stdio.h>
#include <sys/stat.h>

/* Pins path's directory (O_PATH). 0 or -1. Up to a handful of paths per process. */
int pm_pinned_add(const char *path);
FILE *pm_pinned_fopen(const char *path);                 /* read-only, close-on-exec */
int pm_pinned_stat(const char *path, struct stat *sb);

#endif
