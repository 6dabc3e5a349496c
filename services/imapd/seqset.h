/* IMAP sequence sets (RFC 9051 §9 sequence-set: "1", "2:4", "*", "5:*", "1,3,5:7"): parsed
 * from one atom, then asked for membership or walked in ascending order against either the
 * message count (sequence numbers) or the UIDs of the selected folder (UID commands).
 *
 * What this file owns: the grammar, its bounds and what '*' means; not the folder (the
 * caller gives the count or a way to read the UIDs) and not the reply (the caller decides
 * BAD or an empty result; see imap_seqset_seq_valid).
 *
 * Rules kept here:
 * - numbers are nz-number (1..4294967295, no leading zero): "0", "01", "4294967296" are
 *   refused, as is an empty set, an empty element ("1,,2"), "1:" or ":2";
 * - "4:2" is the same as "2:4" and "5:*" with '*' = 3 is "3:5" (RFC 9051: a UID range
 *   "559:*" always includes the last message);
 * - '$' (SEARCHRES, RFC 5182) is refused: the capability is not offered;
 * - at most IMAP_SEQSET_MAX_RANGES elements (a client sending more is refused, so a set
 *   never costs more than ~160 KiB whatever the command size);
 * - '*' is the value the caller gives as `star`: the message count for sequence numbers,
 *   the largest UID in use for UIDs (RFC 9051: UIDNEXT if the folder is empty; an empty
 *   folder has no member whatever '*' is, so any value does). */
#ifndef IMAP_SEQSET_H
#define IMAP_SEQSET_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"

#define IMAP_SEQSET_MAX_RANGES 10000

struct imap_seqset; /* opaque; owned by the caller, imap_seqset_free */

/* Parses s[0..len) (a whole sequence-set, nothing after it). NULL on a syntax error or a
 * bound, with *err set to a short text for a tagged BAD (static, never freed), or on
 * out of memory (*err "Out of memory": the caller may answer NO instead). */
struct imap_seqset *imap_seqset_parse(const char *s, size_t len, const char **err);
/* The same for an argument: it must be an ATOM (a quoted "1:3" is refused, as Dovecot). */
struct imap_seqset *imap_seqset_from_arg(const struct imap_arg *arg, const char **err);
void imap_seqset_free(struct imap_seqset *set);

/* 1 if the atom's first byte could start a sequence set (a digit or '*'): SEARCH tells a
 * bare sequence set from a key name by it. */
int imap_seqset_looks_like(const char *s, size_t len);

/* Sequence-number check (FETCH, STORE, COPY, MOVE without UID): 1 if every number given is
 * at most count and, if '*' is used, count > 0. RFC 9051 §9 (seq-number): the server
 * should answer BAD when the check fails. */
int imap_seqset_seq_valid(const struct imap_seqset *set, uint32_t count);
/* 1 if '*' appears in the set. */
int imap_seqset_has_star(const struct imap_seqset *set);

/* Membership of n with '*' = star. The first call for a star sorts and merges the ranges
 * (O(r log r)), later calls with the same star are a binary search: calling it once per
 * message of a large folder is cheap. Not thread-safe (it caches in set). */
int imap_seqset_contains(struct imap_seqset *set, uint32_t n, uint32_t star);

/* Ascending walk, resumable across imap_yield (the iterator is a plain value the caller
 * keeps in its own state; the set must outlive it). Each member is given once. */
struct imap_seqset_iter {
    struct imap_seqset *set;
    uint32_t star;
    size_t range;  /* index into the set's merged ranges */
    uint64_t next; /* seq mode: the next number to give; uid mode: the next index */
};

/* Sequence numbers: the members in 1..count ('*' = count). Numbers above count are
 * skipped (check imap_seqset_seq_valid first where RFC 9051 wants a BAD). */
void imap_seqset_iter_seq(struct imap_seqset_iter *it, struct imap_seqset *set, uint32_t count);
/* 1 and *seq = the next member, or 0 at the end. */
int imap_seqset_next_seq(struct imap_seqset_iter *it, uint32_t *seq);

/* UIDs of a folder of n messages: uid_at(ctx, i) is the UID of message i (sequence
 * number i + 1), ascending in i as IMAP requires. '*' = uid_at(ctx, n - 1) (nothing
 * matches when n == 0). The walk gives sequence numbers, ascending, of the messages
 * whose UID is in the set; it costs O(log n) per range plus one step per member, so
 * "UID FETCH 4990:*" of a 5,000-message folder does not visit the first 4,989. The
 * folder is read on every call (n and uid_at may change between calls as long as
 * messages are only appended, which is all that happens during a command). */
typedef uint32_t imap_uid_at_fn(const void *ctx, size_t index);
void imap_seqset_iter_uid(struct imap_seqset_iter *it, struct imap_seqset *set, imap_uid_at_fn *uid_at,
                          const void *ctx, size_t n);
/* 1 and *seq (1-based) of the next message whose UID is a member, or 0 at the end. */
int imap_seqset_next_uid(struct imap_seqset_iter *it, imap_uid_at_fn *uid_at, const void *ctx, size_t n,
                         uint32_t *seq);

/* Sequence-set text for nums[0..n) in the order given, each run of consecutive ascending
 * numbers written a:b ("1:3,7,9:10"); nothing is sorted, so COPYUID's two sets keep their
 * pairing. For UIDPLUS (APPENDUID, COPYUID) and ESEARCH ALL. Returns a malloc'd
 * NUL-terminated string (free it), "" for n == 0, NULL on out of memory. */
char *imap_seqset_format(const uint32_t *nums, size_t n);

#endif
