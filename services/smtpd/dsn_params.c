/* The DSN parameters of MAIL and RCPT (dsn_params.h). */
#include "dsn_params.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "postmesh.pb-c.h"

#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " is the proto's " #b)
SAME(SMTPD_DSN_RET_FULL, POSTMESH__DSN_RET__DSN_RET_FULL);
SAME(SMTPD_DSN_RET_HDRS, POSTMESH__DSN_RET__DSN_RET_HDRS);
SAME(SMTPD_NOTIFY_SUCCESS, POSTMESH__DSN_NOTIFY__DSN_NOTIFY_SUCCESS);
SAME(SMTPD_NOTIFY_FAILURE, POSTMESH__DSN_NOTIFY__DSN_NOTIFY_FAILURE);
SAME(SMTPD_NOTIFY_DELAY, POSTMESH__DSN_NOTIFY__DSN_NOTIFY_DELAY);
SAME(SMTPD_NOTIFY_NEVER, POSTMESH__DSN_NOTIFY__DSN_NOTIFY_NEVER);

static int is_key(const char *key, size_t klen, const char *name)
{
    return klen == strlen(name) && strncasecmp(key, name, klen) == 0;
}

static int fail(char *reply, size_t size, const char *what)
{
    snprintf(reply, size, "501 5.5.4 %s", what);
    return -1;
}

static int hexval(char c)
{
    /* RFC 3461: hexchar is "+" and two upper-case hex digits. */
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int smtpd_xtext_decode(const char *in, size_t n, char *out, size_t outsize)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (unsigned char)(h * 16 + l);
            i += 2;
            if (c < 0x20 || c > 0x7e)
                return -1; /* the value goes into header fields: printable ASCII only */
        } else if (c < '!' || c > '~' || c == '=') {
            return -1;
        }
        if (o + 1 >= outsize)
            return -1;
        out[o++] = (char)c;
    }
    if (outsize == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int smtpd_dsn_mail_param(struct smtpd_dsn_mail *m, const char *key, size_t klen, const char *val, size_t vlen,
                         char *reply, size_t size)
{
    if (is_key(key, klen, "RET")) {
        if (m->ret)
            return fail(reply, size, "Duplicate RET parameter");
        if (val && is_key(val, vlen, "FULL"))
            m->ret = SMTPD_DSN_RET_FULL;
        else if (val && is_key(val, vlen, "HDRS"))
            m->ret = SMTPD_DSN_RET_HDRS;
        else
            return fail(reply, size, "Bad RET parameter (FULL or HDRS)");
        return 1;
    }
    if (is_key(key, klen, "ENVID")) {
        if (m->has_envid)
            return fail(reply, size, "Duplicate ENVID parameter");
        if (!val || vlen == 0 || vlen > SMTPD_DSN_ENVID_MAX ||
            smtpd_xtext_decode(val, vlen, m->envid, sizeof m->envid) < 1)
            return fail(reply, size, "Bad ENVID parameter");
        m->has_envid = 1;
        return 1;
    }
    return 0;
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (each once). */
static int parse_notify(const char *val, size_t vlen, unsigned *bits)
{
    static const struct {
        const char *name;
        unsigned bit;
    } words[] = {{"SUCCESS", SMTPD_NOTIFY_SUCCESS}, {"FAILURE", SMTPD_NOTIFY_FAILURE},
                 {"DELAY", SMTPD_NOTIFY_DELAY}, {"NEVER", SMTPD_NOTIFY_NEVER}};
    unsigned got = 0;
    size_t i = 0;
    if (!val || vlen == 0)
        return -1;
    while (i <= vlen) {
        size_t start = i;
        while (i < vlen && val[i] != ',')
            i++;
        unsigned bit = 0;
        for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
            if (is_key(val + start, i - start, words[w].name))
                bit = words[w].bit;
        if (!bit || (got & bit))
            return -1;
        got |= bit;
        i++; /* past the comma (or the end) */
    }
    if ((got & SMTPD_NOTIFY_NEVER) && got != SMTPD_NOTIFY_NEVER)
        return -1; /* RFC 3461 4.1: NEVER stands alone */
    *bits = got;
    return 0;
}

/* ORCPT=addr-type;xtext, kept as "addr-type;decoded". */
static int parse_orcpt(const char *val, size_t vlen, char *out, size_t outsize)
{
    if (!val || vlen > SMTPD_DSN_ORCPT_MAX)
        return -1;
    const char *semi = memchr(val, ';', vlen);
    if (!semi || semi == val || (size_t)(semi - val) + 1 >= vlen)
        return -1;
    size_t tlen = (size_t)(semi - val);
    for (size_t i = 0; i < tlen; i++) {
        char c = val[i];
        int atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!atext)
            return -1;
    }
    memcpy(out, val, tlen + 1);
    return smtpd_xtext_decode(semi + 1, vlen - tlen - 1, out + tlen + 1, outsize - tlen - 1) < 1 ? -1 : 0;
}

int smtpd_dsn_rcpt_param(struct smtpd_dsn_rcpt *r, const char *key, size_t klen, const char *val, size_t vlen,
                         char *reply, size_t size)
{
    if (is_key(key, klen, "NOTIFY")) {
        if (r->notify)
            return fail(reply, size, "Duplicate NOTIFY parameter");
        if (parse_notify(val, vlen, &r->notify) < 0)
            return fail(reply, size, "Bad NOTIFY parameter (NEVER, or SUCCESS,FAILURE,DELAY)");
        return 1;
    }
    if (is_key(key, klen, "ORCPT")) {
        if (r->has_orcpt)
            return fail(reply, size, "Duplicate ORCPT parameter");
        if (parse_orcpt(val, vlen, r->orcpt, sizeof r->orcpt) < 0)
            return fail(reply, size, "Bad ORCPT parameter");
        r->has_orcpt = 1;
        return 1;
    }
    return 0;
}
