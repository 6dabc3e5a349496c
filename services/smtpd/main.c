/* postmesh-smtpd: the SMTP front end (RFC 5321 + ESMTP, STARTTLS, AUTH). A privileged
 * parent (parent.h) opens the sockets and answers questions about users; one unprivileged,
 * chrooted, seccomp-confined worker (worker.c) runs every session in one libevent loop;
 * finished messages go to the queue over the bus and are acknowledged only once committed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "parent.h"
#include "privchan.h"
#include "testhook.h"

static void usage(void)
{
    fprintf(stderr, "usage: postmesh-smtpd [-c config]\n");
    exit(2);
}

/* Thousands of sessions need thousands of descriptors: take what the hard limit allows
 * (the worker inherits the limit). */
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
    const char *path = pm_config_default_path();
    int opt;
    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        if (opt == 'c')
            path = optarg;
        else
            usage();
    }
    pm_log_init("smtpd");
    struct pm_config cfg;
    char err[512];
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "postmesh-smtpd: %s\n", err);
        return 2;
    }
    pm_log_set_debug(cfg.debug);
    /* Keys are read now: the worker creates its bus socket inside an empty chroot. */
    pm_bus_security_init(&cfg, "smtpd");
    pm_bus_security_preload("queue");
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    smtpd_testhook_init();

    struct smtpd_parent parent;
    int rc = 1;
    if (smtpd_parent_init(&parent, &cfg) == 0) {
        struct pm_worker_spec spec = {
            .name = "smtpd",
            .sandbox = {.user = SMTPD_WORKER_USER, .chroot_dir = parent.empty_dir},
            .worker_main = smtpd_worker_main,
            .answer = smtpd_parent_answer,
            .reload = smtpd_parent_reload,
            .arg = &parent,
        };
        rc = pm_privsep_supervise(&spec);
    }
    smtpd_parent_free(&parent);
    pm_config_free(&cfg);
    return rc;
}
