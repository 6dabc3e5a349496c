/* IMAP output of strings (RFC 9051 §4.3, §9 "string", "nstring", "astring") into a
 * libevent evbuffer, and modified UTF-7 mailbox names (RFC 3501 §5.1.3) <-> UTF-8.
 *
 * A string is sent quoted when every byte is 7-bit and none is NUL, CR or LF ('"' and '\'
 * escaped with '\'), else as a literal {n}CRLF<bytes>. This is the rule Dovecot uses, so
 * outputs compare equal. Owns no parsing of client input (parse.c does that). */
#ifndef IMAP_ISTRING_H
#define IMAP_ISTRING_H
#include <stddef.h>

struct evbuffer;

/* 1 if s[0..len) can be sent as a quoted string (7-bit, no NUL, CR, LF). */
int imap_quotable(const char *s, size_t len);

/* "quoted" or {n}CRLF literal, as above. */
void imap_write_string(struct evbuffer *out, const char *s, size_t len);
/* NUL-terminated s; NULL -> NIL (an nstring). */
void imap_write_nstring(struct evbuffer *out, const char *s);
/* As imap_write_nstring but with every CR and LF dropped first (an unfolded header value,
 * as Dovecot writes ENVELOPE fields): "a\r\n b" is sent as "a b". */
void imap_write_nstring_nolf(struct evbuffer *out, const char *s);
/* A header text for people (ENVELOPE subject and address names), as Dovecot writes it:
 * CR and LF dropped, each run of SP / HT made one space, leading and trailing blanks
 * removed, NUL made 0x80; quoted if nothing had to change, else a literal ("" if nothing
 * is left). */
void imap_write_string_for_humans(struct evbuffer *out, const char *s, size_t len);
/* Always a literal: {len}CRLF + the bytes (literal8 != 0: ~{len} for BINARY, RFC 3516). */
void imap_write_literal(struct evbuffer *out, const char *s, size_t len, int literal8);
/* The {len}CRLF (or ~{len}CRLF) that announces len bytes the caller adds itself. */
void imap_write_literal_head(struct evbuffer *out, size_t len, int literal8);
/* An astring: a bare atom when s is non-empty and all ATOM-CHAR (so INBOX goes out as
 * INBOX, as Dovecot does), else imap_write_string. */
void imap_write_astring(struct evbuffer *out, const char *s, size_t len);

/* Modified UTF-7 (RFC 3501 §5.1.3): 1 if in[0..len) is valid: printable US-ASCII except
 * '&' literally, "&-" for '&', and "&<modified base64 of UTF-16BE>-" runs that are
 * non-empty, minimal (no run directly after another), padded with zero bits only, and do
 * not encode printable US-ASCII or lone surrogates. */
int imap_mutf7_valid(const char *in, size_t len);
/* Decode to UTF-8 into out (size bytes, NUL-terminated). Returns the length, or -1 if in
 * is not valid modified UTF-7 or the result does not fit. */
long imap_mutf7_to_utf8(const char *in, size_t len, char *out, size_t size);
/* Encode UTF-8 as modified UTF-7 into out (NUL-terminated). Length, or -1 if in is not
 * valid UTF-8 (or holds a control byte) or the result does not fit. */
long imap_utf8_to_mutf7(const char *in, size_t len, char *out, size_t size);

#endif
