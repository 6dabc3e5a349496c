/* Who each service runs as after it dropped root: the one table `postmesh check` prints and
 * the services' pm_privsep_drop() calls should take their user and chroot from, so what the
 * operator is told is what happens. */
#ifndef PM_RUNAS_H
#define PM_RUNAS_H
#include <stddef.h>

struct pm_config;

struct pm_runas {
    const char *service;    /* "queue", "smtpd", ... */
    const char *user;       /* unprivileged user and group (scripts/install-deps.sh creates them) */
    const char *chroot_rel; /* chroot below state_dir: "queue", "mail" or "empty" (an empty dir) */
    int split;              /* privileged parent (ports, TLS key, users file) + unprivileged workers */
};

/* The row for service, or NULL. */
const struct pm_runas *pm_runas_find(const char *service);

/* Every row, terminated by a row with service == NULL. */
extern const struct pm_runas pm_runas_table[];

/* Every unprivileged account Postmesh expects (NULL-terminated). */
extern const char *const pm_runas_users[];

/* dst = state_dir/chroot_rel. Returns dst. */
char *pm_runas_chroot(const struct pm_config *cfg, const struct pm_runas *r, char *dst, size_t size);

#endif
