/* The section grammar of FETCH (RFC 9051 §6.4.5 section-spec, RFC 3516 section-binary):
 * the text between '[' and ']' into struct imap_section, and a section item's name as the
 * response echoes it. fetch_atts.c finds the items; section.c (mime) finds the bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch_atts.h"

/* s[0..len) equals the upper-case word, ignoring ASCII case. */
static int word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static int starts_with(const char *s, size_t len, const char *word)
{
    size_t w = strlen(word);
    return len >= w && strncasecmp(s, word, w) == 0;
}

/* An RFC 5322 field name: printable ASCII but ':' (and not empty). */
static int field_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > IMAP_SECTION_FIELD_LEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':')
            return 0;
    return 1;
}

/* One header-fld-name (astring) at s[*i]: an atom up to SP or ')', or a quoted string.
 * Literals cannot occur: the parser does not split a bracketed atom at CRLF. */
static char *parse_field(const char *s, size_t len, size_t *i, const char **err)
{
    char buf[IMAP_SECTION_FIELD_LEN_MAX + 1];
    size_t n = 0;
    if (*i < len && s[*i] == '"') {
        (*i)++;
        for (;;) {
            if (*i >= len) {
                *err = "Unterminated quoted header field name";
                return NULL;
            }
            char c = s[(*i)++];
            if (c == '"')
                break;
            if (c == '\\') {
                if (*i >= len || (s[*i] != '"' && s[*i] != '\\')) {
                    *err = "Invalid escape in header field name";
                    return NULL;
                }
                c = s[(*i)++];
            }
            if (n == IMAP_SECTION_FIELD_LEN_MAX) {
                *err = "Header field name too long";
                return NULL;
            }
            buf[n++] = c;
        }
    } else {
        while (*i < len && s[*i] != ' ' && s[*i] != ')' && s[*i] != '(' && s[*i] != '"' && s[*i] != '{') {
            if (n == IMAP_SECTION_FIELD_LEN_MAX) {
                *err = "Header field name too long";
                return NULL;
            }
            buf[n++] = s[(*i)++];
        }
    }
    if (!field_name_ok(buf, n)) {
        *err = *i < len && s[*i] == '{' ? "Literals are not supported in a section" : "Invalid header field name";
        return NULL;
    }
    char *name = malloc(n + 1);
    if (name == NULL) {
        *err = "Out of memory";
        return NULL;
    }
    memcpy(name, buf, n);
    name[n] = '\0';
    return name;
}

/* " (" name *(SP name) ")" at s[*i], to the end of the section text. */
static int parse_field_list(const char *s, size_t len, size_t *i, struct imap_section *sec, const char **err)
{
    if (*i + 1 >= len || s[*i] != ' ' || s[*i + 1] != '(') {
        *err = "Header field list expected";
        return -1;
    }
    *i += 2;
    sec->fields = calloc(IMAP_SECTION_FIELDS_MAX, sizeof *sec->fields);
    if (sec->fields == NULL) {
        *err = "Out of memory";
        return -1;
    }
    for (;;) {
        if (sec->nfields == IMAP_SECTION_FIELDS_MAX) {
            *err = "Too many header field names";
            return -1;
        }
        char *name = parse_field(s, len, i, err);
        if (name == NULL)
            return -1;
        sec->fields[sec->nfields++] = name;
        if (*i < len && s[*i] == ')') {
            (*i)++;
            return 0;
        }
        if (*i >= len || s[*i] != ' ') {
            *err = "Invalid header field list";
            return -1;
        }
        (*i)++;
    }
}

int imap_section_parse(const char *s, size_t len, int binary, struct imap_section *sec, const char **err)
{
    memset(sec, 0, sizeof *sec);
    size_t i = 0;
    /* section-part: nz-number *("." nz-number) */
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (s[i] == '0') {
            *err = "Invalid section: part numbers start at 1";
            goto bad;
        }
        uint64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (uint64_t)(s[i++] - '0');
            if (v > UINT32_MAX) {
                *err = "Invalid section: part number too large";
                goto bad;
            }
        }
        if (sec->nparts == IMAP_SECTION_DEPTH_MAX) {
            *err = "Section nested too deep";
            goto bad;
        }
        sec->part[sec->nparts++] = (uint32_t)v;
        if (i == len)
            return 0;
        if (s[i] != '.') {
            *err = "Invalid section";
            goto bad;
        }
        i++;
        if (i == len) {
            *err = "Invalid section: trailing dot";
            goto bad;
        }
        if (s[i] < '0' || s[i] > '9')
            break; /* a section-text follows */
    }
    if (i == len)
        return 0; /* "" */
    if (binary) {
        *err = "Invalid BINARY section: part numbers only";
        goto bad;
    }
    const char *t = s + i;
    size_t tl = len - i;
    if (starts_with(t, tl, "HEADER.FIELDS.NOT")) {
        sec->text = IMAP_SECTION_HEADER_FIELDS_NOT;
        i += strlen("HEADER.FIELDS.NOT");
    } else if (starts_with(t, tl, "HEADER.FIELDS")) {
        sec->text = IMAP_SECTION_HEADER_FIELDS;
        i += strlen("HEADER.FIELDS");
    } else if (word_is(t, tl, "HEADER")) {
        sec->text = IMAP_SECTION_HEADER;
        return 0;
    } else if (word_is(t, tl, "TEXT")) {
        sec->text = IMAP_SECTION_TEXT;
        return 0;
    } else if (word_is(t, tl, "MIME")) {
        if (sec->nparts == 0) {
            *err = "Invalid section: MIME needs a part number";
            goto bad;
        }
        sec->text = IMAP_SECTION_MIME;
        return 0;
    } else {
        *err = "Invalid section";
        goto bad;
    }
    if (parse_field_list(s, len, &i, sec, err) < 0)
        goto bad;
    if (i != len) {
        *err = "Invalid section: text after the header field list";
        goto bad;
    }
    return 0;
bad:
    imap_section_free(sec);
    return -1;
}

void imap_section_free(struct imap_section *sec)
{
    for (size_t i = 0; i < sec->nfields; i++)
        free(sec->fields[i]);
    free(sec->fields);
    sec->fields = NULL;
    sec->nfields = 0;
}

/* A field name for the response: upper-cased, as an atom, or quoted when it holds an
 * atom-special. Returns the bytes written (dst has room for 2 * len + 2). */
static size_t echo_field(char *dst, const char *name)
{
    int quote = name[strcspn(name, "(){%*\"\\]")] != '\0';
    size_t n = 0;
    if (quote)
        dst[n++] = '"';
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            dst[n++] = '\\';
        dst[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
    }
    if (quote)
        dst[n++] = '"';
    return n;
}

char *imap_section_name(const char *prefix, const struct imap_section *sec, int partial, uint32_t origin)
{
    static const char *const texts[] = {"", "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"};
    size_t size = strlen(prefix) + 2 + sec->nparts * 11 + 20 + 4 + 14 + 1;
    for (size_t i = 0; i < sec->nfields; i++)
        size += 2 * strlen(sec->fields[i]) + 3;
    char *out = malloc(size);
    if (out == NULL)
        return NULL;
    size_t n = (size_t)snprintf(out, size, "%s[", prefix);
    for (size_t i = 0; i < sec->nparts; i++)
        n += (size_t)snprintf(out + n, size - n, i ? ".%u" : "%u", (unsigned)sec->part[i]);
    if (sec->text != IMAP_SECTION_ALL)
        n += (size_t)snprintf(out + n, size - n, "%s%s", sec->nparts ? "." : "", texts[sec->text]);
    if (sec->nfields > 0) {
        out[n++] = ' ';
        out[n++] = '(';
        for (size_t i = 0; i < sec->nfields; i++) {
            if (i > 0)
                out[n++] = ' ';
            n += echo_field(out + n, sec->fields[i]);
        }
        out[n++] = ')';
    }
    out[n++] = ']';
    out[n] = '\0';
    if (partial)
        snprintf(out + n, size - n, "<%u>", (unsigned)origin);
    return out;
}

