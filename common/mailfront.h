/* The privileged parent of a mail front end (pop3d, imapd): reads the TLS pair, binds the
 * listening sockets (the low ports work when started as root), prepares the mail store
 * (shared through the group vmail), starts the helper that alone loads the users file
 * (passdb.h), and supervises one unprivileged sandbox that runs every session chrooted
 * into the store as the service's user (runas.c), with no_new_privs and seccomp. The
 * parent forwards the sandbox's password checks to the helper without waiting
 * (privhelper.h: a burst of logins never stalls the parent's other work, and the checks in
 * flight are capped), repairs a mailbox made by someone else (PM_PRIV_MAILBOX_REPAIR), and
 * on SIGHUP re-reads the TLS pair and pushes it to the sandbox. The protocols are the
 * services' own; this file knows none of them. */
#ifndef PM_MAILFRONT_H
#define PM_MAILFRONT_H

#include "config.h"
#include "listeners.h"
#include "privchan.h"
#include "privhelper.h"
#include "privsep.h"

/* Password checks in flight at most (beyond: a temporary failure at once); ~25 ms each. */
#define PM_MAILFRONT_AUTH_IN_FLIGHT 16

struct pm_mailfront {
    const struct pm_config *cfg;
    const char *name;              /* "pop3d": its runas row, logs; the helper is <name>-passdb */
    char helper_name[32];
    char *cert_pem, *key_pem;      /* NULL without a TLS pair */
    struct pm_listener *fds;
    int nfds;
    const char *helper_files[2];   /* the users file, for the helper (heldfile.h) */
    struct pm_helper_spec helper_spec;
    struct pm_priv_helper *helper;
    struct pm_priv_helper *helpers[2];
    struct pm_sandbox sandbox;     /* the sandbox's confinement: runas.c's row of name */
    char mail_dir[4096];           /* state_dir/mail: the sandbox's chroot */
    char mail_root[4096];          /* the store as the sandbox sees it */
};

/* Everything before the fork, for the service name with its listen list, in which
 * tls_mode ("pop3s") is the implicit-TLS mode. -1 (logged) on failure; free it either way. */
int pm_mailfront_init(struct pm_mailfront *p, const struct pm_config *cfg, const char *name,
                      const struct pm_listenlist *listen, const char *tls_mode);
void pm_mailfront_free(struct pm_mailfront *p);

/* Forks the sandbox (sandbox_main(parent_fd, p)) and supervises it (pm_privsep_supervise):
 * the exit status. */
int pm_mailfront_supervise(struct pm_mailfront *p, int (*sandbox_main)(int parent_fd, void *arg));

#endif
