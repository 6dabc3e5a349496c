/* DNSSEC trust anchors (resolver.trust_anchors): files of DS or DNSKEY records in zone-file
 * form (comments, parentheses, $ORIGIN and $TTL as in a zone file; Debian's root.key, the
 * .ds file ldns-keygen writes, the output of dig). Read once at start, before the sandbox,
 * and handed to libunbound as one record of text each. */
#ifndef RESOLVER_ANCHORS_H
#define RESOLVER_ANCHORS_H
#include <stddef.h>

#define RESOLVER_MAX_ANCHORS 256   /* records in all the files together */
#define RESOLVER_MAX_ANCHOR_FILE (1u << 20)

struct resolver_anchors {
    char **v; /* "sec.test. 3600 IN DS 1234 13 2 ab..." */
    int n;
};

/* Reads every file of paths into out (appending). 0, or -1 with err naming the file (and
 * the line): unreadable, not a record, a record that is neither DS nor DNSKEY, or a file
 * without any anchor. out holds what was read so far either way: free it. */
int resolver_anchors_load(const char *const *paths, int npaths, struct resolver_anchors *out, char *err,
                          size_t errsize);
void resolver_anchors_free(struct resolver_anchors *a);

#endif
