/* imapd's privileged parent is the mail front ends' (common/mailfront.h): the TLS pair,
 * the sockets (143/993 work when started as root), the store, the password helper and the
 * supervision of one unprivileged sandbox (sandbox.c) that runs every IMAP session
 * chrooted into the mail store as postmesh-imapd (group vmail, runas.c), with no_new_privs
 * and seccomp (its profile adds inotify for IDLE). */
#ifndef IMAP_PARENT_H
#define IMAP_PARENT_H

#include "mailfront.h"

/* sandbox.c: the unprivileged side (arg: this process's copy of the struct pm_mailfront). */
int imap_sandbox_main(int parent_fd, void *arg);

#endif
