/* A case-insensitive set of address strings: open addressing with linear probing, at most
 * half full, deletion by shifting the rest of a probe run back (no tombstones, so a set that
 * is filled and emptied again stays fast).
 *
 * The hash is not keyed. Every user bounds what goes in (recipients per message, alias
 * expansion per message), so addresses crafted to collide cost at most the linear scan this
 * replaces, over that bounded number. */
#include "addrset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 16

struct pm_addrset {
    char **slot; /* cap entries, NULL = free */
    size_t cap;  /* a power of two */
    size_t n;
};

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

/* FNV-1a over the lower-cased bytes, then a 64-bit finaliser so the low bits (the index) mix. */
static uint64_t hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ lower(*p)) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int same(const char *a, const char *b)
{
    for (; lower((unsigned char)*a) == lower((unsigned char)*b); a++, b++)
        if (!*a)
            return 1;
    return 0;
}

struct pm_addrset *pm_addrset_new(void)
{
    struct pm_addrset *s = calloc(1, sizeof *s);
    if (s && !(s->slot = calloc(MIN_CAP, sizeof *s->slot))) {
        free(s);
        return NULL;
    }
    if (s)
        s->cap = MIN_CAP;
    return s;
}

void pm_addrset_free(struct pm_addrset *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    free(s);
}

/* The slot holding address, or the free slot where it would go. */
static size_t find(const struct pm_addrset *s, const char *address)
{
    size_t mask = s->cap - 1, i = (size_t)hash(address) & mask;
    while (s->slot[i] && !same(s->slot[i], address))
        i = (i + 1) & mask;
    return i;
}

static int grow(struct pm_addrset *s)
{
    size_t ncap = s->cap * 2;
    char **old = s->slot, **nv = calloc(ncap, sizeof *nv);
    if (!nv)
        return -1;
    size_t ocap = s->cap;
    s->slot = nv;
    s->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            s->slot[find(s, old[i])] = old[i];
    free(old);
    return 0;
}

int pm_addrset_add(struct pm_addrset *s, const char *address)
{
    if ((s->n + 1) * 2 > s->cap && grow(s) < 0)
        return -1;
    size_t i = find(s, address);
    if (s->slot[i])
        return 0;
    if (!(s->slot[i] = strdup(address)))
        return -1;
    s->n++;
    return 1;
}

int pm_addrset_has(const struct pm_addrset *s, const char *address)
{
    return s->slot[find(s, address)] != NULL;
}

int pm_addrset_remove(struct pm_addrset *s, const char *address)
{
    size_t mask = s->cap - 1, i = find(s, address);
    if (!s->slot[i])
        return 0;
    free(s->slot[i]);
    s->slot[i] = NULL;
    s->n--;
    /* Move back every later entry of the run that may no longer be reachable past the hole. */
    for (size_t j = (i + 1) & mask; s->slot[j]; j = (j + 1) & mask) {
        size_t home = (size_t)hash(s->slot[j]) & mask;
        /* The entry at j stays if its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->slot[i] = s->slot[j];
            s->slot[j] = NULL;
            i = j;
        }
    }
    return 1;
}

size_t pm_addrset_count(const struct pm_addrset *s) { return s->n; }
