/* The list of Postmesh's programs (common/services.def) as a table: what `postmesh services`
 * prints, what `postmesh run` starts and in which order, what `postmesh check` goes through.
 * Who each process runs as in detail (seccomp profile, endpoints) is runas.h's view of the
 * same rows, the bus key names keys.h's. */
#ifndef PM_SERVICES_H
#define PM_SERVICES_H
#include <stddef.h>

#include "keys.h"

/* How a service separates its privileges (services.def says what each means). */
enum pm_svc_privsep {
    PM_SVC_PLAIN,
    PM_SVC_SANDBOXES,
    PM_SVC_JOB_WORKERS,
    PM_SVC_HELPER,
    PM_SVC_CALLER,
};

/* What `postmesh run` does with it. */
enum pm_svc_start {
    PM_SVC_START_NEVER,
    PM_SVC_START_CORE,  /* first, in row order; the others wait until it is ready; stopped last */
    PM_SVC_START_AFTER, /* in row order once the core ones are ready */
};

struct pm_svc {
    const char *name;        /* binary postmesh-<name> */
    enum pm_role role;       /* PM_ROLE_NONE: none */
    const char *user;        /* NULL: runs as its caller */
    unsigned uid;            /* pinned by scripts/install-deps.sh (its own group's gid too); 0 without user */
    const char *group;       /* a pm_svc_groups[] name instead of its own group, or NULL */
    const char *chroot_rel;  /* below state_dir, or NULL */
    enum pm_svc_privsep privsep;
    enum pm_svc_start start;
    int bus_key;             /* has a bus keypair of its own */
    const char *description;
};

struct pm_svc_group {
    const char *name;
    unsigned gid;
    const char *description;
};

/* Every row in services.def's order, terminated by a row with name == NULL. */
extern const struct pm_svc pm_svc_table[];
extern const struct pm_svc_group pm_svc_groups[];

/* The row named name, or NULL. */
const struct pm_svc *pm_svc_find(const char *name);

/* "plain", "sandboxes", "job-workers", "helper", "caller". */
const char *pm_svc_privsep_name(enum pm_svc_privsep p);

/* Started by `postmesh run` (as postmesh-<name>). */
static inline int pm_svc_supervised(const struct pm_svc *s) { return s->start != PM_SVC_START_NEVER; }

#endif
