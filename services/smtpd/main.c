/* postmesh-smtpd: the SMTP front end (RFC 5321 + ESMTP, STARTTLS, AUTH, ETRN). A privileged
 * parent (parent.h) opens the sockets and answers questions about users; smtpd.sandboxes
 * unprivileged, chrooted, seccomp-confined session processes (sandbox.c) run the sessions,
 * each in one libevent loop; finished messages go to the queue over the bus and are
 * acknowledged only once committed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "authres.h"
#include "bus.h"
#include "log.h"
#include "parent.h"
#include "privchan.h"
#include "service.h"
#include "testhook.h"

/* Thousands of sessions need thousands of descriptors: take what the hard limit allows
 * (the sandbox inherits the limit). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    /* Bus keys (ours, the queue's) are read now: a sandbox creates its bus socket inside an
     * empty chroot. */
    int init_rc = pm_service_init(argc, argv, "smtpd", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    raise_fd_limit();
    smtpd_testhook_init();
    /* SPF, DKIM and DMARC libraries: set up here, before any sandbox is forked and chrooted
     * (they read the public suffix list and OpenSSL's and the resolver's configuration). */
    if (smtpd_authres_init(&cfg) < 0) {
        pm_config_free(&cfg);
        return 1;
    }

    struct smtpd_parent parent;
    int rc = 1;
    if (smtpd_parent_init(&parent, &cfg) == 0) {
        struct pm_sandbox_spec spec = {
            .name = "smtpd",
            .sandbox = parent.sandbox,
            .sandbox_main = smtpd_sandbox_main,
            .answer = smtpd_parent_answer,
            .route = smtpd_parent_route,
            .helpers = parent.helpers,
            .reload = smtpd_parent_reload,
            .arg = &parent,
            .listeners = parent.fds,
            .nlisteners = parent.nfds,
            .nsandboxes = parent.nsandboxes,
            .listener_sets = parent.listener_sets,
            .exited = smtpd_parent_exited,
        };
        rc = pm_privsep_supervise(&spec);
    }
    smtpd_parent_free(&parent);
    pm_config_free(&cfg);
    return rc;
}
