/* One line per event, key=value, to stderr. */
#ifndef PM_LOG_H
#define PM_LOG_H
#include <stddef.h>

enum pm_log_level { PM_DEBUG, PM_INFO, PM_WARN, PM_ERR };

/* Sets the service name printed on every line ("smtpd", "queue", ...). */
void pm_log_init(const char *service);
void pm_log_set_debug(int on);

/* fmt continues the line after "ts=... svc=... level=...": "event=accepted id=%s". */
void pm_log(enum pm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes s into dst as a log value: bare if safe, else double-quoted with \" \\ and
 * control characters escaped. Always NUL-terminates; truncates to fit. Returns dst. */
char *pm_log_value(char *dst, size_t size, const char *s);

#define PM_LOGV_SIZE 512
/* Convenience: a quoted copy in a caller-provided PM_LOGV_SIZE buffer. */
#define PM_LV(buf, s) pm_log_value((buf), sizeof(buf), (s))

#endif
