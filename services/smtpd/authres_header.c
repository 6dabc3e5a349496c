/* Header fields, our Authentication-Results: and forged ones (authres_header.h). */
#include "authres_header.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define AR_HEADER_NAME "Authentication-Results"
#define MAX_VALUE 255

size_t ar_header_length(const char *msg, size_t len)
{
    if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
        return 0;
    for (size_t i = 0; i + 3 < len; i++)
        if (msg[i] == '\r' && msg[i + 1] == '\n' && msg[i + 2] == '\r' && msg[i + 3] == '\n')
            return i + 2;
    return len;
}

/* End of the line at p (just past its LF, or end). */
static size_t line_end(const char *hdr, size_t len, size_t p)
{
    const char *lf = memchr(hdr + p, '\n', len - p);
    return lf ? (size_t)(lf - hdr) + 1 : len;
}

int ar_header_next(const char *hdr, size_t len, size_t *pos, struct ar_field *f)
{
    size_t p = *pos;
    if (p >= len)
        return 0;
    size_t end = line_end(hdr, len, p);
    while (end < len && (hdr[end] == ' ' || hdr[end] == '\t'))
        end = line_end(hdr, len, end); /* folded continuation lines */
    memset(f, 0, sizeof *f);
    f->text = hdr + p;
    f->len = end - p;
    const char *colon = memchr(f->text, ':', f->len);
    if (colon) {
        size_t n = (size_t)(colon - f->text);
        while (n && (f->text[n - 1] == ' ' || f->text[n - 1] == '\t'))
            n--;
        int ok = n > 0;
        for (size_t i = 0; i < n && ok; i++)
            ok = f->text[i] > ' ' && f->text[i] < 0x7f; /* RFC 5322 ftext */
        if (ok) {
            f->name = f->text;
            f->namelen = n;
            f->value = colon + 1;
            f->valuelen = f->len - (size_t)(colon + 1 - f->text);
        }
    }
    *pos = end;
    return 1;
}

/* Skips whitespace, line breaks and (nested) comments. */
static size_t skip_cfws(const char *v, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        char c = v[i];
        if (depth && c == '\\' && i + 1 < len) {
            i += 2;
            continue;
        }
        if (c == '(')
            depth++;
        else if (c == ')' && depth)
            depth--;
        else if (!depth && c != ' ' && c != '\t' && c != '\r' && c != '\n')
            break;
        i++;
    }
    return i;
}

int ar_header_authserv_id(const char *value, size_t len, char *out, size_t size)
{
    size_t i = skip_cfws(value, len, 0), o = 0;
    if (i < len && value[i] == '"') { /* a quoted-string is a value too (RFC 8601 2.2) */
        for (i++; i < len && value[i] != '"'; i++) {
            if (value[i] == '\\' && i + 1 < len)
                i++;
            if (o + 1 < size)
                out[o++] = value[i];
        }
    } else {
        for (; i < len && !strchr(" \t\r\n;(", value[i]); i++)
            if (o + 1 < size)
                out[o++] = value[i];
    }
    if (size)
        out[o < size ? o : size - 1] = '\0';
    return o ? 0 : -1;
}

size_t ar_header_remove_ours(char *hdr, size_t len, const char *host, int *removed)
{
    size_t pos = 0, out = 0;
    struct ar_field f;
    *removed = 0;
    while (ar_header_next(hdr, len, &pos, &f)) {
        char id[300];
        if (f.namelen == strlen(AR_HEADER_NAME) && strncasecmp(f.name, AR_HEADER_NAME, f.namelen) == 0 &&
            ar_header_authserv_id(f.value, f.valuelen, id, sizeof id) == 0 && strcasecmp(id, host) == 0) {
            (*removed)++;
            continue;
        }
        memmove(hdr + out, f.text, f.len); /* out <= f.text's offset: never overlaps badly */
        out += f.len;
    }
    return out;
}

/* Appends fmt-free text; returns -1 once it no longer fits. */
static int put(char *dst, size_t size, size_t *o, const char *s, size_t n)
{
    if (*o + n >= size)
        return -1;
    memcpy(dst + *o, s, n);
    *o += n;
    dst[*o] = '\0';
    return 0;
}

static int put_s(char *dst, size_t size, size_t *o, const char *s) { return put(dst, size, o, s, strlen(s)); }

/* A value: as is when it is a token (an address's local part and '@' are allowed, as in
 * RFC 8601's examples), else a quoted-string; never more than MAX_VALUE octets, never a
 * control character (a hostile name must not break the header). */
static int put_value(char *dst, size_t size, size_t *o, const char *v, int allow_at)
{
    char buf[MAX_VALUE * 2 + 3];
    size_t b = 0, n = strnlen(v, MAX_VALUE);
    int plain = 1;
    for (size_t i = 0; i < n && plain; i++) {
        unsigned char c = (unsigned char)v[i];
        plain = c > ' ' && c < 0x7f && (!strchr("()<>@,;:\\\"/[]?=", c) || (allow_at && c == '@'));
    }
    if (plain && n)
        return put(dst, size, o, v, n);
    buf[b++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < ' ' || c == 0x7f)
            c = '?';
        if (c == '"' || c == '\\')
            buf[b++] = '\\';
        buf[b++] = (char)c;
    }
    buf[b++] = '"';
    return put(dst, size, o, buf, b);
}

static int put_comment(char *dst, size_t size, size_t *o, const char *c)
{
    char buf[MAX_VALUE * 2 + 4];
    size_t b = 0;
    buf[b++] = ' ';
    buf[b++] = '(';
    for (size_t i = 0; c[i] && i < MAX_VALUE; i++) {
        unsigned char ch = (unsigned char)c[i];
        if (ch < ' ' || ch >= 0x7f)
            ch = '?';
        if (ch == '(' || ch == ')' || ch == '\\')
            buf[b++] = '\\';
        buf[b++] = (char)ch;
    }
    buf[b++] = ')';
    return put(dst, size, o, buf, b);
}

size_t ar_header_format(const char *host, const struct ar_result *r, size_t n, char *dst, size_t size)
{
    size_t o = 0;
    if (size == 0 || put_s(dst, size, &o, AR_HEADER_NAME ": ") < 0 || put_s(dst, size, &o, host) < 0)
        return 0;
    if (n == 0 && put_s(dst, size, &o, "; none") < 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (put_s(dst, size, &o, ";\r\n\t") < 0 || put_s(dst, size, &o, r[i].method) < 0 ||
            put_s(dst, size, &o, "=") < 0 || put_s(dst, size, &o, r[i].result) < 0)
            return 0;
        if (r[i].comment && put_comment(dst, size, &o, r[i].comment) < 0)
            return 0;
        for (int p = 0; p < AR_MAX_PROPS && r[i].props[p].name; p++) {
            const char *v = r[i].props[p].value ? r[i].props[p].value : "";
            int at = strcmp(r[i].props[p].name, "smtp.mailfrom") == 0;
            if (put_s(dst, size, &o, " ") < 0 || put_s(dst, size, &o, r[i].props[p].name) < 0 ||
                put_s(dst, size, &o, "=") < 0 || put_value(dst, size, &o, v, at) < 0)
                return 0;
        }
    }
    if (put_s(dst, size, &o, "\r\n") < 0)
        return 0;
    return o;
}
