#include "sasl_plain.h"

#include <string.h>

#include "base64.h"

int pm_sasl_plain(const char *b64, size_t len, char *user, size_t usersize, char *pass, size_t passsize)
{
    char buf[2048];
    int rc = -1;
    long n = pm_base64_decode(b64, len, (unsigned char *)buf, sizeof buf - 1);
    if (n < 0)
        goto out;
    buf[n] = '\0'; /* authzid is a C string up to its NUL */
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
