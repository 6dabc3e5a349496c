/* Privilege separation: the steps a process takes before it reads from the network. */
#ifndef PM_PRIVSEP_H
#define PM_PRIVSEP_H

struct pm_sandbox {
    const char *user;       /* unprivileged user (and its group) to become, e.g. "postmesh-smtpd" */
    const char *chroot_dir; /* created (0755, owned by root) if missing; NULL: no chroot */
};

/* As root: chroot, chdir("/"), drop supplementary groups, setgid/setuid to the user; then
 * always: no_new_privs and the seccomp allowlist. Without root the first steps are skipped
 * and one log line says so. Returns 0, or -1 (logged) if a step that should work failed. */
int pm_privsep_drop(const struct pm_sandbox *sb);

/* Look up a user's uid/gid (0 if found). Must run before any chroot. */
int pm_privsep_lookup(const char *user, unsigned *uid, unsigned *gid);

/* chown -R path to the user, as root only (no-op otherwise). For state a worker must own. */
int pm_privsep_chown_tree(const char *path, const char *user);

/* Installs the seccomp allowlist (all threads). Used by pm_privsep_drop. */
int pm_seccomp_install(void);

#endif
