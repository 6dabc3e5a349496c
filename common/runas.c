#include "runas.h"

#include <string.h>

#include "config.h"

/* queue: nothing but its LMDB directory; delivery and pop3d: the mail store; everyone else
 * needs no file at all once started, so an empty directory is its whole world. */
const struct pm_runas pm_runas_table[] = {
    {"queue", "postmesh", "queue", 0},
    {"resolver", "postmesh", "empty", 0},
    {"delivery", "vmail", "mail", 0},
    {"mta", "postmesh-mta", "empty", 1},
    {"bouncer", "postmesh", "empty", 0},
    {"smtpd", "postmesh-smtpd", "empty", 1},
    {"pop3d", "vmail", "mail", 1}, /* reads and deletes what delivery (vmail) wrote */
    {NULL, NULL, NULL, 0},
};

/* The accounts scripts/install-deps.sh creates (pop3d's worker is vmail today, so
 * postmesh-pop3d is created but unused). */
const char *const pm_runas_users[] = {"postmesh", "postmesh-smtpd", "postmesh-mta", "postmesh-pop3d", "vmail", NULL};

const struct pm_runas *pm_runas_find(const char *service)
{
    for (const struct pm_runas *r = pm_runas_table; r->service; r++)
        if (strcmp(r->service, service) == 0)
            return r;
    return NULL;
}

char *pm_runas_chroot(const struct pm_config *cfg, const struct pm_runas *r, char *dst, size_t size)
{
    return pm_config_state_path(cfg, r->chroot_rel, dst, size);
}
