/* LIST pattern canonical form and matching (list_match.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "list_match.h"

#define NAME_MAX_MATCH (IMAP_LIST_PATTERN_MAX * 4)

int imap_list_pattern(const char *ref, size_t reflen, const char *pat, size_t patlen, char *dst, size_t size)
{
    /* "a/" + "/b" would name "a//b", which no folder has: keep one separator. */
    if (reflen && ref[reflen - 1] == '/' && patlen && pat[0] == '/') {
        pat++;
        patlen--;
    }
    if (reflen + patlen + 1 > size)
        return -1;
    memcpy(dst, ref, reflen);
    memcpy(dst + reflen, pat, patlen);
    dst[reflen + patlen] = '\0';
    for (size_t i = 0; i < reflen + patlen; i++)
        if (dst[i] == '\0' || dst[i] == '\r' || dst[i] == '\n')
            return -1;
    /* INBOX is the one case-insensitive name (RFC 9051 §5.1). */
    if (strncasecmp(dst, "INBOX", 5) == 0 && (dst[5] == '\0' || dst[5] == '/'))
        memcpy(dst, "INBOX", 5);
    return 0;
}

int imap_list_match(const char *pattern, const char *name)
{
    size_t n = strlen(name);
    if (n > NAME_MAX_MATCH)
        return 0;
    /* row[j]: the pattern read so far matches name[0..j). One row, updated per pattern
     * byte: a literal shifts it, '*' and '%' spread each match to the right (a '%' not
     * across '/'). */
    unsigned char stack[256];
    unsigned char *row = n + 1 <= sizeof stack ? stack : malloc(n + 1);
    if (!row)
        return 0;
    memset(row, 0, n + 1);
    row[0] = 1;
    for (const char *p = pattern; *p; p++) {
        if (*p == '*' || *p == '%') {
            unsigned char acc = 0;
            for (size_t j = 0; j <= n; j++) {
                if (*p == '%' && j > 0 && name[j - 1] == '/')
                    acc = 0;
                acc |= row[j];
                row[j] = acc;
            }
        } else {
            for (size_t j = n; j > 0; j--)
                row[j] = row[j - 1] && name[j - 1] == *p;
            row[0] = 0;
        }
    }
    int match = row[n];
    if (row != stack)
        free(row);
    return match;
}

void imap_list_root(const char *ref, size_t reflen, char *dst, size_t size)
{
    if (!size)
        return;
    const char *sep = memchr(ref, '/', reflen);
    size_t len = sep ? (size_t)(sep - ref) + 1 : 0;
    if (len >= size)
        len = size - 1;
    memcpy(dst, ref, len);
    dst[len] = '\0';
}
