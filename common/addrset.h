/* A set of addresses compared case-insensitively (ASCII, as strcasecmp does), for
 * de-duplicating recipients in O(1) per address instead of a scan of all those before it. */
#ifndef PM_ADDRSET_H
#define PM_ADDRSET_H
#include <stddef.h>

struct pm_addrset;

struct pm_addrset *pm_addrset_new(void);
void pm_addrset_free(struct pm_addrset *s);

/* Adds a copy of address: 1 if it was new, 0 if an equal one was there, -1 out of memory. */
int pm_addrset_add(struct pm_addrset *s, const char *address);
int pm_addrset_has(const struct pm_addrset *s, const char *address);
/* 1 if it was there (and is gone now), 0 if not. */
int pm_addrset_remove(struct pm_addrset *s, const char *address);
size_t pm_addrset_count(const struct pm_addrset *s);

#endif
