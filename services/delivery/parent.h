/* delivery's privileged parent (main.c): prepares the mail store (shared with pop3d through
 * the group vmail), starts the helper that alone reads the users file, and supervises one
 * job worker process (worker.c) chrooted into the store as postmesh-delivery (runas.c), with
 * no_new_privs and seccomp. The job worker asks "is this a local user?" over the privchan
 * channel; the parent forwards it to the helper.
 *
 * Why not pin the users file into the worker's chroot: the file holds password hashes
 * (delivery only needs to know who exists), it is not readable by the worker's user, and a
 * worker that can read it could hand every hash to whoever compromises it. */
#ifndef DELIVERY_PARENT_H
#define DELIVERY_PARENT_H

#include "config.h"
#include "privhelper.h"
#include "privsep.h"

struct delivery_parent {
    const struct pm_config *cfg;
    struct pm_sandbox sandbox; /* the worker's: runas.c's "delivery" row */
    struct pm_helper_spec helper_spec;
    const char *helper_files[2];
    struct pm_priv_helper *helper;
    char mail_dir[4096];  /* state_dir/mail: the worker's chroot */
    char mail_root[4096]; /* the store as the worker sees it (mailroot.h) */
};

/* worker.c */
int delivery_worker_main(int parent_fd, void *arg);

#endif
