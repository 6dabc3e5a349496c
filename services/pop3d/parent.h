/* pop3d's privileged parent is the mail front ends' (common/mailfront.h): the TLS pair,
 * the sockets (110/995 work when started as root), the store, the password helper and the
 * supervision of one unprivileged sandbox (sandbox.c) that runs every POP3 session
 * chrooted into the mail store as postmesh-pop3d (runas.c), with no_new_privs and seccomp. */
#ifndef POP3_PARENT_H
#define POP3_PARENT_H

#include "mailfront.h"

/* sandbox.c: the unprivileged side (arg: this process's copy of the struct pm_mailfront). */
int pop3_sandbox_main(int parent_fd, void *arg);

#endif
