/* mta.tls_policy of the configuration, the per-destination TLS levels (like Postfix's
 * smtp_tls_policy_maps): ( { domain = "example.com"; level = "secure"; ca_file = "";
 * match = [ "mx.example.com" ]; }, ... ). domain "example.com" is that domain only,
 * ".example.com" its subdomains (not itself); level is one of mta.tls_level's values but
 * ""; ca_file (verify, secure) must be readable when the configuration is loaded (it is read
 * before the mta's chroot); match names the certificate must carry (a leading "." is any
 * subdomain). No domain twice. */
#ifndef PM_CONFIG_TLS_POLICY_H
#define PM_CONFIG_TLS_POLICY_H
#include <libconfig.h>
#include <stddef.h>

#include "config.h"

#define PM_TLS_POLICY_MAX 1024 /* rows */
#define PM_TLS_POLICY_MAX_MATCH 16

/* Parses s into out (replacing what it held). -1 with "file:line: reason" in err. */
int pm_config_tls_policy_parse(const config_setting_t *s, struct pm_tls_policy_list *out, const char *path,
                               char *err, size_t errsize);
void pm_config_tls_policy_free(struct pm_tls_policy_list *l);

/* The row for a destination domain (lower case): the exact domain, else the longest
 * ".parent" row that ends it; NULL: none (mta.tls_level applies). */
const struct pm_tls_policy *pm_tls_policy_find(const struct pm_tls_policy_list *l, const char *domain);

/* Is level one of the level names ("none" ... "dane-only")? "" is not. */
int pm_tls_level_name_ok(const char *level);

#endif
