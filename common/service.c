/* Service startup shared by every postmesh-<svc> main(). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "privsep.h"
#include "service.h"

int pm_service_init(int argc, char **argv, const char *name, unsigned flags, struct pm_config *cfg)
{
    const char *path = pm_config_default_path();
    int opt;
    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        if (opt != 'c') {
            fprintf(stderr, "usage: postmesh-%s [-c config]\n", name);
            return 2;
        }
        path = optarg;
    }
    pm_log_init(name);
    char err[1024];
    if (pm_config_load(path, cfg, err, sizeof err) < 0) {
        fprintf(stderr, "postmesh-%s: %s\n", name, err);
        return 2;
    }
    pm_log_set_debug(cfg->debug);
    if (pm_privsep_preflight(cfg, name) < 0) {
        pm_config_free(cfg);
        return 78; /* EX_CONFIG */
    }
    signal(SIGPIPE, SIG_IGN); /* a peer that goes away is an error return, not a death */
    /* Bound now, before any chroot or seccomp; served later by the process that counts. */
    if (pm_metrics_listen(cfg, name) < 0) {
        pm_config_free(cfg);
        return 1;
    }
    if (flags & PM_SERVICE_BUS)
        pm_bus_security_init(cfg, name);
    return 0;
}
