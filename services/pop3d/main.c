/* postmesh-pop3d: POP3 (RFC 1939) with CAPA, STLS, AUTH PLAIN and implicit TLS over the
 * Maildir store that postmesh-delivery writes. A privileged parent (parent.h) opens the
 * sockets and has passwords checked; one unprivileged worker (worker.c), chrooted into the
 * store as vmail and confined by seccomp, runs every session. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "parent.h"

int main(int argc, char **argv)
{
    const char *path = pm_config_default_path();
    int opt;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c') {
            fprintf(stderr, "usage: %s [-c config]\n", argv[0]);
            return 2;
        }
        path = optarg;
    }
    pm_log_init("pop3d");
    struct pm_config cfg;
    char err[1024];
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    pm_log_set_debug(cfg.debug);
    signal(SIGPIPE, SIG_IGN);

    struct pop3_parent parent;
    int rc = 1;
    if (pop3_parent_init(&parent, &cfg) == 0) {
        struct pm_worker_spec spec = {
            .name = "pop3d",
            .sandbox = {.user = POP3_WORKER_USER, .chroot_dir = parent.mail_dir},
            .worker_main = pop3_worker_main,
            .answer = pop3_parent_answer,
            .reload = pop3_parent_reload,
            .arg = &parent,
        };
        rc = pm_privsep_supervise(&spec);
    }
    pop3_parent_free(&parent);
    pm_config_free(&cfg);
    return rc;
}
