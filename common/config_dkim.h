/* The `dkim` list of the configuration: ( { domain = "..."; selector = "..."; key = "...";
 * active = true; }, ... ). Only its shape is checked here (names, a path, no entry twice):
 * the key files are read by the queue alone (services/queue/dkim_sign.c), never by a
 * service that merely loads the configuration, so no smtpd or mta process ever holds a key
 * byte, and a host without the key files (an smtpd container) still loads the file. */
#ifndef PM_CONFIG_DKIM_H
#define PM_CONFIG_DKIM_H
#include <libconfig.h>
#include <stddef.h>

#include "config.h"

/* Parses s into out (replacing what it held). -1 with "file:line: reason" in err. */
int pm_config_dkim_parse(const config_setting_t *s, struct pm_dkim_list *out, const char *path, char *err,
                         size_t errsize);
void pm_config_dkim_free(struct pm_dkim_list *l);

#endif
