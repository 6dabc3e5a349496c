/* ETRN (RFC 1985) on the queue: smtpd asks every shard to start the deferred mail waiting for
 * a domain ("example.net", or "@example.net" for it and its subdomains). Every message with a
 * deferred remote recipient of that domain, not held and not in flight, becomes due now, and
 * each shard answers how many it started (EtrnReply; smtpd sums them). Held mail stays held.
 *
 * Finding the messages: a bounded scan of the store per loop turn (rewrite.c), in queue-id
 * order, rather than an index by domain. Each turn's chunk takes about 10 ms, so the bus and
 * the commits go on between chunks; the answer comes once the scan is through. Most records
 * are passed over without being decoded (the domain does not occur in their bytes): a
 * million deferred messages take about 0.5 s with the store in the page cache, 10 s from
 * disk. An index by domain would make ETRN cheap but cost every commit
 * a write per destination, and a store format change (a rebuild of every deep queue at its
 * next start), for a command a few clients send now and then. A message in memory is
 * changed there (the next commit writes it); one only in the store is rewritten with its due
 * entry in the chunk's transaction, as `queue flush` does; the loader and dispatch are kicked
 * after each chunk that started something. Requests are worked on one after the other, at
 * most ETRN_PENDING at a time.
 *
 * An ETRN gives a recipient one attempt, not one per ETRN: for ETRN_WINDOW seconds after an
 * ETRN of a node, another ETRN of the same node leaves alone the recipients tried since the
 * first (they count, but are not made due again). Otherwise a client repeating ETRN would
 * make the mta hit a dead MX as fast as it sends (the review measured 94 ETRNs in 5 s ->
 * 470 connections), skipping the retry schedule. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "clock.h"
#include "log.h"
#include "queue.h"

#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x
#define ETRN_PENDING 16 /* requests at a time per shard; more get TEMPFAIL */
#define ETRN_WINDOW 10  /* seconds in which a node's recipients get one attempt from ETRN */
#define ETRN_RECENT 32  /* nodes remembered for that */
/* One loop turn's chunk: records visited (most without decoding them), records of the
 * domain decoded and rewritten (one synced commit per chunk), and about how long. */
static const struct queue_rewrite_limits chunk = {.visit = 20000, .decode = 2000, .ms = 10};

struct etrn_req {
    struct etrn_req *next;
    uint64_t request_id;
    uint8_t peer[256];
    size_t peerlen;
    char want[PM_ADDR_MAX_DOMAIN + 2]; /* as the client gave it, "@" kept */
    char needle[PM_ADDR_MAX_DOMAIN + 1]; /* the domain in lower case: in the bytes of a match */
    size_t needle_len;
    uint64_t now;     /* the time the current chunk makes recipients due at */
    uint64_t tried_since; /* an ETRN of this node began then: leave recipients tried since */
    uint32_t messages;
    int started;      /* the current chunk started some: kick the loader and dispatch */
    uint64_t began_ms;
    struct queue_rewrite walk;
};

struct queue_etrn {
    struct event *ev;
    struct etrn_req *head, *tail;
    size_t n;
    struct {
        char node[PM_ADDR_MAX_DOMAIN + 2]; /* "@" kept, lower case */
        uint64_t began;                    /* unix s; 0: free */
    } recent[ETRN_RECENT];
};

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int queue_etrn_match(const char *want, const char *domain)
{
    if (want[0] != '@')
        return want[0] && strcasecmp(want, domain) == 0;
    const char *base = want + 1;
    size_t bl = strlen(base), dl = strlen(domain);
    if (!bl || dl < bl)
        return 0;
    /* the domain itself, or a subdomain: a whole label in front, never "badexample.net" */
    return strcasecmp(domain + dl - bl, base) == 0 && (dl == bl || domain[dl - bl - 1] == '.');
}

size_t queue_etrn_flush(Postmesh__StoredMessage *rec, const uint8_t *inflight, const char *want, uint64_t now,
                        uint64_t tried_since, int *changed)
{
    size_t n = 0;
    *changed = 0;
    if (rec->hold)
        return 0; /* held mail is released by the operator only */
    for (size_t i = 0; i < rec->n_recipients; i++) {
        Postmesh__StoredRecipient *r = rec->recipients[i];
        if (r->state != ST(DEFERRED) || r->local || (inflight && inflight[i]) ||
            !queue_etrn_match(want, pm_addr_domain(r->address)))
            continue;
        n++;
        if (r->next_attempt > now && !(tried_since && r->last_attempt >= tried_since)) {
            r->next_attempt = now;
            *changed = 1;
        }
    }
    return n;
}

/* Whether needle (lower case) occurs in the bytes, without case: a record whose recipients
 * are for another domain is passed over without decoding it. */
static int wanted(const uint8_t *b, size_t len, void *arg)
{
    const struct etrn_req *r = arg;
    size_t m = r->needle_len;
    for (size_t i = 0; i + m <= len; i++) {
        if (lower(b[i]) != r->needle[0])
            continue;
        size_t k = 1;
        while (k < m && lower(b[i + k]) == r->needle[k])
            k++;
        if (k == m)
            return 1;
    }
    return 0;
}

static void started(struct etrn_req *r, const char *id)
{
    char dom[PM_LOGV_SIZE];
    r->messages++;
    r->started = 1;
    pm_log(PM_INFO, "event=etrn_started id=%s domain=%s", id, PM_LOGV(dom, r->want));
}

static void in_memory(struct queue *q, struct qmsg *m, void *arg)
{
    struct etrn_req *r = arg;
    int changed;
    if (!queue_etrn_flush(m->rec, m->inflight, r->want, r->now, r->tried_since, &changed))
        return;
    if (changed)
        queue_msg_mark_dirty(q, m); /* written with the next commit */
    m->next_due = 0;
    started(r, m->rec->queue_id);
}

static int stored(struct queue *q, Postmesh__StoredMessage *rec, void *arg)
{
    (void)q;
    struct etrn_req *r = arg;
    int changed;
    if (!queue_etrn_flush(rec, NULL, r->want, r->now, r->tried_since, &changed))
        return 0;
    if (!changed)
        started(r, rec->queue_id); /* due already (waiting for room): nothing to write */
    return changed;
}

static void written(struct queue *q, const char *id, void *arg)
{
    (void)q;
    started(arg, id);
}

static const struct queue_rewrite_ops etrn_ops = {wanted, in_memory, stored, written};

static void reply(struct queue *q, const struct etrn_req *r, Postmesh__EtrnReply__Status status, const char *text)
{
    Postmesh__EtrnReply er = POSTMESH__ETRN_REPLY__INIT;
    Postmesh__BusMessage out = POSTMESH__BUS_MESSAGE__INIT;
    er.status = status;
    er.messages = r->messages;
    er.text = (char *)(text ? text : "");
    out.request_id = r->request_id;
    out.body_case = POSTMESH__BUS_MESSAGE__BODY_ETRN_REPLY;
    out.etrn_reply = &er;
    static const char *const names[] = {"started", "nothing", "tempfail"};
    char dom[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
    pm_log(status == POSTMESH__ETRN_REPLY__STATUS__TEMPFAIL ? PM_WARN : PM_INFO,
           "event=etrn domain=%s messages=%u status=%s scanned=%zu ms=%llu%s%s", PM_LOGV(dom, r->want), r->messages,
           names[status <= 2 ? status : 2], r->walk.visited, (unsigned long long)(pm_mono_ms() - r->began_ms),
           text ? " reason=" : "", text ? PM_LOGV(why, text) : "");
    if (pm_bus_send_to(q->bus, r->peer, r->peerlen, &out) < 0)
        pm_log(PM_WARN, "event=reply_lost body=etrn_reply domain=%s", dom);
}

int queue_etrn_turn(struct queue *q)
{
    struct queue_etrn *e = q->etrn;
    if (!e || !e->head)
        return 0;
    struct etrn_req *r = e->head;
    r->now = queue_now();
    r->started = 0;
    int rc = queue_store_rewrite(q, &r->walk, &chunk, &etrn_ops, r);
    if (r->started) {
        queue_load_due(q); /* rewritten records are due now: in as room allows */
        queue_dispatch(q);
    }
    if (!rc && !r->walk.done)
        return 1;
    if (rc) {
        char text[160];
        snprintf(text, sizeof text, "4.3.0 queue store error: %s", mdb_strerror(rc));
        reply(q, r, POSTMESH__ETRN_REPLY__STATUS__TEMPFAIL, text);
    } else {
        reply(q, r, r->messages ? POSTMESH__ETRN_REPLY__STATUS__STARTED : POSTMESH__ETRN_REPLY__STATUS__NOTHING,
              NULL);
    }
    e->head = r->next;
    if (!e->head)
        e->tail = NULL;
    e->n--;
    free(r);
    return e->head != NULL;
}

static void schedule(struct queue *q)
{
    /* A zero timeout, not event_active: timers run after the loop has polled the sockets,
     * so every chunk lets the bus in first. */
    static const struct timeval next_turn = {0, 0};
    if (q->etrn->ev)
        evtimer_add(q->etrn->ev, &next_turn);
}

static void on_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct queue *q = arg;
    if (queue_etrn_turn(q))
        schedule(q);
}

/* When an ETRN of want began within ETRN_WINDOW seconds: that time (its recipients tried
 * since have had their attempt). Otherwise 0, and this ETRN opens the node's window. */
static uint64_t window_of(struct queue_etrn *e, const char *want, uint64_t now)
{
    char node[sizeof e->recent[0].node];
    size_t i, oldest = 0;
    for (i = 0; want[i] && i + 1 < sizeof node; i++)
        node[i] = (char)lower((unsigned char)want[i]);
    node[i] = '\0';
    for (i = 0; i < ETRN_RECENT; i++) {
        if (e->recent[i].began && strcmp(e->recent[i].node, node) == 0) {
            if (now < e->recent[i].began + ETRN_WINDOW)
                return e->recent[i].began;
            oldest = i;
            break;
        }
        if (e->recent[i].began < e->recent[oldest].began)
            oldest = i;
    }
    memcpy(e->recent[oldest].node, node, sizeof node);
    e->recent[oldest].began = now;
    return 0;
}

void queue_on_etrn(struct queue *q, const uint8_t *peer, size_t peerlen, const Postmesh__BusMessage *m)
{
    struct etrn_req *r = calloc(1, sizeof *r);
    if (!q->etrn && (q->etrn = calloc(1, sizeof *q->etrn)) != NULL && q->base)
        q->etrn->ev = evtimer_new(q->base, on_turn, q);
    if (!r || !q->etrn) {
        pm_log(PM_ERR, "event=out_of_memory what=etrn");
        free(r);
        return; /* smtpd's wait for the answer ends in 458 */
    }
    const char *want = m->etrn->domain;
    size_t len = strlen(want);
    r->request_id = m->request_id;
    r->peerlen = peerlen < sizeof r->peer ? peerlen : sizeof r->peer;
    memcpy(r->peer, peer, r->peerlen);
    snprintf(r->want, sizeof r->want, "%.*s", (int)(sizeof r->want - 1), want);
    r->began_ms = pm_mono_ms();
    const char *base = want[0] == '@' ? want + 1 : want;
    r->needle_len = strlen(base);
    if (!r->needle_len || len >= sizeof r->want) {
        /* No domain a recipient could have (smtpd checks the syntax): nothing waits for it. */
        reply(q, r, POSTMESH__ETRN_REPLY__STATUS__NOTHING, NULL);
        free(r);
        return;
    }
    if (q->etrn->n >= ETRN_PENDING) {
        reply(q, r, POSTMESH__ETRN_REPLY__STATUS__TEMPFAIL, "4.3.2 too many ETRN requests at once, try again later");
        free(r);
        return;
    }
    for (size_t i = 0; i <= r->needle_len; i++)
        r->needle[i] = (char)lower((unsigned char)base[i]);
    r->tried_since = window_of(q->etrn, r->want, queue_now());
    if (q->etrn->tail)
        q->etrn->tail->next = r;
    else
        q->etrn->head = r;
    q->etrn->tail = r;
    /* The first chunk at once: a small queue is answered right away. */
    if (q->etrn->n++ == 0 && queue_etrn_turn(q))
        schedule(q);
}

void queue_etrn_free(struct queue *q)
{
    if (!q->etrn)
        return;
    for (struct etrn_req *r = q->etrn->head, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    if (q->etrn->ev)
        event_free(q->etrn->ev);
    free(q->etrn);
    q->etrn = NULL;
}
