/* Files a process keeps reading after it chroots away from them (the queue re-reads the
 * aliases file): registered before the chroot, then stat'ed and opened through the reader
 * outside the chroot (common/outside.h), which hands back a descriptor of the file only. */
#ifndef PM_PINNED_H
#define PM_PINNED_H
#include <stdio.h>
#include <sys/stat.h>

/* Registers path; call before pm_outside_start. 0 or -1. */
int pm_pinned_add(const char *path);
FILE *pm_pinned_fopen(const char *path);                 /* read-only, close-on-exec */
int pm_pinned_stat(const char *path, struct stat *sb);

#endif
