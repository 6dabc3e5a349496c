/* smtpd's privileged parent. It reads the configuration and the TLS certificate and key,
 * binds every listening socket (so ports 25/465/587 work when started as root), starts the
 * helper that alone loads the users and aliases files (lookup.h), and supervises one
 * unprivileged worker (worker.c) that runs every SMTP session: chrooted into an empty
 * directory as postmesh-smtpd, with no_new_privs and seccomp. The parent never reads from
 * the network; it forwards the worker's questions (password, recipient, sender) to the
 * helper, and on SIGHUP re-reads the certificate and pushes it to the worker. */
#ifndef SMTPD_PARENT_H
#define SMTPD_PARENT_H

#include "config.h"
#include "privchan.h"
#include "privhelper.h"
#include "server.h"

#define SMTPD_WORKER_USER "postmesh-smtpd"

struct smtpd_parent {
    struct pm_config *cfg;
    char *cert_pem, *key_pem;      /* NULL without tls.certificate */
    struct pm_listener *fds;
    int nfds;
    struct pm_helper_spec helper_spec;
    struct pm_priv_helper *helper;
    char empty_dir[4096];          /* the worker's chroot */
};

/* Everything before the fork: TLS files, listening sockets, the helper (and a first
 * question to it, so a broken users file stops the start). -1 (logged) on failure. */
int smtpd_parent_init(struct smtpd_parent *p, struct pm_config *cfg);
void smtpd_parent_free(struct smtpd_parent *p);

/* pm_worker_spec callbacks. */
void smtpd_parent_answer(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg);
void smtpd_parent_reload(int worker_fd, void *arg);

/* worker.c: the unprivileged side (pm_worker_spec.worker_main). */
int smtpd_worker_main(int parent_fd, void *arg);

#endif
