/* The error of a configuration entry parsed outside the schema (config_dkim.c,
 * config_dnsbl.c): "<file>:<line>: " of the setting (or of path when s is NULL), then the
 * text. Returns -1, so a parser can `return pm_config_error(...)`. */
#ifndef PM_CONFIG_ERROR_H
#define PM_CONFIG_ERROR_H
#include <libconfig.h>
#include <stddef.h>

int pm_config_error(const config_setting_t *s, const char *path, char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
