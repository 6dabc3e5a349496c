/* SASL PLAIN (RFC 4616) as smtpd (RFC 4954) and pop3d (RFC 5034) receive it: base64 of
 * "authzid NUL authcid NUL passwd". */
#ifndef PM_SASL_PLAIN_H
#define PM_SASL_PLAIN_H
#include <stddef.h>

/* Decodes a PLAIN response into user and password (NUL-terminated copies). An authzid other
 * than empty or the user itself is refused (no proxy logins). Returns 0, or -1 if malformed
 * or too long for usersize/passsize. */
int pm_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize);

#endif
