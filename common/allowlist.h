/* The bus allowlist: which public keys may connect, and as which role. Built from the *.pub
 * files of the keys directory (<role>.pub, <role>.<replica>.pub), re-read when an unknown key
 * knocks and every few seconds, so a removed file revokes that key, even for a peer that is
 * already connected (every message's sender is looked up again). Thread-safe: the ZAP thread
 * reloads while the service's loop looks senders up. */
#ifndef PM_ALLOWLIST_H
#define PM_ALLOWLIST_H
#include <sys/stat.h>

#include "keys.h"

#define PM_ALLOWLIST_MAX_KEYS 4096
#define PM_ALLOWLIST_MAX_TEXT (PM_ALLOWLIST_MAX_KEYS * (PM_KEY_NAME + PM_KEY_Z85 + 2) + 32)

/* Scans dir (allowlist_scan.c): one "name z85\n" line per usable key file. Follows symlinks
 * (a Kubernetes Secret volume is made of them) but skips, with a log line, files that are
 * not regular, that others than root or us own or may write, whose name has no role, or
 * that are not one Z85 key. A key file that is not a key yet and was modified just now (or
 * changed while it was read) is being written: "? name\n" keeps that name's previous key.
 * The last line, "#state HEX\n" (or "#state -\n" when a file changed while it was read),
 * is the directory's state as pm_allowlist_state gives it. NULL (errno) if the directory
 * cannot be read or others may write it. */
char *pm_allowlist_scan(const char *dir);
/* The same through a descriptor of the directory (dir only names it in logs). */
char *pm_allowlist_scan_fd(int dirfd, const char *dir);

/* The directory's state, to tell whether a scan could give another list: its stat(2), with
 * st_size a digest of the directory's own stat and every key file's name and stat (following
 * symlinks). A file written in place leaves the directory's mtime alone, and a file created
 * in the same timestamp tick as the last change may too; neither escapes the digest. Costs a
 * listing and a stat per key file, no read. 0 or -1. */
int pm_allowlist_state(const char *dir, struct stat *st);
int pm_allowlist_state_fd(int dirfd, struct stat *st);

/* From now on only root's files and symlinks count (the reader, which runs as the service's
 * user, calls this: files that user could write are not trusted). */
void pm_allowlist_root_only(void);

/* Replaces the allowlist with text (pm_allowlist_scan's format; "#" lines are ignored).
 * Returns the key count. */
int pm_allowlist_set(const char *text);

/* Re-reads dir (through the reader outside the chroot when one runs). Count or -1. */
int pm_allowlist_reload(const char *dir);

/* Re-reads dir only if its state (pm_allowlist_state) changed since the last reload, or the
 * last scan met a file changing under it (cheap enough for every unknown key that knocks:
 * a ZAP denial is final for that peer, so a key file completed since the last scan must be
 * read now). 1 reloaded, 0 unchanged, -1 error. */
int pm_allowlist_reload_if_changed(const char *dir);

/* Looks a key up (binary, or Z85 as ZAP's User-Id carries it). 1 and the role and name if
 * listed, 0 if not. */
int pm_allowlist_find(const unsigned char key[32], enum pm_role *role, char name[PM_KEY_NAME]);
int pm_allowlist_find_z85(const char *z85, enum pm_role *role, char name[PM_KEY_NAME]);

/* Bumped by every change: a cache of lookups is valid while this stays the same. */
unsigned pm_allowlist_generation(void);

#endif
