/* The aliases file, /etc/aliases style with full addresses:
 *
 *   team@example.test: alice@example.test, bob@remote.test
 *   postmaster: alice@example.test        # a bare key applies in every local domain
 *   staff@example.test: carol,            # a bare target takes the expanded address's domain
 *       dave@example.test                 # lines starting with white space continue
 *
 * Held as a sorted array of lower-cased keys. Expansion is a depth-first walk that keeps the
 * current chain (to report loops), a hash set of the aliases already expanded (so a diamond
 * of aliases, or an alias named by many recipients of one message, is walked once) and a
 * hash set of the final addresses given (de-duplication in O(1) each: a scan of the list
 * made one 1,000-member alias named in 1,000 RCPTs cost seconds of the queue's only thread). */
#include "aliases.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "addrset.h"
#include "bus_valid.h"
#include "filestamp.h"
#include "heldfile.h"
#include "pinned.h"

#define MAX_LINE 8192      /* one physical line */
#define MAX_ENTRY 65536    /* one alias with its continuation lines */
#define MAX_ADDRESS PM_BUS_MAX_ADDRESS /* a final address travels in a Job (bus_valid.h) */
#define MAX_RESULTS 1000   /* final addresses per expansion */
#define MAX_DEPTH 32       /* aliases of aliases */
#define MAX_STEPS 10000    /* lookups per expansion, a bound on work whatever the file holds */
#define MAX_MESSAGE_STEPS 100000 /* lookups for all the recipients of one message */

struct alias {
    char *key; /* lower-cased "local@domain", or a bare "local" */
    char **targets;
    int n;
    int line;
};

struct pm_aliases {
    char *path;
    struct pm_filestamp stamp;
    struct alias *v;
    size_t n, cap;
};

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return 1;
    return 0;
}

/* Why a key or target is unusable, or NULL. */
static const char *check_address(const char *s, const char *what)
{
    static _Thread_local char reason[512];
    const char *at = strrchr(s, '@');
    if (strlen(s) > MAX_ADDRESS)
        snprintf(reason, sizeof reason, "%s too long", what);
    else if (has_ctl(s) || strchr(s, ' '))
        snprintf(reason, sizeof reason, "%s contains white space or control characters", what);
    else if (!*s || (at && (at == s || at[1] == '\0')))
        snprintf(reason, sizeof reason, "%s '%s' must be local-part@domain or a bare local part", what, s);
    else
        return NULL;
    return reason;
}

static void free_alias(struct alias *al)
{
    for (int i = 0; i < al->n; i++)
        free(al->targets[i]);
    free(al->targets);
    free(al->key);
}

void pm_aliases_free(struct pm_aliases *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free_alias(&a->v[i]);
    free(a->v);
    free(a->path);
    free(a);
}

/* Parses one logical entry "key: t1, t2 ..." into a new alias. Returns NULL or a reason. */
static const char *parse_entry(struct pm_aliases *a, char *text, int line)
{
    char *colon = strchr(text, ':');
    if (!colon)
        return "expected 'alias: address, address'";
    *colon = '\0';
    char *key = text;
    while (*key == ' ' || *key == '\t')
        key++;
    size_t kl = strlen(key);
    while (kl && (key[kl - 1] == ' ' || key[kl - 1] == '\t'))
        key[--kl] = '\0';
    if (!*key)
        return "empty alias name";
    const char *why = check_address(key, "alias name");
    if (why)
        return why;
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 32;
        struct alias *nv = realloc(a->v, ncap * sizeof *nv);
        if (!nv)
            return "out of memory";
        a->v = nv;
        a->cap = ncap;
    }
    struct alias al = {strdup(key), NULL, 0, line};
    if (!al.key)
        return "out of memory";
    lower(al.key);
    char *save = NULL;
    for (char *t = strtok_r(colon + 1, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
        size_t tl = strlen(t);
        if (t[0] == '<' && tl >= 2 && t[tl - 1] == '>')
            t[tl - 1] = '\0', t++;
        if (t[0] == '|' || t[0] == '/' || t[0] == '"' || strncasecmp(t, ":include:", 9) == 0)
            why = "only addresses are supported as targets (no commands, files or :include:)";
        else
            why = check_address(t, "target");
        char **nt = why ? NULL : realloc(al.targets, ((size_t)al.n + 1) * sizeof *nt);
        if (!why && !nt)
            why = "out of memory";
        if (why) {
            free_alias(&al);
            return why;
        }
        al.targets = nt;
        if (!(al.targets[al.n] = strdup(t))) {
            free_alias(&al);
            return "out of memory";
        }
        al.n++;
    }
    if (al.n == 0) {
        free_alias(&al);
        return "alias has no targets";
    }
    a->v[a->n++] = al;
    return NULL;
}

/* Cuts a comment: '#' at the start or after white space (a '#' inside an address stays). */
static void strip_comment(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            return;
        }
}

static int cmp_alias(const void *x, const void *y)
{
    return strcmp(((const struct alias *)x)->key, ((const struct alias *)y)->key);
}

/* Reads the whole file into a. Returns 0, or -1 with "path:line: reason" in err. */
static int read_aliases(struct pm_aliases *a, FILE *f, char *err, size_t errsize)
{
    char *line = NULL, *entry = NULL;
    size_t linecap = 0, elen = 0;
    ssize_t len;
    int lineno = 0, entry_line = 0;
    const char *why = NULL;
    int why_line = 0;
    if (!(entry = malloc(MAX_ENTRY + 1))) {
        snprintf(err, errsize, "%s:0: out of memory", a->path);
        return -1;
    }
    while (!why && (len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        why_line = lineno;
        if (len > MAX_LINE) {
            why = "line too long";
            break;
        }
        if ((size_t)len != strlen(line)) {
            why = "NUL byte in line";
            break;
        }
        strip_comment(line);
        size_t l = strlen(line);
        while (l && isspace((unsigned char)line[l - 1]))
            line[--l] = '\0';
        if (l == 0)
            continue;
        int continues = line[0] == ' ' || line[0] == '\t';
        if (continues && !entry_line) {
            why = "continuation line without an alias before it";
            break;
        }
        if (!continues && entry_line) {
            entry[elen] = '\0';
            why_line = entry_line;
            if ((why = parse_entry(a, entry, entry_line)))
                break;
            elen = 0;
        }
        if (elen + l + 1 > MAX_ENTRY) {
            why = "alias too long";
            why_line = entry_line ? entry_line : lineno;
            break;
        }
        if (!continues)
            entry_line = lineno;
        else
            entry[elen++] = ' ';
        memcpy(entry + elen, line, l);
        elen += l;
    }
    if (!why && ferror(f))
        why = strerror(errno);
    if (!why && entry_line) {
        entry[elen] = '\0';
        why_line = entry_line;
        why = parse_entry(a, entry, entry_line);
    }
    free(line);
    free(entry);
    if (why) {
        snprintf(err, errsize, "%s:%d: %s", a->path, why_line, why);
        return -1;
    }
    if (a->n)
        qsort(a->v, a->n, sizeof *a->v, cmp_alias);
    for (size_t i = 1; i < a->n; i++)
        if (strcmp(a->v[i - 1].key, a->v[i].key) == 0) {
            const struct alias *x = &a->v[i - 1], *y = &a->v[i];
            snprintf(err, errsize, "%s:%d: duplicate alias %s (also on line %d)", a->path,
                     x->line > y->line ? x->line : y->line, x->key, x->line > y->line ? y->line : x->line);
            return -1;
        }
    return 0;
}

/* Through the descriptor the privileged parent handed over (heldfile.h: smtpd's lookup
 * helper, which dropped root), through the reader outside the chroot (pinned.h: the queue),
 * or by name. */
static FILE *open_file(const char *path)
{
    int fd;
    if (!pm_heldfile_open(path, &fd))
        return pm_pinned_fopen(path);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f && fd >= 0)
        close(fd);
    return f;
}

struct pm_aliases *pm_aliases_load(const char *path, char *err, size_t errsize)
{
    struct pm_aliases *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path ? path : ""))) {
        free(a);
        snprintf(err, errsize, "%s:0: out of memory", path ? path : "");
        return NULL;
    }
    FILE *f = *a->path ? open_file(a->path) : NULL;
    if (!f) {
        if (!*a->path || errno == ENOENT)
            return a; /* the aliases file is optional */
        snprintf(err, errsize, "%s:0: cannot read: %s", a->path, strerror(errno));
        pm_aliases_free(a);
        return NULL;
    }
    pm_filestamp_fd(fileno(f), &a->stamp);
    int rc = read_aliases(a, f, err, errsize);
    fclose(f);
    if (rc < 0) {
        pm_aliases_free(a);
        return NULL;
    }
    return a;
}

int pm_aliases_reload_if_changed(struct pm_aliases **a, char *err, size_t errsize)
{
    if (!a || !*a) {
        snprintf(err, errsize, "aliases not loaded");
        return -1;
    }
    if (!*(*a)->path)
        return 0;
    struct pm_filestamp now;
    if (!pm_heldfile_stamp((*a)->path, &now) && pm_filestamp_get((*a)->path, &now) < 0) {
        snprintf(err, errsize, "%s:0: cannot stat: %s", (*a)->path, strerror(errno));
        return -1;
    }
    if (pm_filestamp_equal(&now, &(*a)->stamp))
        return 0;
    struct pm_aliases *fresh = pm_aliases_load((*a)->path, err, errsize);
    if (!fresh) {
        (*a)->stamp = now; /* keep the old table; report this version's error once */
        return -1;
    }
    pm_aliases_free(*a);
    *a = fresh;
    return 1;
}

static const struct alias *find_key(const struct pm_aliases *a, const char *key)
{
    struct alias probe = {(char *)key, NULL, 0, 0};
    return a && a->n ? bsearch(&probe, a->v, a->n, sizeof *a->v, cmp_alias) : NULL;
}

/* The alias for address: an exact entry, else a bare local-part entry if the domain is local. */
static const struct alias *lookup(const struct pm_aliases *a, const struct pm_config *cfg, const char *address)
{
    char key[MAX_ADDRESS + 1];
    if (!address || strlen(address) > MAX_ADDRESS)
        return NULL;
    snprintf(key, sizeof key, "%s", address);
    lower(key);
    const struct alias *al = find_key(a, key);
    const char *domain = pm_addr_domain(key);
    if (!al && *domain && cfg && pm_config_is_local_domain(cfg, domain)) {
        key[domain - 1 - key] = '\0'; /* the bare local part */
        al = find_key(a, key);
    }
    return al;
}

int pm_aliases_is_alias(const struct pm_aliases *a, const struct pm_config *cfg, const char *address)
{
    return lookup(a, cfg, address) != NULL;
}

struct pm_alias_expansion {
    const struct pm_aliases *a;
    const struct pm_config *cfg;
    struct pm_addrset *seen; /* final addresses given so far, for every address of the message */
    struct pm_addrset *done; /* lower-cased aliases fully expanded: each is walked once */
    size_t max_total;        /* final addresses in all */
    size_t total;
    size_t steps;            /* lookups, for the whole message */
    /* The address being added: */
    struct pm_strlist *out;
    int first_new;           /* out->v[first_new..] were added by it */
    char *chain[MAX_DEPTH];  /* lower-cased addresses being expanded, outermost first */
    int depth;
    char **marked;           /* aliases it added to done (taken back if it fails) */
    size_t nmarked, capmarked;
    size_t call_steps;
    int too_many;            /* it failed on max_total */
    char *err;
    size_t errsize;
};

static int oom(struct pm_alias_expansion *x)
{
    snprintf(x->err, x->errsize, "out of memory");
    return -1;
}

static int add_result(struct pm_alias_expansion *x, const char *address)
{
    if (pm_addrset_has(x->seen, address))
        return 0;
    if (x->out->n - x->first_new >= MAX_RESULTS) {
        snprintf(x->err, x->errsize, "alias expansion gives more than %d addresses", MAX_RESULTS);
        return -1;
    }
    if (x->total >= x->max_total) {
        snprintf(x->err, x->errsize, "too many recipients after alias expansion (more than %zu for this message)",
                 x->max_total);
        x->too_many = 1;
        return -1;
    }
    char **nv = realloc(x->out->v, ((size_t)x->out->n + 2) * sizeof *nv);
    if (nv)
        x->out->v = nv;
    char *copy = nv ? strdup(address) : NULL;
    if (!copy || pm_addrset_add(x->seen, address) < 0) {
        free(copy);
        return oom(x);
    }
    nv[x->out->n++] = copy;
    nv[x->out->n] = NULL;
    x->total++;
    return 0;
}

static int mark_done(struct pm_alias_expansion *x, const char *low)
{
    if (x->nmarked == x->capmarked) {
        size_t ncap = x->capmarked ? x->capmarked * 2 : 16;
        char **nv = realloc(x->marked, ncap * sizeof *nv);
        if (!nv)
            return oom(x);
        x->marked = nv;
        x->capmarked = ncap;
    }
    char *copy = strdup(low);
    if (!copy || pm_addrset_add(x->done, low) < 0) {
        free(copy);
        return oom(x);
    }
    x->marked[x->nmarked++] = copy;
    return 0;
}

static int loop_error(struct pm_alias_expansion *x, int from, const char *again)
{
    int n = snprintf(x->err, x->errsize, "alias loop:");
    for (int i = from; i < x->depth && n >= 0 && (size_t)n < x->errsize; i++)
        n += snprintf(x->err + n, x->errsize - (size_t)n, " %s ->", x->chain[i]);
    if (n >= 0 && (size_t)n < x->errsize)
        snprintf(x->err + n, x->errsize - (size_t)n, " %s", again);
    return -1;
}

/* parent: the lower-cased alias whose target this is (NULL at the top). */
static int expand(struct pm_alias_expansion *x, const char *address, const char *parent)
{
    if (++x->call_steps > MAX_STEPS) {
        snprintf(x->err, x->errsize, "alias expansion too large (more than %d lookups)", MAX_STEPS);
        return -1;
    }
    if (++x->steps > MAX_MESSAGE_STEPS) { /* work done, not undone by a rollback */
        snprintf(x->err, x->errsize, "too many recipients after alias expansion (more than %d lookups for this message)",
                 MAX_MESSAGE_STEPS);
        x->too_many = 1;
        return -1;
    }
    char low[MAX_ADDRESS + 1];
    snprintf(low, sizeof low, "%s", address);
    lower(low);
    /* "alice@x: alice@x, archive@x" keeps a copy in alice's own mailbox, as in /etc/aliases. */
    const struct alias *al = parent && strcmp(parent, low) == 0 ? NULL : lookup(x->a, x->cfg, address);
    if (!al)
        return add_result(x, address);
    if (pm_addrset_has(x->done, low))
        return 0; /* its addresses are in already (a diamond, or an earlier RCPT) */
    for (int i = 0; i < x->depth; i++)
        if (strcmp(x->chain[i], low) == 0)
            return loop_error(x, i, low);
    if (x->depth == MAX_DEPTH) {
        snprintf(x->err, x->errsize, "aliases nested more than %d deep at %s", MAX_DEPTH, low);
        return -1;
    }
    char *self = strdup(low);
    if (!self)
        return oom(x);
    x->chain[x->depth++] = self;
    const char *domain = pm_addr_domain(self);
    int rc = 0;
    for (int i = 0; i < al->n && rc == 0; i++) {
        const char *t = al->targets[i];
        char full[2 * MAX_ADDRESS + 2];
        if (!strchr(t, '@') && *domain) { /* a bare target is in the alias's own domain */
            snprintf(full, sizeof full, "%s@%s", t, domain);
            t = full;
        }
        if (strlen(t) > MAX_ADDRESS) {
            snprintf(x->err, x->errsize, "alias target too long: %s", t);
            rc = -1;
        } else {
            rc = expand(x, t, self);
        }
    }
    x->depth--;
    if (rc == 0)
        rc = mark_done(x, self);
    free(self);
    return rc;
}

struct pm_alias_expansion *pm_alias_expansion_new(const struct pm_aliases *a, const struct pm_config *cfg,
                                                  size_t max_total)
{
    struct pm_alias_expansion *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->a = a;
    x->cfg = cfg;
    x->max_total = max_total;
    x->seen = pm_addrset_new();
    x->done = pm_addrset_new();
    if (!x->seen || !x->done) {
        pm_alias_expansion_free(x);
        return NULL;
    }
    return x;
}

void pm_alias_expansion_free(struct pm_alias_expansion *x)
{
    if (!x)
        return;
    pm_addrset_free(x->seen);
    pm_addrset_free(x->done);
    free(x->marked);
    free(x);
}

size_t pm_alias_expansion_count(const struct pm_alias_expansion *x) { return x->total; }

int pm_alias_expansion_add(struct pm_alias_expansion *x, const char *address, struct pm_strlist *out, char *err,
                           size_t errsize)
{
    x->out = out;
    x->first_new = out->n;
    x->depth = 0;
    x->nmarked = 0;
    x->call_steps = 0;
    x->too_many = 0;
    x->err = err;
    x->errsize = errsize;
    int rc;
    if (!address || strlen(address) > MAX_ADDRESS) {
        snprintf(err, errsize, "address too long");
        rc = -1;
    } else {
        rc = expand(x, address, NULL);
    }
    if (rc < 0) {
        /* A failed address adds nothing and leaves nothing behind: what it added is taken
         * back from out and from both sets, so a later address still gets its own. */
        while (out->n > x->first_new) {
            char *v = out->v[--out->n];
            pm_addrset_remove(x->seen, v);
            x->total--;
            free(v);
        }
        if (out->v)
            out->v[out->n] = NULL;
        for (size_t i = 0; i < x->nmarked; i++)
            pm_addrset_remove(x->done, x->marked[i]);
        rc = x->too_many ? PM_ALIAS_TOO_MANY : PM_ALIAS_ERROR;
    }
    for (size_t i = 0; i < x->nmarked; i++)
        free(x->marked[i]);
    x->nmarked = 0;
    x->out = NULL;
    return rc;
}

int pm_aliases_expand(const struct pm_aliases *a, const struct pm_config *cfg, const char *address,
                      struct pm_strlist *out, char *err, size_t errsize)
{
    struct pm_alias_expansion *x = pm_alias_expansion_new(a, cfg, (size_t)MAX_RESULTS);
    int rc = x ? 0 : -1;
    /* What out holds already is not repeated, and does not count against the limit. */
    for (int i = 0; rc == 0 && i < out->n; i++)
        if (pm_addrset_add(x->seen, out->v[i]) < 0)
            rc = -1;
    if (rc < 0)
        snprintf(err, errsize, "out of memory");
    else
        rc = pm_alias_expansion_add(x, address, out, err, errsize) < 0 ? -1 : 0;
    pm_alias_expansion_free(x);
    return rc;
}
