/* The DSN parameters of MAIL and RCPT, as the SMTP client sends them (smtpc_dsn.h). */
#include "smtpc_dsn.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "postmesh.pb-c.h"

_Static_assert(PM_SMTPC_NOTIFY_SUCCESS == (unsigned)POSTMESH__DSN_NOTIFY__DSN_NOTIFY_SUCCESS, "proto's bits");
_Static_assert(PM_SMTPC_NOTIFY_FAILURE == (unsigned)POSTMESH__DSN_NOTIFY__DSN_NOTIFY_FAILURE, "proto's bits");
_Static_assert(PM_SMTPC_NOTIFY_DELAY == (unsigned)POSTMESH__DSN_NOTIFY__DSN_NOTIFY_DELAY, "proto's bits");
_Static_assert(PM_SMTPC_NOTIFY_NEVER == (unsigned)POSTMESH__DSN_NOTIFY__DSN_NOTIFY_NEVER, "proto's bits");

int pm_smtpc_xtext(char *dst, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = c >= '!' && c <= '~' && c != '+' && c != '=';
        size_t need = plain ? 1 : 3;
        if (o + need >= size)
            return -1;
        if (plain) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '+';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    if (size == 0)
        return -1;
    dst[o] = '\0';
    return (int)o;
}

void pm_smtpc_dsn_mail(struct evbuffer *out, int ret, const char *envid)
{
    if (ret == POSTMESH__DSN_RET__DSN_RET_FULL)
        evbuffer_add_printf(out, " RET=FULL");
    else if (ret == POSTMESH__DSN_RET__DSN_RET_HDRS)
        evbuffer_add_printf(out, " RET=HDRS");
    char x[3 * 100 + 1]; /* ENVID is at most 100 characters (bus_rules), encoded at most 300 */
    if (envid && envid[0] && pm_smtpc_xtext(x, sizeof x, envid) > 0)
        evbuffer_add_printf(out, " ENVID=%s", x);
}

/* The addr-type is an atom (RFC 3461 4.2): nothing that could end the parameter. */
static int addr_type_ok(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= '0' && t[i] <= '9') ||
              t[i] == '-'))
            return 0;
    return n > 0;
}

void pm_smtpc_dsn_rcpt(struct evbuffer *out, unsigned notify, const char *orcpt)
{
    if (notify & PM_SMTPC_NOTIFY_NEVER) {
        evbuffer_add_printf(out, " NOTIFY=NEVER");
    } else if (notify) {
        static const struct {
            unsigned bit;
            const char *name;
        } words[] = {{PM_SMTPC_NOTIFY_SUCCESS, "SUCCESS"}, {PM_SMTPC_NOTIFY_FAILURE, "FAILURE"},
                     {PM_SMTPC_NOTIFY_DELAY, "DELAY"}};
        const char *sep = " NOTIFY=";
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (notify & words[i].bit) {
                evbuffer_add_printf(out, "%s%s", sep, words[i].name);
                sep = ",";
            }
    }
    const char *semi = orcpt ? strchr(orcpt, ';') : NULL;
    char x[3 * 500 + 1];
    if (semi && semi != orcpt && semi[1] && addr_type_ok(orcpt, (size_t)(semi - orcpt)) &&
        pm_smtpc_xtext(x, sizeof x, semi + 1) > 0)
        evbuffer_add_printf(out, " ORCPT=%.*s;%s", (int)(semi - orcpt), orcpt, x);
}
