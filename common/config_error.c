/* config_error.h */
#include "config_error.h"

#include <stdarg.h>
#include <stdio.h>

int pm_config_error(const config_setting_t *s, const char *path, char *err, size_t size, const char *fmt, ...)
{
    const char *file = s ? config_setting_source_file(s) : NULL;
    int n = snprintf(err, size, "%s:%d: ", file ? file : path, s ? (int)config_setting_source_line(s) : 0);
    if (n < 0 || (size_t)n >= size)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}
