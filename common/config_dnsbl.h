/* smtpd.dnsbl of the configuration: ( { zone = "zen.example.test"; weight = 2;
 * match = "127.0.0.2"; }, ... ). weight defaults to 1 (negative: an allowlist that
 * subtracts, never 0); match is optional; no zone twice. */
#ifndef PM_CONFIG_DNSBL_H
#define PM_CONFIG_DNSBL_H
#include <libconfig.h>
#include <stddef.h>

#include "config.h"

#define PM_DNSBL_MAX 32       /* lists asked at once per client */
#define PM_DNSBL_MAX_WEIGHT 100

/* Parses s into out (replacing what it held). -1 with "file:line: reason" in err. */
int pm_config_dnsbl_parse(const config_setting_t *s, struct pm_dnsbl_list *out, const char *path, char *err,
                          size_t errsize);
void pm_config_dnsbl_free(struct pm_dnsbl_list *l);

#endif
