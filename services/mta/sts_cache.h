/* The MTA-STS policy store of the mta (RFC 8461 3.3, 5.1): every policy fetched, until its
 * max_age, in memory and as one file per policy domain in a directory of its own (the mta's
 * working directory's "sts/"), so a restarted mta keeps enforcing what it learnt and an
 * attacker who blocks the fetch after a restart gains nothing. A file is written whole
 * (temporary file, fsync, rename, directory fsync): a crash leaves the old policy or the new
 * one, never half of either. What is read back is parsed again like a fetched body; a file
 * that does not parse, or whose policy expired, is removed.
 *
 * Memory holds at most MTA_STS_CACHE_MEMORY policies (the least recently used go first);
 * the others stay on disk and are read when their domain is asked for. */
#ifndef MTA_STS_CACHE_H
#define MTA_STS_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "sts.h"

#define MTA_STS_CACHE_MEMORY 512

struct mta_sts_cache;

/* Makes dir if needed (0700) and reads it: expired and broken files are removed, the newest
 * policies kept in memory. NULL (logged) when dir cannot be made or opened. */
struct mta_sts_cache *mta_sts_cache_open(const char *dir, uint64_t now);
void mta_sts_cache_free(struct mta_sts_cache *c);

/* The policy of domain (lower case) if one is stored and not expired at now (unix seconds);
 * an expired one is forgotten, its file removed. Valid until the next put. */
const struct mta_sts_policy *mta_sts_cache_get(struct mta_sts_cache *c, const char *domain, uint64_t now);

/* Stores p (its id, mode, max_age, mx; expires is set to fetched + max_age) with the body as
 * served (text, len octets). 0, or -1 when the file could not be written (logged; memory
 * still has it). A max_age of 0 keeps nothing and removes what the domain had. */
int mta_sts_cache_put(struct mta_sts_cache *c, const char *domain, const struct mta_sts_policy *p,
                      const char *text, size_t len, uint64_t fetched);

size_t mta_sts_cache_count(const struct mta_sts_cache *c); /* in memory */

/* A domain name usable as a file name: [a-z0-9.-_], not starting with '.', 1..253. */
int mta_sts_cache_name_ok(const char *domain);

#endif
