/* AUTH PLAIN (RFC 4616 in POP3 per RFC 5034): base64 of authzid NUL authcid NUL password. */
#ifndef POP3_SASL_H
#define POP3_SASL_H
#include <stddef.h>

/* The mechanisms offered (CAPA's SASL line, the list AUTH without arguments gives). */
#define POP3_SASL_MECHANISMS "PLAIN"

/* Strict base64 (RFC 4648, padding required, no white space). Returns the decoded length,
 * or -1 for bad input or if it does not fit in outsize. */
long pop3_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize);

/* Decodes a PLAIN response into user and password (NUL-terminated). An authzid other than
 * empty or the user itself is refused (no proxy logins). Returns 0 or -1. */
int pop3_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize);

#endif
