#include "sasl.h"

#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

long smtpd_base64_decode(const char *in, size_t len, char *out, size_t outsize)
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
        char b[3] = {(char)(w >> 16), (char)(w >> 8), (char)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (o + 1 >= outsize)
                return -1;
            out[o++] = b[k];
        }
    }
    if (outsize)
        out[o] = '\0';
    return (long)o;
}

long smtpd_base64_encode(const char *in, size_t n, char *out, size_t outsize)
{
    size_t need = (n + 2) / 3 * 4 + 1;
    if (outsize < need)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long w = (unsigned long)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            w |= (unsigned long)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            w |= (unsigned char)in[i + 2];
        out[o++] = alphabet[(w >> 18) & 63];
        out[o++] = alphabet[(w >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[w & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}

int smtpd_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize)
{
    char buf[2048];
    int rc = -1;
    long n = smtpd_base64_decode(b64, len, buf, sizeof buf);
    if (n < 0)
        goto out;
    const char *authz = buf;
    const char *nul1 = memchr(buf, '\0', (size_t)n);
    if (!nul1)
        goto out;
    const char *authc = nul1 + 1;
    const char *nul2 = memchr(authc, '\0', (size_t)(buf + n - authc));
    if (!nul2)
        goto out;
    const char *pw = nul2 + 1;
    size_t authclen = (size_t)(nul2 - authc), pwlen = (size_t)(buf + n - pw);
    if (memchr(pw, '\0', pwlen) || authclen == 0 || authclen >= usersize || pwlen >= passsize)
        goto out;
    if (*authz && strcmp(authz, authc) != 0)
        goto out; /* acting as another user is not offered */
    memcpy(user, authc, authclen);
    user[authclen] = '\0';
    memcpy(pass, pw, pwlen);
    pass[pwlen] = '\0';
    rc = 0;
out:
    explicit_bzero(buf, sizeof buf); /* no password copies left on the stack */
    return rc;
}
