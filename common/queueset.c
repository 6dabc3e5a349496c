/* The queue shards as a submitter sees them (queueset.h): one DEALER and one health record
 * per shard, the Ping timer, and the round robin. */
#include "queueset.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "log.h"

enum shard_state { SHARD_UNKNOWN, SHARD_UP, SHARD_DOWN };

struct shard {
    struct pm_queueset *qs;
    int index;
    struct pm_bus *bus;
    const char *endpoint;   /* the config's string: lives as long as the config */
    enum shard_state state;
    uint64_t ping_id;       /* outstanding Ping (0: none) */
    uint64_t ping_sent_ms;
    int linked;             /* it was connected when we last looked */
    int lost;               /* the connection went away: on_lost is due */
};

struct pm_queueset {
    struct shard *shards;
    int n;
    int next;               /* round robin: the shard after the last one used */
    uint64_t next_ping_id;
    struct event *ping_ev;
    struct event *lost_ev;  /* on_lost runs from here, never inside a caller's send */
    pm_queueset_reply_fn on_reply;
    pm_queueset_lost_fn on_lost;
    void *arg;
};

static void set_state(struct shard *sh, enum shard_state st, const char *why)
{
    if (sh->state == st)
        return;
    enum shard_state was = sh->state;
    sh->state = st;
    if (st == SHARD_UP)
        pm_log(PM_INFO, "event=queue_shard_up shard=%d endpoint=%s", sh->index, sh->endpoint);
    else if (st == SHARD_DOWN && was != SHARD_DOWN)
        pm_log(PM_WARN, "event=queue_shard_down shard=%d endpoint=%s reason=%s", sh->index, sh->endpoint, why);
}

/* Seen without a connection. Only a lost connection loses what was sent on it (a slow
 * shard may still answer), so only then do the callers hear of it. */
static void unlinked(struct shard *sh)
{
    set_state(sh, SHARD_DOWN, "not_connected");
    if (sh->linked) {
        sh->linked = 0;
        sh->lost = 1;
        event_active(sh->qs->lost_ev, EV_TIMEOUT, 0);
    }
}

static void on_lost_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_queueset *qs = arg;
    for (int i = 0; i < qs->n; i++)
        if (qs->shards[i].lost) {
            qs->shards[i].lost = 0;
            if (qs->on_lost)
                qs->on_lost(i, qs->arg);
        }
}

/* ZMQ_IMMEDIATE: a DEALER without a connection cannot take a message. Asking first spares
 * packing a whole message body just to hear EAGAIN. */
static int connected(const struct shard *sh) { return (pm_bus_events(sh->bus) & ZMQ_POLLOUT) != 0; }

static void on_bus(struct pm_bus *bus, const uint8_t *peer, size_t peerlen, Postmesh__BusMessage *m, void *arg)
{
    (void)bus;
    (void)peer;
    (void)peerlen;
    struct shard *sh = arg;
    sh->linked = 1;
    set_state(sh, SHARD_UP, "answer"); /* anything from it: it is there and answering */
    if (m->body_case == POSTMESH__BUS_MESSAGE__BODY_PING) {
        if (m->request_id == sh->ping_id)
            sh->ping_id = 0;
        return;
    }
    sh->qs->on_reply(sh->index, m, sh->qs->arg);
}

static void ping(struct shard *sh, uint64_t now)
{
    if (sh->ping_id && now - sh->ping_sent_ms < PM_QUEUESET_PING_TIMEOUT_MS)
        return; /* the answer is not due yet */
    if (sh->ping_id)
        set_state(sh, SHARD_DOWN, "no_answer");
    uint64_t id = ++sh->qs->next_ping_id;
    if (!connected(sh) || pm_bus_send_ping(sh->bus, id) < 0) {
        sh->ping_id = 0;
        unlinked(sh);
        return;
    }
    sh->linked = 1;
    /* A Ping still unanswered keeps its clock: the next answer may be to the older one. */
    if (!sh->ping_id)
        sh->ping_sent_ms = now;
    sh->ping_id = id;
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pm_queueset *qs = arg;
    uint64_t now = pm_mono_ms();
    for (int i = 0; i < qs->n; i++)
        ping(&qs->shards[i], now);
}

struct pm_queueset *pm_queueset_new(struct event_base *base, const char *const *endpoints, int n,
                                    pm_queueset_reply_fn on_reply, pm_queueset_lost_fn on_lost, void *arg)
{
    if (n < 1 || n > PM_QUEUESET_MAX) {
        pm_log(PM_ERR, "event=queue_shards_error reason=\"%d queue endpoints (1 to %d)\"", n, PM_QUEUESET_MAX);
        return NULL;
    }
    struct pm_queueset *qs = calloc(1, sizeof *qs);
    if (!qs)
        return NULL;
    qs->shards = calloc((size_t)n, sizeof *qs->shards);
    qs->on_reply = on_reply;
    qs->on_lost = on_lost;
    qs->arg = arg;
    if (!qs->shards) {
        free(qs);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        struct shard *sh = &qs->shards[i];
        *sh = (struct shard){.qs = qs, .index = i, .endpoint = endpoints[i], .state = SHARD_UNKNOWN};
        sh->bus = pm_bus_connect(base, ZMQ_DEALER, endpoints[i], on_bus, sh);
        qs->n = i + 1;
        if (!sh->bus) {
            pm_queueset_free(qs);
            return NULL;
        }
    }
    /* The first Ping one interval after start: the connections need a moment. */
    qs->ping_ev = event_new(base, -1, EV_PERSIST, on_ping_timer, qs);
    qs->lost_ev = event_new(base, -1, 0, on_lost_event, qs);
    struct timeval tv = {0, PM_QUEUESET_PING_MS * 1000};
    if (!qs->ping_ev || !qs->lost_ev || event_add(qs->ping_ev, &tv) < 0) {
        pm_queueset_free(qs);
        return NULL;
    }
    return qs;
}

void pm_queueset_free(struct pm_queueset *qs)
{
    if (!qs)
        return;
    if (qs->ping_ev)
        event_free(qs->ping_ev);
    if (qs->lost_ev)
        event_free(qs->lost_ev);
    for (int i = 0; i < qs->n; i++)
        pm_bus_close(qs->shards[i].bus);
    free(qs->shards);
    free(qs);
}

int pm_queueset_size(const struct pm_queueset *qs) { return qs->n; }

const char *pm_queueset_endpoint(const struct pm_queueset *qs, int shard)
{
    return shard >= 0 && shard < qs->n ? qs->shards[shard].endpoint : "-";
}

int pm_queueset_is_up(const struct pm_queueset *qs, int shard)
{
    return shard >= 0 && shard < qs->n && qs->shards[shard].state != SHARD_DOWN;
}

int pm_queueset_order(struct pm_queueset *qs, int avoid, int *order)
{
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < qs->n; j++) {
            int i = (qs->next + j) % qs->n;
            if (i != avoid && pm_queueset_is_up(qs, i) == !pass)
                order[k++] = i;
        }
    return k;
}

int pm_queueset_send_to(struct pm_queueset *qs, int shard, Postmesh__BusMessage *msg)
{
    struct shard *sh = &qs->shards[shard];
    if (!connected(sh)) {
        unlinked(sh);
        errno = EAGAIN;
        return -1;
    }
    if (pm_bus_send(sh->bus, msg) < 0) {
        int e = errno;
        if (e == EAGAIN)
            unlinked(sh);
        errno = e;
        return -1;
    }
    sh->linked = 1;
    qs->next = (shard + 1) % qs->n;
    return 0;
}

int pm_queueset_other_up(const struct pm_queueset *qs, int shard)
{
    for (int i = 0; i < qs->n; i++)
        if (i != shard && pm_queueset_is_up(qs, i))
            return 1;
    return 0;
}

void pm_queueset_suspect(struct pm_queueset *qs, int shard, const char *why)
{
    if (shard >= 0 && shard < qs->n)
        set_state(&qs->shards[shard], SHARD_DOWN, why);
}
