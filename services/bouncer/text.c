#include "text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void bouncer_text_date(char *dst, size_t size, uint64_t unix_seconds)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    /* Written by hand, not strftime, so the locale can never change the wire format. */
    if (!gmtime_r(&t, &tm)) {
        snprintf(dst, size, "Thu, 1 Jan 1970 00:00:00 +0000");
        return;
    }
    snprintf(dst, size, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void bouncer_text_duration(char *dst, size_t size, long long seconds, int exact)
{
    static const struct {
        long long secs;
        const char *name;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    if (seconds < 0)
        seconds = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        long long u = units[i].secs;
        if (u == 1 || (seconds >= u && (!exact || seconds % u == 0))) {
            snprintf(dst, size, "%lld %s(s)", seconds / u, units[i].name);
            return;
        }
    }
}

/* Decodes one UTF-8 character. Returns the bytes used (>= 1); an invalid, overlong or
 * truncated sequence or a surrogate yields U+FFFD for its first byte alone. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { /* also stops at the NUL terminator */
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

void bouncer_text_ascii(struct bouncer_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        if (*p < 0x20 || *p == 0x7f) {
            bouncer_buf_addc(b, ' ');
            p++;
        } else if (*p >= 0x80) {
            uint32_t cp;
            p += utf8_decode(p, &cp);
            bouncer_buf_addc(b, '?');
        } else {
            bouncer_buf_addc(b, (char)*p++);
        }
    }
}

int bouncer_text_is_printable(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return 0;
    return 1;
}

void bouncer_text_dsn_address(struct bouncer_buf *b, const char *addr)
{
    if (!addr)
        addr = "";
    if (bouncer_text_is_printable(addr)) {
        bouncer_buf_addf(b, "rfc822; %s", addr);
        return;
    }
    bouncer_buf_adds(b, "utf-8; ");
    const unsigned char *p = (const unsigned char *)addr;
    while (*p) {
        uint32_t cp;
        p += utf8_decode(p, &cp);
        /* QCHAR of RFC 6533: printable ASCII except SP, '+', '=', '\'. */
        if (cp > 0x20 && cp < 0x7f && cp != '+' && cp != '=' && cp != '\\')
            bouncer_buf_addc(b, (char)cp);
        else
            bouncer_buf_addf(b, "\\x{%02X}", (unsigned)cp);
    }
}

static void fold_break(struct bouncer_buf *b, size_t *col, const char *cont)
{
    bouncer_buf_adds(b, "\r\n");
    bouncer_buf_adds(b, cont ? cont : " ");
    *col = strlen(cont ? cont : " ");
}

void bouncer_text_fold(struct bouncer_buf *b, size_t col, const char *s, const char *cont)
{
    const char *p = s;
    int words_on_line = 0;
    for (;;) {
        int had_space = 0;
        while (*p == ' ' || *p == '\t') {
            p++;
            had_space = 1;
        }
        const char *w = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t wlen = (size_t)(p - w);
        if (wlen == 0)
            break; /* end of text; trailing whitespace is dropped */
        /* Runs of whitespace collapse to one space: the only loss is cosmetic. */
        if (words_on_line > 0 && col + 1 + wlen > BOUNCER_LINE_WANT) {
            fold_break(b, &col, cont);
            words_on_line = 0;
        } else if (had_space && words_on_line > 0) {
            bouncer_buf_addc(b, ' ');
            col++;
        }
        while (wlen) {
            if (col >= BOUNCER_LINE_MAX) {
                fold_break(b, &col, cont);
                continue;
            }
            size_t room = BOUNCER_LINE_MAX - col;
            size_t k = wlen < room ? wlen : room;
            bouncer_buf_add(b, w, k);
            col += k;
            w += k;
            wlen -= k;
        }
        words_on_line++;
    }
}

void bouncer_text_field(struct bouncer_buf *b, const char *name, const char *value)
{
    struct bouncer_buf v;
    bouncer_buf_init(&v);
    bouncer_text_ascii(&v, value);
    bouncer_buf_addf(b, "%s: ", name);
    bouncer_text_fold(b, strlen(name) + 2, v.data ? v.data : "", NULL);
    bouncer_buf_adds(b, "\r\n");
    if (v.oom)
        b->oom = 1;
    bouncer_buf_free(&v);
}

int bouncer_text_headers(struct bouncer_buf *b, const uint8_t *p, size_t n, size_t max)
{
    size_t start = b->len, i = 0;
    int eight = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && p[e] != '\n' && p[e] != '\r')
            e++;
        size_t next = e;
        if (e < n)
            next = (p[e] == '\r' && e + 1 < n && p[e + 1] == '\n') ? e + 2 : e + 1;
        size_t len = e - i;
        if (len == 0)
            break; /* the empty line ending the header section */
        /* Worst case after folding: one CRLF SP per BOUNCER_LINE_MAX bytes, plus CRLF. */
        if (b->len - start + len + 3 * (len / BOUNCER_LINE_MAX + 1) > max)
            break;
        size_t col = 0;
        for (size_t k = i; k < e; k++) {
            if (p[k] == '\0')
                continue;
            if (col >= BOUNCER_LINE_MAX) {
                bouncer_buf_adds(b, "\r\n ");
                col = 1;
            }
            eight |= p[k] >= 0x80;
            bouncer_buf_addc(b, (char)p[k]);
            col++;
        }
        bouncer_buf_adds(b, "\r\n");
        i = next;
    }
    return eight;
}
