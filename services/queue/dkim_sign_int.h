/* Inside the DKIM signer (dkim_sign*.c only). */
#ifndef QUEUE_DKIM_SIGN_INT_H
#define QUEUE_DKIM_SIGN_INT_H
#include "dkim_sign.h"

struct dkim_signer {
    struct dkim_key *keys;
    int nkeys;
};

/* dkim_sign_keys.c: reads and checks cfg's keys into d. 0 or -1 (err). */
int queue_dkim_load_keys(struct dkim_signer *d, const struct pm_config *cfg, char *err, size_t size);
void queue_dkim_free_keys(struct dkim_signer *d);

/* dkim_sign_idna.c: d (UTF-8 labels) with every non-ASCII label as its a-label ("xn--..."),
 * ASCII lower-cased, into out. 0, or -1: not UTF-8, a label empty or longer than 63. */
int queue_dkim_to_alabels(const char *d, char *out, size_t size);

/* dkim_sign_openssl.c: one DKIM-Signature field of msg with key k (CRLF line ends and
 * NUL-terminated, malloc'd into out). 0, or -1 with why. */
struct dkim_field {
    char *d;
    size_t n;
};
int queue_dkim_sign_one(const struct dkim_key *k, const char *const *signed_headers, const uint8_t *msg,
                        size_t len, struct dkim_field *out, const char **why);

#endif
