/* An smtpd sandbox, the unprivileged session process: forked by the parent (parent.h),
 * already chrooted, without root and under seccomp when this runs. It serves its share of
 * the SMTP sessions on its own set of the listening sockets (one set per sandbox) and asks
 * the parent whatever needs the users or aliases files. Besides: it keeps its session count
 * in the sandboxes' shared tally (so smtpd.max_connections holds for all of them), and its
 * metrics in its own table of the shared ones, so the metrics port answers for the whole
 * smtpd. */
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "parent.h"
#include "proxyin.h"
#include "session.h"
#include "tally.h"
#include "tls.h"
#include "tlspem.h"

#define TALLY_MS 100 /* a closed session leaves the others' view of us at most this late */

static struct smtpd_parent *parent; /* this process's copy */
static int sandbox_ix;

/* Our sessions, for the other sandboxes' admission and in our metrics table (whichever
 * sandbox answers a scrape adds up every sandbox's gauge). */
static void publish(struct smtpd_server *srv)
{
    smtpd_tally_set(parent->tally, sandbox_ix, srv->nsessions);
    pm_metric_set(PM_M_SMTPD_SESSIONS, (double)srv->nsessions, NULL, NULL);
}

static void collect_sessions(void *arg) { publish(arg); }

/* Readiness: not while any sandbox drains (tally.h). */
static const char *ready(void *arg)
{
    (void)arg;
    return smtpd_tally_draining(parent->tally) ? "draining" : NULL;
}

static void on_tally(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publish(arg);
}

/* Admission across sandboxes: the room the others' sessions leave, so
 * smtpd.max_connections holds for all together. Two sandboxes admitting at the same instant
 * can overshoot by one each; the next accept sees it. */
static void before_accept(struct smtpd_server *srv)
{
    long long room = srv->cfg->smtpd.max_connections - smtpd_tally_others(parent->tally, sandbox_ix);
    srv->max_sessions = room > 0 ? room : 0;
}

int smtpd_sandbox_main(int parent_fd, void *arg)
{
    struct smtpd_parent *p = parent = arg;
    struct pm_config *cfg = p->cfg;
    char err[512], v[PM_LOGV_SIZE];
    sandbox_ix = pm_privsep_sandbox_index();
    smtpd_tally_mine = p->tally;
    smtpd_tally_set_draining(p->tally, 0);
    pm_metrics_use_slot(sandbox_ix); /* our counters, added up with the others' at a scrape */
    signal(SIGHUP, SIG_IGN); /* reloads are the parent's (it pushes the new certificate) */
    /* A fixed threshold: big buffers (a whole message made contiguous for the bus) are always
     * mapped and unmapped, never left in the heap after glibc raised the threshold past them. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    pm_priv_helper_forget(p->lookup);
    for (int i = 0; i < p->nauth; i++)
        pm_priv_helper_forget(p->auth[i]);
    /* Our own set of listeners; the other sandboxes' sets are theirs alone. */
    const struct pm_listener *fds = p->fds;
    if (p->listener_sets > 1) {
        for (int s = 0; s < p->listener_sets; s++)
            for (int i = 0; s != sandbox_ix && i < p->nfds; i++)
                close(p->fds[s * p->nfds + i].fd);
        fds = p->fds + sandbox_ix * p->nfds;
    }
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
    if (!base || smtpd_server_init(&srv, cfg, base, fds, p->nfds, tls, parent_fd) < 0) {
        smtpd_server_free(&srv);
        if (base)
            event_base_free(base);
        pm_bus_context_term();
        return 1;
    }
    if (p->nsandboxes > 1) {
        srv.before_accept = before_accept;
        srv.after_accept = publish;
    }
    publish(&srv);
    struct event *ev_tally = event_new(base, -1, EV_PERSIST, on_tally, &srv);
    struct timeval tally_tv = {0, TALLY_MS * 1000};
    if (ev_tally && p->nsandboxes > 1)
        event_add(ev_tally, &tally_tv);
    /* Every sandbox serves the metrics port, and any of them answers for all: the values of
     * every sandbox are added up (metrics.h). So a scrape or a readiness probe still gets an
     * answer while one sandbox restarts or has finished draining. */
    pm_metrics_on_collect(collect_sessions, &srv);
    pm_metrics_serve(base, ready, NULL);
    /* event=started once every sandbox serves (the last to get here says it; a successor
     * after a crash says it again); the ones before say sandbox_ready. */
    int ready = smtpd_tally_ready(p->tally);
    pm_log(PM_INFO, "event=%s listeners=%d queue=%s shards=%d tls=%s max_connections=%lld index=%d sandboxes=%d",
           ready >= p->nsandboxes ? "started" : "sandbox_ready", srv.nlisteners, cfg->queue.endpoint,
           cfg->queue.endpoints.n, srv.tls ? "yes" : "no", cfg->smtpd.max_connections, sandbox_ix, p->nsandboxes);
    event_base_dispatch(base);

    if (ev_tally)
        event_free(ev_tally);
    smtpd_server_free(&srv);
    smtpd_tally_set(p->tally, sandbox_ix, 0);
    event_base_free(base);
    pm_bus_context_term();
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
