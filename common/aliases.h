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
 * duplicates removed, also against what out held before). An address that is not an alias
 * expands to itself. Returns 0, or -1 on a loop or more than 1000 results (reason in err). */
int pm_aliases_expand(const struct pm_aliases *a, const struct pm_config *cfg, const char *address,
                      struct pm_strlist *out, char *err, size_t errsize);

/* The expansion of all the recipients of one message, in the order given. Final addresses
 * are de-duplicated across all of them (case-insensitive) and each alias is walked once per
 * message, so the work grows with what the aliases file holds, not with how often the RCPTs
 * repeat it; at most max_total final addresses in all. */
struct pm_alias_expansion;
struct pm_alias_expansion *pm_alias_expansion_new(const struct pm_aliases *a, const struct pm_config *cfg,
                                                  size_t max_total);
void pm_alias_expansion_free(struct pm_alias_expansion *x);

enum { PM_ALIAS_ERROR = -1, PM_ALIAS_TOO_MANY = -2 };
/* Appends to out (malloc'd strings) the final addresses of address that no earlier address
 * of this expansion gave. Returns 0; PM_ALIAS_ERROR for a loop, nesting deeper than 32,
 * more than 1000 addresses or 10,000 lookups from this one address (or no memory);
 * PM_ALIAS_TOO_MANY when its addresses would pass max_total. Reason in err. A failed
 * address adds nothing, so later ones still get theirs. */
int pm_alias_expansion_add(struct pm_alias_expansion *x, const char *address, struct pm_strlist *out, char *err,
                           size_t errsize);
/* Final addresses given so far. */
size_t pm_alias_expansion_count(const struct pm_alias_expansion *x);

#endif
