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

/* Peer-controlled values go through the one escaping function, common/logvalue.h. PM_LV is
 * the older name of PM_LOGV. */
#include "logvalue.h"
#define PM_LV(buf, s) PM_LOGV(buf, s)

#endif
