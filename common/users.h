/* The users file: "address:{SCHEME}hash" lines (crypt(3) hashes: {YESCRYPT}, {SHA512-CRYPT}). */
#ifndef PM_USERS_H
#define PM_USERS_H
#include <stddef.h>

struct pm_users;

/* Loads path. A missing file is an empty database (not an error). Bad lines are errors
 * "path:line: reason". Returns NULL on error. */
struct pm_users *pm_users_load(const char *path, char *err, size_t errsize);
void pm_users_free(struct pm_users *u);

/* Re-reads the file if its mtime/size changed; keeps the old data if the new file is bad.
 * Returns 1 if reloaded, 0 if unchanged, -1 on error (err filled). */
int pm_users_reload_if_changed(struct pm_users **u, char *err, size_t errsize);

/* Case-insensitive address lookup. */
int pm_users_exists(const struct pm_users *u, const char *address);

/* 1 if the password matches, 0 otherwise (unknown users take as long as known ones). */
int pm_users_verify(const struct pm_users *u, const char *address, const char *password);

/* Parses one line into address/hash (pointers into a copy the caller frees with free(*addr)).
 * Returns 1 for an entry, 0 for a blank/comment line, -1 with a reason for a bad line. */
int pm_users_parse_line(const char *line, char **address, char **hash, const char **reason);

/* Makes a {YESCRYPT} (default) or {SHA512-CRYPT} hash string for the users file.
 * Returns a malloc'd "{SCHEME}hash" or NULL. */
char *pm_users_hash_password(const char *password, const char *scheme);

#endif
