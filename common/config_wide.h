/* libconfig 1.5 (Debian 12) stores a decimal literal without the L suffix with atoi(), so
 * 4294967297 silently becomes 1 (and an out-of-range value is reported with the wrong
 * number). This reads such a setting's literal back from its source line, so the range
 * check sees what the file says. Used by config.c alone. */
#ifndef PM_CONFIG_WIDE_H
#define PM_CONFIG_WIDE_H
#include <libconfig.h>

/* The text of the file being read, read once per load (every 32-bit setting may ask). */
struct pm_config_source {
    char *path;
    char **lines;
    unsigned n;
};

/* For a setting of CONFIG_TYPE_INT: 1 and *out when the literal assigned to it on its line
 * does not fit 32 bits (LLONG_MIN/MAX past 64 bits), else 0. file: the setting's file when
 * libconfig does not know it. */
int pm_config_wide_int(struct pm_config_source *src, const config_setting_t *s, const char *file, long long *out);
void pm_config_source_free(struct pm_config_source *src);

#endif
