/* postmesh-resolver: every DNS lookup of the system, over the bus (see server.h). */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "outside.h"
#include "privsep.h"
#include "runas.h"
#include "lookup.h"
#include "server.h"
#include "service.h"
#include "trust_anchors.h"

#define CACHE_ENTRIES 50000

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    int init_rc = pm_service_init(argc, argv, "resolver", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    const char *path = cfg.path;

    int nns = cfg.resolver.nameservers.n;
    if (nns == 0) {
        fprintf(stderr, "%s:0: resolver.nameservers is empty (the resolver never reads /etc/resolv.conf)\n", path);
        pm_config_free(&cfg);
        return 2;
    }
    struct resolver_ns *ns = calloc((size_t)nns, sizeof *ns);
    for (int i = 0; ns && i < nns; i++) {
        if (resolver_ns_parse(cfg.resolver.nameservers.v[i], &ns[i]) < 0) {
            fprintf(stderr, "%s:0: resolver.nameservers: '%s' is not an IP address or IP:port\n", path,
                    cfg.resolver.nameservers.v[i]);
            free(ns);
            pm_config_free(&cfg);
            return 2;
        }
    }

    /* DNSSEC: the trust anchors are read now, while the files are there to read. */
    struct pm_trust_anchors anchors = {0};
    if (cfg.resolver.dnssec) {
        char err[512];
        if (pm_trust_anchors_load_config(&cfg, &anchors, err, sizeof err) < 0) {
            fprintf(stderr, "%s:0: resolver.trust_anchors: %s\n", path, err);
            pm_trust_anchors_free(&anchors);
            free(ns);
            pm_config_free(&cfg);
            return 2;
        }
    }

    const struct pm_runas *runas = pm_runas_find("resolver");
    if (pm_outside_start(runas->user) < 0) { /* re-reads the keys allowlist from the chroot */
        pm_trust_anchors_free(&anchors);
        free(ns);
        pm_config_free(&cfg);
        return 1;
    }
    int rc = 1;
    struct event_base *base = event_base_new();
    struct resolver_transport *t = NULL;
    if (ns && base && cfg.resolver.dnssec) {
        struct resolver_unbound_conf uc = {(const char *const *)anchors.v, anchors.n, RESOLVER_MAX_TTL,
                                           (uint32_t)cfg.resolver.negative_ttl};
        char err[512];
        t = resolver_transport_new_unbound(base, ns, nns, (int)cfg.resolver.timeout * 1000, &uc, err, sizeof err);
        if (!t) {
            char why[PM_LOGV_SIZE];
            pm_log(PM_ERR, "event=startup_failed reason=dnssec error=%s", PM_LV(why, err));
        }
    } else if (ns && base) {
        t = resolver_transport_new(base, ns, nns, (int)cfg.resolver.timeout * 1000);
    }
    struct resolver_cache *cache = resolver_cache_new(CACHE_ENTRIES);
    struct resolver_queries *q = t && cache ? resolver_queries_new(t, cache, (uint32_t)cfg.resolver.negative_ttl)
                                            : NULL;
    struct resolver_server *srv = q ? resolver_server_new(base, cfg.resolver.listen, q) : NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    if (srv) {
        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        event_add(sigterm, NULL);
        event_add(sigint, NULL);
        /* Least privilege: nothing but sockets from here on. */
        char empty[4096];
        if (pm_privsep_drop(&(struct pm_sandbox){.user = runas->user,
                                                 .chroot_dir = pm_config_state_path(&cfg, "empty", empty, sizeof empty)}) < 0) {
            pm_log(PM_ERR, "event=startup_failed reason=privsep");
            exit(1);
        }
        char list[256] = "";
        for (int i = 0; i < nns; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", ns[i].text);
        pm_metrics_serve(base, NULL, NULL);
        pm_log(PM_INFO, "event=started listen=%s nameservers=%s timeout=%lld negative_ttl=%lld dnssec=%s anchors=%d",
               cfg.resolver.listen, list, cfg.resolver.timeout, cfg.resolver.negative_ttl,
               cfg.resolver.dnssec ? "yes" : "no", anchors.n);
        event_base_dispatch(base);
        rc = 0;
    } else {
        pm_log(PM_ERR, "event=startup_failed listen=%s", cfg.resolver.listen);
    }

    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    resolver_server_free(srv);
    resolver_transport_free(t); /* no answer can arrive after this */
    resolver_lookup_free_all();
    resolver_queries_free(q);
    resolver_cache_free(cache);
    if (base)
        event_base_free(base);
    pm_bus_context_term();
    pm_trust_anchors_free(&anchors);
    free(ns);
    pm_config_free(&cfg);
    return rc;
}
