/* MX record sets -> the list of hosts to try (RFC 5321 5.1, RFC 7505). */
#ifndef RESOLVER_MX_H
#define RESOLVER_MX_H
#include <stdint.h>

#define RESOLVER_MAX_MX 16 /* hosts kept per domain; nobody needs more */

struct resolver_mx {
    uint16_t pref;
    const char *name; /* normalized; "." is the null MX target */
};

enum resolver_mx_kind {
    RESOLVER_MX_HOSTS,   /* *n hosts to try, in order */
    RESOLVER_MX_NULL,    /* the domain accepts no mail (a lone "0 ." record) */
};

/* Random integer in [0, bound) for the shuffle; tests pass a fixed sequence. */
typedef uint32_t (*resolver_rng)(uint32_t bound, void *arg);
uint32_t resolver_rng_default(uint32_t bound, void *arg);

/* In place: drops "." targets mixed with real ones (a misconfiguration RFC 7505 forbids),
 * sorts by preference ascending, shuffles each run of equal preference, drops repeated
 * hosts (keeping the most preferred) and keeps at most RESOLVER_MAX_MX. */
enum resolver_mx_kind resolver_mx_order(struct resolver_mx *mx, int *n, resolver_rng rng, void *rng_arg);

#endif
