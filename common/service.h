/* The start of every service's main(): options, logging, configuration, bus identity. */
#ifndef PM_SERVICE_H
#define PM_SERVICE_H

#include "config.h"

/* Flags for pm_service_init. */
#define PM_SERVICE_BUS 1u /* the service speaks on the bus: load its CurveZMQ identity now */

/* Parses `-c FILE` (usage and exit code 2 otherwise), starts logging as `name`, loads the
 * configuration into cfg (a "file:line: ..." error on stderr and exit code 2 if it is bad),
 * applies its debug switch and ignores SIGPIPE, and opens the listening socket of
 * <name>.metrics if set (metrics.h; the service serves it with pm_metrics_serve). With PM_SERVICE_BUS it also loads the bus
 * keys, before any chroot hides them. Returns 0 (cfg loaded: the caller frees it) or the
 * exit code main() should return (nothing to free). */
int pm_service_init(int argc, char **argv, const char *name, unsigned flags, struct pm_config *cfg);

#endif
