/* SEARCH keys by name (RFC 9051 §6.4.4): the table of flag, string and date keys and the
 * reading of each key's arguments. The structure around them (lists, NOT, OR, sequence
 * sets, CHARSET, RETURN) is search.c's. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "search_int.h"

/* The next argument as a string (astring; NIL reads as "NIL"), copied. */
static int take_string(struct search_parser *p, const struct imap_arg *args, size_t nargs, size_t *i, char **out,
                       size_t *len)
{
    if (*i >= nargs) {
        search_fail(p, IMAP_SEARCH_BAD, "Missing search argument");
        return -1;
    }
    const struct imap_arg *a = &args[(*i)++];
    const char *s = a->type == IMAP_ARG_NIL ? "NIL" : a->s;
    size_t n = a->type == IMAP_ARG_NIL ? 3 : a->len;
    if (a->type != IMAP_ARG_NIL && !search_is_string(a)) {
        search_fail(p, IMAP_SEARCH_BAD, "Search argument must be a string");
        return -1;
    }
    if ((*out = malloc(n + 1)) == NULL) {
        search_fail(p, IMAP_SEARCH_NOMEM, "Out of memory");
        return -1;
    }
    memcpy(*out, s, n);
    (*out)[n] = '\0';
    *len = n;
    return 0;
}

static int take_number(struct search_parser *p, const struct imap_arg *args, size_t nargs, size_t *i, uint64_t *out)
{
    if (*i >= nargs || args[*i].type != IMAP_ARG_ATOM || args[*i].len == 0) {
        search_fail(p, IMAP_SEARCH_BAD, "Number expected");
        return -1;
    }
    const struct imap_arg *a = &args[(*i)++];
    uint64_t v = 0;
    for (size_t k = 0; k < a->len; k++) {
        /* number64 (RFC 9051): at most 2^63 - 1 */
        if (a->s[k] < '0' || a->s[k] > '9' || v > (UINT64_C(0x7fffffffffffffff) - 9) / 10) {
            search_fail(p, IMAP_SEARCH_BAD, "Invalid number");
            return -1;
        }
        v = v * 10 + (uint64_t)(a->s[k] - '0');
    }
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    enum search_node_kind kind;
    unsigned flag;
    int want;
} plain_keys[] = {
    {"ALL", SN_ALL, 0, 0},
    {"SEEN", SN_FLAG, IMAP_SEARCH_F_SEEN, 1},
    {"UNSEEN", SN_FLAG, IMAP_SEARCH_F_SEEN, 0},
    {"ANSWERED", SN_FLAG, IMAP_SEARCH_F_ANSWERED, 1},
    {"UNANSWERED", SN_FLAG, IMAP_SEARCH_F_ANSWERED, 0},
    {"FLAGGED", SN_FLAG, IMAP_SEARCH_F_FLAGGED, 1},
    {"UNFLAGGED", SN_FLAG, IMAP_SEARCH_F_FLAGGED, 0},
    {"DELETED", SN_FLAG, IMAP_SEARCH_F_DELETED, 1},
    {"UNDELETED", SN_FLAG, IMAP_SEARCH_F_DELETED, 0},
    {"DRAFT", SN_FLAG, IMAP_SEARCH_F_DRAFT, 1},
    {"UNDRAFT", SN_FLAG, IMAP_SEARCH_F_DRAFT, 0},
    {"RECENT", SN_RECENT, 0, 1},
    {"OLD", SN_RECENT, 0, 0},
    {"NEW", SN_NEW, 0, 0},
};

/* Keys taking a string; header keys carry their field name. */
static const struct {
    const char *name;
    enum search_node_kind kind;
    const char *field;
} string_keys[] = {
    {"FROM", SN_HEADER, "From"}, {"TO", SN_HEADER, "To"},   {"CC", SN_HEADER, "Cc"},
    {"BCC", SN_HEADER, "Bcc"},   {"SUBJECT", SN_HEADER, "Subject"},
    {"BODY", SN_BODY, NULL},     {"TEXT", SN_TEXT, NULL},
};

static const struct {
    const char *name;
    enum search_node_kind kind;
    int sent;
} date_keys[] = {
    {"BEFORE", SN_BEFORE, 0},    {"ON", SN_ON, 0},         {"SINCE", SN_SINCE, 0},
    {"SENTBEFORE", SN_BEFORE, 1}, {"SENTON", SN_ON, 1},     {"SENTSINCE", SN_SINCE, 1},
};

/* The arguments of the key k (already made, its name consumed) from args[*i..). */
static int parse_key_args(struct search_parser *p, struct search_node *k, const struct imap_arg *args, size_t nargs,
                          size_t *i)
{
    switch (k->kind) {
    case SN_HEADER:
        if (k->name == NULL) { /* HEADER field-name string */
            size_t nlen;
            if (take_string(p, args, nargs, i, &k->name, &nlen) < 0)
                return -1;
            if (nlen == 0 || strlen(k->name) != nlen || strchr(k->name, ':') != NULL) {
                search_fail(p, IMAP_SEARCH_BAD, "Invalid header field name");
                return -1;
            }
        }
        k->cost = COST_HEADERS;
        return take_string(p, args, nargs, i, &k->str, &k->len);
    case SN_BODY:
    case SN_TEXT:
        if (++p->ntext > IMAP_SEARCH_TEXT_KEYS_MAX) {
            search_fail(p, IMAP_SEARCH_BAD, "Too many BODY and TEXT keys");
            return -1;
        }
        k->cost = COST_BODY;
        return take_string(p, args, nargs, i, &k->str, &k->len);
    case SN_KEYWORD:
        if (*i >= nargs || args[*i].type != IMAP_ARG_ATOM || args[*i].len == 0) {
            search_fail(p, IMAP_SEARCH_BAD, "Keyword expected");
            return -1;
        }
        return take_string(p, args, nargs, i, &k->str, &k->len);
    case SN_BEFORE:
    case SN_ON:
    case SN_SINCE:
        if (*i >= nargs || (args[*i].type != IMAP_ARG_ATOM && args[*i].type != IMAP_ARG_QUOTED) ||
            imap_date_parse(args[*i].s, args[*i].len, &k->days) < 0) {
            search_fail(p, IMAP_SEARCH_BAD, "Invalid search date (1-Feb-2026)");
            return -1;
        }
        (*i)++;
        if (k->sent)
            k->cost = COST_HEADERS;
        return 0;
    case SN_LARGER:
    case SN_SMALLER:
        return take_number(p, args, nargs, i, &k->number);
    case SN_UID:
        if (*i >= nargs) {
            search_fail(p, IMAP_SEARCH_BAD, "UID set expected");
            return -1;
        }
        if ((k->set = imap_seqset_from_arg(&args[(*i)++], &p->err)) == NULL) {
            p->status = IMAP_SEARCH_BAD;
            return -1;
        }
        return 0;
    case SN_MODSEQ:
        /* MODSEQ [entry-name entry-type-req] mod-sequence-valzer: the entry only narrows
         * which flag's modseq; with one modseq per message it is read and ignored. */
        if (*i + 2 < nargs && args[*i].type == IMAP_ARG_QUOTED) {
            const struct imap_arg *t = &args[*i + 1];
            if (!search_atom_is(t, "priv") && !search_atom_is(t, "shared") && !search_atom_is(t, "all")) {
                search_fail(p, IMAP_SEARCH_BAD, "Invalid MODSEQ entry type");
                return -1;
            }
            *i += 2;
        }
        return take_number(p, args, nargs, i, &k->number);
    default:
        return 0;
    }
}

/* The key named by the atom a (args[*i - 1]) with its arguments from args[*i..). */
struct search_node *search_named_key(struct search_parser *p, const struct imap_arg *a, const struct imap_arg *args,
                                     size_t nargs, size_t *i)
{
    struct search_node *k = NULL;
    for (size_t j = 0; j < sizeof plain_keys / sizeof plain_keys[0]; j++)
        if (search_atom_is(a, plain_keys[j].name)) {
            if ((k = search_new_node(p, plain_keys[j].kind)) != NULL) {
                k->flag = plain_keys[j].flag;
                k->want = plain_keys[j].want;
            }
            return k;
        }
    for (size_t j = 0; j < sizeof string_keys / sizeof string_keys[0] && k == NULL; j++)
        if (search_atom_is(a, string_keys[j].name)) {
            if ((k = search_new_node(p, string_keys[j].kind)) == NULL)
                return NULL;
            if (string_keys[j].field != NULL && (k->name = strdup(string_keys[j].field)) == NULL) {
                search_fail(p, IMAP_SEARCH_NOMEM, "Out of memory");
                search_node_free(k);
                return NULL;
            }
        }
    for (size_t j = 0; j < sizeof date_keys / sizeof date_keys[0] && k == NULL; j++)
        if (search_atom_is(a, date_keys[j].name) && (k = search_new_node(p, date_keys[j].kind)) != NULL)
            k->sent = date_keys[j].sent;
    if (k == NULL && p->status == IMAP_SEARCH_OK) {
        if (search_atom_is(a, "HEADER"))
            k = search_new_node(p, SN_HEADER);
        else if (search_atom_is(a, "KEYWORD") || search_atom_is(a, "UNKEYWORD")) {
            if ((k = search_new_node(p, SN_KEYWORD)) != NULL)
                k->want = search_atom_is(a, "KEYWORD");
        } else if (search_atom_is(a, "LARGER"))
            k = search_new_node(p, SN_LARGER);
        else if (search_atom_is(a, "SMALLER"))
            k = search_new_node(p, SN_SMALLER);
        else if (search_atom_is(a, "UID"))
            k = search_new_node(p, SN_UID);
        else if (search_atom_is(a, "MODSEQ") && (p->opts & IMAP_SEARCH_OPT_CONDSTORE))
            k = search_new_node(p, SN_MODSEQ);
        else if (search_atom_is(a, "CHARSET"))
            search_fail(p, IMAP_SEARCH_BAD, "CHARSET must come first");
        else
            search_fail(p, IMAP_SEARCH_BAD, "Unknown search key");
    }
    if (k == NULL)
        return NULL;
    if (parse_key_args(p, k, args, nargs, i) < 0) {
        search_node_free(k);
        return NULL;
    }
    return k;
}

