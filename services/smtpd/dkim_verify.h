/* DKIM verification (RFC 6376, RFC 8463) with libopendkim: the headers and body go in at
 * once (dkim_verify_begin); after the headers the signatures' d= and s= are known and each
 * key's name ("<s>._domainkey.<d>" TXT) is noted as wanted in the message's DNS table; once
 * those are fetched, dkim_verify_finish runs dkim_eom with a key-lookup callback that
 * answers from the table. libopendkim never does DNS itself.
 *
 * Bounds: at most DKIM_VERIFY_MAX_SIGS signatures are verified (the rest are ignored), a
 * header section over DKIM_VERIFY_MAX_HEADER octets or a field over DKIM_VERIFY_MAX_FIELD
 * is not verified (permerror). */
#ifndef SMTPD_DKIM_VERIFY_H
#define SMTPD_DKIM_VERIFY_H
#include <stddef.h>

struct ar_dns;
struct evbuffer;
struct dkim_verify;

#define DKIM_VERIFY_MAX_SIGS 5
#define DKIM_VERIFY_MAX_HEADER (1024 * 1024)
#define DKIM_VERIFY_MAX_FIELD (64 * 1024)

enum dkim_verify_result {
    DKIM_VERIFY_NONE,
    DKIM_VERIFY_PASS,
    DKIM_VERIFY_FAIL,
    DKIM_VERIFY_TEMPERROR,
    DKIM_VERIFY_PERMERROR,
};

struct dkim_verify_sig {
    enum dkim_verify_result result;
    char domain[256];   /* d= ("" if the signature had none) */
    char selector[128]; /* s= */
    char alg[32];       /* "rsa-sha256", "ed25519-sha256" */
    char why[80];       /* libopendkim's reason when not a pass */
};

/* Once per process, before the sandbox chroots (libopendkim initialises OpenSSL and reads
 * the resolver configuration it will never use). 0, or -1. */
int dkim_verify_init(void);
void dkim_verify_shutdown(void);

/* Feeds the message: its header section hdr (hdrlen octets, CRLF lines) and the body, from
 * body_off of msg to its end. The keys' names are noted as wanted in d. NULL when out of
 * memory (the result is then temperror). */
struct dkim_verify *dkim_verify_begin(const char *hdr, size_t hdrlen, struct evbuffer *msg, size_t body_off,
                                      struct ar_dns *d);
/* After the keys were fetched: verifies; sigs gets up to max results, *n how many (one
 * "none" result when there was no signature). */
void dkim_verify_finish(struct dkim_verify *v, struct ar_dns *d, struct dkim_verify_sig *sigs, size_t max,
                        size_t *n);
void dkim_verify_free(struct dkim_verify *v);

const char *dkim_verify_result_name(enum dkim_verify_result r);

#endif
