/* Text helpers for DSN composition: everything the bouncer writes into header fields and
 * the report part goes through here so it is 7-bit, CRLF-terminated and at most 998 octets
 * per line (RFC 5322 2.1.1) whatever bytes a remote server or a client put in. */
#ifndef BOUNCER_TEXT_H
#define BOUNCER_TEXT_H
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define BOUNCER_LINE_MAX 998   /* hard limit per line, CRLF excluded */
#define BOUNCER_LINE_WANT 78   /* where folding and wrapping prefer to break */

/* RFC 5322 date in UTC: "Thu, 27 Nov 2025 11:11:00 +0000". */
void bouncer_text_date(char *dst, size_t size, uint64_t unix_seconds);

/* "4 hour(s)". exact: the largest unit dividing the value evenly ("90 minute(s)");
 * otherwise the value rounded down to its largest unit ("more than 1 hour(s)"). */
void bouncer_text_duration(char *dst, size_t size, long long seconds, int exact);

/* Appends s with every control character turned into a space and every non-ASCII
 * character (a whole UTF-8 sequence, or a stray byte) into '?'. */
void bouncer_text_ascii(struct bouncer_buf *b, const char *s);

/* Is s non-empty printable ASCII (0x20-0x7e)? */
int bouncer_text_is_printable(const char *s);

/* The address-type and address of a DSN field (RFC 3464 2.3.2, RFC 6533 3):
 * "rfc822; user@host" for printable ASCII, else "utf-8; " + utf-8-addr-xtext, where
 * '\', '+', '=', space, controls and non-ASCII characters become "\x{HEX}" (an invalid
 * UTF-8 byte becomes \x{FFFD}). Always 7-bit. */
void bouncer_text_dsn_address(struct bouncer_buf *b, const char *addr);

/* Appends s (7-bit, no CR/LF) starting at column col. Breaks before a space when a line
 * would pass BOUNCER_LINE_WANT, and hard-breaks a word that would pass BOUNCER_LINE_MAX.
 * cont == NULL: header folding (CRLF inserted before the whitespace, which is kept; a hard
 * break inserts CRLF SP). Otherwise: text wrapping (the space is dropped and continuation
 * lines start with cont). Does not end the last line. */
void bouncer_text_fold(struct bouncer_buf *b, size_t col, const char *s, const char *cont);

/* Appends "Name: value" folded, then CRLF. value is made 7-bit first. */
void bouncer_text_field(struct bouncer_buf *b, const char *name, const char *value);

/* Appends the header section of a message for text/rfc822-headers: everything before the
 * first empty line, at most max bytes (cut at a line end), line ends made CRLF, NULs
 * dropped, over-long lines hard-folded with CRLF SP. 8-bit bytes pass as they are.
 * Returns 1 if any 8-bit byte was copied, else 0. */
int bouncer_text_headers(struct bouncer_buf *b, const uint8_t *p, size_t n, size_t max);

#endif
