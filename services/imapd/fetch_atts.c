/* FETCH data items: the item argument into struct imap_fetch_atts (fetch_atts.h says the
 * grammar and the bounds). A section item comes as one atom (args.h: the parser keeps
 * everything between '[' and the first ']' in the atom), so BODY.PEEK[HEADER.FIELDS (A B)]
 * <0.10> is split here into its name, section text (fetch_section.c) and partial. */
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

/* "<" number "." nz-number ">" at s[0..len), the whole rest of the atom. */
static int parse_partial(const char *s, size_t len, uint32_t *offset, uint32_t *count, const char **err)
{
    *err = "Invalid partial range";
    if (len < 5 || s[0] != '<' || s[len - 1] != '>')
        return -1;
    uint64_t v[2] = {0, 0};
    size_t i = 1;
    for (int k = 0; k < 2; k++) {
        size_t start = i;
        while (i < len - 1 && s[i] >= '0' && s[i] <= '9') {
            v[k] = v[k] * 10 + (uint64_t)(s[i++] - '0');
            if (v[k] > UINT32_MAX) {
                *err = "Partial range number too large";
                return -1;
            }
        }
        if (i == start)
            return -1;
        if (k == 0 && (i >= len - 1 || s[i++] != '.'))
            return -1;
    }
    if (i != len - 1 || v[1] == 0)
        return -1;
    *offset = (uint32_t)v[0];
    *count = (uint32_t)v[1];
    return 0;
}

static struct imap_fetch_body *new_body(struct imap_fetch_atts *fa, const char **err)
{
    if (fa->nbodies == IMAP_FETCH_BODIES_MAX) {
        *err = "Too many body sections in one FETCH";
        return NULL;
    }
    if (fa->bodies == NULL && (fa->bodies = calloc(IMAP_FETCH_BODIES_MAX, sizeof *fa->bodies)) == NULL) {
        *err = "Out of memory";
        return NULL;
    }
    return &fa->bodies[fa->nbodies++];
}

/* RFC822, RFC822.HEADER, RFC822.TEXT: fixed sections under their own names. */
static int add_rfc822(struct imap_fetch_atts *fa, enum imap_section_text text, int seen, const char *name,
                      const char **err)
{
    struct imap_fetch_body *b = new_body(fa, err);
    if (b == NULL)
        return -1;
    b->kind = IMAP_FETCH_SECTION;
    b->section.text = text;
    b->sets_seen = seen;
    if ((b->name = strdup(name)) == NULL) {
        *err = "Out of memory";
        return -1;
    }
    return 0;
}

/* BODY[..], BODY.PEEK[..], BINARY[..], BINARY.PEEK[..], BINARY.SIZE[..] with the atom's
 * text in s[0..len), '[' at s[open]. */
static int add_section(struct imap_fetch_atts *fa, unsigned opts, const char *s, size_t len, size_t open,
                       const char **err)
{
    enum imap_fetch_body_kind kind;
    int peek = 0;
    const char *prefix;
    if (word_is(s, open, "BODY")) {
        kind = IMAP_FETCH_SECTION, prefix = "BODY";
    } else if (word_is(s, open, "BODY.PEEK")) {
        kind = IMAP_FETCH_SECTION, prefix = "BODY", peek = 1;
    } else if (word_is(s, open, "BINARY") || word_is(s, open, "BINARY.PEEK") || word_is(s, open, "BINARY.SIZE")) {
        if (!(opts & IMAP_FETCH_OPT_BINARY)) {
            *err = "BINARY is not supported";
            return -1;
        }
        if (word_is(s, open, "BINARY.SIZE"))
            kind = IMAP_FETCH_BINARY_SIZE, prefix = "BINARY.SIZE", peek = 1;
        else
            kind = IMAP_FETCH_BINARY, prefix = "BINARY", peek = open > strlen("BINARY");
    } else {
        *err = "Unknown FETCH item";
        return -1;
    }
    const char *close = memchr(s + open, ']', len - open);
    if (close == NULL) {
        *err = "Invalid section: missing ]";
        return -1;
    }
    size_t after = (size_t)(close - s) + 1;
    struct imap_fetch_body *b = new_body(fa, err);
    if (b == NULL)
        return -1;
    b->kind = kind;
    b->sets_seen = !peek;
    if (imap_section_parse(s + open + 1, (size_t)(close - s) - open - 1, kind != IMAP_FETCH_SECTION, &b->section,
                           err) < 0)
        return -1;
    if (after < len) {
        if (kind == IMAP_FETCH_BINARY_SIZE) {
            *err = "BINARY.SIZE takes no partial range";
            return -1;
        }
        if (parse_partial(s + after, len - after, &b->offset, &b->count, err) < 0)
            return -1;
        b->partial = 1;
    }
    if ((b->name = imap_section_name(prefix, &b->section, b->partial, b->offset)) == NULL) {
        *err = "Out of memory";
        return -1;
    }
    return 0;
}

static int parse_item(struct imap_fetch_atts *fa, unsigned opts, const struct imap_arg *a, const char **err)
{
    if (a->type != IMAP_ARG_ATOM) {
        *err = "Invalid FETCH item";
        return -1;
    }
    const char *s = a->s;
    size_t len = a->len;
    const char *open = memchr(s, '[', len);
    if (open != NULL)
        return add_section(fa, opts, s, len, (size_t)(open - s), err);
    static const struct {
        const char *name;
        unsigned bit;
    } simple[] = {
        {"FLAGS", IMAP_FETCH_FLAGS},
        {"UID", IMAP_FETCH_UID},
        {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
        {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
        {"ENVELOPE", IMAP_FETCH_ENVELOPE},
        {"BODY", IMAP_FETCH_BODY},
        {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (word_is(s, len, simple[i].name)) {
            fa->items |= simple[i].bit;
            return 0;
        }
    if (word_is(s, len, "MODSEQ") && (opts & IMAP_FETCH_OPT_CONDSTORE)) {
        fa->items |= IMAP_FETCH_MODSEQ;
        return 0;
    }
    if (word_is(s, len, "RFC822"))
        return add_rfc822(fa, IMAP_SECTION_ALL, 1, "RFC822", err);
    if (word_is(s, len, "RFC822.HEADER"))
        return add_rfc822(fa, IMAP_SECTION_HEADER, 0, "RFC822.HEADER", err);
    if (word_is(s, len, "RFC822.TEXT"))
        return add_rfc822(fa, IMAP_SECTION_TEXT, 1, "RFC822.TEXT", err);
    if (word_is(s, len, "ALL") || word_is(s, len, "FAST") || word_is(s, len, "FULL"))
        *err = "FETCH macros are not allowed in a list";
    else
        *err = "Unknown FETCH item";
    return -1;
}

int imap_fetch_atts_parse(const struct imap_arg *arg, int uid, unsigned opts, struct imap_fetch_atts *fa,
                          const char **err)
{
    memset(fa, 0, sizeof *fa);
    int rc = 0;
    if (arg == NULL) {
        *err = "FETCH items expected";
        return -1;
    }
    if (arg->type == IMAP_ARG_LIST) {
        if (arg->n == 0) {
            *err = "Empty FETCH item list";
            return -1;
        }
        for (size_t i = 0; i < arg->n && rc == 0; i++)
            rc = parse_item(fa, opts, &arg->list[i], err);
    } else if (arg->type == IMAP_ARG_ATOM && word_is(arg->s, arg->len, "ALL")) {
        fa->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE;
    } else if (arg->type == IMAP_ARG_ATOM && word_is(arg->s, arg->len, "FAST")) {
        fa->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE;
    } else if (arg->type == IMAP_ARG_ATOM && word_is(arg->s, arg->len, "FULL")) {
        fa->items = IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_ENVELOPE |
                    IMAP_FETCH_BODY;
    } else {
        rc = parse_item(fa, opts, arg, err);
    }
    if (rc < 0) {
        imap_fetch_atts_free(fa);
        return -1;
    }
    if (uid)
        fa->items |= IMAP_FETCH_UID;
    for (size_t i = 0; i < fa->nbodies; i++)
        fa->sets_seen |= fa->bodies[i].sets_seen;
    return 0;
}

void imap_fetch_atts_free(struct imap_fetch_atts *fa)
{
    for (size_t i = 0; i < fa->nbodies; i++) {
        imap_section_free(&fa->bodies[i].section);
        free(fa->bodies[i].name);
    }
    free(fa->bodies);
    memset(fa, 0, sizeof *fa);
}

int imap_fetch_atts_need_message(const struct imap_fetch_atts *fa)
{
    return fa->nbodies > 0 || (fa->items & (IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY | IMAP_FETCH_BODYSTRUCTURE));
}
