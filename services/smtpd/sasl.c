/* Thin names over the shared decoders (common/base64.c, common/sasl_plain.c), with the
 * NUL-terminated output smtpd's AUTH LOGIN wants. */
#include "sasl.h"

#include "base64.h"
#include "sasl_plain.h"

long smtpd_base64_decode(const char *in, size_t len, char *out, size_t outsize)
{
    if (outsize == 0)
        return len == 0 ? 0 : -1; /* no room for a single octet */
    long n = pm_base64_decode(in, len, (unsigned char *)out, outsize - 1);
    if (n >= 0)
        out[n] = '\0';
    return n;
}

long smtpd_base64_encode(const char *in, size_t n, char *out, size_t outsize)
{
    return pm_base64_encode((const unsigned char *)in, n, out, outsize);
}

int smtpd_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize)
{
    return pm_sasl_plain(b64, len, user, usersize, pass, passsize);
}
