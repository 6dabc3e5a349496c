/* Flag letters of Maildir file names <-> IMAP flag bits <-> IMAP flag text (mflags.h). */
#include "mflags.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Ours, in the order RFC 9051 lists them (and FLAGS responses use). */
static const struct {
    unsigned bit;
    char letter;
    const char *text;
} flag_table[] = {
    {IMAP_F_ANSWERED, 'R', "\\Answered"}, {IMAP_F_FLAGGED, 'F', "\\Flagged"}, {IMAP_F_DELETED, 'T', "\\Deleted"},
    {IMAP_F_SEEN, 'S', "\\Seen"},         {IMAP_F_DRAFT, 'D', "\\Draft"},
};
#define NFLAGS (sizeof flag_table / sizeof flag_table[0])

static unsigned bit_of_letter(char c)
{
    for (size_t i = 0; i < NFLAGS; i++)
        if (flag_table[i].letter == c)
            return flag_table[i].bit;
    return 0;
}

size_t imap_mflags_keylen(const char *name) { return strcspn(name, ":"); }

/* The letters after ":2,", or NULL if name has no such info. */
static const char *info_letters(const char *name)
{
    const char *colon = strchr(name, ':');
    return colon && colon[1] == '2' && colon[2] == ',' ? colon + 3 : NULL;
}

unsigned imap_mflags_from_name(const char *name)
{
    const char *p = info_letters(name);
    unsigned flags = 0;
    for (; p && *p; p++)
        flags |= bit_of_letter(*p);
    return flags;
}

int imap_mflags_name(const char *name, unsigned flags, char *dst, size_t size)
{
    /* 256 slots of "is this letter present": the result is sorted and free of repeats. */
    unsigned char have[256] = {0};
    const char *old = info_letters(name);
    for (const char *p = old; p && *p; p++)
        if (!bit_of_letter(*p) && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != ',' &&
            *p != ':' && *p != '/')
            have[(unsigned char)*p] = 1;
    for (size_t i = 0; i < NFLAGS; i++)
        if (flags & flag_table[i].bit)
            have[(unsigned char)flag_table[i].letter] = 1;
    size_t keylen = imap_mflags_keylen(name);
    if (keylen + 3 >= size || keylen + 3 > IMAP_NAME_MAX)
        return -1;
    memcpy(dst, name, keylen);
    memcpy(dst + keylen, ":2,", 3);
    size_t o = keylen + 3;
    for (int c = 1; c < 256; c++) {
        if (!have[c])
            continue;
        if (o + 1 >= size || o + 1 > IMAP_NAME_MAX)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

size_t imap_mflags_text(unsigned flags, char *dst, size_t size)
{
    char buf[IMAP_MFLAGS_TEXT_MAX];
    size_t o = 0;
    buf[o++] = '(';
    for (size_t i = 0; i < NFLAGS; i++) {
        if (!(flags & flag_table[i].bit))
            continue;
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o > 1 ? " " : "", flag_table[i].text);
    }
    if (flags & IMAP_F_RECENT)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\\Recent", o > 1 ? " " : "");
    buf[o++] = ')';
    buf[o] = '\0';
    if (size == 0)
        return o;
    size_t n = o < size ? o : size - 1;
    memcpy(dst, buf, n);
    dst[n] = '\0';
    return n;
}

/* RFC 9051 atom-specials plus ']' (resp-specials): none may be in a flag. */
static int flag_byte_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

int imap_mflags_parse_flag(const char *s, size_t len, unsigned *bit)
{
    *bit = 0;
    if (len == 0 || len > 128)
        return -1;
    size_t start = s[0] == '\\' ? 1 : 0;
    if (start == len)
        return -1;
    for (size_t i = start; i < len; i++)
        if (!flag_byte_ok((unsigned char)s[i]))
            return -1;
    if (!start)
        return 0; /* a keyword: accepted, not kept */
    for (size_t i = 0; i < NFLAGS; i++) {
        if (strlen(flag_table[i].text) == len && strncasecmp(flag_table[i].text, s, len) == 0) {
            *bit = flag_table[i].bit;
            return 0;
        }
    }
    return -1; /* \Recent or an unknown system flag */
}

int imap_mflags_parse(const struct imap_arg *args, size_t n, unsigned *flags)
{
    *flags = 0;
    if (n == 0)
        return -1;
    const struct imap_arg *v = args;
    if (n == 1 && args[0].type == IMAP_ARG_LIST) {
        v = args[0].list;
        n = args[0].n;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned bit;
        if (v[i].type != IMAP_ARG_ATOM || imap_mflags_parse_flag(v[i].s, v[i].len, &bit) < 0)
            return -1;
        *flags |= bit;
    }
    return 0;
}
