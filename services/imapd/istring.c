/* IMAP string output (quoted / literal / NIL / astring) and modified UTF-7 names: see
 * istring.h. Quoting follows Dovecot's rule so the two servers answer byte for byte alike. */
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "istring.h"

/* Dovecot switches to a literal after this many '"' or '\' (a literal is shorter then). */
#define QUOTED_MAX_ESCAPES 4

int imap_quotable(const char *s, size_t len)
{
    size_t escapes = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
            return 0;
        if ((c == '"' || c == '\\') && ++escapes > QUOTED_MAX_ESCAPES)
            return 0;
    }
    return 1;
}

void imap_write_literal_head(struct evbuffer *out, size_t len, int literal8)
{
    evbuffer_add_printf(out, "%s{%zu}\r\n", literal8 ? "~" : "", len);
}

void imap_write_literal(struct evbuffer *out, const char *s, size_t len, int literal8)
{
    imap_write_literal_head(out, len, literal8);
    evbuffer_add(out, s, len);
}

void imap_write_string(struct evbuffer *out, const char *s, size_t len)
{
    if (len == 0) { /* s may be NULL (an empty scratch buffer): no pointer arithmetic on it */
        evbuffer_add(out, "\"\"", 2);
        return;
    }
    if (!imap_quotable(s, len)) {
        imap_write_literal(out, s, len, 0);
        return;
    }
    evbuffer_add(out, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            evbuffer_add(out, s + run, i - run);
            evbuffer_add(out, "\\", 1);
            run = i;
        }
    }
    evbuffer_add(out, s + run, len - run);
    evbuffer_add(out, "\"", 1);
}

void imap_write_nstring(struct evbuffer *out, const char *s)
{
    if (s == NULL)
        evbuffer_add(out, "NIL", 3);
    else
        imap_write_string(out, s, strlen(s));
}

void imap_write_nstring_nolf(struct evbuffer *out, const char *s)
{
    if (s == NULL || strpbrk(s, "\r\n") == NULL) {
        imap_write_nstring(out, s);
        return;
    }
    /* As Dovecot: drop CR and LF; a line break not followed by white space (a broken
     * fold) becomes one space so words do not run together. */
    struct evbuffer *tmp = evbuffer_new();
    if (tmp == NULL)
        return;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p != '\r' && *p != '\n')
            evbuffer_add(tmp, p, 1);
        else if (p[1] != ' ' && p[1] != '\t' && p[1] != '\r' && p[1] != '\n' && p[1] != '\0')
            evbuffer_add(tmp, " ", 1);
    }
    size_t n = evbuffer_get_length(tmp);
    imap_write_string(out, (const char *)evbuffer_pullup(tmp, -1), n);
    evbuffer_free(tmp);
}

void imap_write_string_for_humans(struct evbuffer *out, const char *s, size_t len)
{
    int modify = 0, last_blank = 1, leading = 1;
    size_t removed = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t' || c == ' ') {
            if (c == '\t' || last_blank) {
                modify = 1;
                removed += last_blank;
            }
            last_blank = 1;
        } else if (c == '\r' || c == '\n') {
            modify = 1;
            removed++;
        } else {
            if (c == 0 || c == '"' || c == '\\' || c >= 0x80)
                modify = 1;
            last_blank = 0;
            leading = 0;
        }
    }
    if (last_blank && len > 0 && !leading) {
        modify = 1;
        removed++;
    }
    if (!modify) {
        evbuffer_add(out, "\"", 1);
        evbuffer_add(out, s, len);
        evbuffer_add(out, "\"", 1);
        return;
    }
    if (removed >= len) {
        evbuffer_add(out, "\"\"", 2);
        return;
    }
    /* A literal of the cleaned text; written to a scratch buffer first because the
     * count above is Dovecot's and must equal what is written. */
    struct evbuffer *tmp = evbuffer_new();
    if (tmp == NULL)
        return;
    last_blank = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t' || c == ' ') {
            if (!last_blank)
                evbuffer_add(tmp, " ", 1);
            last_blank = 1;
        } else if (c != '\r' && c != '\n') {
            unsigned char o = c == 0 ? 0x80 : c;
            evbuffer_add(tmp, &o, 1);
            last_blank = 0;
        }
    }
    size_t n = evbuffer_get_length(tmp);
    if (last_blank && n > 0)
        n--;
    if (n == 0) {
        evbuffer_add(out, "\"\"", 2);
    } else {
        imap_write_literal_head(out, n, 0);
        evbuffer_remove_buffer(tmp, out, n);
    }
    evbuffer_free(tmp);
}

static int is_atom_char(unsigned char c)
{
    /* ASTRING-CHAR: ATOM-CHAR or resp-specials ']' (RFC 9051 §9). */
    if (c <= 0x20 || c >= 0x7f)
        return 0;
    return strchr("(){%*\"\\", c) == NULL;
}

void imap_write_astring(struct evbuffer *out, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_atom_char((unsigned char)s[i]))
        i++;
    /* NIL as an atom would read as nil: quote it (as Dovecot). A '[' is an atom char, but
     * a client echoing a bare a[b back would meet parse.c's bracket rule: quote it too. */
    if (len == 0 || i < len || (len == 3 && strncasecmp(s, "NIL", 3) == 0) || memchr(s, '[', len))
        imap_write_string(out, s, len);
    else
        evbuffer_add(out, s, len);
}

/* ---- modified UTF-7 (RFC 3501 §5.1.3) ---- */

static const char mb64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int mb64_val(unsigned char c)
{
    const char *p = c != 0 ? strchr(mb64, c) : NULL;
    return p != NULL ? (int)(p - mb64) : -1;
}

static int put_utf8(uint32_t cp, char *out, size_t size, size_t *o)
{
    char b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (char)(0xc0 | cp >> 6); b[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
    else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | cp >> 12); b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        b[0] = (char)(0xf0 | cp >> 18); b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); b[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    if (*o + n >= size)
        return -1;
    memcpy(out + *o, b, n);
    *o += n;
    return 0;
}

/* One "&...-" run starting after '&' at in[*i]; decoded into out. */
static int decode_run(const char *in, size_t len, size_t *i, char *out, size_t size, size_t *o)
{
    uint32_t bits = 0, hi = 0;
    int nbits = 0, units = 0;
    while (*i < len && in[*i] != '-') {
        int v = mb64_val((unsigned char)in[*i]);
        if (v < 0)
            return -1;
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        (*i)++;
        if (nbits < 16)
            continue;
        nbits -= 16;
        uint32_t u = (bits >> nbits) & 0xffff;
        units++;
        if (hi != 0) {
            if (u < 0xdc00 || u > 0xdfff)
                return -1;
            if (put_utf8(0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00), out, size, o) < 0)
                return -1;
            hi = 0;
        } else if (u >= 0xd800 && u <= 0xdbff) {
            hi = u;
        } else if ((u >= 0xdc00 && u <= 0xdfff) || (u >= 0x20 && u < 0x7f)) {
            return -1;  /* lone low surrogate, or printable ASCII that must be literal */
        } else if (put_utf8(u, out, size, o) < 0) {
            return -1;
        }
    }
    if (*i >= len || units == 0 || hi != 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0)
        return -1;
    (*i)++;  /* the '-' */
    return 0;
}

long imap_mutf7_to_utf8(const char *in, size_t len, char *out, size_t size)
{
    size_t o = 0;
    int after_run = 0;
    if (size == 0)
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c >= 0x7f)
            return -1;
        if (c != '&') {
            if (o + 1 >= size)
                return -1;
            out[o++] = (char)c;
            i++;
            after_run = 0;
            continue;
        }
        i++;
        if (i < len && in[i] == '-') {
            if (o + 1 >= size)
                return -1;
            out[o++] = '&';
            i++;
            after_run = 0;
            continue;
        }
        if (after_run || decode_run(in, len, &i, out, size, &o) < 0)
            return -1;  /* two adjacent runs are not minimal */
        after_run = 1;
    }
    out[o] = '\0';
    return (long)o;
}

int imap_mutf7_valid(const char *in, size_t len)
{
    char tmp[1024];
    /* Every 8 input bytes decode to at most 8 output bytes; long names go in pieces of
     * whole runs would complicate this: names are bounded (IMAP_LIST_PATTERN_MAX). */
    if (len >= sizeof tmp)
        return 0;
    return imap_mutf7_to_utf8(in, len, tmp, sizeof tmp) >= 0;
}

static int flush_run(const uint16_t *u, size_t n, char *out, size_t size, size_t *o)
{
    uint32_t bits = 0;
    int nbits = 0;
    if (*o + 1 >= size)
        return -1;
    out[(*o)++] = '&';
    for (size_t k = 0; k < n; k++) {
        bits = (bits << 16) | u[k];
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            if (*o + 1 >= size)
                return -1;
            out[(*o)++] = mb64[(bits >> nbits) & 0x3f];
        }
    }
    if (nbits > 0) {
        if (*o + 1 >= size)
            return -1;
        out[(*o)++] = mb64[(bits << (6 - nbits)) & 0x3f];
    }
    if (*o + 1 >= size)
        return -1;
    out[(*o)++] = '-';
    return 0;
}

long imap_utf8_to_mutf7(const char *in, size_t len, char *out, size_t size)
{
    uint16_t run[64];
    size_t nrun = 0, o = 0;
    if (size == 0)
        return -1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)in[i];
        uint32_t cp;
        size_t n;
        if (c < 0x80) { cp = c; n = 1; }
        else if ((c & 0xe0) == 0xc0) { cp = c & 0x1f; n = 2; }
        else if ((c & 0xf0) == 0xe0) { cp = c & 0x0f; n = 3; }
        else if ((c & 0xf8) == 0xf0) { cp = c & 0x07; n = 4; }
        else return -1;
        if (i + n > len)
            return -1;
        for (size_t k = 1; k < n; k++) {
            if (((unsigned char)in[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | ((unsigned char)in[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0x20 || cp == 0x7f)
            return -1;
        i += n;
        if (cp >= 0x20 && cp < 0x7f) {
            if (nrun > 0 && flush_run(run, nrun, out, size, &o) < 0)
                return -1;
            nrun = 0;
            if (o + (cp == '&' ? 2 : 1) >= size)
                return -1;
            out[o++] = (char)cp;
            if (cp == '&')
                out[o++] = '-';
            continue;
        }
        if (nrun + 2 > sizeof run / sizeof run[0]) {
            /* A long non-ASCII stretch: the runs must stay one (minimal form), so grow
             * by encoding in place is not possible here; refuse what would not fit. */
            return -1;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            run[nrun++] = (uint16_t)(0xd800 + (cp >> 10));
            run[nrun++] = (uint16_t)(0xdc00 + (cp & 0x3ff));
        } else {
            run[nrun++] = (uint16_t)cp;
        }
    }
    if (nrun > 0 && flush_run(run, nrun, out, size, &o) < 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}
