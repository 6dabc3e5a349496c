/* `postmesh check`'s pieces: each check prints lines "ok|warn|FAIL  what: detail" through
 * cli_check_line, which counts failures and warnings for the exit status and summary. */
#ifndef CLI_CHECK_H
#define CLI_CHECK_H

#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

struct cli_check_report {
    int failures, warnings;
};

/* Owned by root or by us: who may be trusted with a file the checks look at. */
static inline int owner_ok(const struct stat *st) { return st->st_uid == 0 || st->st_uid == geteuid(); }

void cli_check_line(struct cli_check_report *r, const char *level, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* check_keys.c: the CurveZMQ keys: present, parseable, matching .pub, safe modes. */
void cli_check_keys(struct cli_check_report *r, const struct pm_config *cfg);

/* check_postmaster.c: where postmaster@ each local domain goes (an alias, or its mailbox). */
void cli_check_postmaster(struct cli_check_report *r, const struct pm_config *cfg);

/* check_outbound.c: the resolver's trust anchors and the mta's CA files, read as they would be. */
void cli_check_outbound(struct cli_check_report *r, const struct pm_config *cfg);

/* check_privs.c: state_dir and users file permissions, the unprivileged users. */
void cli_check_state_dir(struct cli_check_report *r, const struct pm_config *cfg);
void cli_check_users_file_mode(struct cli_check_report *r, const struct pm_config *cfg, int nusers);
void cli_check_accounts(struct cli_check_report *r);
/* What the service would run as (user, chroot, ports), as root or as we are now. */
void cli_check_runas(struct cli_check_report *r, const struct pm_config *cfg, const char *service);

#endif
