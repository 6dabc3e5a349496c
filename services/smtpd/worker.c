/* The unprivileged smtpd worker: forked by the parent (parent.h), already chrooted, without
 * root and under seccomp when this runs. It serves every SMTP session on the sockets the
 * parent opened and asks the parent whatever needs the users or aliases files. */
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "parent.h"
#include "tls.h"
#include "tlspem.h"

/* The sessions gauge is read off the server at scrape time, not kept up on every connect. */
static void collect_sessions(void *arg)
{
    pm_metric_set(PM_M_SMTPD_SESSIONS, (double)((struct smtpd_server *)arg)->nsessions, NULL, NULL);
}

int smtpd_worker_main(int parent_fd, void *arg)
{
    struct smtpd_parent *p = arg; /* this process's copy of the parent's state */
    struct pm_config *cfg = p->cfg;
    char err[512], v[PM_LOGV_SIZE];
    signal(SIGHUP, SIG_IGN); /* reloads are the parent's (it pushes the new certificate) */
    /* A fixed threshold: big buffers (a whole message made contiguous for the bus) are always
     * mapped and unmapped, never left in the heap after glibc raised the threshold past them. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    pm_priv_helper_forget(p->lookup);
    pm_priv_helper_forget(p->auth);
    struct smtpd_tls *tls = NULL;
    if (p->cert_pem) {
        tls = smtpd_tls_new(p->cert_pem, p->key_pem, err, sizeof err);
        pm_tls_pem_free(p->key_pem); /* the context has the key; no second copy lying around */
        p->key_pem = NULL;
        if (!tls) {
            pm_log(PM_ERR, "event=tls_error error=%s", PM_LV(v, err));
            return 1;
        }
    }
    struct event_base *base = event_base_new();
    struct smtpd_server srv = {0};
    if (!base || smtpd_server_init(&srv, cfg, base, p->fds, p->nfds, tls, parent_fd) < 0) {
        smtpd_server_free(&srv);
        if (base)
            event_base_free(base);
        pm_bus_context_term();
        return 1;
    }
    pm_metrics_on_collect(collect_sessions, &srv);
    pm_metrics_serve(base, NULL, NULL);
    pm_log(PM_INFO, "event=started listeners=%d queue=%s shards=%d tls=%s max_connections=%lld", srv.nlisteners,
           cfg->queue.endpoint, cfg->queue.endpoints.n, srv.tls ? "yes" : "no", cfg->smtpd.max_connections);
    event_base_dispatch(base);

    smtpd_server_free(&srv);
    event_base_free(base);
    pm_bus_context_term();
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
