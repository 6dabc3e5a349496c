/* mta.tls_policy (config_tls_policy.h): each row's keys and their rules, and the lookup. */
#include "config_tls_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_error.h"
#include "config_rules.h"

#define KEY "mta.tls_policy"

static const char *const levels[] = {"none", "may", "encrypt", "verify", "secure", "dane", "dane-only", NULL};

int pm_tls_level_name_ok(const char *level)
{
    for (int i = 0; levels[i]; i++)
        if (strcmp(level, levels[i]) == 0)
            return 1;
    return 0;
}

/* A domain or ".domain": the rules of a mail domain after the optional dot. */
static int dotted_domain_ok(const char *v, char *why, size_t size)
{
    return pm_rule_domain(v[0] == '.' ? v + 1 : v, why, size);
}

static int get_string(const config_setting_t *kv, char **dst, const char *path, char *err, size_t size)
{
    const char *sub = config_setting_name(kv);
    if (config_setting_type(kv) != CONFIG_TYPE_STRING)
        return pm_config_error(kv, path, err, size, KEY ".%s must be a string", sub);
    free(*dst);
    *dst = strdup(config_setting_get_string(kv));
    if (!*dst)
        return pm_config_error(kv, path, err, size, KEY ": out of memory");
    return 0;
}

static int parse_match(const config_setting_t *kv, struct pm_strlist *m, const char *path, char *err, size_t size)
{
    if (!config_setting_is_array(kv) && !config_setting_is_list(kv))
        return pm_config_error(kv, path, err, size, KEY ".match must be a list of names: [ \"mx.example.com\" ]");
    int n = config_setting_length(kv);
    if (n > PM_TLS_POLICY_MAX_MATCH)
        return pm_config_error(kv, path, err, size, KEY ".match: at most %d names", PM_TLS_POLICY_MAX_MATCH);
    m->v = calloc((size_t)n + 1, sizeof *m->v);
    if (!m->v)
        return pm_config_error(kv, path, err, size, KEY ": out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(kv, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return pm_config_error(e, path, err, size, KEY ".match: element %d must be a string", i + 1);
        const char *v = config_setting_get_string(e);
        char why[160];
        if (dotted_domain_ok(v, why, sizeof why) < 0)
            return pm_config_error(e, path, err, size, KEY ".match: '%.80s' %s", v, why);
        m->v[m->n] = strdup(v);
        if (!m->v[m->n])
            return pm_config_error(e, path, err, size, KEY ": out of memory");
        for (char *p = m->v[m->n]; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        m->n++;
    }
    return 0;
}

static int parse_entry(const config_setting_t *e, struct pm_tls_policy *t, const char *path, char *err, size_t size)
{
    int len = config_setting_length(e);
    for (int j = 0; j < len; j++) {
        const config_setting_t *kv = config_setting_get_elem(e, (unsigned)j);
        const char *sub = config_setting_name(kv);
        char why[160];
        if (strcmp(sub, "domain") == 0) {
            if (get_string(kv, &t->domain, path, err, size) < 0)
                return -1;
            if (dotted_domain_ok(t->domain, why, sizeof why) < 0)
                return pm_config_error(kv, path, err, size, KEY ".domain: '%.80s' %s", t->domain, why);
            for (char *p = t->domain; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        } else if (strcmp(sub, "level") == 0) {
            if (get_string(kv, &t->level, path, err, size) < 0)
                return -1;
            if (!pm_tls_level_name_ok(t->level))
                return pm_config_error(kv, path, err, size,
                                       KEY ".level: '%.80s' is not a level (none, may, encrypt, verify, secure, "
                                       "dane, dane-only)", t->level);
        } else if (strcmp(sub, "ca_file") == 0) {
            if (get_string(kv, &t->ca_file, path, err, size) < 0)
                return -1;
            if (t->ca_file[0] && pm_rule_path(t->ca_file, why, sizeof why) < 0)
                return pm_config_error(kv, path, err, size, KEY ".ca_file: '%.80s' %s", t->ca_file, why);
            /* Read before the mta's chroot: a file that is not there now never will be. */
            if (t->ca_file[0] && access(t->ca_file, R_OK) != 0)
                return pm_config_error(kv, path, err, size, KEY ".ca_file: '%.80s' cannot be read: %s", t->ca_file,
                                       strerror(errno));
        } else if (strcmp(sub, "match") == 0) {
            if (parse_match(kv, &t->match, path, err, size) < 0)
                return -1;
        } else {
            return pm_config_error(kv, path, err, size, "unknown key '%s' in " KEY " (known: domain, level, ca_file, match)",
                                   sub);
        }
    }
    if (!t->domain)
        return pm_config_error(e, path, err, size, KEY ": an entry needs domain = \"...\"");
    if (!t->level)
        return pm_config_error(e, path, err, size, KEY ": the entry for %s needs level = \"...\"", t->domain);
    if (!t->ca_file && !(t->ca_file = strdup("")))
        return pm_config_error(e, path, err, size, KEY ": out of memory");
    return 0;
}

int pm_config_tls_policy_parse(const config_setting_t *s, struct pm_tls_policy_list *out, const char *path,
                               char *err, size_t errsize)
{
    pm_config_tls_policy_free(out);
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return pm_config_error(s, path, err, errsize,
                               KEY " must be a list of groups: ( { domain = \"example.com\"; level = \"verify\"; } )");
    int n = config_setting_length(s);
    if (n > PM_TLS_POLICY_MAX)
        return pm_config_error(s, path, err, errsize, KEY ": at most %d entries", PM_TLS_POLICY_MAX);
    out->v = calloc((size_t)n + 1, sizeof *out->v);
    if (!out->v)
        return pm_config_error(s, path, err, errsize, KEY ": out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(e))
            return pm_config_error(e, path, err, errsize, KEY ": element %d must be a group { domain = \"...\"; }",
                                   i + 1);
        struct pm_tls_policy *t = &out->v[out->n++];
        if (parse_entry(e, t, path, err, errsize) < 0)
            return -1;
        for (int j = 0; j < out->n - 1; j++)
            if (!strcmp(out->v[j].domain, t->domain))
                return pm_config_error(e, path, err, errsize, KEY ": domain '%s' is listed twice", t->domain);
    }
    return 0;
}

void pm_config_tls_policy_free(struct pm_tls_policy_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].domain);
        free(l->v[i].level);
        free(l->v[i].ca_file);
        for (int j = 0; j < l->v[i].match.n; j++)
            free(l->v[i].match.v[j]);
        free(l->v[i].match.v);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

const struct pm_tls_policy *pm_tls_policy_find(const struct pm_tls_policy_list *l, const char *domain)
{
    const struct pm_tls_policy *best = NULL;
    size_t best_len = 0, dlen = strlen(domain);
    for (int i = 0; i < l->n; i++) {
        const char *d = l->v[i].domain;
        if (strcasecmp(d, domain) == 0)
            return &l->v[i];
        size_t n = strlen(d);
        if (d[0] == '.' && n < dlen + 1 && n > best_len && strcasecmp(domain + dlen - n, d) == 0)
            best = &l->v[i], best_len = n;
    }
    return best;
}
