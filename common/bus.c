/* The bus's sockets in a libevent loop (bus.h): each frame received is decoded, held to the
 * binding socket's policy (who may send which body, how big), then to its body's rules
 * (bus_valid.h), and only then handed to the handler. Frames on raw sockets: bus_frame.c;
 * CurveZMQ and ZAP: bus_security.c. */
#include "bus.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "allowlist.h"
#include "bus_valid.h"
#include "log.h"
#include "metrics.h"

/* At most this many messages per callback before yielding to other events. */
#define DRAIN_BATCH 512
#define BODY_CASES 32 /* above the highest BusMessage body field number */

struct pm_bus {
    void *sock;
    int type;
    struct event *ev;
    pm_bus_handler handler;
    void *arg;
    char endpoint[256];
    int stolen; /* the handler kept the current message (pm_bus_steal) */
    const struct pm_bus_policy *policy; /* binding sockets only */
    struct pm_bus_sender sender;        /* of the message being handled */
    char sender_uid[PM_KEY_Z85];        /* ZAP User-Id (the key, Z85) the sender was looked up by */
    unsigned sender_gen;                /* allowlist generation of that lookup */
    uint64_t refused[BODY_CASES];       /* decoded messages refused as invalid, by body */
};

static void *bus_ctx;

void *pm_bus_context(void)
{
    if (!bus_ctx) {
        bus_ctx = zmq_ctx_new();
        zmq_ctx_set(bus_ctx, ZMQ_IO_THREADS, 1);
    }
    return bus_ctx;
}

void pm_bus_context_term(void)
{
    pm_metrics_bus_closed(NULL);
    if (bus_ctx)
        zmq_ctx_term(bus_ctx);
    bus_ctx = NULL;
}

/* The bus's socket policy: no linger, deep queues, and for clients ZMQ_IMMEDIATE. */
static int prepare_socket(void *sock, int is_server)
{
    int zero = 0, one = 1, hwm = 100000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (!is_server) {
        /* Queue nothing for a peer that is not connected: the sender learns at once and can
         * answer 451 instead of a message sitting in a buffer nobody reads. */
        zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one);
        int ivl = 100, max = 2000;
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
    }
    return 0;
}

const char *pm_bus_body_name(Postmesh__BusMessage__BodyCase body)
{
    switch (body) {
    case POSTMESH__BUS_MESSAGE__BODY_SUBMIT: return "submit";
    case POSTMESH__BUS_MESSAGE__BODY_SUBMIT_REPLY: return "submit_reply";
    case POSTMESH__BUS_MESSAGE__BODY_CREDIT: return "credit";
    case POSTMESH__BUS_MESSAGE__BODY_JOB: return "job";
    case POSTMESH__BUS_MESSAGE__BODY_JOB_RESULT: return "job_result";
    case POSTMESH__BUS_MESSAGE__BODY_CONTROL: return "control";
    case POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY: return "control_reply";
    case POSTMESH__BUS_MESSAGE__BODY_RESOLVE: return "resolve";
    case POSTMESH__BUS_MESSAGE__BODY_RESOLVE_REPLY: return "resolve_reply";
    case POSTMESH__BUS_MESSAGE__BODY_PING: return "ping";
    case POSTMESH__BUS_MESSAGE__BODY_ETRN: return "etrn";
    case POSTMESH__BUS_MESSAGE__BODY_ETRN_REPLY: return "etrn_reply";
    default: return "unknown";
    }
}

const struct pm_bus_sender *pm_bus_sender(const struct pm_bus *bus) { return &bus->sender; }

/* Who sent part: the key ZAP admitted (its Z85 is the User-Id), looked up again in the
 * current allowlist, so a key removed since the handshake has no role any more. */
static void identify_sender(struct pm_bus *bus, zmq_msg_t *part)
{
    struct pm_bus_sender *s = &bus->sender;
    if (!pm_bus_roles_known()) {
        *s = (struct pm_bus_sender){.role = PM_ROLE_NONE, .name = "-", .checked = 0};
        return;
    }
    const char *uid = zmq_msg_gets(part, "User-Id");
    if (!uid)
        uid = "";
    unsigned gen = pm_allowlist_generation();
    if (gen == bus->sender_gen && strcmp(uid, bus->sender_uid) == 0)
        return; /* the same peer as last time, and the allowlist has not changed */
    s->checked = 1;
    if (!pm_allowlist_find_z85(uid, &s->role, s->name)) {
        s->role = PM_ROLE_NONE;
        snprintf(s->name, sizeof s->name, "unlisted");
    }
    snprintf(bus->sender_uid, sizeof bus->sender_uid, "%s", uid);
    bus->sender_gen = gen;
}

static const struct pm_bus_rule *find_rule(const struct pm_bus_policy *p, Postmesh__BusMessage__BodyCase body)
{
    for (const struct pm_bus_rule *r = p->rules; r && r->body; r++)
        if (r->body == body)
            return r;
    return NULL;
}

static int role_sends_anything(const struct pm_bus_policy *p, enum pm_role role)
{
    for (const struct pm_bus_rule *r = p->rules; r && r->body; r++)
        if (r->roles & PM_ROLE_BIT(role))
            return 1;
    return 0;
}

static void refuse(struct pm_bus *bus, const char *body, const char *reason, size_t size)
{
    pm_log(PM_WARN, "event=bus_refused endpoint=%s key=%s role=%s body=%s reason=%s bytes=%zu", bus->endpoint,
           bus->sender.name, pm_role_name(bus->sender.role), body, reason, size);
}

/* A message that breaks the rules of its body: refused with its line, and a request that has
 * an answer is answered, so its sender neither waits nor asks again. Refusals by policy
 * (role, size) stay unanswered: no oracle for who may ask. */
static void refuse_invalid(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, const Postmesh__BusMessage *m,
                           const struct pm_bus_invalid *why, size_t size)
{
    pm_bus_log_invalid(bus->endpoint, bus->sender.name, bus->sender.role, m, why, size);
    if ((unsigned)m->body_case < BODY_CASES)
        bus->refused[m->body_case]++;
    struct pm_bus_refusal answer;
    if (bus->policy && peerlen && pm_bus_refusal(m, why, &answer))
        pm_bus_send_to(bus, peer, peerlen, &answer.msg);
}

uint64_t pm_bus_refused(const struct pm_bus *bus, Postmesh__BusMessage__BodyCase body)
{
    return (unsigned)body < BODY_CASES ? bus->refused[body] : 0;
}

static void dispatch_one(struct pm_bus *bus)
{
    zmq_msg_t id, part;
    uint8_t peer[256];
    size_t peerlen = 0;
    int more = 0;
    size_t moresz = sizeof more;

    if (bus->type == ZMQ_ROUTER) {
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, bus->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        peerlen = zmq_msg_size(&id) < sizeof peer ? zmq_msg_size(&id) : sizeof peer;
        memcpy(peer, zmq_msg_data(&id), peerlen);
        zmq_msg_close(&id);
    }
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, bus->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return;
    }
    /* One message is one frame; discard any extra frames a hostile peer sent. */
    zmq_getsockopt(bus->sock, ZMQ_RCVMORE, &more, &moresz);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, bus->sock, 0);
        zmq_msg_close(&extra);
        zmq_getsockopt(bus->sock, ZMQ_RCVMORE, &more, &moresz);
    }
    size_t size = zmq_msg_size(&part);
    const struct pm_bus_policy *policy = bus->policy;
    if (policy) {
        identify_sender(bus, &part);
        /* A key with no business here is turned away before its bytes are even decoded. */
        if (bus->sender.checked && !role_sends_anything(policy, bus->sender.role)) {
            refuse(bus, "any", "role", size);
            zmq_msg_close(&part);
            return;
        }
    }
    Postmesh__BusMessage *m = postmesh__bus_message__unpack(NULL, size, zmq_msg_data(&part));
    zmq_msg_close(&part);
    if (!m) {
        pm_log(PM_WARN, "event=bus_drop reason=undecodable endpoint=%s key=%s", bus->endpoint,
               policy ? bus->sender.name : "-");
        return;
    }
    const char *why = m->version != PM_PROTOCOL_VERSION ? "version" : NULL;
    if (policy && !why) {
        const struct pm_bus_rule *rule = find_rule(policy, m->body_case);
        why = !rule ? "unexpected"
              : bus->sender.checked && !(rule->roles & PM_ROLE_BIT(bus->sender.role)) ? "role"
              : rule->max_bytes && size > rule->max_bytes ? "size" : NULL;
    }
    if (why) {
        refuse(bus, pm_bus_body_name(m->body_case), why, size);
        postmesh__bus_message__free_unpacked(m, NULL);
        return;
    }
    /* The one check of content: from here on every field is within its body's rules. */
    struct pm_bus_invalid invalid;
    if (pm_bus_validate(m, &invalid) < 0) {
        refuse_invalid(bus, peerlen ? peer : NULL, peerlen, m, &invalid, size);
        postmesh__bus_message__free_unpacked(m, NULL);
        return;
    }
    pm_metric_add(PM_M_BUS_MESSAGES, 1, "received", pm_bus_body_name(m->body_case));
    bus->stolen = 0;
    bus->handler(bus, peerlen ? peer : NULL, peerlen, m, bus->arg);
    if (!bus->stolen)
        postmesh__bus_message__free_unpacked(m, NULL);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_bus *bus = arg;
    for (int i = 0; i < DRAIN_BATCH; i++) {
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(bus->sock, ZMQ_EVENTS, &events, &sz) < 0 || !(events & ZMQ_POLLIN))
            return;
        dispatch_one(bus);
    }
    /* More may be waiting: come back after other events had their turn. */
    event_active(bus->ev, EV_READ, 0);
}

static struct pm_bus *bus_new(struct event_base *base, int type, const char *endpoint,
                              const struct pm_bus_policy *policy, pm_bus_handler h, void *arg, int is_server)
{
    struct pm_bus *bus = calloc(1, sizeof *bus);
    if (!bus)
        return NULL;
    bus->type = type;
    bus->policy = policy;
    if (!policy) {
        /* A client's only peer is the server it connects to, named by the key it pinned. */
        const char *server = pm_bus_server_of(endpoint);
        snprintf(bus->sender.name, sizeof bus->sender.name, "%s", server ? server : "-");
        bus->sender.role = server ? pm_role_of_key_name(server) : PM_ROLE_NONE;
    }
    bus->handler = h;
    bus->arg = arg;
    snprintf(bus->endpoint, sizeof bus->endpoint, "%s", endpoint);
    bus->sock = zmq_socket(pm_bus_context(), type);
    if (!bus->sock) {
        free(bus);
        return NULL;
    }
    if (type == ZMQ_ROUTER) {
        int one = 1;
        zmq_setsockopt(bus->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    }
    prepare_socket(bus->sock, is_server);
    if (policy && policy->max_message > 0) /* only binds made after this obey it */
        zmq_setsockopt(bus->sock, ZMQ_MAXMSGSIZE, &policy->max_message, sizeof policy->max_message);
    int rc = pm_bus_apply_security(bus->sock, endpoint, is_server);
    if (rc == 0)
        rc = is_server ? pm_bus_secure_bind(bus->sock, endpoint) : zmq_connect(bus->sock, endpoint);
    if (rc < 0) {
        pm_log(PM_ERR, "event=bus_error op=%s endpoint=%s error=\"%s\"", is_server ? "bind" : "connect", endpoint,
               zmq_strerror(errno));
        zmq_close(bus->sock);
        free(bus);
        return NULL;
    }
    pm_metrics_bus_opened(base, bus->sock, type, endpoint);
    if (base) {
        int fd;
        size_t sz = sizeof fd;
        zmq_getsockopt(bus->sock, ZMQ_FD, &fd, &sz);
        bus->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_ready, bus);
        event_add(bus->ev, NULL);
        event_active(bus->ev, EV_READ, 0);
    }
    return bus;
}

struct pm_bus *pm_bus_connect(struct event_base *base, int type, const char *endpoint, pm_bus_handler h, void *arg)
{
    return bus_new(base, type, endpoint, NULL, h, arg, 0);
}

struct pm_bus *pm_bus_bind(struct event_base *base, int type, const char *endpoint,
                           const struct pm_bus_policy *policy, pm_bus_handler h, void *arg)
{
    if (!policy) {
        pm_log(PM_ERR, "event=bus_error op=bind endpoint=%s error=\"no policy\"", endpoint);
        return NULL;
    }
    if (!pm_bus_roles_known())
        pm_log(PM_WARN, "event=bus_roles_unchecked endpoint=%s reason=\"bus.curve = false: any peer may send "
               "anything\"", endpoint);
    return bus_new(base, type, endpoint, policy, h, arg, 1);
}

void pm_bus_close(struct pm_bus *bus)
{
    if (!bus)
        return;
    if (bus->ev)
        event_free(bus->ev);
    pm_metrics_bus_closed(bus->sock);
    zmq_close(bus->sock);
    free(bus);
}

void *pm_bus_socket(struct pm_bus *bus) { return bus->sock; }

void pm_bus_steal(struct pm_bus *bus) { bus->stolen = 1; }

const char *pm_worker_kind_name(Postmesh__WorkerKind k)
{
    switch (k) {
    case POSTMESH__WORKER_KIND__WORKER_DELIVERY: return "delivery";
    case POSTMESH__WORKER_KIND__WORKER_MTA: return "mta";
    case POSTMESH__WORKER_KIND__WORKER_BOUNCER: return "bouncer";
    default: return "none";
    }
}

static void rearm(struct pm_bus *bus)
{
    if (bus->ev)
        event_active(bus->ev, EV_READ, 0);
}

int pm_bus_events(struct pm_bus *bus)
{
    int events = 0;
    size_t sz = sizeof events;
    if (zmq_getsockopt(bus->sock, ZMQ_EVENTS, &events, &sz) < 0)
        events = 0;
    rearm(bus); /* reading ZMQ_EVENTS may take the ZMQ_FD edge of a message waiting to be read */
    return events;
}

int pm_bus_send(struct pm_bus *bus, Postmesh__BusMessage *msg)
{
    int rc = pm_bus_send_frame(bus->sock, msg, ZMQ_DONTWAIT);
    rearm(bus);
    return rc;
}

int pm_bus_send_to(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *msg)
{
    int rc = -1;
    if (zmq_send(bus->sock, peer, peerlen, ZMQ_DONTWAIT | ZMQ_SNDMORE) >= 0)
        rc = pm_bus_send_frame(bus->sock, msg, ZMQ_DONTWAIT);
    rearm(bus);
    return rc;
}

int pm_bus_send_ping(struct pm_bus *bus, uint64_t request_id)
{
    Postmesh__Ping ping = POSTMESH__PING__INIT;
    Postmesh__BusMessage m = POSTMESH__BUS_MESSAGE__INIT;
    m.request_id = request_id;
    m.body_case = POSTMESH__BUS_MESSAGE__BODY_PING;
    m.ping = &ping;
    return pm_bus_send(bus, &m);
}
