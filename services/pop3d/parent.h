/* pop3d's privileged parent: reads the configuration and the TLS pair, binds the listening
 * sockets (110/995 work when started as root), prepares the mail store (shared through the
 * group vmail), starts the helper that alone loads the users file (passdb.h), and
 * supervises one unprivileged sandbox (sandbox.c) that runs every POP3 session chrooted
 * into the mail store as postmesh-pop3d (runas.c), with no_new_privs and seccomp. The
 * parent forwards the sandbox's password checks to the helper without waiting
 * (privhelper.h: a burst of logins never stalls the parent's other work, and the checks in
 * flight are capped) and, on SIGHUP, re-reads the TLS pair and pushes it to the sandbox. */
#ifndef POP3_PARENT_H
#define POP3_PARENT_H

#include "config.h"
#include "listeners.h"
#include "privchan.h"
#include "privhelper.h"
#include "privsep.h"

/* Password checks in flight at most (beyond: -ERR [SYS/TEMP] at once); ~25 ms each. */
#define POP3_AUTH_IN_FLIGHT 16

struct pop3_parent {
    const struct pm_config *cfg;
    char *cert_pem, *key_pem; /* NULL without a TLS pair */
    struct pm_listener *fds;
    int nfds;
    const char *helper_files[2]; /* the users file, for the helper (heldfile.h) */
    struct pm_helper_spec helper_spec;
    struct pm_priv_helper *helper;
    struct pm_priv_helper *helpers[2];
    struct pm_sandbox sandbox; /* the sandbox's confinement: runas.c's "pop3d" row */
    char mail_dir[4096];       /* state_dir/mail: the sandbox's chroot */
    char mail_root[4096];      /* the store as the sandbox sees it */
};

/* Everything before the fork. -1 (logged) on failure. */
int pop3_parent_init(struct pop3_parent *p, const struct pm_config *cfg);
void pop3_parent_free(struct pop3_parent *p);

/* pm_sandbox_spec (privchan.h: the sandbox's spec) callbacks. */
struct pm_priv_helper *pop3_parent_route(const struct pm_priv_msg *req, void *arg);
void pop3_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg);
void pop3_parent_reload(int sandbox_fd, void *arg);

/* sandbox.c: the unprivileged side (pm_sandbox_spec.sandbox_main). */
int pop3_sandbox_main(int parent_fd, void *arg);

#endif
