/* The configuration loader: one libconfig file for every service, read against the schema
 * (config_schema.c: every known key, its type, default and rule). Each value is checked by
 * its own row as it is read; what is about several keys together is the short cross-key
 * list below. Unknown keys and bad values are refused with "file:line: reason", the reason
 * naming the key. */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_dkim.h"
#include "config_dnsbl.h"
#include "config_tls_policy.h"
#include "config_schema.h"
#include "config_wide.h"

#define schema pm_config_schema
#define NKEYS pm_config_nkeys

struct ctx {
    const char *path;
    char *err;
    size_t errsize;
    struct pm_config_source src;
};

static int fail(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
    const char *file = s ? config_setting_source_file(s) : NULL;
    int line = s ? (int)config_setting_source_line(s) : 0;
    int n = snprintf(c->err, c->errsize, "%s:%d: ", file ? file : c->path, line);
    if (n < 0 || (size_t)n >= c->errsize)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errsize - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static const struct pm_config_key *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(schema[i].path, path) == 0)
            return &schema[i];
    return NULL;
}

static int is_group_prefix(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(schema[i].path, path, n) == 0 && schema[i].path[n] == '.')
            return 1;
    return 0;
}

static void *field(struct pm_config *cfg, const struct pm_config_key *k) { return (char *)cfg + k->off; }
static void free_strlist(struct pm_strlist *l);

/* A value as an error shows it: printable, at most 80 characters (the error may end up in
 * a log line). */
static const char *shown(const char *v, char *buf, size_t size)
{
    size_t i = 0;
    for (; v[i] && i + 4 < size && i < 80; i++)
        buf[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    snprintf(buf + i, size - i, "%s", v[i] ? "..." : "");
    return buf;
}

/* The row's rule for one string: "" where the row allows it, one of its choices, and its
 * value rule. name: what the error calls it ("domains", "smtpd.listen: mode"). */
static int check_string(struct ctx *c, const config_setting_t *s, const struct pm_config_key *k, const char *name,
                        const char *v, const char *const *choices, pm_config_rule *rule)
{
    char why[160], buf[96];
    if (!v[0] && (k->flags & PM_CFG_EMPTY_OK))
        return 0;
    if (choices) {
        char list[160] = "";
        for (const char *const *m = choices; *m; m++) {
            if (strcmp(*m, v) == 0)
                return 0;
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", m == choices ? "" : ", ", *m);
        }
        return fail(c, s, "%s '%s' is not one of %s", name, shown(v, buf, sizeof buf), list);
    }
    if (rule && rule(v, why, sizeof why) < 0)
        return fail(c, s, "%s: '%s' %s", name, shown(v, buf, sizeof buf), why);
    return 0;
}

static int set_strlist(struct ctx *c, struct pm_strlist *l, const config_setting_t *s, const struct pm_config_key *k)
{
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return fail(c, s, "%s must be a list of strings, e.g. [ \"a\", \"b\" ]", k->path);
    int n = config_setting_length(s);
    free_strlist(l);
    l->v = calloc((size_t)n + 1, sizeof *l->v);
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(c, e, "%s: element %d must be a string", k->path, i + 1);
        const char *v = config_setting_get_string(e);
        l->v[l->n++] = strdup(v);
        if (check_string(c, e, k, k->path, v, NULL, k->rule) < 0)
            return -1;
    }
    return 0;
}

/* ( { address = "host:port"; mode = "<one of the row's choices>"; proxy_protocol = bool; } ) */
static int set_listen(struct ctx *c, struct pm_listenlist *l, const config_setting_t *s, const struct pm_config_key *k)
{
    const char *path = k->path;
    char name[96];
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return fail(c, s, "%s must be a list of groups: ( { address = \"host:port\"; mode = \"...\"; } )", path);
    int n = config_setting_length(s);
    l->v = calloc((size_t)n + 1, sizeof *l->v);
    l->n = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(e))
            return fail(c, e, "%s: element %d must be a group { address = ...; mode = ...; }", path, i + 1);
        struct pm_listen *li = &l->v[l->n++];
        int len = config_setting_length(e);
        for (int j = 0; j < len; j++) {
            const config_setting_t *kv = config_setting_get_elem(e, (unsigned)j);
            const char *sub = config_setting_name(kv);
            if (strcmp(sub, "proxy_protocol") == 0) {
                if (config_setting_type(kv) != CONFIG_TYPE_BOOL)
                    return fail(c, kv, "%s.proxy_protocol must be true or false", path);
                li->proxy_protocol = config_setting_get_bool(kv);
                continue;
            }
            if (strcmp(sub, "address") && strcmp(sub, "mode"))
                return fail(c, kv, "unknown key '%s' in %s (known: address, mode, proxy_protocol)", sub, path);
            if (config_setting_type(kv) != CONFIG_TYPE_STRING)
                return fail(c, kv, "%s.%s must be a string", path, sub);
            int is_address = strcmp(sub, "address") == 0;
            char **dst = is_address ? &li->address : &li->mode;
            free(*dst);
            *dst = strdup(config_setting_get_string(kv));
            snprintf(name, sizeof name, "%s %s", path, sub);
            if (!**dst)
                return fail(c, kv, "%s must not be empty", name);
            if (check_string(c, kv, k, name, *dst, is_address ? NULL : k->choices, is_address ? k->rule : NULL) < 0)
                return -1;
        }
        if (!li->address)
            return fail(c, e, "%s: element %d needs address = \"host:port\"", path, i + 1);
        if (!li->mode)
            return fail(c, e, "%s: element %d needs a mode", path, i + 1);
    }
    return 0;
}

/* [ "inet:127.0.0.1:11332", { address = "inet:..."; timeout = 10; default_action = "accept"; } ] */
static int set_milters(struct ctx *c, struct pm_milterlist *l, const config_setting_t *s, const struct pm_config_key *k)
{
    const char *path = k->path;
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return fail(c, s, "%s must be a list: [ \"inet:127.0.0.1:11332\" ] or ( { address = \"inet:...\"; } )", path);
    int n = config_setting_length(s);
    l->v = calloc((size_t)n + 1, sizeof *l->v);
    l->n = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        struct pm_milter *m = &l->v[l->n++];
        if (config_setting_type(e) == CONFIG_TYPE_STRING) {
            m->address = strdup(config_setting_get_string(e));
            if (check_string(c, e, k, path, m->address, NULL, k->rule) < 0)
                return -1;
            continue;
        }
        if (!config_setting_is_group(e))
            return fail(c, e, "%s: element %d must be an address string or a group { address = ...; }", path, i + 1);
        for (int j = 0; j < config_setting_length(e); j++) {
            const config_setting_t *kv = config_setting_get_elem(e, (unsigned)j);
            const char *sub = config_setting_name(kv);
            int t = config_setting_type(kv);
            if (strcmp(sub, "timeout") == 0) {
                long long v = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64 ? config_setting_get_int64(kv) : -1;
                if (v < 1 || v > 3600)
                    return fail(c, kv, "%s.timeout must be an integer in [1, 3600] (seconds)", path);
                m->timeout = v;
            } else if (strcmp(sub, "address") == 0 || strcmp(sub, "default_action") == 0) {
                if (t != CONFIG_TYPE_STRING)
                    return fail(c, kv, "%s.%s must be a string", path, sub);
                const char *v = config_setting_get_string(kv);
                if (sub[0] == 'a') {
                    free(m->address);
                    m->address = strdup(v);
                    if (check_string(c, kv, k, path, v, NULL, k->rule) < 0)
                        return -1;
                } else {
                    free(m->default_action);
                    m->default_action = strdup(v);
                    if (strcmp(v, "tempfail") && strcmp(v, "accept"))
                        return fail(c, kv, "%s.default_action '%s' is not one of tempfail, accept", path, v);
                }
            } else {
                return fail(c, kv, "unknown key '%s' in %s (known: address, timeout, default_action)", sub, path);
            }
        }
        if (!m->address)
            return fail(c, e, "%s: element %d needs address = \"inet:IP:PORT\"", path, i + 1);
    }
    return 0;
}

static int set_value(struct ctx *c, struct pm_config *cfg, const struct pm_config_key *k, const config_setting_t *s)
{
    void *f = field(cfg, k);
    int t = config_setting_type(s);
    switch (k->type) {
    case PM_CFG_STR:
        if (t != CONFIG_TYPE_STRING)
            return fail(c, s, "%s must be a string (in double quotes)", k->path);
        free(*(char **)f);
        *(char **)f = strdup(config_setting_get_string(s));
        return check_string(c, s, k, k->path, *(char **)f, k->choices, k->rule);
    case PM_CFG_INT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(c, s, "%s must be an integer", k->path);
        long long v = config_setting_get_int64(s);
        if (t == CONFIG_TYPE_INT)
            pm_config_wide_int(&c->src, s, c->path, &v);
        if (v == LLONG_MAX || v == LLONG_MIN)
            return fail(c, s, "%s is too large", k->path);
        if (v < k->min || v > k->max)
            return fail(c, s, "%s = %lld is out of range [%lld, %lld]", k->path, v, k->min, k->max);
        *(long long *)f = v;
        return 0;
    }
    case PM_CFG_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return fail(c, s, "%s must be true or false", k->path);
        *(int *)f = config_setting_get_bool(s);
        return 0;
    case PM_CFG_STRLIST:
        return set_strlist(c, f, s, k);
    case PM_CFG_STRS:
        if (t == CONFIG_TYPE_STRING) {
            struct pm_strlist *l = f;
            free_strlist(l);
            l->v = calloc(2, sizeof *l->v);
            l->v[0] = strdup(config_setting_get_string(s));
            l->n = 1;
            return check_string(c, s, k, k->path, l->v[0], NULL, k->rule);
        }
        if (set_strlist(c, f, s, k) < 0)
            return -1;
        if (((struct pm_strlist *)f)->n == 0)
            return fail(c, s, "%s must name at least one endpoint", k->path);
        return 0;
    case PM_CFG_LISTEN:
        return set_listen(c, f, s, k);
    case PM_CFG_MILTERS:
        return set_milters(c, f, s, k);
    case PM_CFG_DKIM:
        return pm_config_dkim_parse(s, f, c->path, c->err, c->errsize);
    case PM_CFG_DNSBL:
        return pm_config_dnsbl_parse(s, f, c->path, c->err, c->errsize);
    case PM_CFG_TLS_POLICY:
        return pm_config_tls_policy_parse(s, f, c->path, c->err, c->errsize);
    }
    return -1;
}

static int walk(struct ctx *c, struct pm_config *cfg, const config_setting_t *group, const char *prefix)
{
    int n = config_setting_length(group);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", config_setting_name(s));
        const struct pm_config_key *k = find_key(path);
        if (k) {
            if (set_value(c, cfg, k, s) < 0)
                return -1;
        } else if (is_group_prefix(path)) {
            if (!config_setting_is_group(s))
                return fail(c, s, "%s must be a group { ... }", path);
            if (walk(c, cfg, s, path) < 0)
                return -1;
        } else {
            return fail(c, s, "unknown key '%s'", path);
        }
    }
    return 0;
}

static void set_defaults(struct pm_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct pm_config_key *k = &schema[i];
        void *f = field(cfg, k);
        if (k->type == PM_CFG_STR)
            *(char **)f = k->def_str ? strdup(k->def_str) : NULL;
        else if (k->type == PM_CFG_INT)
            *(long long *)f = k->def_int;
        else if (k->type == PM_CFG_BOOL)
            *(int *)f = (int)k->def_int;
        else if (k->type == PM_CFG_STRS) {
            struct pm_strlist *l = f;
            l->v = calloc(2, sizeof *l->v);
            l->v[0] = strdup(k->def_str);
            l->n = 1;
        }
    }
}

/* A bind address defaults to the one connect address when there is only one. */
static void default_to(char **dst, const char *src)
{
    if (!(*dst)[0] && src) {
        free(*dst);
        *dst = strdup(src);
    }
}

/* Values that come from other keys (or the machine) when the file leaves them out. */
static int derive(struct ctx *c, struct pm_config *cfg)
{
    if (!cfg->hostname) {
        char h[256] = "localhost", why[160], buf[96];
        gethostname(h, sizeof h - 1);
        if (pm_rule_hostname(h, why, sizeof why) < 0)
            return fail(c, NULL, "hostname is not set and this machine's name '%s' %s: set hostname",
                        shown(h, buf, sizeof buf), why);
        cfg->hostname = strdup(h);
    }
    cfg->queue.endpoint = cfg->queue.endpoints.v[0];
    cfg->queue.control = cfg->queue.controls.v[0];
    if (cfg->queue.endpoints.n == 1) {
        default_to(&cfg->queue.listen, cfg->queue.endpoint);
        default_to(&cfg->queue.control_listen, cfg->queue.control);
    }
    default_to(&cfg->resolver.listen, cfg->resolver.endpoint);
    return 0;
}

/* ------------------------------------------------------------------ cross-key rules */
/* Rules about several keys together: each holds or writes why not; the error points at the
 * line of the key named in its row (line 0 when the file leaves that key out). */
static int one_control_per_shard(const struct pm_config *cfg, char *why, size_t size)
{
    if (cfg->queue.controls.n == cfg->queue.endpoints.n)
        return 0;
    snprintf(why, size, "queue.control must name one control endpoint per queue.endpoint (%d shards, %d control)",
             cfg->queue.endpoints.n, cfg->queue.controls.n);
    return -1;
}

static int retry_min_within_max(const struct pm_config *cfg, char *why, size_t size)
{
    if (cfg->queue.retry_min <= cfg->queue.retry_max)
        return 0;
    snprintf(why, size, "queue.retry_min must not exceed queue.retry_max");
    return -1;
}

/* The mta reads its CA bundle before its chroot: one that is not there now never will be. */
static int mta_ca_file_readable(const struct pm_config *cfg, char *why, size_t size)
{
    if (!cfg->mta.ca_file || !cfg->mta.ca_file[0] || access(cfg->mta.ca_file, R_OK) == 0)
        return 0;
    snprintf(why, size, "mta.ca_file: '%.200s' cannot be read: %s", cfg->mta.ca_file, strerror(errno));
    return -1;
}

static const struct cross_rule {
    const char *key;
    int (*holds)(const struct pm_config *cfg, char *why, size_t size);
} cross_rules[] = {
    {"queue.control", one_control_per_shard},
    {"queue.retry_min", retry_min_within_max},
    {"mta.ca_file", mta_ca_file_readable},
};

static int check_cross(struct ctx *c, const struct pm_config *cfg, const config_t *lc)
{
    for (size_t i = 0; i < sizeof cross_rules / sizeof cross_rules[0]; i++) {
        char why[256];
        if (cross_rules[i].holds(cfg, why, sizeof why) < 0)
            return fail(c, config_setting_lookup(config_root_setting(lc), cross_rules[i].key), "%s", why);
    }
    return 0;
}

/* ------------------------------------------------------------------ load and free */
int pm_config_load(const char *path, struct pm_config *cfg, char *err, size_t errsize)
{
    struct ctx c = {path, err, errsize, {0}};
    memset(cfg, 0, sizeof *cfg);
    set_defaults(cfg);
    cfg->path = strdup(path);
    config_t lc;
    config_init(&lc);
    int rc = -1;
    if (!config_read_file(&lc, path)) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(err, errsize, "%s:0: cannot read configuration file", path);
        else
            snprintf(err, errsize, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        goto out;
    }
    if (walk(&c, cfg, config_root_setting(&lc), "") < 0 || derive(&c, cfg) < 0)
        goto out;
    rc = check_cross(&c, cfg, &lc);
out:
    pm_config_source_free(&c.src);
    config_destroy(&lc);
    if (rc < 0)
        pm_config_free(cfg);
    return rc;
}

static void free_strlist(struct pm_strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void free_listen(struct pm_listenlist *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].address);
        free(l->v[i].mode);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void free_milters(struct pm_milterlist *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].address);
        free(l->v[i].default_action);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void pm_config_free(struct pm_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        void *f = field(cfg, &schema[i]);
        if (schema[i].type == PM_CFG_STR) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (schema[i].type == PM_CFG_STRLIST || schema[i].type == PM_CFG_STRS) {
            free_strlist(f);
        } else if (schema[i].type == PM_CFG_LISTEN) {
            free_listen(f);
        } else if (schema[i].type == PM_CFG_MILTERS) {
            free_milters(f);
        } else if (schema[i].type == PM_CFG_DKIM) {
            pm_config_dkim_free(f);
        } else if (schema[i].type == PM_CFG_DNSBL) {
            pm_config_dnsbl_free(f);
        } else if (schema[i].type == PM_CFG_TLS_POLICY) {
            pm_config_tls_policy_free(f);
        }
    }
    free(cfg->path);
    cfg->path = NULL;
    cfg->queue.endpoint = cfg->queue.control = NULL; /* they were the lists' first elements */
}

const char *pm_config_default_path(void)
{
    const char *e = getenv("POSTMESH_CONFIG");
    return e && *e ? e : "/etc/postmesh/postmesh.conf";
}

char *pm_config_state_path(const struct pm_config *cfg, const char *rel, char *dst, size_t size)
{
    snprintf(dst, size, "%s/%s", cfg->state_dir, rel);
    return dst;
}

int pm_config_is_local_domain(const struct pm_config *cfg, const char *domain)
{
    for (int i = 0; i < cfg->domains.n; i++)
        if (strcasecmp(cfg->domains.v[i], domain) == 0)
            return 1;
    return 0;
}
