/* An index from message keys (byte strings) to positions in the caller's array: open
 * addressing over uint32 slots, for the UID list and the view, which look up thousands of
 * keys per directory scan. The table stores positions only; the caller gives a function
 * that returns the key at a position, so a key is kept once (in the caller's array).
 * Owns no keys and does no I/O. */
#ifndef IMAP_KEYHASH_H
#define IMAP_KEYHASH_H
#include <stddef.h>
#include <stdint.h>

/* The key at position pos of the caller's array, and its length. */
typedef const char *imap_keyhash_key_fn(const void *ctx, uint32_t pos, size_t *len);

struct imap_keyhash {
    uint32_t *slot; /* position + 1; 0 = empty */
    size_t size;    /* power of two, or 0 */
    size_t used;
};

/* Rebuilds the table for positions 0..n) of ctx. 0, or -1 (out of memory: the table is
 * empty and lookups find nothing). */
int imap_keyhash_build(struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, uint32_t n);
/* Adds position pos (its key must not be in the table). 0 or -1 (out of memory). */
int imap_keyhash_add(struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, uint32_t pos);
/* The position of key[0..len), or -1. */
long imap_keyhash_find(const struct imap_keyhash *h, imap_keyhash_key_fn *key_at, const void *ctx, const char *key,
                       size_t len);
void imap_keyhash_free(struct imap_keyhash *h);
uint32_t imap_keyhash_hash(const char *key, size_t len);

#endif
