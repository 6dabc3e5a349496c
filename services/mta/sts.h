/* MTA-STS (RFC 8461) for the mta: is there a policy for a recipient domain, and what does it
 * say. Discovery is the "_mta-sts.<domain>" TXT record through the resolver service; the
 * policy comes from https://mta-sts.<domain>/.well-known/mta-sts.txt (libcurl, certificates
 * verified against the mta's CA store, the host's address from the resolver too: never the
 * system's resolver, no redirects, bounded size and time). Policies are kept in memory and
 * on disk in the mta's own directory (sts_cache.c) until max_age, so a restarted mta still
 * enforces them; a TXT id that changed fetches the policy again.
 *
 * Split: sts_policy.c parses a policy and TXT records (pure, fuzzed), sts_fetch.c is the HTTPS
 * client on the event loop, sts_cache.c the store, sts.c the lookup that joins them. */
#ifndef MTA_STS_H
#define MTA_STS_H
#include <stdint.h>

struct event_base;
struct mta_resolver;
struct pm_config;

#define MTA_STS_MAX_MX 32
#define MTA_STS_MAX_POLICY 65536 /* octets of a policy body at most (RFC 8461 3.3 leaves it to us) */

enum mta_sts_mode { MTA_STS_MODE_NONE, MTA_STS_MODE_TESTING, MTA_STS_MODE_ENFORCE };

struct mta_sts_policy {
    enum mta_sts_mode mode;
    char id[33];            /* the TXT record's id it was fetched under (1..32 alphanumerics) */
    uint32_t max_age;       /* seconds (at most 31557600) */
    uint64_t expires;       /* unix seconds: fetched + max_age */
    int nmx;
    char mx[MTA_STS_MAX_MX][256]; /* "mail.example.com", "*.example.net", lower case */
    char *text;             /* the policy body as served (TLSRPT policy-string is its lines) */
};

enum mta_sts_status {
    MTA_STS_NONE,   /* no policy: no TXT record (or not v=STSv1), or mode none */
    MTA_STS_POLICY, /* a valid policy in mode testing or enforce: see policy */
    MTA_STS_FAILED, /* a TXT record says there is one, but it could not be fetched or parsed and
                     * nothing valid is cached: delivery goes on as without MTA-STS (RFC 8461
                     * 5.1), and TLSRPT hears result_type */
};

struct mta_sts_result {
    enum mta_sts_status status;
    const struct mta_sts_policy *policy; /* POLICY only; valid during the callback */
    char result_type[48];   /* FAILED: "sts-policy-fetch-error", "sts-policy-invalid",
                             * "sts-webpki-invalid" (RFC 8460 4.3.2) */
    char why[256];          /* FAILED: for logs and TLSRPT additional-information */
};

typedef void (*mta_sts_cb)(const struct mta_sts_result *r, void *arg);

/* Once, before the sandbox (as root, outside the chroot): curl_global_init, and the CA bundle
 * the policy hosts' certificates are verified with read into memory: mta.ca_file, else the
 * system's bundle (/etc/ssl/certs/ca-certificates.crt), else the hashed files of mta.ca_path.
 * chrooted: the mta's process will run in its own chroot, whose "sts/" holds the policies;
 * otherwise (no root) they are in state_dir/mta/sts. 0, or -1 (logged). */
int mta_sts_preload(const struct pm_config *cfg, int chrooted);

/* The cache lives in the working directory's "sts/" (sts_cache.h). NULL if out of memory,
 * mta_sts_preload was not called, or the cache directory cannot be made. */
struct mta_sts *mta_sts_new(struct event_base *base, struct mta_resolver *resolver, const struct pm_config *cfg);
void mta_sts_free(struct mta_sts *s);

/* domain lower case, not a literal. cb is called exactly once, never from inside, unless
 * cancelled first. Returns a handle for mta_sts_cancel (never 0). */
uint64_t mta_sts_lookup(struct mta_sts *s, const char *domain, mta_sts_cb cb, void *arg);
void mta_sts_cancel(struct mta_sts *s, uint64_t handle);

/* Does the MX host name match one of the policy's mx patterns (RFC 8461 4.1: "*." covers
 * exactly one leftmost label)? */
int mta_sts_mx_matches(const struct mta_sts_policy *p, const char *mx_host);

#endif
