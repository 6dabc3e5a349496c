/* The mail store layout shared by delivery (writes) and pop3d (reads):
 * state_dir/mail/<domain>/<localpart>/Maildir/{tmp,new,cur}.
 * Domain and local part are lower-cased and made path-safe: [a-z0-9_+=-] and '.' (not
 * first) stay, every other byte becomes %xx, so no address can name "..", contain a '/'
 * or clash with another address's directory. */
#ifndef PM_MAILSTORE_H
#define PM_MAILSTORE_H
#include <stddef.h>

#include "config.h"

/* Encodes in[0..len) as one path component into dst. Returns 0, or -1 if empty or too long. */
int pm_mailstore_component(const char *in, size_t len, char *dst, size_t size);

/* The local part and the domain of address ("local@domain", split at the last '@'), each
 * encoded as one component. Returns 0, or -1 for an address without '@' or with an empty or
 * overlong part. */
int pm_mailstore_split(const char *address, char *local, size_t localsize, char *domain, size_t domainsize);

/* dst = the Maildir directory (without trailing '/') of address ("local@domain").
 * Returns 0, or -1 for an address without '@' or with an empty or overlong part. */
int pm_mailstore_maildir(const struct pm_config *cfg, const char *address, char *dst, size_t size);

/* mkdir -p of maildir and its tmp/, new/, cur/ (mode 0770 less the umask: the store group
 * shares them); newly made directories are made durable by fsyncing their parent.
 * Returns 0 or -1 (errno set). */
int pm_mailstore_create(const char *maildir);

/* fsync of a directory. Returns 0 or -1 (errno set). */
int pm_mailstore_fsync_dir(const char *path);

#endif
