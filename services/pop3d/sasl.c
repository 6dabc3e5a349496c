/* Thin names over the shared decoders (common/base64.c, common/sasl_plain.c). */
#include "sasl.h"

#include "base64.h"
#include "sasl_plain.h"

long pop3_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
    return pm_base64_decode(in, len, out, outsize);
}

int pop3_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize)
{
    return pm_sasl_plain(b64, len, user, usersize, pass, passsize);
}
