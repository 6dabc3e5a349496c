#include "sasl.h"

#include <string.h>

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long pop3_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
    if (len % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64val(c)) < 0)
                return -1; /* data after padding, or not base64 */
        }
        unsigned long triple = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 | (unsigned long)v[2] << 6 |
                               (unsigned long)v[3];
        size_t n = 3 - (size_t)pad;
        if (o + n > outsize)
            return -1;
        out[o++] = (unsigned char)(triple >> 16);
        if (n > 1)
            out[o++] = (unsigned char)(triple >> 8);
        if (n > 2)
            out[o++] = (unsigned char)triple;
    }
    return (long)o;
}

int pop3_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize)
{
    unsigned char buf[1024];
    long n = pop3_base64_decode(b64, len, buf, sizeof buf);
    if (n < 0)
        return -1;
    const unsigned char *z = buf, *end = buf + n;
    const unsigned char *nul1 = memchr(z, 0, (size_t)(end - z));
    if (!nul1)
        return -1;
    const unsigned char *c = nul1 + 1;
    const unsigned char *nul2 = memchr(c, 0, (size_t)(end - c));
    if (!nul2)
        return -1;
    const unsigned char *p = nul2 + 1;
    size_t zl = (size_t)(nul1 - z), cl = (size_t)(nul2 - c), pl = (size_t)(end - p);
    if (cl == 0 || cl >= usersize || pl >= passsize || memchr(p, 0, pl))
        return -1;
    if (zl && (zl != cl || memcmp(z, c, cl) != 0))
        return -1;
    memcpy(user, c, cl);
    user[cl] = '\0';
    memcpy(pass, p, pl);
    pass[pl] = '\0';
    return 0;
}
