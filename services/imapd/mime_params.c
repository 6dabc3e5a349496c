/* The parameter list of a Content-Type or Content-Disposition field for BODYSTRUCTURE, as
 * Dovecot (lib-mail rfc2231-parser.c) gives it: values as the sender wrote them (a quoted
 * "=?UTF-8?Q?...?=" stays those bytes, unquoted), RFC 2231 continuations name*0, name*1
 * joined into one "name" (or "name*" with the raw charset'lang'%XX value when a piece is
 * extended), the plain parameters first in their order, then the joined ones by name.
 *
 * Why a tokenizer of our own: GMime's parameter parser (g_mime_param_list_parse) always
 * decodes: RFC 2231 values come out converted to UTF-8 with their charset spelling
 * normalized, quoted encoded words are decoded in every compliance mode we tried, and the
 * pieces of a continuation are merged with no way back to the bytes. So this reads the
 * raw field value (g_mime_header_get_raw_value through mime_raw_header) itself; it is
 * RFC 2045 §5.1 lexing only (token, quoted-string, comments), bounded: at most PARAMS_MAX
 * parameters, each value no longer than the field. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "istring.h"
#include "mime_int.h"

#define PARAMS_MAX 128        /* parameters kept per field; the rest are ignored */
#define INDEX_MAX 100000      /* a continuation number above this is kept as written */

struct piece {
    char *key;      /* the attribute; for RFC 2231 pieces without "*N*" */
    char *value;
    unsigned idx;
    int rfc2231, extended;
};

struct lex { const char *p, *end; };

/* Folding white space and comments; 0 at the end, 1 more follows, -1 open comment. */
static int skip_cfws(struct lex *l)
{
    for (;;) {
        while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\r' || *l->p == '\n'))
            l->p++;
        if (l->p == l->end)
            return 0;
        if (*l->p != '(')
            return 1;
        size_t depth = 0;  /* a counter, not recursion: nesting is the sender's */
        for (; l->p < l->end; l->p++) {
            if (*l->p == '\\' && l->p + 1 < l->end)
                l->p++;
            else if (*l->p == '(')
                depth++;
            else if (*l->p == ')' && --depth == 0)
                break;
        }
        if (l->p == l->end)
            return -1;
        l->p++;
    }
}

/* RFC 2045 token bytes (8-bit accepted, as Dovecot). */
static int token_byte(unsigned char c)
{
    return c >= 0x80 || (c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL);
}

/* A token into g, then CFWS: skip_cfws's return. */
static int token(struct lex *l, GString *g)
{
    const char *start = l->p;
    while (l->p < l->end && token_byte((unsigned char)*l->p))
        l->p++;
    g_string_append_len(g, start, l->p - start);
    return skip_cfws(l);
}

/* A quoted-string at l->p ('"') into g, unquoted and unfolded, then CFWS. */
static int quoted(struct lex *l, GString *g)
{
    for (l->p++; l->p < l->end; l->p++) {
        char c = *l->p;
        if (c == '"') {
            l->p++;
            return skip_cfws(l);
        }
        if (c == '\\') {
            if (++l->p == l->end)
                return -1;
            c = *l->p;
        } else if (c == '\r' || c == '\n') {
            continue;  /* a fold inside the quotes */
        }
        g_string_append_c(g, c);
    }
    return -1;
}

/* ";" attribute "=" value at l->p, into key and value. 1 one read, 0 the end, -1 broken. */
static int next_param(struct lex *l, GString *key, GString *value)
{
    g_string_truncate(key, 0);
    g_string_truncate(value, 0);
    if (l->p == l->end)
        return 0;
    if (*l->p != ';')
        return -1;
    l->p++;
    if (skip_cfws(l) <= 0 || token(l, key) < 0 || key->len == 0 || l->p == l->end || *l->p != '=')
        return -1;
    l->p++;
    int rc = skip_cfws(l);
    if (rc <= 0)
        return rc < 0 ? -1 : 1;  /* "name=" at the end: an empty value */
    if (*l->p == '"')
        return quoted(l, value) < 0 ? -1 : 1;
    if (*l->p == '=') {
        /* name==?utf-8?b?...?= unquoted (broken senders): up to ';' or a blank, as Dovecot */
        const char *start = l->p;
        while (l->p < l->end && strchr("; \t\r\n", *l->p) == NULL)
            l->p++;
        g_string_append_len(value, start, l->p - start);
        return skip_cfws(l) < 0 ? -1 : 1;
    }
    return token(l, value) < 0 ? -1 : 1;
}

/* key "name*N", "name*N*" or "name*": an RFC 2231 piece of name. */
static void classify(struct piece *pc)
{
    char *star = strchr(pc->key, '*');
    if (star == NULL)
        return;
    /* "name*" alone: its star is the extended mark (piece 0), as Dovecot reads it */
    const char *p = star[1] != '\0' ? star + 1 : star;
    unsigned idx = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        idx = idx > INDEX_MAX ? idx : idx * 10 + (unsigned)(*p - '0');
    int extended = *p == '*';
    if (extended)
        p++;
    if (*p != '\0')
        return;  /* "a*b": a plain name that holds a star */
    *star = '\0';
    pc->rfc2231 = 1;
    pc->extended = extended;
    pc->idx = idx;
}

static int piece_cmp(const void *a, const void *b)
{
    const struct piece *x = *(struct piece *const *)a, *y = *(struct piece *const *)b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static void write_pair(struct evbuffer *out, int *n, const char *key, const char *value, size_t vlen)
{
    evbuffer_add(out, (*n)++ ? " " : "(", 1);
    imap_write_string(out, key, strlen(key));
    evbuffer_add(out, " ", 1);
    imap_write_string(out, value, vlen);
}

/* The group rfc[i, next) of one name: joined, or each piece as written if one is missing. */
static void write_group(struct evbuffer *out, int *n, struct piece **rfc, size_t i, size_t next)
{
    int ok = 1, extended = 0;
    for (size_t j = i; j < next; j++) {
        ok &= rfc[j]->idx == j - i;
        extended |= rfc[j]->extended;
    }
    if (!ok) {
        for (size_t j = i; j < next; j++) {
            char *key = g_strdup_printf(rfc[j]->extended ? "%s*%u*" : "%s*%u", rfc[j]->key, rfc[j]->idx);
            write_pair(out, n, key, rfc[j]->value, strlen(rfc[j]->value));
            g_free(key);
        }
        return;
    }
    GString *v = g_string_new(extended && !rfc[i]->extended ? "''" : "");
    for (size_t j = i; j < next; j++) {
        if (extended && !rfc[j]->extended) {
            /* a plain piece among encoded ones: its '%' must not read as an escape */
            for (const char *c = rfc[j]->value; *c != '\0'; c++) {
                if (*c == '%')
                    g_string_append(v, "%25");
                else
                    g_string_append_c(v, *c);
            }
        } else {
            g_string_append(v, rfc[j]->value);
        }
    }
    char *key = g_strconcat(rfc[i]->key, extended ? "*" : "", NULL);
    write_pair(out, n, key, v->str, v->len);
    g_free(key);
    g_string_free(v, TRUE);
}

void mime_write_params(struct evbuffer *out, const char *raw, int default_charset)
{
    struct piece pieces[PARAMS_MAX], *rfc[PARAMS_MAX];
    size_t npieces = 0, nrfc = 0;
    struct lex l = {raw != NULL ? raw : "", NULL};
    l.end = l.p + strlen(l.p);
    /* Past the type/subtype (or disposition): to the first ';' outside quotes and
     * comments. */
    for (int in_quotes = 0; l.p < l.end && (in_quotes || *l.p != ';');) {
        if (!in_quotes && *l.p == '(') {
            if (skip_cfws(&l) < 0)
                break;  /* an open comment: no parameters */
            continue;
        }
        if (*l.p == '\\' && in_quotes && l.p + 1 < l.end)
            l.p++;
        else if (*l.p == '"')
            in_quotes = !in_quotes;
        l.p++;
    }
    GString *key = g_string_new(NULL), *value = g_string_new(NULL);
    for (int rc; npieces < PARAMS_MAX && (rc = next_param(&l, key, value)) != 0;) {
        if (rc < 0) {
            /* broken: resynchronize at a later ';', as Dovecot does */
            if (l.p < l.end)
                l.p++;
            continue;
        }
        struct piece *pc = &pieces[npieces++];
        *pc = (struct piece){g_strdup(key->str), g_strndup(value->str, value->len), 0, 0, 0};
        classify(pc);
        if (pc->rfc2231)
            rfc[nrfc++] = pc;
    }
    g_string_free(key, TRUE);
    g_string_free(value, TRUE);
    int n = 0, seen_charset = 0;
    for (size_t i = 0; i < npieces; i++) {
        if (pieces[i].rfc2231)
            continue;
        seen_charset |= g_ascii_strcasecmp(pieces[i].key, "charset") == 0;
        write_pair(out, &n, pieces[i].key, pieces[i].value, strlen(pieces[i].value));
    }
    qsort(rfc, nrfc, sizeof *rfc, piece_cmp);
    for (size_t i = 0, next; i < nrfc; i = next) {
        for (next = i + 1; next < nrfc && g_ascii_strcasecmp(rfc[i]->key, rfc[next]->key) == 0; next++)
            ;
        write_group(out, &n, rfc, i, next);
    }
    if (default_charset && !seen_charset)
        write_pair(out, &n, "charset", "us-ascii", 8);
    evbuffer_add(out, n > 0 ? ")" : "NIL", n > 0 ? 1 : 3);
    for (size_t i = 0; i < npieces; i++) {
        g_free(pieces[i].key);
        g_free(pieces[i].value);
    }
}
