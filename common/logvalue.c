/* The one escaping function for peer-controlled values in logs and CLI output (the rules are
 * in logvalue.h). Input is taken one unit at a time: an ASCII byte, a whole valid UTF-8
 * sequence, or one byte that is not part of one. Each unit is written whole or not at all,
 * so a value cut to fit never ends inside an escape or a character. */
#include "logvalue.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRUNC_MARK "..."

/* Length of the valid UTF-8 sequence at p (n bytes left), with its code point, or 0. The
 * ranges are RFC 3629's: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b >= 0xc2 && b <= 0xdf)
        len = 2;
    else if (b >= 0xe0 && b <= 0xef)
        len = 3, lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
    else if (b >= 0xf0 && b <= 0xf4)
        len = 4, lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    uint32_t c = b & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    *cp = c;
    return len;
}

/* Valid, but unsafe to show as it is: C1 controls (a terminal may take U+009B for ESC [),
 * characters that look like a space or like nothing (a reader would see two values where
 * parsers see one), line/paragraph separators, and the bidirectional controls that reorder
 * what is shown. */
static int invisible(uint32_t c)
{
    return (c >= 0x80 && c <= 0xa0) || c == 0xad || c == 0x061c || c == 0x1680 || c == 0x180e ||
           (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f) ||
           c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb);
}

/* One unit at p: its output in out (at most 16 bytes), its input length in *used. *bare is
 * cleared when the unit is not allowed in a bare value. Returns the output length. */
static size_t unit(const unsigned char *p, size_t n, unsigned flags, char out[16], size_t *used, int *bare)
{
    unsigned char b = p[0];
    *used = 1;
    if (b < 0x80) {
        if (flags & PM_LOGV_TEXT) {
            if (b == '\t' || b == '\n' || (b >= 0x20 && b < 0x7f && b != '\\')) {
                out[0] = (char)b;
                return 1;
            }
            if (b == '\\')
                return (size_t)snprintf(out, 16, "\\\\");
            return (size_t)snprintf(out, 16, "\\x%02x", b);
        }
        int column = (flags & PM_LOGV_TOKEN) && (b == ' ' || b == ',');
        if (b > 0x20 && b < 0x7f && b != '"' && b != '\\' && b != '=' && !column) {
            out[0] = (char)b;
            return 1;
        }
        *bare = 0;
        if (b == '"' || b == '\\') {
            out[0] = '\\';
            out[1] = (char)b;
            return 2;
        }
        if (b == ' ' && !column) {
            out[0] = ' ';
            return 1;
        }
        return (size_t)snprintf(out, 16, "\\x%02x", b);
    }
    uint32_t cp;
    size_t len = utf8_seq(p, n, &cp);
    if (len && !invisible(cp)) { /* a letter or symbol: readable, and allowed bare */
        memcpy(out, p, len);
        *used = len;
        return len;
    }
    *bare = 0;
    if (!len)
        return (size_t)snprintf(out, 16, "\\x%02x", b);
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        o += (size_t)snprintf(out + o, 16 - o, "\\x%02x", p[i]);
    *used = len;
    return o;
}

char *pm_logv_mem(char *dst, size_t size, const void *s, size_t len, unsigned flags)
{
    const unsigned char *in = s ? s : (const void *)"";
    if (!s)
        len = 0;
    if (size == 0)
        return dst;
    int text = (flags & PM_LOGV_TEXT) != 0;
    char u[16];
    size_t used;
    /* Bare if every unit may be, the value is not empty, and it fits whole. */
    int bare = !text && len > 0 && len < size;
    for (size_t i = 0; bare && i < len; i += used)
        unit(in + i, len - i, flags, u, &used, &bare);
    if (bare) {
        memcpy(dst, in, len);
        dst[len] = '\0';
        return dst;
    }
    const size_t mark_len = sizeof TRUNC_MARK - 1, quotes = text ? 0 : 2;
    if (size < mark_len + quotes + 1) { /* not even `"..."`: write nothing rather than half a value */
        dst[0] = '\0';
        return dst;
    }
    size_t o = 0, cut; /* cut: the last unit boundary with room left for the mark and the quote */
    if (!text)
        dst[o++] = '"';
    cut = o;
    int whole = 1;
    for (size_t i = 0; i < len; i += used) {
        int ignored = 1;
        size_t k = unit(in + i, len - i, flags, u, &used, &ignored);
        if (o + k + quotes / 2 + 1 > size) { /* this unit, the closing quote and the NUL */
            whole = 0;
            break;
        }
        memcpy(dst + o, u, k);
        o += k;
        if (o + mark_len + quotes / 2 + 1 <= size)
            cut = o;
    }
    if (!whole) {
        memcpy(dst + cut, TRUNC_MARK, mark_len);
        o = cut + mark_len;
    }
    if (!text)
        dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}

char *pm_logv(char *dst, size_t size, const char *s)
{
    return pm_logv_mem(dst, size, s, s ? strlen(s) : 0, 0);
}

char *pm_logv_path(char *dst, size_t size, const char *address)
{
    const char *a = address ? address : "";
    size_t n = strlen(a);
    char local[PM_LOGV_SIZE + 2]; /* every path SMTP allows fits: no allocation per log line */
    char *path = n + 2 <= sizeof local ? local : malloc(n + 2);
    if (!path) /* the address alone, still escaped */
        return pm_logv_mem(dst, size, a, n, 0);
    path[0] = '<';
    memcpy(path + 1, a, n);
    path[n + 1] = '>';
    pm_logv_mem(dst, size, path, n + 2, 0);
    if (path != local)
        free(path);
    return dst;
}
