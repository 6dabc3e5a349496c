/* The rows of services.def as the table services.h describes. */
#include "services.h"

#include <string.h>

#define PM_GROUP(name, gid, description) {name, gid, description},
const struct pm_svc_group pm_svc_groups[] = {
#include "services.def"
    {NULL, 0, NULL},
};

#define PM_SVC(name, role, user, uid, group, chroot, privsep, start, key, seccomp, connects, description)      \
    {name, PM_ROLE_##role, user, uid, group, chroot, PM_SVC_##privsep, PM_SVC_START_##start, PM_SVC_KEY_##key, \
     description},
#define PM_SVC_KEY_KEY 1
#define PM_SVC_KEY_NOKEY 0
const struct pm_svc pm_svc_table[] = {
#include "services.def"
    {NULL, PM_ROLE_NONE, NULL, 0, NULL, NULL, PM_SVC_PLAIN, PM_SVC_START_NEVER, 0, NULL},
};

const struct pm_svc *pm_svc_find(const char *name)
{
    for (const struct pm_svc *s = pm_svc_table; s->name; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

const char *pm_svc_privsep_name(enum pm_svc_privsep p)
{
    static const char *const names[] = {
        [PM_SVC_PLAIN] = "plain",   [PM_SVC_SANDBOXES] = "sandboxes", [PM_SVC_JOB_WORKERS] = "job-workers",
        [PM_SVC_HELPER] = "helper", [PM_SVC_CALLER] = "caller",
    };
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}
