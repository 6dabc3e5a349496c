#include "runas.h"

#include <string.h>

#include "config.h"

#define SOCK PM_SC_SOCKET
#define ACCEPT PM_SC_ACCEPT
#define FILES (PM_SC_READ | PM_SC_WRITE | PM_SC_NAMES)
#define Q PM_CONNECTS_QUEUE

/* queue: nothing but its LMDB directory (written in place, never renamed); delivery and
 * pop3d: the mail store; everyone else needs no file at all once started, so an empty
 * directory is its whole world. The queue and the resolver accept: ZeroMQ's I/O thread
 * accepts on their ROUTERs, bound before the drop. The queue connects nowhere, pop3d has no
 * bus and the helpers no network: none of them makes a socket. The last column says which
 * bus endpoints a sandboxed process connects to (the queue and the resolver only bind): a
 * host name there makes pm_privsep_drop give it what resolving needs (privsep.c). */
const struct pm_runas pm_runas_table[] = {
    {"queue", "postmesh-queue", NULL, "queue", 0, {"queue", ACCEPT | PM_SC_READ | PM_SC_WRITE}, 0},
    {"resolver", "postmesh-resolver", NULL, "empty", 0, {"resolver", SOCK | ACCEPT}, 0},
    {"delivery", "postmesh-delivery", PM_RUNAS_STORE_GROUP, "mail", 1, {"delivery", SOCK | FILES}, Q},
    {"mta", "postmesh-mta", NULL, "empty", 1, {"mta", SOCK}, Q | PM_CONNECTS_RESOLVER},
    {"bouncer", "postmesh-bouncer", NULL, "empty", 0, {"bouncer", SOCK}, Q},
    {"smtpd", "postmesh-smtpd", NULL, "empty", 1, {"smtpd", SOCK | ACCEPT}, Q},
    {"pop3d", "postmesh-pop3d", PM_RUNAS_STORE_GROUP, "mail", 1, {"pop3d", ACCEPT | FILES}, 0},
    {"auth", "postmesh-auth", NULL, NULL, 0, {"auth", PM_SC_READ}, 0},
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
