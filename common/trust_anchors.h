/* DNSSEC trust anchors (resolver.trust_anchors): files of DS or DNSKEY records in zone-file
 * form (comments, parentheses, $ORIGIN and $TTL as in a zone file; Debian's root.key, the
 * .ds file ldns-keygen writes, the output of dig). The resolver reads them once at start,
 * before the sandbox, and hands them to libunbound as one record of text each; `postmesh
 * check` reads them the same way. */
#ifndef PM_TRUST_ANCHORS_H
#define PM_TRUST_ANCHORS_H
#include <stddef.h>

#define PM_MAX_TRUST_ANCHORS 256   /* records in all the files together */
#define PM_MAX_TRUST_ANCHOR_FILE (1u << 20)

struct pm_trust_anchors {
    char **v; /* "sec.test. 3600 IN DS 1234 13 2 ab..." */
    int n;
};

/* Reads every file of paths into out (appending). 0, or -1 with err naming the file (and
 * the line): unreadable, not a record, a record that is neither DS nor DNSKEY, or a file
 * without any anchor. out holds what was read so far either way: free it. */
int pm_trust_anchors_load(const char *const *paths, int npaths, struct pm_trust_anchors *out, char *err,
                          size_t errsize);
void pm_trust_anchors_free(struct pm_trust_anchors *a);

struct pm_config;
/* The files cfg names (resolver.trust_anchors), or the root KSK (PM_ROOT_TRUST_ANCHOR) when it
 * names none; as pm_trust_anchors_load. */
int pm_trust_anchors_load_config(const struct pm_config *cfg, struct pm_trust_anchors *out, char *err,
                                 size_t errsize);

#endif
