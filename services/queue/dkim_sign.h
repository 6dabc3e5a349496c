/* DKIM signing of originating mail at intake (RFC 6376, RFC 8463; docs/dkim.md). The keys
 * of the `dkim` list are read and checked once, at queue start, before the chroot; a
 * submission marked originating whose From: domain has an active key gets one
 * DKIM-Signature per algorithm (rsa-sha256, ed25519-sha256), relaxed/relaxed, made with
 * OpenSSL (dkim_sign_openssl.c says why not libopendkim's signer), prepended to the body that
 * is then stored: every delivery attempt sends the same signed octets. */
#ifndef QUEUE_DKIM_SIGN_H
#define QUEUE_DKIM_SIGN_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum dkim_alg { DKIM_ALG_RSA, DKIM_ALG_ED25519, DKIM_ALG_N };

struct dkim_key {
    const char *domain, *selector; /* the config's strings */
    enum dkim_alg alg;
    int active;
    int bits;                 /* rsa: modulus size */
    struct evp_pkey_st *pkey; /* parsed once at start; OpenSSL signs with it (dkim_sign_openssl.c) */
};

struct dkim_signer; /* the loaded keys */

/* Reads and checks every key of cfg->dkim: readable, not world-readable, rsa >= 2048 bits or
 * ed25519, at most one active key per (domain, algorithm). NULL with "file:line: reason" in
 * err on any problem; with no keys configured a signer that signs nothing. */
struct dkim_signer *queue_dkim_load(const struct pm_config *cfg, char *err, size_t errsize);
void queue_dkim_free(struct dkim_signer *d);
int queue_dkim_nkeys(const struct dkim_signer *d);

/* The domain of the message's one From: address, lower-cased. 0, or -1 with why (a short
 * word for the log: no_from, several_from, group, several_addresses, no_domain,
 * bad_domain, too_long). */
int queue_dkim_from_domain(const uint8_t *msg, size_t len, char *domain, size_t dsize, const char **why);

/* The active keys for domain (case-insensitive), at most one per algorithm, rsa first.
 * Returns how many (0: not ours to sign). */
int queue_dkim_choose(const struct dkim_signer *d, const char *domain, const struct dkim_key *out[DKIM_ALG_N]);

const char *queue_dkim_alg_name(enum dkim_alg a); /* "rsa-sha256", "ed25519-sha256" */

/* Signs msg (headers + body, CRLF) with keys: *hdrs gets the DKIM-Signature header fields
 * (malloc'd and NUL-terminated, CRLF line ends, to put before msg), *hlen their length. 0, or -1 with why. */
int queue_dkim_sign(const uint8_t *msg, size_t len, const struct dkim_key *const *keys, int nkeys, char **hdrs,
                    size_t *hlen, const char **why);

/* What signing a submission came to: logged once the message has its queue id. */
struct dkim_outcome {
    enum { DKIM_NOT_OURS, DKIM_NOT_SIGNED, DKIM_SIGNED } state; /* NOT_OURS: not originating (no log) */
    const char *reason;          /* NOT_SIGNED: no_from, no_key, sign_failed, ... */
    char domain[256];            /* the From: domain, when there was one */
    char selectors[160], algorithms[64], error[128];
};

/* Intake: signs the Submit's body in place when it is originating and its From: domain has
 * a key. Never fails the submission: mail that cannot be signed goes unsigned (o says why).
 * Thread-safe for different submissions (the pool's threads run it: dkim_sign_pool.c). */
struct Postmesh__Submit;
void queue_dkim_sign_submit(struct dkim_signer *d, struct Postmesh__Submit *s, struct dkim_outcome *o);
/* event=dkim_signed / event=dkim_not_signed for the message id (nothing for NOT_OURS). */
void queue_dkim_log(const struct dkim_outcome *o, const char *id);

/* dkim_sign_pool.c: signing off the event loop, so that rsa signatures (0.3 ms each) do not
 * hold up the group commit of everything else read in the same burst. Threads sign the
 * submissions handed to them and give them back to the loop, which admits them (submit.c). */
struct Postmesh__BusMessage;
struct event_base;
struct dkim_pool;
typedef void dkim_pool_done_fn(void *arg, struct Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen,
                               const struct dkim_outcome *o);
/* NULL (logged) if the threads could not be started: then intake signs inline. */
struct dkim_pool *queue_dkim_pool_new(struct event_base *base, struct dkim_signer *d, int threads, size_t max_jobs,
                                      dkim_pool_done_fn *done, void *arg);
/* Takes bm if it is originating and there is room (the caller then steals it from the bus):
 * 1, and done() runs later in the loop; 0: not taken (not to be signed, pool full or NULL). */
int queue_dkim_pool_take(struct dkim_pool *p, struct Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen);
/* Stops and joins the threads; submissions not given back are freed unanswered (never
 * acknowledged: the client retries). */
void queue_dkim_pool_free(struct dkim_pool *p);

#endif
