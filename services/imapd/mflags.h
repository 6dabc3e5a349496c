/* Message flags: IMAP system flags as bits, and the Maildir info in file names that keeps
 * them ("<key>:2,<letters>", letters sorted ASCII: D=\Draft F=\Flagged R=\Answered S=\Seen
 * T=\Deleted; Maildir++ / Dovecot). Letters this file does not know (P=$Forwarded, Dovecot's
 * keyword letters a..z) are kept untouched when a name is rewritten, so another reader's
 * flags survive our STORE.
 *
 * Owns the letters, the bits, the "(\Seen \Flagged)" text and the reading of a flag list
 * from a parsed command; no I/O (view.c renames the files). */
#ifndef IMAP_MFLAGS_H
#define IMAP_MFLAGS_H
#include <stddef.h>

#include "args.h"

#define IMAP_F_ANSWERED 0x01u
#define IMAP_F_FLAGGED 0x02u
#define IMAP_F_DELETED 0x04u
#define IMAP_F_SEEN 0x08u
#define IMAP_F_DRAFT 0x10u
/* \Recent: a session bit (this session's view took the message as recent, uidlist.h),
 * never in a file name and never settable by a client. */
#define IMAP_F_RECENT 0x20u

/* What a file name can hold, and what SELECT announces in PERMANENTFLAGS (no \*: keywords
 * are not kept). */
#define IMAP_F_PERMANENT (IMAP_F_ANSWERED | IMAP_F_FLAGGED | IMAP_F_DELETED | IMAP_F_SEEN | IMAP_F_DRAFT)
/* SELECT's FLAGS line: the permanent flags (\Recent is implied by RFC 3501, not listed). */
#define IMAP_F_ALL IMAP_F_PERMANENT

/* The longest Maildir file name we write or accept (NAME_MAX). */
#define IMAP_NAME_MAX 255

/* The flag bits of a Maildir file name: the letters after ":2," (a name without info, as in
 * new/, has none; ":1," and unknown letters give none). */
unsigned imap_mflags_from_name(const char *name);

/* The key of a file name: its length up to the first ':' (the Maildir unique name; it stays
 * the same when flags change or the file moves new/ -> cur/, and it is the key of
 * postmesh-uidlist and pop3d's UIDL). */
size_t imap_mflags_keylen(const char *name);

/* dst = name with its info set to ":2," + the letters of flags (IMAP_F_PERMANENT bits; others
 * ignored) merged with the letters of name's old info that are not ours, sorted ASCII.
 * A name without info gets one. 0, or -1 if the result does not fit in size bytes or is
 * longer than IMAP_NAME_MAX. */
int imap_mflags_name(const char *name, unsigned flags, char *dst, size_t size);

/* dst = "(\Answered \Seen \Recent)": the flags in RFC order (\Answered \Flagged \Deleted
 * \Seen \Draft \Recent), "()" for none. Returns the length written (always fits in 64
 * bytes; size >= 64 is enough). */
#define IMAP_MFLAGS_TEXT_MAX 64
size_t imap_mflags_text(unsigned flags, char *dst, size_t size);

/* One flag: "\Seen" etc. (case-insensitive, RFC 9051) -> its bit in *bit and 0. A keyword
 * ("$Forwarded", "Junk", "NonJunk", "$MDNSent": an atom without '\') -> *bit = 0 and 0: it
 * is accepted and not kept, as PERMANENTFLAGS without \* allows (Thunderbird sends such
 * keywords and must not get a BAD). -1 for \Recent, an unknown system flag ("\Foo"), or
 * bytes no flag may hold (atom-specials, ']' included): the caller answers BAD. */
int imap_mflags_parse_flag(const char *s, size_t len, unsigned *bit);

/* A flag list as STORE and APPEND give it: args[0..n) is either one IMAP_ARG_LIST of atoms
 * ("(\Seen \Flagged)", may be empty) or, for STORE (RFC 9051 store-att-flags), one or more
 * bare atoms ("\Seen \Deleted"). *flags = the bits. 0, or -1 (the caller answers BAD) if an
 * element is not an atom or imap_mflags_parse_flag refuses it, or n == 0. */
int imap_mflags_parse(const struct imap_arg *args, size_t n, unsigned *flags);

#endif
