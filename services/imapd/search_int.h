/* The SEARCH program's nodes and parser state, shared by search.c (structure), search_keys.c
 * (named keys) and search_eval.c (matching, dates, substring tests). Nothing else includes
 * this: search.h is the interface. */
#ifndef IMAP_SEARCH_INT_H
#define IMAP_SEARCH_INT_H
#include <stddef.h>
#include <stdint.h>

#include "search.h"
#include "seqset.h"

enum search_node_kind {
    SN_AND,     /* kids[0..nkids): all match (a list, or the top level) */
    SN_OR,      /* kids[0], kids[1] */
    SN_NOT,     /* kids[0] */
    SN_ALL,
    SN_FLAG,    /* flag (IMAP_SEARCH_F_*) set == want */
    SN_RECENT,  /* recent == want */
    SN_NEW,     /* recent and not seen */
    SN_SEQ,     /* set holds the sequence number ('*' = count) */
    SN_UID,     /* set holds the UID ('*' = max_uid) */
    SN_LARGER,  /* size > number */
    SN_SMALLER, /* size < number */
    SN_BEFORE,  /* date < days; sent: the Date: field, else INTERNALDATE */
    SN_ON,      /* date == days */
    SN_SINCE,   /* date >= days */
    SN_MODSEQ,  /* modseq >= number */
    SN_KEYWORD, /* has_keyword(str) == want */
    SN_HEADER,  /* a field called name contains str */
    SN_BODY,    /* the body contains str */
    SN_TEXT,    /* header or body contains str */
};

/* Cost classes: what a node may have to read (the order they are tried in). */
enum search_cost { COST_LISTING = 0, COST_HEADERS = 1, COST_BODY = 2 };

struct search_node {
    enum search_node_kind kind;
    enum search_cost cost; /* the most expensive key under it */
    struct search_node **kids;
    size_t nkids;
    unsigned flag;
    int want;
    int sent;              /* SN_BEFORE / SN_ON / SN_SINCE on the Date: field */
    int32_t days;
    uint64_t number;
    struct imap_seqset *set;
    char *name;            /* SN_HEADER: the field name, NUL-terminated */
    char *str;             /* the string argument, len bytes (NUL-terminated after) */
    size_t len;
};

struct imap_search {
    struct search_node *root;
    unsigned needs;
    int esearch;
    unsigned returns;
    size_t ntext;
};

void search_node_free(struct search_node *n);

/* Parser state: the first failure wins (its status and text are the reply). */
struct search_parser {
    const char *err;
    enum imap_search_status status;
    unsigned opts;
    size_t nkeys;
    size_t ntext; /* BODY and TEXT keys (IMAP_SEARCH_TEXT_KEYS_MAX) */
};
void search_fail(struct search_parser *p, enum imap_search_status status, const char *err);
/* A zeroed node counted against IMAP_SEARCH_KEYS_MAX; NULL (and failed) past it or on ENOMEM. */
struct search_node *search_new_node(struct search_parser *p, enum search_node_kind kind);
int search_is_string(const struct imap_arg *a);
int search_atom_is(const struct imap_arg *a, const char *word);
/* search_keys.c: the key named by atom a, its arguments read from args[*i..nargs). */
struct search_node *search_named_key(struct search_parser *p, const struct imap_arg *a, const struct imap_arg *args,
                                     size_t nargs, size_t *i);

#endif
