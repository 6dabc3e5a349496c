/* SEARCH parsing: the arguments of SEARCH into a program of nodes (search_int.h), bounded
 * in depth and size, with the cheaper keys moved first in every AND and OR. Matching is in
 * search_eval.c; search.h says the rules. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "search_int.h"

void search_fail(struct search_parser *p, enum imap_search_status status, const char *err)
{
    if (p->status == IMAP_SEARCH_OK) {
        p->status = status;
        p->err = err;
    }
}

/* args.h's astring test, kept here so these files link without the parser. */
int search_is_string(const struct imap_arg *a)
{
    return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED || a->type == IMAP_ARG_LITERAL;
}

int search_atom_is(const struct imap_arg *a, const char *word)
{
    return a->type == IMAP_ARG_ATOM && strlen(word) == a->len && strncasecmp(a->s, word, a->len) == 0;
}

struct search_node *search_new_node(struct search_parser *p, enum search_node_kind kind)
{
    if (++p->nkeys > IMAP_SEARCH_KEYS_MAX) {
        search_fail(p, IMAP_SEARCH_BAD, "Too many search keys");
        return NULL;
    }
    struct search_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        search_fail(p, IMAP_SEARCH_NOMEM, "Out of memory");
    else
        n->kind = kind;
    return n;
}

void search_node_free(struct search_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        search_node_free(n->kids[i]);
    free(n->kids);
    imap_seqset_free(n->set);
    free(n->name);
    free(n->str);
    free(n);
}

static struct search_node *parse_key(struct search_parser *p, const struct imap_arg *args, size_t nargs, size_t *i,
                                     int depth);

/* Keys args[*i..nargs) ANDed (a list's contents or the top level): at least one. */
static struct search_node *parse_and(struct search_parser *p, const struct imap_arg *args, size_t nargs, size_t *i,
                                     int depth)
{
    if (*i >= nargs) {
        search_fail(p, IMAP_SEARCH_BAD, "Search key expected");
        return NULL;
    }
    struct search_node *n = search_new_node(p, SN_AND);
    if (n == NULL)
        return NULL;
    if ((n->kids = calloc(nargs - *i, sizeof *n->kids)) == NULL) {
        search_fail(p, IMAP_SEARCH_NOMEM, "Out of memory");
        search_node_free(n);
        return NULL;
    }
    while (*i < nargs) {
        struct search_node *k = parse_key(p, args, nargs, i, depth);
        if (k == NULL) {
            search_node_free(n);
            return NULL;
        }
        n->kids[n->nkids++] = k;
    }
    /* Cheapest first (a stable insertion sort: the client's order within a class). */
    for (size_t a = 1; a < n->nkids; a++)
        for (size_t b = a; b > 0 && n->kids[b - 1]->cost > n->kids[b]->cost; b--) {
            struct search_node *t = n->kids[b];
            n->kids[b] = n->kids[b - 1];
            n->kids[b - 1] = t;
        }
    for (size_t a = 0; a < n->nkids; a++)
        if (n->kids[a]->cost > n->cost)
            n->cost = n->kids[a]->cost;
    return n;
}

static struct search_node *parse_key(struct search_parser *p, const struct imap_arg *args, size_t nargs, size_t *i,
                                     int depth)
{
    if (depth >= IMAP_SEARCH_DEPTH_MAX) {
        search_fail(p, IMAP_SEARCH_BAD, "Search nested too deep");
        return NULL;
    }
    const struct imap_arg *a = &args[(*i)++];
    if (a->type == IMAP_ARG_LIST) {
        size_t j = 0;
        if (a->n == 0) {
            search_fail(p, IMAP_SEARCH_BAD, "Empty search list");
            return NULL;
        }
        return parse_and(p, a->list, a->n, &j, depth + 1);
    }
    if (a->type != IMAP_ARG_ATOM) {
        search_fail(p, IMAP_SEARCH_BAD, "Search key expected");
        return NULL;
    }
    struct search_node *k = NULL;
    if (imap_seqset_looks_like(a->s, a->len)) {
        if ((k = search_new_node(p, SN_SEQ)) == NULL)
            return NULL;
        if ((k->set = imap_seqset_from_arg(a, &p->err)) == NULL) {
            p->status = IMAP_SEARCH_BAD;
            search_node_free(k);
            return NULL;
        }
        return k;
    }
    if (search_atom_is(a, "NOT") || search_atom_is(a, "OR")) {
        size_t want = search_atom_is(a, "OR") ? 2 : 1;
        if ((k = search_new_node(p, want == 2 ? SN_OR : SN_NOT)) == NULL)
            return NULL;
        if ((k->kids = calloc(want, sizeof *k->kids)) == NULL) {
            search_fail(p, IMAP_SEARCH_NOMEM, "Out of memory");
            search_node_free(k);
            return NULL;
        }
        while (k->nkids < want) {
            if (*i >= nargs) {
                search_fail(p, IMAP_SEARCH_BAD, want == 2 ? "OR needs two search keys" : "NOT needs a search key");
                search_node_free(k);
                return NULL;
            }
            struct search_node *c = parse_key(p, args, nargs, i, depth + 1);
            if (c == NULL) {
                search_node_free(k);
                return NULL;
            }
            k->kids[k->nkids++] = c;
            if (c->cost > k->cost)
                k->cost = c->cost;
        }
        if (want == 2 && k->kids[0]->cost > k->kids[1]->cost) {
            struct search_node *t = k->kids[0];
            k->kids[0] = k->kids[1];
            k->kids[1] = t;
        }
        return k;
    }
    return search_named_key(p, a, args, nargs, i);
}

/* RETURN (opt ...) of RFC 4731 at args[*i] (the word RETURN already seen). */
static int parse_return(struct search_parser *p, struct imap_search *prog, const struct imap_arg *args, size_t nargs,
                        size_t *i)
{
    if (*i >= nargs || args[*i].type != IMAP_ARG_LIST) {
        search_fail(p, IMAP_SEARCH_BAD, "RETURN needs a list");
        return -1;
    }
    const struct imap_arg *l = &args[(*i)++];
    static const struct {
        const char *name;
        unsigned bit;
    } opts[] = {{"MIN", IMAP_SEARCH_RET_MIN},
                {"MAX", IMAP_SEARCH_RET_MAX},
                {"COUNT", IMAP_SEARCH_RET_COUNT},
                {"ALL", IMAP_SEARCH_RET_ALL}};
    for (size_t k = 0; k < l->n; k++) {
        size_t j = 0;
        while (j < sizeof opts / sizeof opts[0] && !search_atom_is(&l->list[k], opts[j].name))
            j++;
        if (j == sizeof opts / sizeof opts[0]) {
            search_fail(p, IMAP_SEARCH_BAD, search_atom_is(&l->list[k], "SAVE") ? "RETURN SAVE is not supported"
                                                                  : "Unknown RETURN option");
            return -1;
        }
        prog->returns |= opts[j].bit;
    }
    if (prog->returns == 0)
        prog->returns = IMAP_SEARCH_RET_ALL;
    prog->esearch = 1;
    return 0;
}

static unsigned needs_of(const struct search_node *n)
{
    unsigned needs = 0;
    if (n->kind == SN_HEADER || (n->sent && (n->kind == SN_BEFORE || n->kind == SN_ON || n->kind == SN_SINCE)))
        needs |= IMAP_SEARCH_NEED_HEADERS;
    if (n->kind == SN_BODY || n->kind == SN_TEXT)
        needs |= IMAP_SEARCH_NEED_BODY;
    if (n->kind == SN_MODSEQ)
        needs |= IMAP_SEARCH_NEED_MODSEQ;
    for (size_t i = 0; i < n->nkids; i++)
        needs |= needs_of(n->kids[i]);
    return needs;
}

enum imap_search_status imap_search_parse(const struct imap_arg *args, size_t nargs, unsigned opts,
                                          struct imap_search **out, const char **err)
{
    struct search_parser p = {.status = IMAP_SEARCH_OK, .opts = opts};
    struct imap_search *prog = calloc(1, sizeof *prog);
    size_t i = 0;
    *out = NULL;
    if (prog == NULL) {
        *err = "Out of memory";
        return IMAP_SEARCH_NOMEM;
    }
    if (i < nargs && (opts & IMAP_SEARCH_OPT_ESEARCH) && search_atom_is(&args[i], "RETURN")) {
        i++;
        if (parse_return(&p, prog, args, nargs, &i) < 0)
            goto fail;
    }
    if (i < nargs && search_atom_is(&args[i], "CHARSET")) {
        i++;
        if (i >= nargs || !search_is_string(&args[i])) {
            search_fail(&p, IMAP_SEARCH_BAD, "CHARSET needs a name");
            goto fail;
        }
        const struct imap_arg *cs = &args[i++];
        if (!((cs->len == 5 && strncasecmp(cs->s, "UTF-8", 5) == 0) ||
              (cs->len == 8 && strncasecmp(cs->s, "US-ASCII", 8) == 0))) {
            search_fail(&p, IMAP_SEARCH_BADCHARSET, "Unsupported charset");
            goto fail;
        }
    }
    if ((prog->root = parse_and(&p, args, nargs, &i, 0)) == NULL)
        goto fail;
    prog->needs = needs_of(prog->root);
    prog->ntext = p.ntext;
    *out = prog;
    return IMAP_SEARCH_OK;
fail:
    imap_search_free(prog);
    *err = p.err;
    return p.status;
}

void imap_search_free(struct imap_search *p)
{
    if (p == NULL)
        return;
    search_node_free(p->root);
    free(p);
}

unsigned imap_search_needs(const struct imap_search *p) { return p->needs; }
int imap_search_is_esearch(const struct imap_search *p) { return p->esearch; }
size_t imap_search_text_keys(const struct imap_search *p) { return p->ntext; }
unsigned imap_search_returns(const struct imap_search *p) { return p->returns; }
