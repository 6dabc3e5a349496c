/* The HTTPS client of MTA-STS (RFC 8461 3.3): GET https://mta-sts.<domain>/.well-known/
 * mta-sts.txt with libcurl's multi interface on the mta's libevent loop (no thread, no
 * blocking call). Only what the RFC allows: https and nothing else, no redirect followed, no
 * proxy, no HTTP cache, the certificate verified against the CA bundle given (read before the
 * chroot) for the name mta-sts.<domain>, the address given by the caller (from the resolver
 * service: libcurl never resolves a name itself), 200 with a text/plain body of at most
 * MTA_STS_MAX_POLICY octets, everything within a total timeout. */
#ifndef MTA_STS_FETCH_H
#define MTA_STS_FETCH_H
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mta_sts_fetcher;

#define MTA_STS_FETCH_MAX_ADDRESSES 8

struct mta_sts_fetch_result {
    int ok;                 /* body holds the policy as served */
    const char *body;       /* ok: len octets, NUL-ended; valid during the callback */
    size_t len;
    char result_type[48];   /* !ok: "sts-policy-fetch-error" or "sts-webpki-invalid" (RFC 8460) */
    char why[256];          /* !ok: what went wrong, for the log and TLSRPT */
};

typedef void (*mta_sts_fetch_cb)(const struct mta_sts_fetch_result *r, void *arg);

/* Call curl_global_init first (before the sandbox). ca/ca_len: the PEM bundle (copied).
 * port: the policy hosts' HTTPS port (mta.mta_sts_port). timeout_ms: each fetch, whole. */
struct mta_sts_fetcher *mta_sts_fetcher_new(struct event_base *base, const void *ca, size_t ca_len, long port,
                                            long connect_timeout_ms, long timeout_ms);
/* Cancels every fetch without calling back. */
void mta_sts_fetcher_free(struct mta_sts_fetcher *f);

/* Fetches the policy of domain from one of addresses (IPv4/IPv6 text, at most
 * MTA_STS_FETCH_MAX_ADDRESSES are used). cb is called exactly once, never from inside,
 * unless cancelled. Returns a handle (never 0). */
uint64_t mta_sts_fetch(struct mta_sts_fetcher *f, const char *domain, const char *const *addresses, size_t naddresses,
                       mta_sts_fetch_cb cb, void *arg);
void mta_sts_fetch_cancel(struct mta_sts_fetcher *f, uint64_t handle);

#endif
