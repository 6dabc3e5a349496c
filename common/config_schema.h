/* The configuration schema's row (shared by the table in config_schema.c and the loader in
 * config.c, nobody else): a key's path, libconfig type, place in struct pm_config, default,
 * and the rule its value must follow. */
#ifndef PM_CONFIG_SCHEMA_H
#define PM_CONFIG_SCHEMA_H
#include <stddef.h>

#include "config_rules.h"

enum pm_config_type {
    PM_CFG_STR,
    PM_CFG_INT,
    PM_CFG_BOOL,
    PM_CFG_STRLIST, /* a list of strings */
    PM_CFG_STRS,    /* a string or a non-empty list of strings */
    PM_CFG_LISTEN,  /* a list of listener groups { address; mode; proxy_protocol; } */
    PM_CFG_MILTERS, /* a list of milter addresses or groups { address; timeout; default_action; } */
    PM_CFG_DKIM,    /* a list of DKIM key groups { domain; selector; key; active; } (config_dkim.c) */
    PM_CFG_DNSBL,   /* a list of DNS list groups { zone; weight; match; } (config_dnsbl.c) */
    PM_CFG_TLS_POLICY, /* a list of TLS policy groups { domain; level; ca_file; match; } (config_tls_policy.c) */
};

#define PM_CFG_EMPTY_OK 1u /* "" is a value of its own (off, or a default another key gives) */

struct pm_config_key {
    const char *path;
    enum pm_config_type type;
    size_t off;                  /* in struct pm_config */
    const char *def_str;         /* STR, STRS */
    long long def_int;           /* INT, BOOL */
    long long min, max;          /* INT */
    pm_config_rule *rule;        /* STR; each string of STRLIST and STRS; LISTEN, MILTERS: each address */
    const char *const *choices;  /* STR: the strings allowed (NULL-terminated); LISTEN: the modes */
    unsigned flags;              /* PM_CFG_EMPTY_OK */
};

extern const struct pm_config_key pm_config_schema[];
extern const size_t pm_config_nkeys;

#endif
