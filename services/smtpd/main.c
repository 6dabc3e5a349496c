/* postmesh-smtpd: the SMTP front end (RFC 5321 + ESMTP, STARTTLS, AUTH). One process,
 * one libevent loop, every session a small state machine; finished messages go to the
 * queue over the bus and are acknowledged only once committed. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "server.h"

static void usage(void)
{
    fprintf(stderr, "usage: postmesh-smtpd [-c config]\n");
    exit(2);
}

/* Thousands of sessions need thousands of descriptors: take what the hard limit allows. */
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
    pm_bus_security_init(&cfg, "smtpd");
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct event_base *base = event_base_new();
    struct smtpd_server srv = {0};
    if (!base || smtpd_server_init(&srv, &cfg, base) < 0) {
        smtpd_server_free(&srv);
        if (base)
            event_base_free(base);
        pm_bus_context_term();
        pm_config_free(&cfg);
        return 1;
    }
    pm_log(PM_INFO, "event=started listeners=%d queue=%s tls=%s max_connections=%lld", srv.nlisteners,
           cfg.queue.endpoint, srv.tls ? "yes" : "no", cfg.smtpd.max_connections);
    event_base_dispatch(base);

    smtpd_server_free(&srv);
    event_base_free(base);
    pm_bus_context_term();
    pm_config_free(&cfg);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
