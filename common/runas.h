/* Who each process runs as after it dropped root: the one table `postmesh check` prints and
 * every pm_privsep_drop() takes its user, group, chroot and seccomp profile from, so what
 * the operator is told is what happens. Its rows are those of common/services.def (the cli's
 * aside: it runs as its caller). One uid per service: a compromised process cannot signal,
 * trace or read the files of another. */
#ifndef PM_RUNAS_H
#define PM_RUNAS_H
#include <stddef.h>

#include "privsep.h"

struct pm_config;

struct pm_runas {
    const char *service;    /* "queue", "smtpd", ...; "auth": the lookup helpers (privhelper.h) */
    const char *user;       /* unprivileged user (scripts/install-deps.sh creates it, from services.def) */
    const char *group;      /* shared group instead of the user's own ("vmail": the mail store); NULL */
    const char *chroot_rel; /* chroot below state_dir: "queue", "mail" or "empty"; NULL: none */
    int split;              /* privileged parent (ports, TLS key, users file) + unprivileged sandboxes
                             * or job workers */
    struct pm_seccomp_profile seccomp;
    unsigned connects;      /* PM_CONNECTS_*: the bus endpoints its sandboxed process connects to */
};

/* The bus endpoints a sandboxed process connects to (ZeroMQ resolves a host name in them on
 * every connect and reconnect, from inside the sandbox: privsep.h pm_privsep_note_endpoints). */
#define PM_CONNECTS_QUEUE 1u    /* queue.endpoint (every shard) */
#define PM_CONNECTS_RESOLVER 2u /* resolver.endpoint */

/* The mail store's group: delivery writes, pop3d (and imapd) read, rename and delete. */
#define PM_RUNAS_STORE_GROUP "vmail"

/* The row for service, or NULL. */
const struct pm_runas *pm_runas_find(const char *service);

/* The row whose user is user, or NULL. */
const struct pm_runas *pm_runas_find_user(const char *user);

/* Every row, terminated by a row with service == NULL. */
extern const struct pm_runas pm_runas_table[];

/* dst = state_dir/chroot_rel ("" when the row has no chroot). Returns dst. */
char *pm_runas_chroot(const struct pm_config *cfg, const struct pm_runas *r, char *dst, size_t size);

/* Fills sb from service's row (the chroot path goes into dir). 0, or -1 for an unknown
 * service. */
int pm_runas_sandbox(const struct pm_config *cfg, const char *service, struct pm_sandbox *sb, char *dir,
                     size_t size);

#endif
