/* queue.endpoint and queue.control: who may say what on each (the bus policy, and what a
 * role may say beyond it), and binding both where the queue listens: queue.listen and
 * queue.control_listen (all interfaces in a container, "tcp://0.0.0.0:7701"), while
 * everyone else connects to queue.endpoint ("tcp://queue:7701": ZeroMQ takes no host name
 * in a bind). */
#include <zmq.h>

#include "log.h"
#include "queue.h"

/* The kind of job worker a role may be: the jobs it may take and answer for. */
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
 * job worker speaks only for its own kind; only the bouncer submits DSNs, and only with the
 * null sender; smtpd cannot pass a message off as a DSN (that would suppress its bounces). */
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
        pm_log(PM_WARN, "event=bus_refused endpoint=%s key=%s role=%s body=%s reason=%s", q->cfg->queue.listen,
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
    case POSTMESH__BUS_MESSAGE__BODY_ETRN:
        queue_on_etrn(q, peer, peerlen, m);
        break;
    case POSTMESH__BUS_MESSAGE__BODY_PING:
        queue_answer_ping(bus, peer, peerlen, m);
        break;
    default: /* the policy lets nothing else through */
        break;
    }
}

#define JOB_WORKERS (PM_ROLE_BIT(PM_ROLE_MTA) | PM_ROLE_BIT(PM_ROLE_DELIVERY) | PM_ROLE_BIT(PM_ROLE_BOUNCER))
#define ANYONE (JOB_WORKERS | PM_ROLE_BIT(PM_ROLE_SMTPD) | PM_ROLE_BIT(PM_ROLE_CLI))

/* Who may say what on queue.endpoint; only the CLI reaches queue.control. Credits and
 * results are small; a Submit is bounded by the socket (the biggest message, and a DSN
 * quoting one, plus room). An Etrn (smtpd only: a client's ETRN) carries one domain. */
static const struct pm_bus_rule endpoint_rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_SUBMIT, PM_ROLE_BIT(PM_ROLE_SMTPD) | PM_ROLE_BIT(PM_ROLE_BOUNCER), 0},
    {POSTMESH__BUS_MESSAGE__BODY_CREDIT, JOB_WORKERS, 4096},
    {POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT, JOB_WORKERS, 4 << 20},
    {POSTMESH__BUS_MESSAGE__BODY_ETRN, PM_ROLE_BIT(PM_ROLE_SMTPD), 512},
    {POSTMESH__BUS_MESSAGE__BODY_PING, ANYONE, 64},
    {0, 0, 0},
};
static const struct pm_bus_rule control_rules[] = {
    {POSTMESH__BUS_MESSAGE__BODY_CONTROL, PM_ROLE_BIT(PM_ROLE_CLI), 4096},
    {POSTMESH__BUS_MESSAGE__BODY_PING, PM_ROLE_BIT(PM_ROLE_CLI), 64},
    {0, 0, 0},
};

int queue_bind(struct queue *q)
{
    /* Bound what a hostile or broken peer can make us buffer: the biggest message plus room. */
    q->endpoint_policy = (struct pm_bus_policy){
        .max_message = q->cfg->smtpd.max_message_size + (q->cfg->smtpd.max_message_size / 2) + (1 << 20),
        .rules = endpoint_rules,
    };
    static const struct pm_bus_policy control_policy = {.max_message = 1 << 16, .rules = control_rules};
    q->bus = pm_bus_bind(q->base, ZMQ_ROUTER, q->cfg->queue.listen, &q->endpoint_policy, on_bus, q);
    q->control = pm_bus_bind(q->base, ZMQ_ROUTER, q->cfg->queue.control_listen, &control_policy, queue_on_control, q);
    return q->bus && q->control ? 0 : -1;
}
