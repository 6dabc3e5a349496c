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

    struct pm_mailfront parent;
    int rc = 1;
    if (pm_mailfront_init(&parent, &cfg, "pop3d", &cfg.pop3d.listen, "pop3s") == 0)
        rc = pm_mailfront_supervise(&parent, pop3_sandbox_main);
    pm_mailfront_free(&parent);
    pm_config_free(&cfg);
    return rc;
}
