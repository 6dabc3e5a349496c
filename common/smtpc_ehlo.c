/* The EHLO keyword table: keyword, the flag it sets, and what its argument tells. */
#include "smtpc_ehlo.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* arg points after the keyword's separator (' ' or '='), len bytes to the end of the line. */
typedef void (*ext_arg_fn)(struct pm_smtpc_ext *ext, const char *arg, size_t len);

static void size_arg(struct pm_smtpc_ext *ext, const char *arg, size_t len)
{
    ext->size_max = len ? strtoull(arg, NULL, 10) : 0;
}

/* "AUTH PLAIN LOGIN" (or the old "AUTH=PLAIN LOGIN"): the mechanisms, space-separated. */
static void auth_arg(struct pm_smtpc_ext *ext, const char *arg, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t w = 0;
        while (i + w < len && arg[i + w] != ' ')
            w++;
        if (w == 5 && strncasecmp(arg + i, "PLAIN", 5) == 0)
            ext->auth_plain = 1;
        i += w + 1;
    }
}

static const struct {
    const char *keyword;
    size_t flag; /* offsetof the int it sets */
    ext_arg_fn arg;
} keywords[] = {
    {"PIPELINING", offsetof(struct pm_smtpc_ext, pipelining), NULL},
    {"STARTTLS", offsetof(struct pm_smtpc_ext, starttls), NULL},
    {"8BITMIME", offsetof(struct pm_smtpc_ext, eightbitmime), NULL},
    {"SMTPUTF8", offsetof(struct pm_smtpc_ext, smtputf8), NULL},
    {"DSN", offsetof(struct pm_smtpc_ext, dsn), NULL},
    {"CHUNKING", offsetof(struct pm_smtpc_ext, chunking), NULL},
    {"SIZE", offsetof(struct pm_smtpc_ext, size), size_arg},
    {"AUTH", offsetof(struct pm_smtpc_ext, auth), auth_arg},
    {"REQUIRETLS", offsetof(struct pm_smtpc_ext, requiretls), NULL},
};

void pm_smtpc_ehlo_parse(const struct pm_smtpc_reply *r, struct pm_smtpc_ext *ext)
{
    memset(ext, 0, sizeof *ext);
    const char *t = r->text;
    const char *eol = strchr(t, '\n'); /* the first line is the server's name */
    while (eol) {
        t = eol + 1;
        eol = strchr(t, '\n');
        size_t len = eol ? (size_t)(eol - t) : strlen(t);
        char kw[64];
        size_t k = 0;
        while (k < len && k + 1 < sizeof kw && t[k] != ' ' && t[k] != '=')
            kw[k] = t[k], k++;
        kw[k] = '\0';
        for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
            if (strcasecmp(kw, keywords[i].keyword) != 0)
                continue;
            *(int *)((char *)ext + keywords[i].flag) = 1;
            if (keywords[i].arg)
                keywords[i].arg(ext, t + k + (k < len), k < len ? len - k - 1 : 0);
            break;
        }
    }
}
