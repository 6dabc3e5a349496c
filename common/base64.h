/* Strict base64 (RFC 4648): padding required, no white space, nothing after the padding.
 * For SASL exchanges (smtpd AUTH, pop3d AUTH). */
#ifndef PM_BASE64_H
#define PM_BASE64_H
#include <stddef.h>

/* Decodes len characters into out (no NUL added). Returns the decoded length, or -1 if
 * the input is malformed or does not fit in outsize octets. */
long pm_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize);

/* Encodes n octets into out (NUL-terminated). Returns the length or -1 if out is short. */
long pm_base64_encode(const unsigned char *in, size_t n, char *out, size_t outsize);

#endif
