#include "base64.h"

#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

long pm_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
    if (len % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64val(in[i + k])) < 0) {
                return -1; /* bad octet, or data after padding */
            }
        }
        unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) | ((unsigned long)v[2] << 6) |
                          (unsigned long)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        size_t n = 3 - (size_t)pad;
        if (o + n > outsize)
            return -1;
        memcpy(out + o, b, n);
        o += n;
    }
    return (long)o;
}

long pm_base64_encode(const unsigned char *in, size_t n, char *out, size_t outsize)
{
    size_t need = (n + 2) / 3 * 4 + 1;
    if (outsize < need)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long w = (unsigned long)in[i] << 16;
        if (i + 1 < n)
            w |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < n)
            w |= in[i + 2];
        out[o++] = alphabet[(w >> 18) & 63];
        out[o++] = alphabet[(w >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[w & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}
