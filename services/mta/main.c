/* postmesh-mta: the outbound SMTP client, a WORKER_MTA on the bus (see worker.h). */
#include <event2/event.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "delivery.h"
#include "log.h"
#include "resolve.h"
#include "tls.h"
#include "worker.h"

/* How long a delivery waits for the resolver: its own per-query timeout twice over (MX,
 * then addresses) plus slack. */
static int resolve_deadline(const struct pm_config *cfg) { return (int)cfg->resolver.timeout * 3 + 5; }

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    const char *path = pm_config_default_path();
    int opt;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt == 'c') {
            path = optarg;
        } else {
            fprintf(stderr, "usage: postmesh-mta [-c FILE]\n");
            return 2;
        }
    }
    pm_log_init("mta");
    struct pm_config cfg;
    char err[512];
    if (pm_config_load(path, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    pm_log_set_debug(cfg.debug);
    signal(SIGPIPE, SIG_IGN);
    pm_bus_security_init(&cfg, "mta");

    int rc = 1;
    struct event_base *base = event_base_new();
    SSL_CTX *tls = mta_tls_context(cfg.mta.tls_verify);
    struct mta_env env = {.base = base, .cfg = &cfg, .tls_ctx = tls};
    env.resolver = base ? mta_resolver_new(base, cfg.resolver.endpoint, resolve_deadline(&cfg)) : NULL;
    struct mta_worker *w = env.resolver ? mta_worker_new(&env) : NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    if (w) {
        if (!tls)
            pm_log(PM_WARN, "event=tls_unavailable reason=\"no TLS context: STARTTLS disabled\"");
        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        event_add(sigterm, NULL);
        event_add(sigint, NULL);
        pm_log(PM_INFO, "event=started queue=%s resolver=%s remote_port=%lld max_concurrency=%lld max_per_domain=%lld "
               "tls_verify=%s", cfg.queue.endpoint, cfg.resolver.endpoint, cfg.mta.remote_port,
               cfg.mta.max_concurrency, cfg.mta.max_per_domain, cfg.mta.tls_verify ? "yes" : "no");
        event_base_dispatch(base);
        mta_worker_shutdown(w);
        rc = 0;
    } else {
        pm_log(PM_ERR, "event=startup_failed queue=%s resolver=%s", cfg.queue.endpoint, cfg.resolver.endpoint);
    }
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    mta_worker_free(w);
    mta_resolver_free(env.resolver);
    if (tls)
        SSL_CTX_free(tls);
    if (base)
        event_base_free(base);
    pm_bus_context_term();
    pm_config_free(&cfg);
    return rc;
}
