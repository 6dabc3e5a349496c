/* postmesh-queue: binds queue.endpoint (submissions, workers) and queue.control (CLI),
 * keeps every message in LMDB and dispatches work. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "outside.h"
#include "pinned.h"
#include "privsep.h"
#include "queue.h"
#include "runas.h"
#include "service.h"

#define TICK_MS 250

/* The worker kind a role may take jobs of and answer for. */
static Postmesh__WorkerKind kind_of_role(enum pm_role role)
{
    switch (role) {
    case PM_ROLE_DELIVERY: return POSTMESH__WORKER_KIND__WORKER_DELIVERY;
    case PM_ROLE_MTA: return POSTMESH__WORKER_KIND__WORKER_MTA;
    case PM_ROLE_BOUNCER: return POSTMESH__WORKER_KIND__WORKER_BOUNCER;
    default: return POSTMESH__WORKER_KIND__WORKER_NONE;
    }
}

/* Beyond the bus policy (which role may send which message): what a role may say in it. A
 * worker speaks only for its own kind; only the bouncer submits DSNs, and only with the null
 * sender; smtpd cannot pass a message off as a DSN (that would suppress its bounces). */
static const char *content_refused(const struct pm_bus_sender *from, const Postmesh__BusMessage *m)
{
    if (!from->checked)
        return NULL;
    Postmesh__WorkerKind own = kind_of_role(from->role);
    switch (m->body_case) {
    case POSTMESH__BUS_MESSAGE__BODY_CREDIT:
        return m->credit->kind != own ? "kind" : NULL;
    case POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT:
        return m->job_result->kind != own ? "kind" : NULL;
    case POSTMESH__BUS_MESSAGE__BODY_SUBMIT:
        if (from->role == PM_ROLE_BOUNCER)
            return !m->submit->is_dsn || m->submit->sender[0] ? "dsn" : NULL;
        return m->submit->is_dsn ? "dsn" : NULL;
    default:
        return NULL;
    }
}

static void on_bus(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    struct queue *q = arg;
    const struct pm_bus_sender *from = pm_bus_sender(bus);
    const char *why = content_refused(from, m);
    if (why) {
        pm_log(PM_WARN, "event=bus_refused endpoint=%s key=%s role=%s body=%s reason=%s", q->cfg->queue.endpoint,
               from->name, pm_role_name(from->role), pm_bus_body_name(m->body_case), why);
        return;
    }
    switch (m->body_case) {
    case POSTMESH__BUS_MESSAGE__BODY_SUBMIT:
        queue_on_submit(q, peer, peerlen, m);
        break;
    case POSTMESH__BUS_MESSAGE__BODY_CREDIT:
        queue_on_credit(q, peer, peerlen, m->credit);
        break;
    case POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT:
        queue_on_result(q, m->job_result);
        break;
    case POSTMESH__BUS_MESSAGE__BODY_PING:
        queue_answer_ping(bus, peer, peerlen, m);
        break;
    default: /* the policy lets nothing else through */
        break;
    }
}

#define WORKERS (PM_ROLE_BIT(PM_ROLE_MTA) | PM_ROLE_BIT(PM_ROLE_DELIVERY) | PM_ROLE_BIT(PM_ROLE_BOUNCER))
#define ANYONE (WORKERS | PM_ROLE_BIT(PM_ROLE_SMTPD) | PM_ROLE_BIT(PM_ROLE_CLI))

/* Who may say what on queue.endpoint; only the CLI reaches queue.control. Credits and
 * results are small; a Submit is bounded by the socket (the biggest message, and a DSN
 * quoting one, plus room). */
static const struct pm_bus_rule endpoint_rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_SUBMIT, PM_ROLE_BIT(PM_ROLE_SMTPD) | PM_ROLE_BIT(PM_ROLE_BOUNCER), 0},
    {POSTMESH__BUS_MESSAGE__BODY_CREDIT, WORKERS, 4096},
    {POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, WORKERS, 4 << 20},
    {POSTMESH__BUS_MESSAGE__BODY_PING, ANYONE, 64},
    {0, 0, 0},
};
static const struct pm_bus_rule control_rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_CONTROL, PM_ROLE_BIT(PM_ROLE_CLI), 4096},
    {POSTMESH__BUS_MESSAGE__BODY_PING, PM_ROLE_BIT(PM_ROLE_CLI), 64},
    {0, 0, 0},
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct queue *q = arg;
    uint64_t now = queue_now();
    queue_expire_leases(q, now);
    if (q->dirty)
        queue_schedule_commit(q);
    queue_dispatch_full(q);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct queue *q = arg;
    pm_log(PM_INFO, "event=stopping signal=%d", (int)sig);
    queue_commit_now(q);
    event_base_loopbreak(q->base);
}

int main(int argc, char **argv)
{
    struct pm_config cfg;
    int init_rc = pm_service_init(argc, argv, "queue", PM_SERVICE_BUS, &cfg);
    if (init_rc != 0)
        return init_rc;
    char err[512];

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
    if (queue_store_open(&q) < 0 || queue_store_load(&q) < 0)
        return 1;
    q.base = event_base_new();
    /* Bound what a hostile or broken peer can make us buffer: the biggest message plus room. */
    struct pm_bus_policy endpoint_policy = {
        .max_message = cfg.smtpd.max_message_size + (cfg.smtpd.max_message_size / 2) + (1 << 20),
        .rules = endpoint_rules,
    };
    static const struct pm_bus_policy control_policy = {.max_message = 1 << 16, .rules = control_rules};
    q.bus = pm_bus_bind(q.base, ZMQ_ROUTER, cfg.queue.endpoint, &endpoint_policy, on_bus, &q);
    q.control = pm_bus_bind(q.base, ZMQ_ROUTER, cfg.queue.control, &control_policy, queue_on_control, &q);
    if (!q.bus || !q.control)
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

    pm_log(PM_INFO, "event=started endpoint=%s control=%s messages=%zu epoch=%016llx", cfg.queue.endpoint,
           cfg.queue.control, q.nmsgs, (unsigned long long)q.epoch);
    event_base_dispatch(q.base);

    event_free(sigterm);
    event_free(sigint);
    event_free(q.tick_ev);
    if (q.commit_ev)
        event_free(q.commit_ev);
    pm_bus_close(q.bus);
    pm_bus_close(q.control);
    queue_commit_now(&q);
    /* Free memory only: everything stays on disk for the next start. */
    for (struct job *j = q.jobs, *n; j; j = n) {
        n = j->next;
        free(j->rcpts);
        free(j);
    }
    for (struct qmsg *m = q.head, *n; m; m = n) {
        n = m->next;
        queue_msg_free(m);
    }
    free(q.workers);
    queue_store_close(&q);
    pm_aliases_free(q.aliases);
    event_base_free(q.base);
    pm_bus_context_term();
    pm_config_free(&cfg);
    pm_log(PM_INFO, "event=stopped");
    return 0;
}
