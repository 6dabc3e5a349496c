/* postmesh-queue: binds queue.listen (submissions, job workers, ETRN) and queue.control_listen
 * (CLI), which everyone else reaches as queue.endpoint and queue.control; keeps every message
 * in LMDB and dispatches work. One process is one shard: several shards each own their store. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "dkim_sign.h"
#include "log.h"
#include "outside.h"
#include "pinned.h"
#include "privsep.h"
#include "queue.h"
#include "runas.h"
#include "service.h"
#include "tlsrpt.h"

#define TICK_MS 250

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    queue_tick(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct queue *q = arg;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    queue_commit_now(q);
    event_base_loopbreak(q->base);
}

/* Signing threads: one per CPU, 1 to 4 (the event loop keeps one core busy of its own). */
#define DKIM_POOL_JOBS 4096 /* submissions in the pool at once; beyond it intake signs inline */

static int dkim_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

static void on_signed(void *arg, Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen,
                      const struct dkim_outcome *o)
{
    queue_submit_admit(arg, bm, peer, peerlen, 1, o);
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    int init_rc = pm_service_init(argc, argv, "queue", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    char err[512];
    /* With several shards nobody can tell which of queue.endpoint is this process: the
     * config must say where it binds (config.c defaults the binds only for one shard). */
    if (!cfg.queue.listen[0] || !cfg.queue.control_listen[0]) {
        fprintf(stderr, "postmesh-queue: %s: queue.endpoint lists %d shards: set queue.listen and "
                "queue.control_listen (where this shard binds, e.g. \"tcp://*:7701\")\n", cfg.path,
                cfg.queue.endpoints.n);
        pm_config_free(&cfg);
        return 2;
    }

    struct queue q = {.cfg = &cfg};
    /* Job ids restart with every run; the epoch tells this run's jobs from any earlier one's
     * whose results a worker may still send (docs/internals.md "Job identity"). */
    if (getrandom(&q.epoch, sizeof q.epoch, 0) != sizeof q.epoch)
        q.epoch = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 40);
    q.epoch |= 1; /* never 0: a result without an epoch is never this run's */
    pm_pinned_add(cfg.aliases_file); /* re-read from inside the chroot, through the reader */
    const struct pm_runas *runas = pm_runas_find("queue");
    if (pm_outside_start(runas->user) < 0)
        return 1;
    q.aliases = pm_aliases_load(cfg.aliases_file, err, sizeof err);
    if (!q.aliases) {
        fprintf(stderr, "postmesh-queue: %s\n", err);
        return 2;
    }
    /* The DKIM keys are read here, as root (or the queue's user), before the chroot: they
     * are readable by the queue's user only and never reach another service. */
    q.dkim = queue_dkim_load(&cfg, err, sizeof err);
    if (!q.dkim) {
        fprintf(stderr, "postmesh-queue: %s\n", err);
        return 2;
    }
    q.active_limit = (size_t)cfg.queue.active_limit;
    if (queue_hash_init(&q, q.active_limit) < 0) {
        fprintf(stderr, "postmesh-queue: out of memory\n");
        return 1;
    }
    if (queue_store_open(&q) < 0)
        return 1;
    int fill = queue_testhook_fill(&q);
    if (fill >= 0) {
        queue_store_close(&q);
        return fill;
    }
    if (queue_store_load(&q) < 0)
        return 1;
    q.base = event_base_new();
    if (queue_bind(&q) < 0)
        return 1;
    /* Least privilege: the queue needs nothing but its LMDB directory (and the bus). */
    char dir[4096];
    pm_config_state_path(&cfg, "queue", dir, sizeof dir);
    if (pm_privsep_chown_tree(dir, runas->user) < 0 ||
        pm_privsep_drop(&(struct pm_sandbox){.user = runas->user, .chroot_dir = dir}) < 0)
        return 1;

    struct timeval tick = {0, TICK_MS * 1000};
    q.tick_ev = event_new(q.base, -1, EV_PERSIST, on_tick, &q);
    event_add(q.tick_ev, &tick);
    struct event *sigterm = evsignal_new(q.base, SIGTERM, on_signal, &q);
    struct event *sigint = evsignal_new(q.base, SIGINT, on_signal, &q);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);

    if (queue_dkim_nkeys(q.dkim) > 0)
        q.dkim_pool = queue_dkim_pool_new(q.base, q.dkim, dkim_threads(), DKIM_POOL_JOBS, on_signed, &q);
    if (queue_metrics_serve(&q) < 0)
        return 1;
    if (queue_tlsrpt_init(&q) < 0) /* TLS report counts (RFC 8460) and the daily timer */
        return 1;
    pm_log(PM_INFO, "event=started listen=%s control_listen=%s shards=%d messages=%zu in_memory=%zu epoch=%016llx",
           cfg.queue.listen, cfg.queue.control_listen, cfg.queue.endpoints.n, q.nstored, q.nmsgs,
           (unsigned long long)q.epoch);
    event_base_dispatch(q.base);

    queue_dkim_pool_free(q.dkim_pool); /* before the bus closes: what it still holds was never answered */
    event_free(sigterm);
    event_free(sigint);
    event_free(q.tick_ev);
    if (q.commit_ev)
        event_free(q.commit_ev);
    pm_bus_close(q.bus);
    pm_bus_close(q.control);
    queue_commit_now(&q);
    queue_tlsrpt_free(&q); /* after the last commit: what it counted is written */
    queue_etrn_free(&q);
    queue_free_memory(&q);
    queue_store_close(&q);
    pm_aliases_free(q.aliases);
    queue_dkim_free(q.dkim);
    event_base_free(q.base);
    pm_bus_context_term();
    pm_config_free(&cfg);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
