/* smtpd.dnsbl (config_dnsbl.h): each entry's keys and their rules. */
#include "config_dnsbl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_error.h"
#include "config_rules.h"

static int set_string(const config_setting_t *kv, char **dst, const char *path, char *err, size_t size)
{
    const char *sub = config_setting_name(kv);
    if (config_setting_type(kv) != CONFIG_TYPE_STRING)
        return pm_config_error(kv, path, err, size, "smtpd.dnsbl.%s must be a string", sub);
    free(*dst);
    *dst = strdup(config_setting_get_string(kv));
    if (!*dst)
        return pm_config_error(kv, path, err, size, "smtpd.dnsbl: out of memory");
    char why[160];
    if (strcmp(sub, "zone") == 0 && pm_rule_domain(*dst, why, sizeof why) < 0)
        return pm_config_error(kv, path, err, size, "smtpd.dnsbl.zone: '%.80s' %s", *dst, why);
    struct in_addr a;
    if (strcmp(sub, "match") == 0 && inet_pton(AF_INET, *dst, &a) != 1)
        return pm_config_error(kv, path, err, size,
                "smtpd.dnsbl.match: '%.80s' is not an IPv4 address (e.g. \"127.0.0.2\")",
                    *dst);
    return 0;
}

static int parse_entry(const config_setting_t *e, struct pm_dnsbl *d, const char *path, char *err, size_t size)
{
    int len = config_setting_length(e);
    for (int j = 0; j < len; j++) {
        const config_setting_t *kv = config_setting_get_elem(e, (unsigned)j);
        const char *sub = config_setting_name(kv);
        if (strcmp(sub, "weight") == 0) {
            int t = config_setting_type(kv);
            if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
                return pm_config_error(kv, path, err, size, "smtpd.dnsbl.weight must be an integer");
            long long w = config_setting_get_int64(kv);
            if (w == 0 || w < -PM_DNSBL_MAX_WEIGHT || w > PM_DNSBL_MAX_WEIGHT)
                return pm_config_error(kv, path, err, size,
                            "smtpd.dnsbl.weight = %lld must be in [-%d, %d] and not 0 (negative: an allowlist)", w,
                            PM_DNSBL_MAX_WEIGHT, PM_DNSBL_MAX_WEIGHT);
            d->weight = w;
        } else if (strcmp(sub, "zone") == 0) {
            if (set_string(kv, &d->zone, path, err, size) < 0)
                return -1;
        } else if (strcmp(sub, "match") == 0) {
            if (set_string(kv, &d->match, path, err, size) < 0)
                return -1;
        } else {
            return pm_config_error(kv, path, err, size,
                    "unknown key '%s' in smtpd.dnsbl (known: zone, weight, match)", sub);
        }
    }
    if (!d->zone)
        return pm_config_error(e, path, err, size, "smtpd.dnsbl: an entry needs zone = \"...\"");
    return 0;
}

int pm_config_dnsbl_parse(const config_setting_t *s, struct pm_dnsbl_list *out, const char *path, char *err,
                          size_t errsize)
{
    pm_config_dnsbl_free(out);
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return pm_config_error(s, path, err, errsize,
                    "smtpd.dnsbl must be a list of groups: ( { zone = \"zen.example.test\"; weight = 1; } )");
    int n = config_setting_length(s);
    if (n > PM_DNSBL_MAX)
        return pm_config_error(s, path, err, errsize, "smtpd.dnsbl: at most %d lists", PM_DNSBL_MAX);
    out->v = calloc((size_t)n + 1, sizeof *out->v);
    if (!out->v)
        return pm_config_error(s, path, err, errsize, "smtpd.dnsbl: out of memory");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!config_setting_is_group(e))
            return pm_config_error(e, path, err, errsize,
                    "smtpd.dnsbl: element %d must be a group { zone = \"...\"; }", i + 1);
        struct pm_dnsbl *d = &out->v[out->n++];
        d->weight = 1;
        if (parse_entry(e, d, path, err, errsize) < 0)
            return -1;
        for (int j = 0; j < out->n - 1; j++)
            if (!strcasecmp(out->v[j].zone, d->zone))
                return pm_config_error(e, path, err, errsize, "smtpd.dnsbl: zone '%s' is listed twice", d->zone);
    }
    return 0;
}

void pm_config_dnsbl_free(struct pm_dnsbl_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].zone);
        free(l->v[i].match);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
