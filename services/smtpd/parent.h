/* smtpd's privileged parent. It reads the configuration and the TLS certificate and key,
 * binds every listening socket (so ports 25/465/587 work when started as root), starts the
 * helpers that alone load the users and aliases files (lookup.h), and supervises one
 * unprivileged worker (worker.c) that runs every SMTP session: chrooted into an empty
 * directory as postmesh-smtpd, with no_new_privs and seccomp. The parent never reads from
 * the network; it forwards the worker's questions to the helpers without waiting for them
 * (privhelper.h): recipients and senders to one, passwords to another, so a burst of AUTHs
 * (a deliberate ~25 ms hash each) never delays a recipient check. On SIGHUP it re-reads the
 * certificate and pushes it to the worker. */
#ifndef SMTPD_PARENT_H
#define SMTPD_PARENT_H

#include "config.h"
#include "privchan.h"
#include "privhelper.h"
#include "privsep.h"
#include "server.h"

/* Password checks in flight at most, for the whole worker (beyond: 454 4.7.0 at once). At
 * ~25 ms a check, an AUTH waits at most ~0.4 s for its turn. */
#define SMTPD_AUTH_IN_FLIGHT 16

struct smtpd_parent {
    struct pm_config *cfg;
    char *cert_pem, *key_pem;      /* NULL without tls.certificate */
    struct pm_listener *fds;
    int nfds;
    const char *helper_files[3];   /* users and aliases files, for the helpers (heldfile.h) */
    struct pm_helper_spec lookup_spec, auth_spec;
    struct pm_priv_helper *lookup;  /* recipients and senders: quick answers */
    struct pm_priv_helper *auth;    /* passwords: a hash each */
    struct pm_priv_helper *helpers[3];
    struct pm_sandbox sandbox;     /* the worker's: runas.c's "smtpd" row */
    char empty_dir[4096];          /* the worker's chroot */
};

/* Everything before the fork: TLS files, listening sockets, the helper (and a first
 * question to it, so a broken users file stops the start). -1 (logged) on failure. */
int smtpd_parent_init(struct smtpd_parent *p, struct pm_config *cfg);
void smtpd_parent_free(struct smtpd_parent *p);

/* pm_worker_spec callbacks. */
struct pm_priv_helper *smtpd_parent_route(const struct pm_priv_msg *req, void *arg);
void smtpd_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg);
void smtpd_parent_reload(int worker_fd, void *arg);

/* worker.c: the unprivileged side (pm_worker_spec.worker_main). */
int smtpd_worker_main(int parent_fd, void *arg);

#endif
