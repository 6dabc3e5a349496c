/* postmesh-pop3d: POP3 (RFC 1939) with CAPA, STLS, AUTH PLAIN and implicit TLS over the
 * Maildir store that postmesh-delivery writes. A privileged parent (parent.h) opens the
 * sockets and has passwords checked; one unprivileged sandbox (sandbox.c), chrooted into the
 * store as postmesh-pop3d (group vmail, runas.c) and confined by seccomp, runs every
 * session. */
#include "config.h"
#include "parent.h"
#include "service.h"

int main(int argc, char **argv)
{
    struct pm_config cfg;
    int init_rc = pm_service_init(argc, argv, "pop3d", 0, &cfg); /* no bus: pop3d reads the store only */
    if (init_rc != 0)
        return init_rc;

    struct pop3_parent parent;
    int rc = 1;
    if (pop3_parent_init(&parent, &cfg) == 0) {
        struct pm_sandbox_spec spec = {
            .name = "pop3d",
            .sandbox = parent.sandbox,
            .sandbox_main = pop3_sandbox_main,
            .answer = pop3_parent_answer,
            .route = pop3_parent_route,
            .helpers = parent.helpers,
            .reload = pop3_parent_reload,
            .arg = &parent,
            .listeners = parent.fds,
            .nlisteners = parent.nfds,
        };
        rc = pm_privsep_supervise(&spec);
    }
    pop3_parent_free(&parent);
    pm_config_free(&cfg);
    return rc;
}
