/* Test fixture: a struct imap_arg tree (services/imapd/args.h) from a compact text, so the
 * grammar tests of seqset, fetch_atts and search need not link the real parser.
 * Syntax: atoms (with the bracket rule: '[' ... ']' is part of the atom), "quoted" with
 * \" and \\, {n}bytes for a literal of n bytes (no CRLF), ( lists ), NIL. Malformed text
 * fails the test: the fixture is only fed the tests' own strings. */
#ifndef IMAPD_ARGS_FIXTURE_H
#define IMAPD_ARGS_FIXTURE_H
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imapd/args.h"

struct targs {
    struct imap_arg *args;
    size_t n;
};

static char *targs_dup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void targs_free_list(struct imap_arg *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].type == IMAP_ARG_LIST)
            targs_free_list(a[i].list, a[i].n);
        free((char *)a[i].s);
    }
    free(a);
}

/* Elements up to close (')' or '\0') from *p. */
static struct imap_arg *targs_parse(const char **p, size_t *n, char close)
{
    size_t cap = 8;
    struct imap_arg *a = calloc(cap, sizeof *a);
    assert_non_null(a);
    *n = 0;
    for (;;) {
        while (**p == ' ')
            (*p)++;
        if (**p == close) {
            if (close)
                (*p)++;
            return a;
        }
        assert_int_not_equal(**p, '\0');
        if (*n == cap) {
            a = realloc(a, (cap *= 2) * sizeof *a);
            assert_non_null(a);
        }
        struct imap_arg *e = &a[(*n)++];
        memset(e, 0, sizeof *e);
        if (**p == '(') {
            (*p)++;
            e->type = IMAP_ARG_LIST;
            e->list = targs_parse(p, &e->n, ')');
        } else if (**p == '"') {
            char buf[4096];
            size_t k = 0;
            for ((*p)++; **p != '"'; (*p)++) {
                assert_int_not_equal(**p, '\0');
                if (**p == '\\')
                    (*p)++;
                buf[k++] = **p;
            }
            (*p)++;
            e->type = IMAP_ARG_QUOTED;
            e->s = targs_dup(buf, k);
            e->len = k;
        } else if (**p == '{') {
            char *end;
            size_t len = strtoul(*p + 1, &end, 10);
            assert_int_equal(*end, '}');
            e->type = IMAP_ARG_LITERAL;
            e->s = targs_dup(end + 1, len);
            e->len = len;
            *p = end + 1 + len;
        } else {
            const char *start = *p;
            int bracket = 0;
            while (**p != '\0' && (bracket || (**p != ' ' && **p != '(' && **p != ')'))) {
                if (**p == '[')
                    bracket = 1;
                else if (**p == ']')
                    bracket = 0;
                (*p)++;
            }
            e->len = (size_t)(*p - start);
            e->s = targs_dup(start, e->len);
            e->type = (e->len == 3 && strncasecmp(start, "NIL", 3) == 0) ? IMAP_ARG_NIL : IMAP_ARG_ATOM;
        }
    }
}

static struct targs targs_make(const char *text)
{
    struct targs t;
    t.args = targs_parse(&text, &t.n, '\0');
    return t;
}

static void targs_free(struct targs *t)
{
    targs_free_list(t->args, t->n);
    t->args = NULL;
    t->n = 0;
}

#endif
