/* The aliases file: "alias: target, target" lines as in /etc/aliases (with full addresses). */
#ifndef PM_ALIASES_H
#define PM_ALIASES_H
#include <stddef.h>

#include "config.h"

struct pm_aliases;

/* Loads path. Missing/empty path is an empty table. Bad lines: "path:line: reason", NULL. */
struct pm_aliases *pm_aliases_load(const char *path, char *err, size_t errsize);
void pm_aliases_free(struct pm_aliases *a);
int pm_aliases_reload_if_changed(struct pm_aliases **a, char *err, size_t errsize);

/* Is address (case-insensitive) an alias? A bare-local-part alias matches in any of the
 * config's local domains. */
int pm_aliases_is_alias(const struct pm_aliases *a, const struct pm_config *cfg, const char *address);

/* Recursively expands address into final addresses (appended to out, malloc'd strings,
 * duplicates removed). An address that is not an alias expands to itself. Returns 0, or -1
 * on a loop or more than 1000 results (reason in err). */
int pm_aliases_expand(const struct pm_aliases *a, const struct pm_config *cfg, const char *address,
                      struct pm_strlist *out, char *err, size_t errsize);

#endif
