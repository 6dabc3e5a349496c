/* postmesh-mta: outbound SMTP (the shared client of common/smtpc.h), a job worker of kind
 * WORKER_MTA on the bus (see worker.h). */
#include <event2/event.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "privchan.h"
#include "resolve.h"
#include "runas.h"
#include "self.h"
#include "service.h"
#include "sts.h"
#include "sts_testhook.h"
#include "tls.h"
#include "worker.h"

/* How long an outbound job waits for the resolver: its own per-query timeout twice over (MX,
 * then addresses) plus slack. */
static int resolve_deadline(const struct pm_config *cfg) { return (int)cfg->resolver.timeout * 3 + 5; }

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    pm_metrics_set_unready("draining");
    event_base_loopbreak(arg);
}

/* The job worker process: everything that touches the network, unprivileged and sandboxed. */
struct mta_main_args {
    struct pm_config *cfg;
    struct mta_tls *tls; /* built by the parent: the CA stores are read before the chroot */
};

static int worker_main(int parent_fd, void *arg)
{
    struct mta_main_args *args = arg;
    struct pm_config *cfg = args->cfg;
    int rc = 1;
    struct event_base *base = event_base_new();
    struct mta_tls *tls = args->tls;
    struct mta_env env = {.base = base, .cfg = cfg, .tls = tls, .self = mta_self_new(cfg)};
    env.resolver = base ? mta_resolver_new(base, cfg->resolver.endpoint, resolve_deadline(cfg)) : NULL;
    /* MTA-STS (sts.h): libcurl and the CA bundle were made ready by main() before the sandbox. */
    if (env.resolver && cfg->mta.mta_sts)
        env.sts = mta_sts_new(base, env.resolver, cfg);
    int sts_ok = !cfg->mta.mta_sts || env.sts;
    struct mta_worker *w = env.resolver && env.self && sts_ok ? mta_worker_new(&env) : NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    if (w) {
        if (!tls)
            pm_log(PM_WARN, "event=tls_unavailable reason=\"no TLS context: STARTTLS disabled\"");
        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        event_add(sigterm, NULL);
        event_add(sigint, NULL);
        pm_metrics_serve(base, NULL, NULL);
        mta_sts_testhook_start(base, env.sts);
        pm_log(PM_INFO, "event=started queue=%s shards=%d resolver=%s remote_port=%lld max_concurrency=%lld "
               "max_per_domain=%lld tls_level=%s tls_policies=%d", cfg->queue.endpoint, cfg->queue.endpoints.n,
               cfg->resolver.endpoint, cfg->mta.remote_port, cfg->mta.max_concurrency, cfg->mta.max_per_domain,
               mta_tls_level_name(mta_policy_level(NULL, cfg->mta.tls_level, cfg->mta.tls_verify)),
               cfg->mta.tls_policy.n);
        event_base_dispatch(base);
        /* Sessions waiting for the verdict on a body they sent may finish for a moment
         * (broken by the last one done, the grace's end, or a second signal); the rest is
         * handed back now. */
        if (mta_worker_shutdown(w, 1) > 0)
            event_base_dispatch(base);
        mta_worker_shutdown(w, 0);
        rc = 0;
    } else {
        pm_log(PM_ERR, "event=startup_failed queue=%s resolver=%s", cfg->queue.endpoint, cfg->resolver.endpoint);
    }
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    mta_worker_free(w);
    mta_sts_testhook_stop();
    mta_sts_free(env.sts); /* before the resolver: it cancels its lookups there */
    mta_resolver_free(env.resolver);
    mta_self_free(env.self);
    if (base)
        event_base_free(base);
    pm_bus_context_term();
    close(parent_fd);
    return rc;
}

/* The mta's parent holds nothing its job worker process may not see; it only supervises
 * (restarts it, forwards SIGTERM). Nothing to answer. */
static void answer_nothing(const struct pm_priv_msg *req, struct pm_priv_msg *reply, void *arg)
{
    (void)req;
    (void)arg;
    reply->result = 0;
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    /* Bus keys are read here, before the job worker process's chroot. */
    int init_rc = pm_service_init(argc, argv, "mta", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    struct mta_main_args args = {.cfg = &cfg, .tls = mta_tls_new_context(&cfg)};
    /* libcurl's global state and the CA bundle, while the files are still visible; as root
     * the job worker process will run chrooted in state_dir/mta, whose sts/ keeps the
     * policies. */
    if (cfg.mta.mta_sts && mta_sts_preload(&cfg, geteuid() == 0) < 0) {
        mta_tls_free(args.tls);
        pm_config_free(&cfg);
        return 1;
    }
    char empty[4096];
    struct pm_sandbox_spec spec = {
        .name = "mta",
        .sandbox_main = worker_main,
        .answer = answer_nothing,
        .arg = &args,
    };
    /* The sandbox's user, chroot and profile are the "mta" row of common/services.def. */
    if (pm_runas_sandbox(&cfg, "mta", &spec.sandbox, empty, sizeof empty) < 0) {
        pm_log(PM_ERR, "event=startup_failed reason=\"no runas row for mta\"");
        pm_config_free(&cfg);
        return 1;
    }
    int rc = pm_privsep_supervise(&spec);
    mta_tls_free(args.tls);
    pm_config_free(&cfg);
    return rc;
}
