/* postmesh-bouncer: turns the queue's bounce jobs into RFC 3464 DSNs and submits them back
 * to the queue with a null sender. No network side of its own: only the bus. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "privsep.h"
#include "runas.h"
#include "service.h"
#include "worker.h"

#define DRAIN_MS 3000

static struct bouncer_worker *worker;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    pm_metrics_set_unready("draining");
    if (worker)
        bouncer_worker_drain(worker, DRAIN_MS); /* ends the loop when done */
    else
        event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    int init_rc = pm_service_init(argc, argv, "bouncer", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    char err[512];
    struct pm_sandbox sb;

    struct event_base *base = event_base_new();
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    struct bouncer_worker_config wc = {
        .endpoint = cfg.queue.endpoint,
        .endpoints = (const char *const *)cfg.queue.endpoints.v,
        .nendpoints = cfg.queue.endpoints.n,
        .hostname = cfg.hostname,
        .slots = (int)cfg.bouncer.concurrency,
        .submit_timeout_ms = (int)(cfg.bouncer.submit_timeout * 1000),
        .delay_warning = cfg.queue.delay_warning,
        .max_lifetime = cfg.queue.max_lifetime,
    };
    struct bouncer_worker *w = worker = bouncer_worker_new(base, &wc);
    int rc = 0;
    if (!w) {
        pm_log(PM_ERR, "event=fatal reason=bus endpoint=%s", cfg.queue.endpoint);
        rc = 1;
    } else if (pm_runas_sandbox(&cfg, "bouncer", &sb, err, sizeof err) < 0 || pm_privsep_drop(&sb) < 0) {
        rc = 1; /* least privilege: the bouncer needs only the bus */
    } else {
        pm_metrics_serve(base, NULL, NULL);
        pm_log(PM_INFO, "event=started endpoint=%s shards=%d slots=%d", cfg.queue.endpoint, cfg.queue.endpoints.n,
               wc.slots);
        event_base_dispatch(base);
        worker = NULL;
        bouncer_worker_free(w);
    }
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    pm_bus_context_term();
    pm_config_free(&cfg);
    if (rc == 0)
        pm_log(PM_INFO, "event=stopped");
    return rc;
}
