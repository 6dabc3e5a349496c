/* The table of requests waiting for the queue shards' answers (pending.h), and the
 * connection that brings the answers. */
#include "pending.h"

#include <stdlib.h>

#include "etrn.h"
#include "log.h"
#include "queueset.h"
#include "server.h"
#include "submit.h"

/* One row per kind of request smtpd sends the queue (the body of its answer is in it). */
static const struct smtpd_pending_kind *const kinds[] = {&smtpd_submit_kind, &smtpd_etrn_kind};

static struct smtpd_pending **bucket(struct smtpd_server *srv, uint64_t id)
{
    return &srv->pending[(id >> SMTPD_SHARD_BITS) % SMTPD_PENDING_BUCKETS];
}

uint64_t smtpd_pending_base(struct smtpd_server *srv) { return ++srv->next_request_id << SMTPD_SHARD_BITS; }

void smtpd_pending_link(struct smtpd_server *srv, struct smtpd_pending *p, uint64_t id, struct smtpd_session *s,
                        const struct smtpd_pending_kind *kind)
{
    struct smtpd_pending **b = bucket(srv, id);
    p->id = id;
    p->s = s;
    p->kind = kind;
    p->next = *b;
    *b = p;
}

void smtpd_pending_unlink(struct smtpd_server *srv, struct smtpd_pending *p)
{
    if (!p->id)
        return;
    for (struct smtpd_pending **q = bucket(srv, p->id); *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            break;
        }
    p->next = NULL;
    p->id = 0;
}

static struct smtpd_pending *find(struct smtpd_server *srv, uint64_t id)
{
    struct smtpd_pending *p = *bucket(srv, id);
    while (p && p->id != id)
        p = p->next;
    return p;
}

static void on_reply(int shard, Postmesh__BusMessage *m, void *arg)
{
    struct smtpd_server *srv = arg;
    const struct smtpd_pending_kind *kind = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i]->reply == m->body_case)
            kind = kinds[i];
    struct smtpd_pending *p = kind ? find(srv, m->request_id) : NULL;
    if (!kind || (p && p->kind != kind)) {
        pm_log(PM_WARN, "event=bus_drop reason=unexpected body=%d endpoint=%s", (int)m->body_case,
               pm_queueset_endpoint(srv->queues, shard));
        return;
    }
    /* Only the shard a request went to may answer it: another one's COMMITTED would give a
     * 250 for a message the first shard never committed. */
    if (p && SMTPD_SHARD_OF(m->request_id) != shard) {
        pm_log(PM_WARN, "event=bus_drop reason=wrong_shard request_id=%llu endpoint=%s",
               (unsigned long long)m->request_id, pm_queueset_endpoint(srv->queues, shard));
        return;
    }
    if (!p) {
        kind->late(srv, shard, m);
        return;
    }
    smtpd_pending_unlink(srv, p);
    kind->answered(p, m);
}

/* shard's connection is gone, and with it every answer owed on it (the queue answers a
 * connection; a new one has a new identity). Ids first: a lost() may end other waits. */
static void on_lost(int shard, void *arg)
{
    struct smtpd_server *srv = arg;
    size_t n = 0, cap = 0;
    uint64_t *ids = NULL;
    for (int b = 0; b < SMTPD_PENDING_BUCKETS; b++)
        for (struct smtpd_pending *p = srv->pending[b]; p; p = p->next)
            if (SMTPD_SHARD_OF(p->id) == shard) {
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 16;
                    uint64_t *nl = realloc(ids, ncap * sizeof *nl);
                    if (!nl)
                        break;
                    ids = nl;
                    cap = ncap;
                }
                ids[n++] = p->id;
            }
    for (size_t i = 0; i < n; i++) {
        struct smtpd_pending *p = find(srv, ids[i]);
        if (p)
            p->kind->lost(p);
    }
    free(ids);
}

struct pm_queueset *smtpd_pending_connect(struct smtpd_server *srv)
{
    const struct pm_strlist *eps = &srv->cfg->queue.endpoints;
    return pm_queueset_new(srv->base, (const char *const *)eps->v, eps->n, on_reply, on_lost, srv);
}

void smtpd_pending_disconnect(struct smtpd_server *srv)
{
    pm_queueset_free(srv->queues);
    srv->queues = NULL;
}
