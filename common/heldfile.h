/* Files a process reads but may no longer open by name. The lookup helpers drop root, and
 * the users file they answer from is root's (0640 root:root, as `postmesh user add` writes
 * it): the helper opens it while still root, and afterwards its privileged parent opens it
 * again whenever it changes and hands the descriptor over (privhelper.c). The helper never
 * needs read access to the file itself, the operator keeps the file root-only, and the
 * parent, which forks the workers, never reads a byte of it.
 *
 * pm_users_load() and friends ask here first; in a process that holds nothing (the CLI,
 * a service reading a file it may read) they open the path as before. */
#ifndef PM_HELDFILE_H
#define PM_HELDFILE_H

#include "filestamp.h"

/* Opens path for handing over: read-only, never blocking on a FIFO, a regular file only.
 * The descriptor, or -1 with errno. */
int pm_heldfile_open_path(const char *path);

/* From now on path is read through fd (taken over; the previous one is closed). fd -1 with
 * err = the errno the opener got (ENOENT: the file does not exist). 0, or -1 if the table
 * is full (fd is closed). */
int pm_heldfile_set(const char *path, int fd, int err);

/* Is path held? 1: *fd is a new descriptor reading it from the start (the caller closes
 * it), or -1 with errno = why the opener could not open it. 0: not held, open it yourself. */
int pm_heldfile_open(const char *path, int *fd);

/* 1: path is held, *st describes what the current descriptor reads (exists 0 when the
 * file was missing). 0: not held. */
int pm_heldfile_stamp(const char *path, struct pm_filestamp *st);

/* Forgets every held file (for tests). */
void pm_heldfile_reset(void);

#endif
