/* Key -> position index with open addressing (keyhash.h). */
#include "keyhash.h"

#include <stdlib.h>
#include <string.h>

uint32_t imap_keyhash_hash(const char *key, size_t len)
{
    /* FNV-1a: keys are file names we or delivery made; no adversary picks collisions
     * cheaply enough to matter at a few thousand entries, and lookups stay bounded by the
     * load factor below. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static void insert(struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, uint32_t pos)
{
    size_t len;
    const char *k = key_at(ctx, pos, &len);
    size_t mask = h->size - 1, i = imap_keyhash_hash(k, len) & mask;
    while (h->slot[i])
        i = (i + 1) & mask;
    h->slot[i] = pos + 1;
    h->used++;
}

static int grow(struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, size_t want)
{
    size_t size = 16;
    while (size < want * 2)
        size *= 2;
    uint32_t *slot = calloc(size, sizeof *slot);
    if (!slot)
        return -1;
    uint32_t *old = h->slot;
    size_t oldsize = h->size;
    h->slot = slot;
    h->size = size;
    h->used = 0;
    for (size_t i = 0; i < oldsize; i++)
        if (old[i])
            insert(h, key_at, ctx, old[i] - 1);
    free(old);
    return 0;
}

int imap_keyhash_build(struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, uint32_t n)
{
    imap_keyhash_free(h);
    if (grow(h, key_at, ctx, n + 1) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        insert(h, key_at, ctx, i);
    return 0;
}

int imap_keyhash_add(struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, uint32_t pos)
{
    if ((h->used + 1) * 2 > h->size && grow(h, key_at, ctx, h->used + 1) < 0)
        return -1;
    insert(h, key_at, ctx, pos);
    return 0;
}

long imap_keyhash_find(const struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, const char *key,
                       size_t len)
{
    if (!h->size)
        return -1;
    size_t mask = h->size - 1, i = imap_keyhash_hash(key, len) & mask;
    for (; h->slot[i]; i = (i + 1) & mask) {
        size_t klen;
        const char *k = key_at(ctx, h->slot[i] - 1, &klen);
        if (klen == len && memcmp(k, key, len) == 0)
            return (long)(h->slot[i] - 1);
    }
    return -1;
}

void imap_keyhash_free(struct imap_keyhash *h)
{
    free(h->slot);
    *h = (struct imap_keyhash){0};
}
