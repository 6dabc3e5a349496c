/* SASL PLAIN and LOGIN message decoding (RFC 4616, RFC 4954): pure functions. */
#ifndef SMTPD_SASL_H
#define SMTPD_SASL_H
#include <stddef.h>

/* Strict base64 (RFC 4648, padding required, no whitespace). Writes at most outsize-1
 * octets and a NUL. Returns the decoded length, or -1 if malformed or too large. */
long smtpd_base64_decode(const char *in, size_t len, char *out, size_t outsize);

/* Encodes n octets into out (NUL-terminated). Returns the length or -1 if out is short. */
long smtpd_base64_encode(const char *in, size_t n, char *out, size_t outsize);

/* Decodes an AUTH PLAIN response "authzid NUL authcid NUL passwd" (base64). The
 * authorization identity must be empty or equal to the authentication identity. user and
 * pass are NUL-terminated copies. Returns 0, or -1 if malformed. */
int smtpd_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize);

#endif
