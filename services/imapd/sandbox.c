/* The unprivileged imapd sandbox: forked by the parent (parent.h), already chrooted into
 * the mail store as postmesh-imapd (group vmail) and under seccomp when this runs. It
 * serves every IMAP session on the sockets the parent opened (mailfront.h's loop: accept,
 * PROXY headers, TLS pushes, the per-address table), watches folders for IDLE (idle.c)
 * and asks the parent to check passwords. */
#include <event2/event.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "log.h"
#include "mailfront_loop.h"
#include "metrics.h"
#include "mime.h"
#include "parent.h"
#include "session.h"

static void start(void *arg, int fd, const struct sockaddr *sa, int implicit_tls, const struct sockaddr *proxy)
{
    imap_session_start(arg, fd, sa, implicit_tls, proxy);
}

static long sessions(void *arg) { return ((struct imap_server *)arg)->nsessions; }

static void stop(void *arg, int sig) { imap_drain_start(arg, sig); }

static const struct pm_mailfront_ops ops = {.start = start, .sessions = sessions, .stop = stop};

int imap_sandbox_main(int parent_fd, void *arg)
{
    struct pm_mailfront *p = arg; /* this process's copy of the parent's state */
    const struct pm_config *cfg = p->cfg;
    struct imap_server srv = {.cfg = cfg, .inotify_fd = -1};
    snprintf(srv.mail_root, sizeof srv.mail_root, "%s", p->mail_root);
    struct pm_client_limits lim = {
        .max_per_ip = (int)cfg->imapd.max_connections_per_ip,
        .auth_failures = (long)cfg->imapd.auth_failures,
        .auth_lockout = (long)cfg->imapd.auth_lockout,
        .auth_in_flight = IMAP_AUTH_PER_CLIENT,
    };
    struct pm_mailfront_loop_spec spec = {
        .limits = lim,
        .max_connections = cfg->imapd.max_connections,
        .timeout = cfg->imapd.timeout,
        .sessions_metric = PM_M_IMAPD_SESSIONS,
        .ops = &ops,
        .arg = &srv,
    };
    struct pm_mailfront_loop loop;
    int rc = 1;
    if (pm_mailfront_loop_init(&loop, p, parent_fd, &spec) == 0) {
        srv.base = loop.base;
        srv.clients = loop.clients;
        srv.priv = loop.priv;
        srv.loop = &loop;
        imap_mime_init();
        if (imap_idle_init(&srv) == 0) {
            rc = 0;
            event_base_dispatch(srv.base);
        }
        imap_session_close_all(&srv);
        imap_drain_free(&srv);
        imap_idle_free(&srv);
        imap_mime_shutdown();
    }
    pm_mailfront_loop_free(&loop);
    pm_log(PM_INFO, "event=stopped");
    return rc;
}
