/* LIST / LSUB patterns (RFC 9051 §6.3.9): a reference and a mailbox pattern made into one
 * canonical pattern, and matching a mailbox name against it, where '*' matches anything and
 * '%' anything but the hierarchy separator '/'. INBOX is case-insensitive (the pattern's
 * first component is upper-cased when it spells inbox); every other byte matches exactly.
 * Owns no I/O: cmd_list.c reads folder names and writes the responses. */
#ifndef IMAP_LIST_MATCH_H
#define IMAP_LIST_MATCH_H
#include <stddef.h>

#define IMAP_LIST_PATTERN_MAX 1024 /* a longer reference + pattern is refused (BAD) */

/* dst = ref followed by pattern, with a leading "inbox" component spelled "INBOX" (a "/"
 * ending ref and a "/" starting pattern are not doubled). 0, or -1 if it does not fit in
 * size bytes or holds a NUL, CR or LF. */
int imap_list_pattern(const char *ref, size_t reflen, const char *pat, size_t patlen, char *dst, size_t size);

/* 1 if name matches the canonical pattern. Time and memory O(pattern * name): no
 * backtracking blow-up on "*%*%*..."; name longer than IMAP_LIST_PATTERN_MAX * 4 never
 * matches. */
int imap_list_match(const char *pattern, const char *name);

/* The root reply of LIST ref "": the reference up to and including its first '/', or "" if
 * it has none, into dst (truncated to size). */
void imap_list_root(const char *ref, size_t reflen, char *dst, size_t size);

#endif
