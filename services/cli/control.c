/* One ControlRequest to every queue shard at once (control.h): a DEALER per shard, the
 * requests all sent before any answer is awaited, zmq_poll until each answered or the
 * deadline. A listing is paged instead (cli_list_pages): one shard after the other. */
#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "cli.h"

/* The answer on sock, if it is the reply of kind `want` to request_id; else NULL. Validated
 * at the edge (pm_bus_recv_frame, bus_rules.c): the body of its case is there. */
static Postmesh__BusMessage *receive_reply(void *sock, uint64_t request_id, Postmesh__BusMessage__BodyCase want)
{
    Postmesh__BusMessage *m = pm_bus_recv_frame(sock, ZMQ_DONTWAIT);
    if (m && (m->body_case != want || m->request_id != request_id)) {
        postmesh__bus_message__free_unpacked(m, NULL);
        m = NULL;
    }
    return m;
}

int cli_ask_shards(const struct pm_config *cfg, Postmesh__BusMessage *msg, Postmesh__BusMessage__BodyCase want,
                   int timeout_ms, struct cli_answer **out)
{
    int n = cfg->queue.controls.n;
    struct cli_answer *a = calloc((size_t)(n ? n : 1), sizeof *a);
    void **socks = calloc((size_t)(n ? n : 1), sizeof *socks);
    uint64_t *ids = calloc((size_t)(n ? n : 1), sizeof *ids);
    if (!a || !socks || !ids) {
        free(a);
        free(socks);
        free(ids);
        cli_error("out of memory");
        return -1;
    }
    pm_bus_security_init(cfg, "cli"); /* our CurveZMQ identity on tcp:// endpoints */
    uint64_t base = pm_wall_ms() * 1000;
    int waiting = 0;
    for (int i = 0; i < n; i++) {
        a[i].control = cfg->queue.controls.v[i];
        void *s = zmq_socket(pm_bus_context(), ZMQ_DEALER);
        if (!s)
            continue;
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        ids[i] = msg->request_id = base + (uint64_t)i + 1;
        /* the DEALER queues it until the connection is up */
        if (pm_bus_apply_security(s, a[i].control, 0) < 0 || zmq_connect(s, a[i].control) < 0 ||
            pm_bus_send_frame(s, msg, ZMQ_DONTWAIT) < 0) {
            zmq_close(s);
            continue;
        }
        socks[i] = s;
        waiting++;
    }
    uint64_t deadline = pm_mono_ms() + (uint64_t)timeout_ms;
    zmq_pollitem_t *items = calloc((size_t)(n ? n : 1), sizeof *items);
    int *which = calloc((size_t)(n ? n : 1), sizeof *which);
    while (items && which && waiting > 0) {
        uint64_t now = pm_mono_ms();
        if (now >= deadline)
            break;
        int k = 0;
        for (int i = 0; i < n; i++)
            if (socks[i] && !a[i].msg) {
                items[k] = (zmq_pollitem_t){.socket = socks[i], .events = ZMQ_POLLIN};
                which[k++] = i;
            }
        int rc = zmq_poll(items, k, (long)(deadline - now));
        if (rc < 0 && errno != EINTR)
            break;
        for (int j = 0; rc > 0 && j < k; j++) {
            if (!(items[j].revents & ZMQ_POLLIN))
                continue;
            int i = which[j];
            a[i].msg = receive_reply(socks[i], ids[i], want);
            if (a[i].msg) {
                /* The body is a union: control_reply is only a ControlReply's. */
                a[i].reply = want == POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY ? a[i].msg->control_reply : NULL;
                waiting--;
            }
        }
    }
    free(items);
    free(which);
    for (int i = 0; i < n; i++)
        if (socks[i])
            zmq_close(socks[i]);
    free(socks);
    free(ids);
    pm_bus_context_term();
    *out = a;
    return n;
}

int cli_control_all(const struct pm_config *cfg, Postmesh__ControlRequest__Command command, const char *queue_id,
                    int timeout_ms, struct cli_answer **out)
{
    Postmesh__ControlRequest req = POSTMESH__CONTROL_REQUEST__INIT;
    req.command = command;
    req.queue_id = (char *)(queue_id ? queue_id : "");
    Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
    msg.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL;
    msg.control = &req;
    return cli_ask_shards(cfg, &msg, POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY, timeout_ms, out);
}

void cli_answers_free(struct cli_answer *a, int n)
{
    for (int i = 0; a && i < n; i++)
        if (a[i].msg)
            postmesh__bus_message__free_unpacked(a[i].msg, NULL);
    free(a);
}

/* One request on sock and its answer within timeout_ms (NULL: none). */
static Postmesh__BusMessage *call(void *sock, Postmesh__BusMessage *msg, int timeout_ms)
{
    if (pm_bus_send_frame(sock, msg, ZMQ_DONTWAIT) < 0)
        return NULL;
    uint64_t deadline = pm_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = pm_mono_ms();
        if (now >= deadline)
            return NULL;
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, (long)(deadline - now));
        if (rc < 0 && errno != EINTR)
            return NULL;
        if (rc > 0) {
            Postmesh__BusMessage *m = receive_reply(sock, msg->request_id, POSTMESH__BUS_MESSAGE__BODY_CONTROL_REPLY);
            if (m)
                return m;
        }
    }
}

int cli_list_pages(const struct pm_config *cfg, unsigned page_size, int timeout_ms, cli_page_fn page,
                   cli_shard_done_fn done, void *arg)
{
    int n = cfg->queue.controls.n;
    pm_bus_security_init(cfg, "cli");
    uint64_t rid = pm_wall_ms() * 1000;
    for (int i = 0; i < n; i++) {
        const char *control = cfg->queue.controls.v[i];
        void *s = zmq_socket(pm_bus_context(), ZMQ_DEALER);
        int complete = 0;
        Postmesh__BusMessage *refusal = NULL;
        if (s) {
            int zero = 0;
            zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        }
        if (s && pm_bus_apply_security(s, control, 0) == 0 && zmq_connect(s, control) == 0) {
            char after[64] = "";
            for (;;) {
                Postmesh__ControlRequest req = POSTMESH__CONTROL_REQUEST__INIT;
                req.command = POSTMESH__CONTROL_REQUEST__COMMAND__LIST;
                req.after = after;
                req.limit = page_size;
                Postmesh__BusMessage msg = POSTMESH__BUS_MESSAGE__INIT;
                msg.body_case = POSTMESH__BUS_MESSAGE__BODY_CONTROL;
                msg.control = &req;
                msg.request_id = ++rid;
                Postmesh__BusMessage *m = call(s, &msg, timeout_ms);
                if (!m)
                    break;
                const Postmesh__ControlReply *r = m->control_reply;
                if (!r->ok) {
                    refusal = m;
                    break;
                }
                page(i, control, r, arg);
                /* An older queue ignores the limit and sends everything at once, more unset. */
                int more = r->more && r->n_items > 0;
                if (more)
                    snprintf(after, sizeof after, "%s", r->items[r->n_items - 1]->queue_id);
                postmesh__bus_message__free_unpacked(m, NULL);
                if (!more) {
                    complete = 1;
                    break;
                }
            }
        }
        done(i, control, complete, refusal ? refusal->control_reply : NULL, arg);
        if (refusal)
            postmesh__bus_message__free_unpacked(refusal, NULL);
        if (s)
            zmq_close(s);
    }
    pm_bus_context_term();
    return n;
}
