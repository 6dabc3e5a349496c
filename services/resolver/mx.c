#include "mx.h"

#include <stdlib.h>
#include <string.h>

uint32_t resolver_rng_default(uint32_t bound, void *arg)
{
    (void)arg;
    return arc4random_uniform(bound);
}

static int by_pref(const void *a, const void *b)
{
    const struct resolver_mx *x = a, *y = b;
    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return strcmp(x->name, y->name); /* deterministic before the shuffle */
}

enum resolver_mx_kind resolver_mx_order(struct resolver_mx *mx, int *n, resolver_rng rng, void *rng_arg)
{
    int count = 0, nulls = 0;
    for (int i = 0; i < *n; i++) {
        if (strcmp(mx[i].name, ".") == 0)
            nulls++;
        else
            mx[count++] = mx[i];
    }
    if (count == 0) {
        *n = 0;
        return nulls ? RESOLVER_MX_NULL : RESOLVER_MX_HOSTS;
    }
    qsort(mx, (size_t)count, sizeof *mx, by_pref);

    /* Same host listed twice: keep its first (most preferred) entry. */
    int kept = 0;
    for (int i = 0; i < count; i++) {
        int dup = 0;
        for (int j = 0; j < kept && !dup; j++)
            dup = strcmp(mx[j].name, mx[i].name) == 0;
        if (!dup)
            mx[kept++] = mx[i];
    }

    /* Fisher-Yates within each run of equal preference: spreads the load (RFC 5321 5.1). */
    for (int start = 0; start < kept;) {
        int end = start + 1;
        while (end < kept && mx[end].pref == mx[start].pref)
            end++;
        for (int i = end - 1; i > start; i--) {
            int j = start + (int)rng((uint32_t)(i - start + 1), rng_arg);
            struct resolver_mx tmp = mx[i];
            mx[i] = mx[j];
            mx[j] = tmp;
        }
        start = end;
    }
    *n = kept < RESOLVER_MAX_MX ? kept : RESOLVER_MAX_MX;
    return RESOLVER_MX_HOSTS;
}
