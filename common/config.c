/* The configuration loader: one libconfig file for every service, read against the schema
 * table below (every known key, its type, range and default). Unknown keys and bad values
 * are refused with "file:line: reason". */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum key_type { T_STR, T_INT, T_BOOL, T_STRLIST, T_LISTEN, T_STRS };

/* The schema: every known key, its type, where it lives and its default. */
struct key {
    const char *path;
    enum key_type type;
    size_t off;
    const char *def_str;
    long long def_int;
    long long min, max; /* for T_INT */
};

#define O(f) offsetof(struct pm_config, f)
#define STR(p, f, d) {p, T_STR, O(f), d, 0, 0, 0}
#define INT(p, f, d, lo, hi) {p, T_INT, O(f), NULL, d, lo, hi}
#define BOOL(p, f, d) {p, T_BOOL, O(f), NULL, d, 0, 1}
#define LIST(p, f) {p, T_STRLIST, O(f), NULL, 0, 0, 0}
#define LISTEN(p, f) {p, T_LISTEN, O(f), NULL, 0, 0, 0}
#define STRS(p, f, d) {p, T_STRS, O(f), d, 0, 0, 0} /* a string or a list of strings */
#define DAY 86400LL

static const struct key schema[] = {
    STR("hostname", hostname, NULL),
    STR("state_dir", state_dir, "/var/lib/postmesh"),
    LIST("domains", domains),
    STR("users_file", users_file, "/etc/postmesh/users"),
    STR("aliases_file", aliases_file, ""),
    LIST("trusted_networks", trusted_networks),
    LIST("proxy_networks", proxy_networks),
    BOOL("debug", debug, 0),
    BOOL("privsep.allow_unprivileged", privsep.allow_unprivileged, 0),
    BOOL("bus.curve", bus.curve, 1),
    STR("bus.keys_dir", bus.keys_dir, ""),
    STR("bus.key_name", bus.key_name, ""),
    STR("tls.certificate", tls.certificate, ""),
    STR("tls.key", tls.key, ""),
    STRS("queue.endpoint", queue.endpoints, "tcp://127.0.0.1:7701"),
    STRS("queue.control", queue.controls, "tcp://127.0.0.1:7702"),
    STR("queue.listen", queue.listen, ""),
    STR("queue.control_listen", queue.control_listen, ""),
    STR("queue.metrics", queue.metrics, ""),
    INT("queue.map_size_mb", queue.map_size_mb, 4096, 1, 1LL << 24),
    INT("queue.retry_min", queue.retry_min, 300, 1, 365 * DAY),
    INT("queue.retry_max", queue.retry_max, 3600, 1, 365 * DAY),
    INT("queue.max_lifetime", queue.max_lifetime, 5 * DAY, 0, 365 * DAY),
    INT("queue.delay_warning", queue.delay_warning, 14400, 0, 365 * DAY),
    INT("queue.job_lease", queue.job_lease, 600, 1, DAY),
    INT("queue.max_batch", queue.max_batch, 256, 1, 100000),
    INT("queue.active_limit", queue.active_limit, 20000, 16, 10000000),
    STR("resolver.endpoint", resolver.endpoint, "tcp://127.0.0.1:7703"),
    STR("resolver.listen", resolver.listen, ""),
    STR("resolver.metrics", resolver.metrics, ""),
    LIST("resolver.nameservers", resolver.nameservers),
    INT("resolver.timeout", resolver.timeout, 5, 1, 120),
    INT("resolver.negative_ttl", resolver.negative_ttl, 60, 0, DAY),
    LISTEN("smtpd.listen", smtpd.listen),
    STR("smtpd.metrics", smtpd.metrics, ""),
    INT("smtpd.drain_timeout", smtpd.drain_timeout, 30, 0, 3600),
    INT("smtpd.sandboxes", smtpd.sandboxes, 0, 0, 64),
    LIST("smtpd.etrn_domains", smtpd.etrn_domains),
    INT("smtpd.lookup_cache_ttl", smtpd.lookup_cache_ttl, 5, 0, 3600),
    INT("smtpd.max_message_size", smtpd.max_message_size, 36700160, 1024, 1LL << 31),
    INT("smtpd.max_recipients", smtpd.max_recipients, 1000, 1, 100000),
    INT("smtpd.max_connections", smtpd.max_connections, 10000, 1, 1000000),
    INT("smtpd.max_connections_per_ip", smtpd.max_connections_per_ip, 100, 1, 1000000),
    INT("smtpd.body_memory_mb", smtpd.body_memory_mb, 0, 0, 1 << 20),
    INT("smtpd.timeout_command", smtpd.timeout_command, 300, 1, DAY),
    INT("smtpd.timeout_data", smtpd.timeout_data, 180, 1, DAY),
    INT("smtpd.submit_timeout", smtpd.submit_timeout, 60, 1, 3600),
    INT("smtpd.max_errors", smtpd.max_errors, 10, 1, 1000),
    INT("smtpd.auth_failures", smtpd.auth_failures, 10, 1, 100000),
    INT("smtpd.auth_lockout", smtpd.auth_lockout, 600, 0, DAY),
    INT("smtpd.greet_pause_ms", smtpd.greet_pause_ms, 0, 0, 60000),
    INT("smtpd.auth_fail_delay_ms", smtpd.auth_fail_delay_ms, 1000, 0, 60000),
    INT("smtpd.max_connection_rate", smtpd.max_connection_rate, 0, 0, 1000000),
    STR("mta.metrics", mta.metrics, ""),
    INT("mta.remote_port", mta.remote_port, 25, 1, 65535),
    INT("mta.max_concurrency", mta.max_concurrency, 100, 1, 100000),
    INT("mta.max_per_domain", mta.max_per_domain, 20, 1, 100000),
    INT("mta.connect_timeout", mta.connect_timeout, 30, 1, 3600),
    INT("mta.command_timeout", mta.command_timeout, 300, 1, 3600),
    BOOL("mta.tls_verify", mta.tls_verify, 0),
    STR("delivery.metrics", delivery.metrics, ""),
    INT("delivery.concurrency", delivery.concurrency, 8, 1, 1000),
    STR("bouncer.metrics", bouncer.metrics, ""),
    INT("bouncer.concurrency", bouncer.concurrency, 4, 1, 1000),
    INT("bouncer.submit_timeout", bouncer.submit_timeout, 30, 1, 3600),
    LISTEN("pop3d.listen", pop3d.listen),
    STR("pop3d.metrics", pop3d.metrics, ""),
    INT("pop3d.drain_timeout", pop3d.drain_timeout, 30, 0, 3600),
    INT("pop3d.max_connections", pop3d.max_connections, 10000, 1, 1000000),
    INT("pop3d.timeout", pop3d.timeout, 600, 1, DAY),
    INT("pop3d.max_connections_per_ip", pop3d.max_connections_per_ip, 20, 1, 1000000),
    INT("pop3d.session_timeout", pop3d.session_timeout, 0, 0, DAY),
    INT("pop3d.auth_delay", pop3d.auth_delay, 2, 0, 60),
    INT("pop3d.auth_failures", pop3d.auth_failures, 10, 1, 100000),
    INT("pop3d.auth_lockout", pop3d.auth_lockout, 600, 0, DAY),
    BOOL("pop3d.plaintext_auth_loopback", pop3d.plaintext_auth_loopback, 1),
};
#define NKEYS (sizeof schema / sizeof schema[0])

static const char *const listen_modes_smtpd[] = {"smtp", "submission", "smtps", NULL};
static const char *const listen_modes_pop3d[] = {"pop3", "pop3s", NULL};

/* The text of the file being read, kept for source_line(). */
struct source_copy {
    char *path;
    char **lines;
    unsigned n;
};

static void source_free(struct source_copy *src)
{
    for (unsigned i = 0; i < src->n; i++)
        free(src->lines[i]);
    free(src->lines);
    free(src->path);
    memset(src, 0, sizeof *src);
}

struct ctx {
    const char *path;
    char *err;
    size_t errsize;
    struct source_copy src;
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

static const struct key *find_key(const char *path)
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

static void *field(struct pm_config *cfg, const struct key *k) { return (char *)cfg + k->off; }
static void free_strlist(struct pm_strlist *l);

static int set_strlist(struct ctx *c, struct pm_strlist *l, const config_setting_t *s, const char *path)
{
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return fail(c, s, "%s must be a list of strings, e.g. [ \"a\", \"b\" ]", path);
    int n = config_setting_length(s);
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = calloc((size_t)n + 1, sizeof *l->v);
    l->n = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(c, e, "%s: element %d must be a string", path, i + 1);
        l->v[l->n++] = strdup(config_setting_get_string(e));
    }
    return 0;
}

static int set_listen(struct ctx *c, struct pm_listenlist *l, const config_setting_t *s, const char *path,
                      const char *const *modes)
{
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
            const char *name = config_setting_name(kv);
            if (strcmp(name, "proxy_protocol") == 0) {
                if (config_setting_type(kv) != CONFIG_TYPE_BOOL)
                    return fail(c, kv, "%s.proxy_protocol must be true or false", path);
                li->proxy_protocol = config_setting_get_bool(kv);
                continue;
            }
            if (strcmp(name, "address") && strcmp(name, "mode"))
                return fail(c, kv, "unknown key '%s' in %s (known: address, mode, proxy_protocol)", name, path);
            if (config_setting_type(kv) != CONFIG_TYPE_STRING)
                return fail(c, kv, "%s.%s must be a string", path, name);
            char **dst = strcmp(name, "address") == 0 ? &li->address : &li->mode;
            free(*dst);
            *dst = strdup(config_setting_get_string(kv));
        }
        if (!li->address || !strrchr(li->address, ':'))
            return fail(c, e, "%s: element %d needs address = \"host:port\"", path, i + 1);
        if (!li->mode)
            return fail(c, e, "%s: element %d needs a mode", path, i + 1);
        int ok = 0;
        for (const char *const *m = modes; *m; m++)
            ok |= strcmp(*m, li->mode) == 0;
        if (!ok)
            return fail(c, e, "%s: mode '%s' is not one of %s%s%s", path, li->mode, modes[0],
                        modes[1] ? ", " : "", modes[1] ? modes[1] : "");
    }
    return 0;
}

/* Line `no` (1-based) of file, from a copy read once per load (every 32-bit setting may
 * ask for its line); NULL if unreadable. */
static const char *source_line(struct ctx *c, const char *file, unsigned no)
{
    if (!c->src.path || strcmp(c->src.path, file) != 0) {
        source_free(&c->src);
        FILE *fp = fopen(file, "r");
        if (!fp)
            return NULL;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, fp) >= 0) {
            char **grown = realloc(c->src.lines, (c->src.n + 1) * sizeof *grown);
            if (!grown)
                break;
            c->src.lines = grown;
            c->src.lines[c->src.n++] = line;
            line = NULL;
            cap = 0;
        }
        free(line);
        fclose(fp);
        c->src.path = strdup(file);
    }
    return no >= 1 && no <= c->src.n ? c->src.lines[no - 1] : NULL;
}

/* The integer literal assigned to `name` on line (outside strings and comments) when it does
 * not fit 32 bits and has no L suffix: 1 and *out (LLONG_MIN/MAX past 64 bits), else 0. */
static int wide_literal(const char *line, const char *name, long long *out)
{
    size_t nlen = strlen(name);
    int in_str = 0;
    for (const char *p = line; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
            continue;
        }
        if (*p == '"') {
            in_str = 1;
            continue;
        }
        if (*p == '#' || (*p == '/' && (p[1] == '/' || p[1] == '*')))
            return 0;
        int word_start = p == line || !(isalnum((unsigned char)p[-1]) || strchr("_-*", p[-1]));
        if (!word_start || strncmp(p, name, nlen) != 0)
            continue;
        const char *q = p + nlen + strspn(p + nlen, " \t");
        if (*q != '=' && *q != ':')
            continue;
        q += 1 + strspn(q + 1, " \t");
        char *end;
        errno = 0;
        int hex = q[0] == '0' && (q[1] == 'x' || q[1] == 'X'); /* libconfig: decimal or 0x */
        long long v = strtoll(q, &end, hex ? 16 : 10);
        if (end == q || *end == 'L' || *end == 'l')
            continue;
        if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
            *out = errno == ERANGE ? (v < 0 ? LLONG_MIN : LLONG_MAX) : v;
            return 1;
        }
    }
    return 0;
}

/* libconfig 1.5 (Debian 12) stores a decimal literal without the L suffix with atoi(), so
 * 4294967297 silently becomes 1 (and an out-of-range value is reported with the wrong
 * number). For a 32-bit setting, read its literal back from the source line and use the
 * full value when it differs; the range check then sees what the file says. Returns 1 and
 * sets *out when a literal for the setting on its line overflows 32 bits. */
static int source_int64(struct ctx *c, const config_setting_t *s, long long *out)
{
    const char *file = config_setting_source_file(s);
    const char *name = config_setting_name(s);
    const char *line = name ? source_line(c, file ? file : c->path, config_setting_source_line(s)) : NULL;
    return line && wide_literal(line, name, out);
}

static int set_value(struct ctx *c, struct pm_config *cfg, const struct key *k, const config_setting_t *s)
{
    void *f = field(cfg, k);
    int t = config_setting_type(s);
    switch (k->type) {
    case T_STR:
        if (t != CONFIG_TYPE_STRING)
            return fail(c, s, "%s must be a string (in double quotes)", k->path);
        free(*(char **)f);
        *(char **)f = strdup(config_setting_get_string(s));
        return 0;
    case T_INT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(c, s, "%s must be an integer", k->path);
        long long v = config_setting_get_int64(s);
        if (t == CONFIG_TYPE_INT)
            source_int64(c, s, &v);
        if (v == LLONG_MAX || v == LLONG_MIN)
            return fail(c, s, "%s is too large", k->path);
        if (v < k->min || v > k->max)
            return fail(c, s, "%s = %lld is out of range [%lld, %lld]", k->path, v, k->min, k->max);
        *(long long *)f = v;
        return 0;
    }
    case T_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return fail(c, s, "%s must be true or false", k->path);
        *(int *)f = config_setting_get_bool(s);
        return 0;
    case T_STRLIST:
        return set_strlist(c, f, s, k->path);
    case T_STRS:
        if (t == CONFIG_TYPE_STRING) {
            struct pm_strlist *l = f;
            free_strlist(l);
            l->v = calloc(2, sizeof *l->v);
            l->v[0] = strdup(config_setting_get_string(s));
            l->n = 1;
            return 0;
        }
        if (set_strlist(c, f, s, k->path) < 0)
            return -1;
        if (((struct pm_strlist *)f)->n == 0)
            return fail(c, s, "%s must name at least one endpoint", k->path);
        return 0;
    case T_LISTEN:
        return set_listen(c, f, s, k->path,
                          strncmp(k->path, "smtpd.", 6) == 0 ? listen_modes_smtpd : listen_modes_pop3d);
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
        const struct key *k = find_key(path);
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
        const struct key *k = &schema[i];
        void *f = field(cfg, k);
        if (k->type == T_STR)
            *(char **)f = k->def_str ? strdup(k->def_str) : NULL;
        else if (k->type == T_INT)
            *(long long *)f = k->def_int;
        else if (k->type == T_BOOL)
            *(int *)f = (int)k->def_int;
        else if (k->type == T_STRS) {
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

static int validate(struct ctx *c, struct pm_config *cfg, const config_t *lc)
{
    config_setting_t *root = config_root_setting(lc);
    if (!cfg->hostname) {
        char h[256] = "localhost";
        gethostname(h, sizeof h - 1);
        cfg->hostname = strdup(h);
    }
    cfg->queue.endpoint = cfg->queue.endpoints.v[0];
    cfg->queue.control = cfg->queue.controls.v[0];
    if (cfg->queue.controls.n != cfg->queue.endpoints.n)
        return fail(c, config_setting_lookup(root, "queue.control"),
                    "queue.control must name one control endpoint per queue.endpoint (%d shards, %d control)",
                    cfg->queue.endpoints.n, cfg->queue.controls.n);
    if (cfg->queue.endpoints.n == 1) {
        default_to(&cfg->queue.listen, cfg->queue.endpoint);
        default_to(&cfg->queue.control_listen, cfg->queue.control);
    }
    default_to(&cfg->resolver.listen, cfg->resolver.endpoint);
    if (cfg->queue.retry_min > cfg->queue.retry_max)
        return fail(c, config_setting_lookup(root, "queue.retry_min"), "queue.retry_min must not exceed queue.retry_max");
    if (!cfg->state_dir[0])
        return fail(c, config_setting_lookup(root, "state_dir"), "state_dir must not be empty");
    for (int i = 0; i < cfg->domains.n; i++)
        if (!cfg->domains.v[i][0] || strchr(cfg->domains.v[i], '@'))
            return fail(c, config_setting_lookup(root, "domains"), "domains: '%s' is not a domain", cfg->domains.v[i]);
    return 0;
}

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
    if (walk(&c, cfg, config_root_setting(&lc), "") < 0)
        goto out;
    rc = validate(&c, cfg, &lc);
out:
    source_free(&c.src);
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

void pm_config_free(struct pm_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        void *f = field(cfg, &schema[i]);
        if (schema[i].type == T_STR) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (schema[i].type == T_STRLIST || schema[i].type == T_STRS) {
            free_strlist(f);
        } else if (schema[i].type == T_LISTEN) {
            free_listen(f);
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
