/* The `dkim` list (config_dkim.h): each entry's keys, their rules, and no (domain,
 * selector) twice. Which algorithm a key is, and so whether two active entries clash, needs
 * the key file: the queue checks that at start (services/queue/dkim_sign.c). */
#include "config_dkim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_error.h"
#include "config_rules.h"

static const struct field {
    const char *name;
    size_t off;
    pm_config_rule *rule;
} fields[] = {
    {"domain", offsetof(struct pm_dkim_key, domain), pm_rule_domain},
    {"selector", offsetof(struct pm_dkim_key, selector), pm_rule_dkim_selector},
    {"key", offsetof(struct pm_dkim_key, key), pm_rule_path},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static int parse_entry(const config_setting_t *e, struct pm_dkim_key *k, const char *path, char *err, size_t size)
{
    int len = config_setting_length(e);
    for (int j = 0; j < len; j++) {
        const config_setting_t *kv = config_setting_get_elem(e, (unsigned)j);
        const char *sub = config_setting_name(kv);
        if (strcmp(sub, "active") == 0) {
            if (config_setting_type(kv) != CONFIG_TYPE_BOOL)
                return pm_config_error(kv, path, err, size, "dkim.active must be true or false");
            k->active = config_setting_get_bool(kv);
            continue;
        }
        const struct field *f = NULL;
        for (size_t i = 0; i < NFIELDS; i++)
            if (strcmp(fields[i].name, sub) == 0)
                f = &fields[i];
        if (!f)
            return pm_config_error(kv, path, err, size,
                    "unknown key '%s' in dkim (known: domain, selector, key, active)", sub);
        if (config_setting_type(kv) != CONFIG_TYPE_STRING)
            return pm_config_error(kv, path, err, size, "dkim.%s must be a string", sub);
        char **dst = (char **)((char *)k + f->off);
        free(*dst);
        *dst = strdup(config_setting_get_string(kv));
        char why[160];
        if (!*dst || f->rule(*dst, why, sizeof why) < 0)
            return pm_config_error(kv, path, err, size, "dkim.%s: '%.80s' %s", sub, *dst ? *dst : "",
                        *dst ? why : "out of memory");
    }
    for (size_t i = 0; i < NFIELDS; i++)
        if (!*(char **)((char *)k + fields[i].off))
            return pm_config_error(e, path, err, size, "dkim: an entry needs %s = \"...\" (domain, selector and key)",
                        fields[i].name);
    return 0;
}

int pm_config_dkim_parse(const config_setting_t *s, struct pm_dkim_list *out, const char *path, char *err,
                         size_t errsize)
{
    pm_config_dkim_free(out);
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return pm_config_error(s, path, err, errsize,
                    "dkim must be a list of groups: ( { domain = \"...\"; selector = \"...\"; key = \"...\"; } )");
    int n = config_setting_length(s);
    out->v = calloc((size_t)n + 1, sizeof *out->v);
    if (!out->v)
        return pm_config_error(s, path, err, errsize, "dkim: out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(e))
            return pm_config_error(e, path, err, errsize,
                    "dkim: element %d must be a group { domain = ...; selector = ...; }",
                        i + 1);
        struct pm_dkim_key *k = &out->v[out->n++];
        k->active = 1; /* one entry per domain needs no flag; rotation marks the old one false */
        const char *file = config_setting_source_file(e);
        k->file = strdup(file ? file : path);
        k->line = (int)config_setting_source_line(e);
        if (parse_entry(e, k, path, err, errsize) < 0)
            return -1;
        for (int j = 0; j < out->n - 1; j++)
            if (!strcasecmp(out->v[j].domain, k->domain) && !strcasecmp(out->v[j].selector, k->selector))
                return pm_config_error(e, path, err, errsize,
                        "dkim: selector '%s' of %s is configured twice (also line %d)",
                            k->selector, k->domain, out->v[j].line);
    }
    return 0;
}

void pm_config_dkim_free(struct pm_dkim_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].domain);
        free(l->v[i].selector);
        free(l->v[i].key);
        free(l->v[i].file);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
