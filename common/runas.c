#include "runas.h"

#include <string.h>

#include "config.h"

/* The rows of services.def, in their columns' words: what each profile allows and which bus
 * endpoints a sandboxed process connects to.
 * queue: nothing but its LMDB directory (written in place, never renamed); delivery, pop3d
 * and imapd: the mail store (imapd also watches it with inotify for IDLE); the mta: its own
 * directory, for the MTA-STS policies it keeps across restarts (services/mta/sts_cache.h);
 * everyone else
 * needs no file at all once started, so an empty directory is its whole world. The queue
 * and the resolver accept: ZeroMQ's I/O thread accepts on their ROUTERs, bound before the
 * drop. The queue connects nowhere, pop3d and imapd have no bus and the helpers no network:
 * none of them makes a socket. A host name in an endpoint a sandboxed process connects to
 * makes pm_privsep_drop give it what resolving needs (privsep.c). The cli runs as its caller: no row here. */
#define SC_SOCKET PM_SC_SOCKET
#define SC_ACCEPT PM_SC_ACCEPT
#define SC_SOURCE_PORT PM_SC_SOURCE_PORT
#define SC_READ PM_SC_READ
#define SC_WRITE PM_SC_WRITE
#define SC_FILES (PM_SC_READ | PM_SC_WRITE | PM_SC_NAMES)
#define SC_NOTIFY PM_SC_NOTIFY
#define TO_QUEUE PM_CONNECTS_QUEUE
#define TO_RESOLVER PM_CONNECTS_RESOLVER
#define RUNAS_ROW(name, user, group, chroot, split, seccomp, connects) \
    {name, user, group, chroot, split, {name, seccomp}, connects},
#define RUNAS_PLAIN(...) RUNAS_ROW(__VA_ARGS__)
#define RUNAS_SANDBOXES(...) RUNAS_ROW(__VA_ARGS__)
#define RUNAS_JOB_WORKERS(...) RUNAS_ROW(__VA_ARGS__)
#define RUNAS_HELPER(...) RUNAS_ROW(__VA_ARGS__)
#define RUNAS_CALLER(...)
#define SPLIT_PLAIN 0
#define SPLIT_SANDBOXES 1
#define SPLIT_JOB_WORKERS 1
#define SPLIT_HELPER 0
#define SPLIT_CALLER 0
#define PM_SVC(name, role, user, uid, group, chroot, privsep, start, key, seccomp, connects, description) \
    RUNAS_##privsep(name, user, group, chroot, SPLIT_##privsep, seccomp, connects)
const struct pm_runas pm_runas_table[] = {
#include "services.def"
    {NULL, NULL, NULL, NULL, 0, {NULL, 0}, 0},
};

const struct pm_runas *pm_runas_find(const char *service)
{
    for (const struct pm_runas *r = pm_runas_table; r->service; r++)
        if (strcmp(r->service, service) == 0)
            return r;
    return NULL;
}

const struct pm_runas *pm_runas_find_user(const char *user)
{
    for (const struct pm_runas *r = pm_runas_table; r->service; r++)
        if (strcmp(r->user, user) == 0)
            return r;
    return NULL;
}

char *pm_runas_chroot(const struct pm_config *cfg, const struct pm_runas *r, char *dst, size_t size)
{
    if (!r->chroot_rel) {
        if (size)
            dst[0] = '\0';
        return dst;
    }
    return pm_config_state_path(cfg, r->chroot_rel, dst, size);
}

int pm_runas_sandbox(const struct pm_config *cfg, const char *service, struct pm_sandbox *sb, char *dir,
                     size_t size)
{
    const struct pm_runas *r = pm_runas_find(service);
    if (!r)
        return -1;
    *sb = (struct pm_sandbox){.user = r->user, .group = r->group, .profile = &r->seccomp};
    if (r->chroot_rel)
        sb->chroot_dir = pm_runas_chroot(cfg, r, dir, size);
    return 0;
}
