/* Mailbox paths as a process sees the store, and the store's ownership. Delivery and pop3d
 * workers chroot into state_dir/mail, so their paths start at "." there; a process started
 * without root (no chroot) uses state_dir/mail. The layout below the root is mailstore.h's.
 * Each runs as its own user and both reach the store through the group vmail
 * (PM_RUNAS_STORE_GROUP): every directory and file below the root is group-readable and
 * -writable, the root itself is root:vmail 0770 (the workers' chroot, pm_privsep_drop). */
#ifndef PM_MAILROOT_H
#define PM_MAILROOT_H
#include <stddef.h>

#include "config.h"

/* dst = the store's root for this process: "." when chrooted into it, else state_dir/mail. */
void pm_mailroot_init(const struct pm_config *cfg, int chrooted, char *dst, size_t size);

/* In the privileged parent of a service whose worker chroots into the store (delivery,
 * pop3d): mail_dir = state_dir/mail, created if missing (0750, as is a missing state_dir);
 * as root every entry below it gets the store group and group read/write (a store from
 * before the group keeps working) and what root owns becomes user's (the caller's worker
 * user); mail_root as pm_mailroot_init gives it for the worker. 0, or -1 (logged). */
int pm_mailroot_prepare(const struct pm_config *cfg, const char *user, char *mail_dir, size_t dirsize,
                        char *mail_root, size_t rootsize);

/* dst = root/<domain>/<localpart>/Maildir (components as pm_mailstore_component makes them).
 * 0, or -1 for an address without '@', with an empty part, or too long. */
int pm_mailroot_maildir(const char *root, const char *address, char *dst, size_t size);

/* As root, in the privileged parent: the directories of address's mailbox below store
 * (state_dir/mail; domain, local part, Maildir, tmp/new/cur) and the regular files in
 * Maildir and tmp/new/cur get the store group and group read/write; what root owns becomes
 * user's. Nothing is created; no symlink is followed (every step is an openat with
 * O_NOFOLLOW). For a mailbox an administrator made as root after the start. Returns the
 * number of entries changed (0 without root), or -1. */
int pm_mailroot_repair(const char *store, const char *address, const char *user);

/* A parent's answer to its worker's PM_PRIV_MAILBOX_REPAIR (address in req->a): the repair
 * above, logged; reply->result is its return value. */
struct pm_priv_msg;
void pm_mailroot_answer_repair(const char *store, const char *user, const struct pm_priv_msg *req,
                               struct pm_priv_msg *reply);

#endif
