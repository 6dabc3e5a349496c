#include "smtpc_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void pm_smtpc_reply_reset(struct pm_smtpc_reply *r)
{
    r->code = 0;
    r->nlines = 0;
    r->len = 0;
    r->text[0] = '\0';
}

static void append_text(struct pm_smtpc_reply *r, const char *s, size_t n)
{
    if (r->nlines > 1 && r->len + 1 < sizeof r->text)
        r->text[r->len++] = '\n';
    for (size_t i = 0; i < n && r->len + 1 < sizeof r->text; i++) {
        unsigned char c = (unsigned char)s[i];
        r->text[r->len++] = c == '\t' ? ' ' : (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    r->text[r->len] = '\0';
}

enum pm_smtpc_reply_status pm_smtpc_reply_feed(struct pm_smtpc_reply *r, const char *line, size_t len,
                                               const char **error)
{
    static const char *err_long = "reply line too long", *err_syntax = "malformed reply line",
                      *err_code = "reply code changed inside a multi-line reply",
                      *err_lines = "too many reply lines";
    if (len > PM_SMTPC_REPLY_LINE_MAX) {
        *error = err_long;
        return PM_SMTPC_REPLY_ERROR;
    }
    if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2]) || line[0] < '1' || line[0] > '5' ||
        (len > 3 && line[3] != ' ' && line[3] != '-')) {
        *error = err_syntax;
        return PM_SMTPC_REPLY_ERROR;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        *error = err_code;
        return PM_SMTPC_REPLY_ERROR;
    }
    if (++r->nlines > PM_SMTPC_REPLY_MAX_LINES) {
        *error = err_lines;
        return PM_SMTPC_REPLY_ERROR;
    }
    r->code = code;
    append_text(r, len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
    return len > 3 && line[3] == '-' ? PM_SMTPC_REPLY_MORE : PM_SMTPC_REPLY_DONE;
}

/* Length of a "d.ddd.ddd" code at s (0 if none); the class digit must be c. */
static size_t enhanced_len(const char *s, char c)
{
    if (s[0] != c || s[1] != '.')
        return 0;
    size_t i = 2, digits = 0;
    while (isdigit((unsigned char)s[i]) && digits < 3)
        i++, digits++;
    if (!digits || s[i] != '.')
        return 0;
    i++;
    digits = 0;
    while (isdigit((unsigned char)s[i]) && digits < 3)
        i++, digits++;
    if (!digits || (s[i] && s[i] != ' ' && s[i] != '\n'))
        return 0;
    return i;
}

void pm_smtpc_reply_enhanced(const struct pm_smtpc_reply *r, char *out, size_t size)
{
    size_t n = enhanced_len(r->text, (char)('0' + r->code / 100));
    if (n == 0 || n >= size)
        n = 0;
    memcpy(out, r->text, n);
    out[n] = '\0';
}

void pm_smtpc_reply_oneline(const struct pm_smtpc_reply *r, char *out, size_t size)
{
    int n = snprintf(out, size, "%03d", r->code);
    size_t o = n > 0 ? (size_t)n : 0;
    const char *t = r->text;
    if (*t && o + 1 < size)
        out[o++] = ' ';
    char cls = (char)('0' + r->code / 100);
    for (int first = 1; *t && o + 1 < size; first = 0) {
        const char *eol = strchr(t, '\n');
        size_t len = eol ? (size_t)(eol - t) : strlen(t);
        /* Continuation lines repeat the enhanced code: say it once. */
        size_t skip = first ? 0 : enhanced_len(t, cls);
        if (skip && t[skip] == ' ')
            skip++;
        if (!first && o + 1 < size && len > skip)
            out[o++] = ' ';
        for (size_t i = skip; i < len && o + 1 < size; i++)
            out[o++] = t[i];
        t += len + (eol ? 1 : 0);
    }
    out[o < size ? o : size - 1] = '\0';
}
