/* The unprivileged pop3d sandbox: forked by the parent (parent.h), already chrooted into
 * the mail store as postmesh-pop3d (group vmail) and under seccomp when this runs. It
 * serves every POP3 session on the sockets the parent opened (mailfront_loop.h: accept,
 * PROXY headers, TLS pushes, the per-address table) and asks the parent to check
 * passwords. */
#include <event2/event.h>
#include <stdio.h>

#include "clients.h"
#include "log.h"
#include "mailfront_loop.h"
#include "metrics.h"
#include "parent.h"
#include "session.h"

static void start(void *arg, int fd, const struct sockaddr *sa, int implicit_tls, const struct sockaddr *proxy)
{
    pop3_session_start(arg, fd, sa, implicit_tls, proxy);
}

static long sessions(void *arg) { return ((struct pop3_server *)arg)->nsessions; }

static void stop(void *arg, int sig) { pop3_drain_start(arg, sig); }

static const struct pm_mailfront_ops ops = {.start = start, .sessions = sessions, .stop = stop};

int pop3_sandbox_main(int parent_fd, void *arg)
{
    struct pm_mailfront *p = arg; /* this process's copy of the parent's state */
    const struct pm_config *cfg = p->cfg;
    struct pop3_server srv = {.cfg = cfg};
    snprintf(srv.mail_root, sizeof srv.mail_root, "%s", p->mail_root);
    struct pm_mailfront_loop_spec spec = {
        .limits = {
            .max_per_ip = (int)cfg->pop3d.max_connections_per_ip,
            .auth_failures = (long)cfg->pop3d.auth_failures,
            .auth_lockout = (long)cfg->pop3d.auth_lockout,
            .auth_in_flight = POP3_AUTH_PER_CLIENT,
        },
        .max_connections = cfg->pop3d.max_connections,
        .timeout = cfg->pop3d.timeout,
        .sessions_metric = PM_M_POP3D_SESSIONS,
        .ops = &ops,
        .arg = &srv,
    };
    struct pm_mailfront_loop loop;
    int rc = 1;
    if (pm_mailfront_loop_init(&loop, p, parent_fd, &spec) == 0) {
        srv.loop = &loop;
        srv.base = loop.base;
        srv.clients = loop.clients;
        srv.priv = loop.priv;
        event_base_dispatch(srv.base);
        pop3_session_close_all(&srv);
        pop3_drain_free(&srv);
        pm_log(PM_INFO, "event=stopped");
        rc = 0;
    }
    pm_mailfront_loop_free(&loop);
    return rc;
}
