/* The reader outside the chroot: a small process forked before a service chroots, that opens
 * on request only the files registered before the fork and hands back descriptors of regular
 * files (never of a directory: `..` from a directory descriptor walks out of any chroot).
 *
 * The queue re-reads its aliases file, and the queue and resolver re-read the keys directory
 * (the bus allowlist) while they run. A compromised service can ask the reader for those
 * files and nothing else; the reader takes a slot number, not a path. */
#ifndef PM_OUTSIDE_H
#define PM_OUTSIDE_H
#include <sys/stat.h>

/* Before pm_outside_start: a file to stat and open, or a keys directory whose allowlist
 * (see allowlist.h) to produce. Returns the slot, or -1. */
int pm_outside_add_file(const char *path);
int pm_outside_add_keys(const char *dir);
int pm_outside_find(const char *path); /* slot of a registered path, or -1 */

/* Forks the reader, as user when started as root (it opens the keys directories first, so
 * a root-only state_dir does not hide them). With no slots nothing happens, and without a
 * reader the calls below are answered in-process. Call before the first thread. 0/-1. */
int pm_outside_start(const char *user);
int pm_outside_running(void);

/* stat(2) of a slot (a keys slot: its directory's state, pm_allowlist_state, to tell
 * whether the allowlist changed). 0, or -1 with errno (ENOENT when the file is gone). */
int pm_outside_stat(int slot, struct stat *st);
/* A read-only descriptor (close-on-exec) of a file slot, or of a memory file holding a keys
 * slot's allowlist text. -1 with errno. Thread-safe (the queue's ZAP thread asks too). */
int pm_outside_open(int slot);

#endif
