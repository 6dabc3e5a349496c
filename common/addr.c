#include "addr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

size_t pm_addr_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (avail < n)
        return 0;
    unsigned cp = c & (0xff >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static int is_atext(unsigned char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 qtextSMTP: printable ASCII except '"' and '\'. */
static int is_qtext(unsigned char c) { return c >= 32 && c <= 126 && c != '"' && c != '\\'; }

/* Checks one 8-bit sequence at s[i]: returns its length, or 0 with *st set. */
static size_t eight_bit(const char *s, size_t len, size_t i, int utf8, enum pm_addr_status *st)
{
    if (!utf8) {
        *st = PM_ADDR_NON_ASCII;
        return 0;
    }
    size_t n = pm_addr_utf8_len((const unsigned char *)s + i, len - i);
    if (!n)
        *st = PM_ADDR_NON_ASCII;
    return n;
}

enum pm_addr_status pm_addr_check_domain(const char *s, size_t len, int utf8)
{
    if (len == 0)
        return PM_ADDR_SYNTAX;
    if (len > PM_ADDR_MAX_DOMAIN)
        return PM_ADDR_DOMAIN_LONG;
    size_t label = 0;
    enum pm_addr_status st = PM_ADDR_OK;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            /* Empty labels: leading, doubled and trailing dots ("example.test."). */
            if (label == 0 || s[i - 1] == '-')
                return PM_ADDR_SYNTAX;
            label = 0;
            i++;
            continue;
        }
        size_t n = 1;
        if (c >= 0x80) {
            n = eight_bit(s, len, i, utf8, &st);
            if (!n)
                return st;
        } else if (!is_alnum(c) && !(c == '-' && label > 0)) {
            return PM_ADDR_SYNTAX;
        }
        label += n;
        if (label > 63)
            return PM_ADDR_DOMAIN_LONG;
        i += n;
    }
    if (label == 0 || s[len - 1] == '-')
        return PM_ADDR_SYNTAX;
    return PM_ADDR_OK;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]"; general literals ("[tag:...]") are not accepted. */
static enum pm_addr_status check_literal(const char *s, size_t len)
{
    char buf[64];
    /* A NUL would end the text inet_pton() sees: "[192.0.2.1\0junk]" must not pass. */
    if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof buf || memchr(s, '\0', len))
        return PM_ADDR_SYNTAX;
    memcpy(buf, s + 1, len - 2);
    buf[len - 2] = '\0';
    unsigned char bin[16];
    if (strncasecmp(buf, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, buf + 5, bin) == 1 ? PM_ADDR_OK : PM_ADDR_SYNTAX;
    return inet_pton(AF_INET, buf, bin) == 1 ? PM_ADDR_OK : PM_ADDR_SYNTAX;
}

/* Local part at s: a dot-string or a quoted string, ending at the '@' (returned in *end).
 * *tricky is set if it holds '%', '!' or (quoted) '@'. */
static enum pm_addr_status parse_local(const char *s, size_t len, int utf8, struct pm_addr *out, size_t *end,
                                       int *tricky, const char **why)
{
    enum pm_addr_status st = PM_ADDR_OK;
    size_t i = 0;
    *tricky = 0;
    if (len && s[0] == '"') {
        out->is_quoted = 1;
        for (i = 1; i < len && s[i] != '"';) {
            unsigned char c = (unsigned char)s[i];
            size_t n = 1;
            if (c == '\\') {
                if (i + 1 >= len)
                    break;
                c = (unsigned char)s[i + 1];
                n = 2;
                if (c >= 0x80) {
                    size_t m = eight_bit(s, len, i + 1, utf8, &st);
                    if (!m)
                        return set_why(why, "8-bit octets in address"), st;
                    n = 1 + m;
                } else if (c < 32 || c > 126) {
                    return set_why(why, "bad quoted pair in local part"), PM_ADDR_SYNTAX;
                }
            } else if (c >= 0x80) {
                n = eight_bit(s, len, i, utf8, &st);
                if (!n)
                    return set_why(why, "8-bit octets in address"), st;
            } else if (!is_qtext(c)) {
                return set_why(why, "bad character in quoted local part"), PM_ADDR_SYNTAX;
            }
            if (c == '@' || c == '%' || c == '!')
                *tricky = 1;
            i += n;
        }
        if (i >= len)
            return set_why(why, "unterminated quoted local part"), PM_ADDR_SYNTAX;
        i++; /* closing quote */
        if (i == 2)
            return set_why(why, "empty local part"), PM_ADDR_SYNTAX;
    } else {
        for (; i < len && s[i] != '@';) {
            unsigned char c = (unsigned char)s[i];
            size_t n = 1;
            if (c == '.') {
                if (i == 0 || s[i - 1] == '.')
                    return set_why(why, "empty atom in local part"), PM_ADDR_SYNTAX;
            } else if (c >= 0x80) {
                n = eight_bit(s, len, i, utf8, &st);
                if (!n)
                    return set_why(why, "8-bit octets in address"), st;
            } else if (!is_atext(c)) {
                return set_why(why, "bad character in local part"), PM_ADDR_SYNTAX;
            }
            if (c == '%' || c == '!')
                *tricky = 1;
            i += n;
        }
        if (i == 0)
            return set_why(why, "empty local part"), PM_ADDR_SYNTAX;
        if (s[i - 1] == '.')
            return set_why(why, "trailing dot in local part"), PM_ADDR_SYNTAX;
    }
    *end = i;
    return PM_ADDR_OK;
}

enum pm_addr_status pm_addr_parse_mailbox(const char *s, size_t len, int flags, struct pm_addr *out,
                                          const char **why)
{
    memset(out, 0, sizeof *out);
    out->domain = out->address;
    int tricky;
    size_t at;
    enum pm_addr_status st = parse_local(s, len, flags & PM_ADDR_UTF8, out, &at, &tricky, why);
    if (st != PM_ADDR_OK)
        return st;
    if (at >= len || s[at] != '@')
        return set_why(why, "no @domain"), PM_ADDR_SYNTAX;
    const char *dom = s + at + 1;
    size_t dlen = len - at - 1;
    if (memchr(dom, '@', dlen))
        return set_why(why, "more than one @"), PM_ADDR_SYNTAX;
    if (dlen && dom[0] == '[') {
        st = check_literal(dom, dlen);
        out->is_literal = 1;
        if (st != PM_ADDR_OK)
            return set_why(why, "bad address literal"), st;
    } else {
        st = pm_addr_check_domain(dom, dlen, flags & PM_ADDR_UTF8);
        if (st != PM_ADDR_OK)
            return set_why(why, st == PM_ADDR_DOMAIN_LONG ? "domain too long"
                                : st == PM_ADDR_NON_ASCII ? "8-bit octets in address"
                                                          : "bad domain"),
                   st;
    }
    if (len > PM_ADDR_MAX_PATH - 2)
        return set_why(why, "address too long"), PM_ADDR_TOO_LONG;
    /* Checked after the syntax, so "too long" and "bad syntax" are told apart correctly. */
    if ((flags & PM_ADDR_STRICT) && tricky)
        return set_why(why, "percent hack, bang path or quoted @ not accepted"), PM_ADDR_TRICK;
    memcpy(out->address, s, len);
    out->address[len] = '\0';
    out->local_len = at;
    out->domain = out->address + at + 1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            out->is_utf8 = 1;
    return PM_ADDR_OK;
}

/* Source route "@a.test,@b.test:" at s; returns its length (through ':'), 0 if invalid. */
static size_t route_len(const char *s, size_t len, int utf8)
{
    size_t i = 0;
    for (;;) {
        if (i >= len || s[i] != '@')
            return 0;
        size_t start = ++i;
        while (i < len && s[i] != ',' && s[i] != ':')
            i++;
        if (i >= len || pm_addr_check_domain(s + start, i - start, utf8) != PM_ADDR_OK)
            return 0;
        if (s[i++] == ':')
            return i;
    }
}

enum pm_addr_status pm_addr_parse_path(const char *s, size_t len, int flags, struct pm_addr *out, size_t *consumed,
                                       const char **why)
{
    memset(out, 0, sizeof *out);
    out->domain = out->address;
    if (len < 2 || s[0] != '<')
        return set_why(why, "path must be in <>"), PM_ADDR_SYNTAX;
    /* Find the closing '>' outside quoted strings. */
    size_t p = 1;
    int quoted = 0;
    for (; p < len; p++) {
        if (quoted && s[p] == '\\' && p + 1 < len)
            p++;
        else if (s[p] == '"')
            quoted = !quoted;
        else if (!quoted && s[p] == '>')
            break;
    }
    if (p >= len)
        return set_why(why, len > PM_ADDR_MAX_PATH ? "path too long" : "missing >"),
               len > PM_ADDR_MAX_PATH ? PM_ADDR_TOO_LONG : PM_ADDR_SYNTAX;
    if (p + 1 > PM_ADDR_MAX_PATH)
        return set_why(why, "path too long"), PM_ADDR_TOO_LONG;
    *consumed = p + 1;
    const char *in = s + 1;
    size_t inlen = p - 1;
    if (inlen == 0) {
        if (!(flags & PM_ADDR_NULL_OK))
            return set_why(why, "null path not allowed here"), PM_ADDR_SYNTAX;
        out->is_null = 1;
        return PM_ADDR_OK;
    }
    int had_route = 0;
    if (in[0] == '@') {
        size_t r = route_len(in, inlen, flags & PM_ADDR_UTF8);
        if (!r)
            return set_why(why, "bad source route"), PM_ADDR_SYNTAX;
        if (flags & PM_ADDR_STRICT)
            return set_why(why, "source routes not accepted"), PM_ADDR_TRICK;
        /* RFC 5321 4.1.2: accept the syntax, ignore the route. */
        in += r;
        inlen -= r;
        had_route = 1;
    }
    if ((flags & PM_ADDR_POSTMASTER) && !had_route && inlen == 10 && strncasecmp(in, "postmaster", 10) == 0) {
        memcpy(out->address, in, inlen);
        out->address[inlen] = '\0';
        out->local_len = inlen;
        out->domain = out->address + inlen;
        return PM_ADDR_OK;
    }
    enum pm_addr_status st = pm_addr_parse_mailbox(in, inlen, flags, out, why);
    out->had_route = had_route;
    return st;
}

const char *pm_addr_domain(const char *address)
{
    const char *at = strrchr(address, '@');
    return at ? at + 1 : "";
}
