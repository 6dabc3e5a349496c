/* The bus allowlist: which public keys may connect, and as which role. Built from the *.pub
 * files of the keys directory (<role>.pub, <role>.<replica>.pub), re-read when an unknown key
 * knocks and every few seconds, so a removed file revokes that key, even for a peer that is
 * already connected (every message's sender is looked up again). Thread-safe: the ZAP thread
 * reloads while the service's loop looks senders up. */
#ifndef PM_ALLOWLIST_H
#define PM_ALLOWLIST_H
#include "keys.h"

/* Scans dir: one "name z85\n" line per usable key file. Follows symlinks (a Kubernetes
 * Secret volume is made of them) but skips, with a log line, files that are not regular,
 * that others than root or us own or may write, whose name has no role, or that are not one
 * Z85 key. NULL (errno) if the directory cannot be read or others may write it. */
char *pm_allowlist_scan(const char *dir);
/* The same through a descriptor of the directory (dir only names it in logs). */
char *pm_allowlist_scan_fd(int dirfd, const char *dir);

/* From now on only root's files and symlinks count (the reader, which runs as the service's
 * user, calls this: files that user could write are not trusted). */
void pm_allowlist_root_only(void);

/* Replaces the allowlist with text (pm_allowlist_scan's format). Returns the key count. */
int pm_allowlist_set(const char *text);

/* Re-reads dir (through the reader outside the chroot when one runs). Count or -1. */
int pm_allowlist_reload(const char *dir);

/* Re-reads dir only if the directory changed since the last reload (cheap enough for every
 * unknown key that knocks). 1 reloaded, 0 unchanged, -1 error. */
int pm_allowlist_reload_if_changed(const char *dir);

/* Looks a key up (binary, or Z85 as ZAP's User-Id carries it). 1 and the role and name if
 * listed, 0 if not. */
int pm_allowlist_find(const unsigned char key[32], enum pm_role *role, char name[PM_KEY_NAME]);
int pm_allowlist_find_z85(const char *z85, enum pm_role *role, char name[PM_KEY_NAME]);

/* Bumped by every change: a cache of lookups is valid while this stays the same. */
unsigned pm_allowlist_generation(void);

#endif
