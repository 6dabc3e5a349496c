/* MTA-STS text formats (RFC 8461), pure and bounded: the "_mta-sts" TXT record (3.1) and the
 * policy body served at /.well-known/mta-sts.txt (3.2), and MX name matching (4.1). No I/O,
 * no allocation; every input is hostile (fuzzed: tests/fuzz/fuzz_mta_sts_policy.c). */
#ifndef MTA_STS_POLICY_H
#define MTA_STS_POLICY_H
#include <stddef.h>

#include "sts.h"

#define MTA_STS_MAX_AGE_LIMIT 31557600u /* RFC 8461 3.2: max_age at most a year */

/* The TXT records of "_mta-sts.<domain>" (each one's strings already joined). Records that do
 * not begin with "v=STSv1" and ';' are not ours and are skipped (3.1). Returns 1 and the
 * record's id when exactly one is left and it is valid; 0 when none is (no policy
 * announced); -1 when several are, or the one is malformed: the domain has no usable record
 * (why says which). id: 1..32 letters and digits, NUL-ended. */
int mta_sts_txt_parse(const char *const *texts, size_t ntexts, char id[33], char *why, size_t whysize);

/* A policy body (len octets, not NUL-ended, at most MTA_STS_MAX_POLICY). 0: p's mode, max_age
 * (clamped to a year), nmx and mx (lower case, no trailing dot) are set; id, expires and text
 * are left as they were. -1: not a valid policy, why says what is wrong. Fields may come in
 * any order; an unknown field is ignored; a repeated field other than mx counts the first
 * time only (3.2). testing and enforce need at least one mx. */
int mta_sts_policy_parse(const char *body, size_t len, struct mta_sts_policy *p, char *why, size_t whysize);

/* One mx pattern against an MX host name (either case, an ending dot allowed): equal, or
 * "*.<rest>" with host = one label + "." + rest (4.1). */
int mta_sts_pattern_matches(const char *pattern, const char *host);

const char *mta_sts_mode_name(enum mta_sts_mode m); /* "none", "testing", "enforce" */

#endif
