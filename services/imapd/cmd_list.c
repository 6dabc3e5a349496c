/* LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), with the RFC 5258 selection options
 * clients send (SUBSCRIBED, RECURSIVEMATCH, REMOTE, and RFC 6154's SPECIAL-USE), the return
 * options (SUBSCRIBED, CHILDREN, SPECIAL-USE, and RFC 5819's STATUS), and several patterns
 * in one command.
 *
 * The folder list and its attributes come from folder.c (existing folders, holes, names
 * only subscribed); matching is list_match.c's. The answer is built as one array of
 * candidates (a listed folder, or a level above a subscribed name that LSUB's '%' rule or
 * RECURSIVEMATCH's CHILDINFO brings in), sorted and merged so each name goes out once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "boxcmds.h"
#include "folder.h"
#include "istring.h"
#include "list_match.h"
#include "log.h"
#include "session_int.h"

#define LIST_PATTERNS_MAX 32

struct list_req {
    int lsub;
    int extended;                     /* selection or return options: RFC 5258 rules */
    int sel_subscribed, sel_special, recursive;
    int ret_subscribed, ret_status;
    struct imap_status_req status;
    const struct imap_arg *ref;
    char *pattern[LIST_PATTERNS_MAX]; /* canonical (list_match.h), heap */
    size_t npatterns;
};

/* A name to answer: a folder.c entry, or a prefix of one (a level above it). */
struct candidate {
    const char *name;
    size_t len;
    unsigned attrs;    /* IMAP_FA_* */
    int listed;        /* passes the selection itself */
    int childinfo;     /* a subscribed name the patterns miss is below it (RECURSIVEMATCH's
                          CHILDINFO, LSUB's '%' rule: \Noselect) */
    int level;         /* made from a prefix: its attributes are a guess */
};

static void req_free(struct list_req *r)
{
    for (size_t i = 0; i < r->npatterns; i++)
        free(r->pattern[i]);
}

/* An empty pattern (LIST ref "") is kept as "": it matches nothing; a lone one asks for
 * the root (list()). */
static int add_pattern(struct list_req *r, const struct imap_arg *pat)
{
    if (!imap_arg_is_string(pat) || r->npatterns == LIST_PATTERNS_MAX)
        return -1;
    char *p = malloc(IMAP_LIST_PATTERN_MAX);
    if (!p)
        return -1;
    if (pat->len == 0)
        p[0] = '\0';
    else if (imap_list_pattern(r->ref->s, r->ref->len, pat->s, pat->len, p, IMAP_LIST_PATTERN_MAX) < 0) {
        free(p);
        return -1;
    }
    r->pattern[r->npatterns++] = p;
    return 0;
}

static int parse_selection(struct list_req *r, const struct imap_arg *opts)
{
    int others = 0;
    for (size_t i = 0; i < opts->n; i++) {
        const struct imap_arg *o = &opts->list[i];
        if (imap_arg_is_atom(o, "SUBSCRIBED"))
            r->sel_subscribed = r->ret_subscribed = others = 1;
        else if (imap_arg_is_atom(o, "SPECIAL-USE"))
            r->sel_special = others = 1;
        else if (imap_arg_is_atom(o, "RECURSIVEMATCH"))
            r->recursive = 1;
        else if (!imap_arg_is_atom(o, "REMOTE")) /* no remote mailboxes: nothing to add */
            return -1;
    }
    /* RFC 5258 §3: RECURSIVEMATCH alone (or with REMOTE only) is a BAD. */
    return r->recursive && !others ? -1 : 0;
}

static int parse_return(struct list_req *r, const struct imap_arg *opts)
{
    if (opts->type != IMAP_ARG_LIST)
        return -1;
    for (size_t i = 0; i < opts->n; i++) {
        const struct imap_arg *o = &opts->list[i];
        if (imap_arg_is_atom(o, "SUBSCRIBED"))
            r->ret_subscribed = 1;
        else if (imap_arg_is_atom(o, "STATUS") && i + 1 < opts->n && !r->ret_status) {
            if (imap_status_parse(&opts->list[++i], &r->status) < 0)
                return -1;
            r->ret_status = 1;
        } else if (!imap_arg_is_atom(o, "CHILDREN") && !imap_arg_is_atom(o, "SPECIAL-USE")) {
            return -1; /* both are answered always */
        }
    }
    return 0;
}

/* LIST [(selection)] ref pattern|(patterns) [RETURN (options)]; LSUB ref pattern. */
static int parse_list(const struct imap_command *cmd, int lsub, struct list_req *r)
{
    memset(r, 0, sizeof *r);
    r->lsub = lsub;
    size_t i = 0;
    if (!lsub && cmd->nargs && cmd->args[0].type == IMAP_ARG_LIST) {
        r->extended = 1;
        if (parse_selection(r, &cmd->args[i++]) < 0)
            return -1;
    }
    if (cmd->nargs < i + 2 || !imap_arg_is_string(&cmd->args[i]))
        return -1;
    r->ref = &cmd->args[i++];
    const struct imap_arg *pats = &cmd->args[i++];
    if (pats->type == IMAP_ARG_LIST && !lsub) {
        r->extended = 1;
        if (pats->n == 0)
            return -1;
        for (size_t k = 0; k < pats->n; k++)
            if (add_pattern(r, &pats->list[k]) < 0)
                return -1;
    } else if (add_pattern(r, pats) < 0) {
        return -1;
    }
    if (i < cmd->nargs) {
        if (lsub || cmd->nargs != i + 2 || !imap_arg_is_atom(&cmd->args[i], "RETURN"))
            return -1;
        r->extended = 1;
        if (parse_return(r, &cmd->args[i + 1]) < 0)
            return -1;
    }
    return 0;
}

static int matches(const struct list_req *r, const char *name, size_t len)
{
    char buf[IMAP_FOLDER_NAME_MAX + 1];
    if (len > IMAP_FOLDER_NAME_MAX)
        return 0;
    memcpy(buf, name, len);
    buf[len] = '\0';
    for (size_t i = 0; i < r->npatterns; i++)
        if (r->pattern[i][0] && imap_list_match(r->pattern[i], buf))
            return 1;
    return 0;
}

/* Byte order, INBOX first (as folder.c lists and Dovecot answers). */
static int by_name(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    int xi = x->len == 5 && memcmp(x->name, "INBOX", 5) == 0, yi = y->len == 5 && memcmp(y->name, "INBOX", 5) == 0;
    if (xi || yi)
        return yi - xi;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Does folder entry f pass the selection (before pattern matching)? */
static int selected(const struct list_req *r, const struct imap_folder *f)
{
    if (r->lsub || r->sel_subscribed) {
        if (!(f->attrs & IMAP_FA_SUBSCRIBED))
            return 0;
    } else if ((f->attrs & IMAP_FA_NONEXISTENT) && !(f->attrs & IMAP_FA_HASCHILDREN)) {
        return 0; /* subscribed only: LIST shows existing folders and holes */
    }
    return !r->sel_special || (f->attrs & IMAP_FA_SPECIAL_USE);
}

/* The candidates: every folder entry that matches (listed or not: an unlisted one lends its
 * attributes to a level found below), and the levels above subscribed names. *n set. */
static struct candidate *collect(const struct list_req *r, const struct imap_folder_list *fl, size_t *n)
{
    int levels = r->lsub || (r->sel_subscribed && r->recursive);
    size_t cap = fl->n + 1;
    if (levels)
        cap += fl->n * IMAP_FOLDER_DEPTH_MAX;
    struct candidate *c = calloc(cap, sizeof *c);
    if (!c)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < fl->n; i++) {
        const struct imap_folder *f = &fl->v[i];
        size_t len = strlen(f->name);
        if (!matches(r, f->name, len))
            continue;
        c[k++] = (struct candidate){f->name, len, f->attrs, selected(r, f), 0, 0};
    }
    for (size_t i = 0; levels && i < fl->n; i++) {
        const struct imap_folder *f = &fl->v[i];
        /* A subscribed name a pattern matches is answered itself (LSUB "" "*" lists "a/b",
         * not "a" as well); only the levels above one the patterns miss come in. */
        if (!(f->attrs & IMAP_FA_SUBSCRIBED) || matches(r, f->name, strlen(f->name)))
            continue;
        for (const char *p = strchr(f->name, '/'); p && k < cap; p = strchr(p + 1, '/')) {
            size_t len = (size_t)(p - f->name);
            if (matches(r, f->name, len))
                c[k++] = (struct candidate){f->name, len, IMAP_FA_NONEXISTENT | IMAP_FA_NOSELECT, 0, 1, 1};
        }
    }
    qsort(c, k, sizeof *c, by_name);
    /* Merge equal names: a folder entry's attributes win over a level's guess. */
    size_t out = 0;
    for (size_t i = 0; i < k; i++) {
        if (out && by_name(&c[out - 1], &c[i]) == 0) {
            struct candidate *m = &c[out - 1];
            if (m->level && !c[i].level) {
                m->attrs = c[i].attrs;
                m->level = 0;
            }
            m->listed |= c[i].listed;
            m->childinfo |= c[i].childinfo;
            continue;
        }
        c[out++] = c[i];
    }
    *n = out;
    return c;
}

static void write_line(struct imap_session *s, const struct list_req *r, const struct candidate *c)
{
    struct evbuffer *out = imap_out(s);
    char attrs[IMAP_FA_TEXT_MAX];
    if (r->lsub) {
        /* LSUB: () for a subscribed name, \Noselect for a level above one (RFC 3501). */
        evbuffer_add_printf(out, "* LSUB (%s) \"/\" ", c->listed ? "" : "\\Noselect");
        imap_write_mailbox(s, c->name, c->len);
        evbuffer_add(out, "\r\n", 2);
        return;
    }
    unsigned want = ~0u;
    if (!r->ret_subscribed)
        want &= ~IMAP_FA_SUBSCRIBED;
    if (!r->extended)
        want &= ~IMAP_FA_NONEXISTENT; /* IMAP4rev1 clients know \Noselect */
    imap_folder_attrs_text(c->attrs, want, attrs, sizeof attrs);
    evbuffer_add_printf(out, "* LIST (%s) \"/\" ", attrs);
    imap_write_mailbox(s, c->name, c->len);
    /* RFC 5258 §3.5: the name itself was not selected, something below it was. */
    if (r->recursive && c->childinfo && r->sel_subscribed)
        evbuffer_add_printf(out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    evbuffer_add(out, "\r\n", 2);
    if (r->ret_status && !(c->attrs & (IMAP_FA_NOSELECT | IMAP_FA_NONEXISTENT)))
        imap_status_write(s, c->name, c->len, &r->status); /* a folder gone since: no line */
}

/* The answer, written a few folders at a time: RETURN (STATUS) reads every folder (and
 * gives UIDs to new mail in each), and one shared loop serves every session. */
#define LIST_STATUS_PER_TURN 16

struct list_job {
    const struct imap_command *cmd;
    struct list_req r;
    struct imap_folder_list fl;
    struct candidate *c; /* names point into fl */
    size_t n, next;
};

static void job_free(void *arg)
{
    struct list_job *j = arg;
    free(j->c);
    imap_folder_list_free(&j->fl);
    req_free(&j->r);
    free(j);
}

static void list_run(struct imap_session *s, void *arg)
{
    struct list_job *j = arg;
    size_t statuses = 0;
    while (j->next < j->n) {
        if (imap_out_full(s) || statuses >= LIST_STATUS_PER_TURN) {
            imap_yield(s, list_run, j, job_free);
            return;
        }
        const struct candidate *c = &j->c[j->next++];
        if (c->listed || (c->childinfo && (j->r.lsub || j->r.recursive))) {
            write_line(s, &j->r, c);
            statuses += j->r.ret_status;
        }
    }
    const struct imap_command *cmd = j->cmd;
    int lsub = j->r.lsub;
    job_free(j);
    imap_tagged(s, cmd, "OK", lsub ? "Lsub completed" : "List completed");
}

static void list(struct imap_session *s, const struct imap_command *cmd, int lsub)
{
    struct list_req r;
    if (parse_list(cmd, lsub, &r) < 0) {
        req_free(&r);
        imap_bad(s, cmd, lsub ? "LSUB needs a reference and a pattern" : "Invalid LIST arguments");
        return;
    }
    /* LIST ref "": the hierarchy separator and the root of ref (RFC 9051 §6.3.9). */
    if (!lsub && r.npatterns == 1 && !r.pattern[0][0]) {
        char root[IMAP_LIST_PATTERN_MAX];
        imap_list_root(r.ref->s, r.ref->len, root, sizeof root);
        struct evbuffer *out = imap_out(s);
        evbuffer_add_printf(out, "* LIST (\\Noselect) \"/\" ");
        imap_write_astring(out, root, strlen(root));
        evbuffer_add(out, "\r\n", 2);
        req_free(&r);
        imap_tagged(s, cmd, "OK", "List completed");
        return;
    }
    struct list_job *j = calloc(1, sizeof *j);
    if (j) {
        j->cmd = cmd;
        j->r = r;
    }
    if (!j || imap_folder_list(s->maildir, &j->fl) < 0 || !(j->c = collect(&j->r, &j->fl, &j->n))) {
        int err = errno;
        pm_log(PM_ERR, "event=list_failed session=%llu error=\"%s\"", s->id, strerror(err));
        if (j)
            job_free(j);
        else
            req_free(&r);
        imap_tagged(s, cmd, "NO", "[SERVERBUG] Mailboxes cannot be listed now");
        return;
    }
    list_run(s, j);
}

void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd) { list(s, cmd, 0); }
void imap_cmd_lsub(struct imap_session *s, const struct imap_command *cmd) { list(s, cmd, 1); }
