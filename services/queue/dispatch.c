/* Work dispatch to the job workers (mta, delivery, bouncer): a job worker announces its free
 * job slots at the moment of sending (Credit), the queue pushes jobs only to job workers that
 * asked, and every job has a lease: unanswered past it, its recipients are dispatched again
 * (a dead job worker's job is never lost). A job is named by this run's random epoch and its
 * id; a result is applied only to the job it names (see queue_on_result). The queue also
 * keeps each mta at mta.max_per_domain jobs per destination, so a slow domain cannot take
 * every slot of a job worker from the others. The periodic pass (queue_tick: leases, the
 * loader, a full walk that also expires, bounces and sends delay warnings) lives here too. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "clock.h"
#include "dsn.h"
#include "log.h"
#include "queue.h"
#include "tlsrpt.h"

#define WORKER_SILENCE 10 /* seconds without a heartbeat before a job worker's credit is void */

typedef Postmesh__StoredRecipient Rcpt;
#define ST(x) POSTMESH__STORED_RECIPIENT__STATE__##x

static void drop_worker(struct queue *q, size_t i, const char *why)
{
    pm_log(PM_INFO, "event=worker_gone worker=%s kind=%s reason=%s", q->workers[i].name,
           pm_worker_kind_name(q->workers[i].kind), why);
    q->workers[i] = q->workers[--q->nworkers];
}

void queue_on_credit(struct queue *q, const uint8_t *peer, size_t peerlen, const Postmesh__Credit *c)
{
    struct worker *w = NULL;
    for (size_t i = 0; i < q->nworkers; i++)
        if (q->workers[i].idlen == peerlen && memcmp(q->workers[i].id, peer, peerlen) == 0)
            w = &q->workers[i];
    if (!w) {
        if (peerlen > sizeof w->id || q->nworkers >= 1024)
            return;
        struct worker *grown = realloc(q->workers, (q->nworkers + 1) * sizeof *q->workers);
        if (!grown)
            return; /* its next Credit tries again */
        q->workers = grown;
        w = &q->workers[q->nworkers++];
        memset(w, 0, sizeof *w);
        memcpy(w->id, peer, peerlen);
        w->idlen = peerlen;
        w->serial = ++q->next_worker_serial;
        w->jobs_sent = c->jobs_received;
        snprintf(w->name, sizeof w->name, "%s", c->worker_name[0] ? c->worker_name : "anonymous");
        for (char *p = w->name; *p; p++)
            if (*p <= ' ' || *p == '"' || *p == '=')
                *p = '_';
        pm_log(PM_INFO, "event=worker_joined worker=%s kind=%s credits=%u", w->name, pm_worker_kind_name(c->kind), c->credits);
    }
    w->kind = c->kind;
    /* The worker counted its free slots before the jobs still on their way to it arrived. A
     * job lost on the way (a frame the worker could not decode) would count for ever, but
     * it is also still outstanding here only until its lease ends: take the smaller. */
    if (w->jobs_sent < c->jobs_received)
        w->jobs_sent = c->jobs_received;
    uint64_t on_the_way = w->jobs_sent - c->jobs_received, outstanding = w->outstanding;
    if (on_the_way > outstanding)
        on_the_way = outstanding;
    uint64_t free_slots = c->credits > 100000 ? 100000 : c->credits;
    w->credits = free_slots > on_the_way ? (int)(free_slots - on_the_way) : 0;
    w->last_seen = queue_now();
    queue_dispatch(q);
}

/* mta jobs in flight per (worker, destination), counted as jobs go out and come back, so
 * that picking a worker for a domain does not walk every outstanding job. */
struct domjobs {
    uint64_t worker;
    long long n;
    struct domjobs *next;
    char domain[]; /* lower case */
};

#define DOMJOBS_BUCKETS 4096

static size_t domjobs_bucket(uint64_t worker, const char *domain)
{
    size_t h = 1469598103934665603ull ^ (size_t)worker;
    for (const char *p = domain; *p; p++)
        h = (h ^ (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p)) * 1099511628211ull;
    return h % DOMJOBS_BUCKETS;
}

static struct domjobs **domjobs_find(struct queue *q, uint64_t worker, const char *domain)
{
    if (!q->domjobs && !(q->domjobs = calloc(DOMJOBS_BUCKETS, sizeof *q->domjobs)))
        return NULL;
    struct domjobs **p = &q->domjobs[domjobs_bucket(worker, domain)];
    while (*p && ((*p)->worker != worker || strcasecmp((*p)->domain, domain) != 0))
        p = &(*p)->next;
    return p;
}

static void domjobs_add(struct queue *q, uint64_t worker, const char *domain, int delta)
{
    struct domjobs **p = domjobs_find(q, worker, domain);
    if (!p)
        return;
    if (!*p) {
        if (delta < 0)
            return;
        size_t len = strlen(domain);
        struct domjobs *d = calloc(1, sizeof *d + len + 1);
        if (!d)
            return; /* the domain's limit is not enforced for this job: rare, harmless */
        d->worker = worker;
        for (size_t i = 0; i <= len; i++)
            d->domain[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32 : domain[i]);
        *p = d;
    }
    (*p)->n += delta;
    if ((*p)->n <= 0) {
        struct domjobs *d = *p;
        *p = d->next;
        free(d);
    }
}

void queue_domjobs_free(struct queue *q)
{
    for (size_t b = 0; q->domjobs && b < DOMJOBS_BUCKETS; b++)
        for (struct domjobs *d = q->domjobs[b], *n; d; d = n) {
            n = d->next;
            free(d);
        }
    free(q->domjobs);
    q->domjobs = NULL;
}

/* mta jobs for domain that worker has in flight. */
static long long domain_jobs(struct queue *q, uint64_t worker, const char *domain)
{
    struct domjobs **p = domjobs_find(q, worker, domain);
    return p && *p ? (*p)->n : 0;
}

/* The worker of this kind with the most credit (for an mta job: among those below
 * mta.max_per_domain for domain). */
static struct worker *pick_worker(struct queue *q, Postmesh__WorkerKind kind, const char *domain)
{
    struct worker *best = NULL;
    for (size_t i = 0; i < q->nworkers; i++) {
        struct worker *w = &q->workers[i];
        if (w->kind != kind || w->credits <= 0 || (best && w->credits <= best->credits))
            continue;
        if (domain && domain_jobs(q, w->serial, domain) >= q->cfg->mta.max_per_domain)
            continue;
        best = w;
    }
    return best;
}

static int is_due(const struct qmsg *m, size_t i, uint64_t now)
{
    const Rcpt *r = m->rec->recipients[i];
    if (m->inflight[i])
        return 0;
    return r->state == ST(PENDING) || (r->state == ST(DEFERRED) && r->next_attempt <= now);
}

static uint32_t notify_of(const Rcpt *r) { return r->dsn ? r->dsn->notify : 0; }

/* The RFC 3464 Action a notice reports for r, and its status when none was recorded. */
static const char *notice_action(const Rcpt *r, int delay_notice)
{
    if (delay_notice)
        return queue_dsn_action(QUEUE_DSN_DELAYED);
    if (r->state == ST(FAILED))
        return queue_dsn_action(QUEUE_DSN_FAILED);
    return queue_dsn_action(r->relayed ? QUEUE_DSN_RELAYED : QUEUE_DSN_DELIVERED_LOCAL);
}

/* Length of the header section (up to and including the empty line). */
static size_t header_length(const uint8_t *b, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (b[i] == '\n' && b[i + 1] == '\n')
            return i + 2;
        if (b[i] == '\n' && i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
            return i + 3;
    }
    return len;
}

/* Sends one job; on success the recipients are in flight and the job is recorded. */
static int send_job(struct queue *q, struct worker *w, struct qmsg *m, Postmesh__WorkerKind kind,
                    const uint32_t *idx, size_t n, int delay_notice)
{
    Postmesh__Job job = POSTMESH__JOB__INIT;
    Postmesh__BusMessage out = POSTMESH__BUS_MESSAGE__INIT;
    uint64_t job_id = ++q->next_job_id;
    job.job_id = job_id;
    job.epoch = q->epoch;
    job.dispatch_time_ms = pm_wall_ms();
    job.queue_id = m->rec->queue_id;
    job.kind = kind;
    job.sender = m->rec->sender;
    job.lease_seconds = (uint32_t)q->cfg->queue.job_lease;
    job.arrival_time = m->rec->arrival_time;
    job.delay_notice = delay_notice;
    job.dsn_ret = m->rec->dsn_ret;
    job.dsn_envid = m->rec->dsn_envid;
    job.requiretls = m->rec->requiretls; /* RFC 8689: the mta's hops and the bouncer's notices */
    /* RET=FULL: a failure notice returns the whole message. Not for REQUIRETLS (RFC 8689 5:
     * a bounce behaves as if RET=HDRS, RET=FULL is disregarded): the notice may travel a
     * return path that is not protected, so the body never leaves with it. */
    int whole = 0;

    /* Everything the job needs is allocated before it is sent: a job on the wire is always
     * recorded. Out of memory: nothing is sent, the next walk tries again. */
    Postmesh__JobRecipient *jr = calloc(n + 1, sizeof *jr), **jrp = calloc(n + 1, sizeof *jrp);
    Postmesh__ReportRecipient *rr = calloc(n + 1, sizeof *rr), **rrp = calloc(n + 1, sizeof *rrp);
    struct job *j = calloc(1, sizeof *j);
    uint32_t *rcpts = malloc((n + 1) * sizeof *rcpts);
    if (!jr || !jrp || !rr || !rrp || !j || !rcpts) {
        pm_log(PM_ERR, "event=dispatch_failed id=%s reason=out_of_memory", m->rec->queue_id);
        free(jr), free(jrp), free(rr), free(rrp), free(j), free(rcpts);
        return -1;
    }
    if (kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER) {
        postmesh__job_recipient__init(&jr[0]);
        jr[0].index = 0;
        jr[0].address = m->rec->sender;
        jr[0].original = m->rec->sender;
        jrp[0] = &jr[0];
        job.n_recipients = 1;
        for (size_t i = 0; i < n; i++) {
            const Rcpt *r = m->rec->recipients[idx[i]];
            postmesh__report_recipient__init(&rr[i]);
            rr[i].address = r->address;
            rr[i].original = r->original;
            const char *action = notice_action(r, delay_notice);
            int failed = !delay_notice && r->state == ST(FAILED);
            const char *fallback = delay_notice ? "4.0.0" : failed ? "5.0.0" : "2.0.0";
            rr[i].status = r->dsn_status[0] ? r->dsn_status : (char *)fallback;
            rr[i].action = (char *)action;
            rr[i].dsn = r->dsn;
            whole |= failed && m->rec->dsn_ret == POSTMESH__DSN_RET__DSN_RET_FULL && !m->rec->requiretls;
            rr[i].remote_mta = r->remote_mta;
            rr[i].diagnostic = r->last_error;
            rr[i].last_attempt = r->last_attempt;
            rrp[i] = &rr[i];
        }
        job.report = rrp;
        job.n_report = n;
    } else {
        for (size_t i = 0; i < n; i++) {
            const Rcpt *r = m->rec->recipients[idx[i]];
            postmesh__job_recipient__init(&jr[i]);
            jr[i].index = idx[i];
            jr[i].address = r->address;
            jr[i].original = r->original;
            jr[i].dsn = r->dsn;
            jrp[i] = &jr[i];
        }
        job.n_recipients = n;
        if (kind == POSTMESH__WORKER_KIND__WORKER_MTA)
            job.domain = (char *)pm_addr_domain(m->rec->recipients[idx[0]]->address);
    }
    job.recipients = jrp;

    MDB_txn *txn = NULL;
    MDB_val body = {0, NULL};
    int rc = queue_store_body(q, &txn, m->rec->queue_id, &body);
    int ok = 0;
    if (rc) {
        pm_log(PM_ERR, "event=store_error op=get_body id=%s error=\"%s\"", m->rec->queue_id, mdb_strerror(rc));
    } else {
        job.body.data = body.mv_data; /* borrowed from the read transaction until packed */
        job.body.len = kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER && !whole
                           ? header_length(body.mv_data, body.mv_size)
                           : body.mv_size;
        out.body_case = POSTMESH__BUS_MESSAGE__BODY_JOB;
        out.job = &job;
        if (pm_bus_send_to(q->bus, w->id, w->idlen, &out) == 0) {
            ok = 1;
        } else {
            pm_log(PM_WARN, "event=dispatch_failed id=%s worker=%s error=\"%s\"", m->rec->queue_id, w->name,
                   strerror(errno));
            drop_worker(q, (size_t)(w - q->workers), "unreachable");
        }
        mdb_txn_abort(txn);
    }
    free(jr);
    free(jrp);
    free(rr);
    free(rrp);
    if (!ok) {
        free(j);
        free(rcpts);
        return -1;
    }

    w->credits--;
    w->jobs_sent++;
    w->outstanding++;
    if (kind == POSTMESH__WORKER_KIND__WORKER_MTA)
        domjobs_add(q, w->serial, job.domain, 1);
    j->job_id = job_id;
    j->msg = m;
    j->worker = w->serial;
    j->domain = kind == POSTMESH__WORKER_KIND__WORKER_MTA ? job.domain : NULL;
    j->kind = kind;
    j->rcpts = rcpts;
    memcpy(j->rcpts, idx, n * sizeof *idx);
    j->nrcpts = n;
    j->delay_notice = delay_notice;
    /* Monotonic ms: a wall-clock step must not end a lease, nor a whole-second count end it
     * up to a second early. */
    j->deadline_ms = pm_mono_ms() + 1000 * (uint64_t)q->cfg->queue.job_lease;
    j->next = q->jobs;
    q->jobs = j;
    m->refs++;
    if (kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER)
        m->bounce_inflight = 1;
    else
        for (size_t i = 0; i < n; i++)
            m->inflight[idx[i]] = 1;
    pm_log(PM_INFO, "event=dispatch id=%s job=%llu kind=%s nrcpt=%zu worker=%s%s", m->rec->queue_id,
           (unsigned long long)job_id, pm_worker_kind_name(kind), n, w->name, delay_notice ? " notice=delay" : "");
    return 0;
}

/* What one dispatch walk learns as it goes: scratch space, and the destinations no mta can
 * take more of (no credits change for the better during a walk), so a message waiting for a
 * busy domain is not checked against every outstanding job again. */
struct walk {
    uint32_t *idx;
    uint8_t *seen;
    size_t cap;
    char blocked[32][256];
    size_t nblocked;
};

static int blocked(const struct walk *wk, const char *domain)
{
    for (size_t i = 0; i < wk->nblocked; i++)
        if (strcasecmp(wk->blocked[i], domain) == 0)
            return 1;
    return 0;
}

static void dispatch_deliveries(struct queue *q, struct qmsg *m, uint64_t now, struct walk *wk)
{
    uint32_t *idx = wk->idx;
    uint8_t *seen = wk->seen;
    size_t nr = m->rec->n_recipients, n = 0;
    struct worker *w = pick_worker(q, POSTMESH__WORKER_KIND__WORKER_DELIVERY, NULL);
    if (w) {
        for (size_t i = 0; i < nr; i++)
            if (m->rec->recipients[i]->local && is_due(m, i, now))
                idx[n++] = (uint32_t)i;
        if (n)
            send_job(q, w, m, POSTMESH__WORKER_KIND__WORKER_DELIVERY, idx, n, 0);
    }
    /* Remote recipients: one job per destination domain; a domain at its limit waits
     * without holding up the others. */
    memset(seen, 0, nr);
    for (size_t i = 0; i < nr; i++) {
        if (seen[i] || m->rec->recipients[i]->local || !is_due(m, i, now))
            continue;
        const char *dom = pm_addr_domain(m->rec->recipients[i]->address);
        n = 0;
        for (size_t k = i; k < nr; k++)
            if (!m->rec->recipients[k]->local && is_due(m, k, now) &&
                strcasecmp(pm_addr_domain(m->rec->recipients[k]->address), dom) == 0) {
                idx[n++] = (uint32_t)k;
                seen[k] = 1;
            }
        if (blocked(wk, dom))
            continue;
        if (!(w = pick_worker(q, POSTMESH__WORKER_KIND__WORKER_MTA, dom))) {
            if (wk->nblocked < sizeof wk->blocked / sizeof wk->blocked[0])
                snprintf(wk->blocked[wk->nblocked++], sizeof wk->blocked[0], "%s", dom);
            continue;
        }
        if (send_job(q, w, m, POSTMESH__WORKER_KIND__WORKER_MTA, idx, n, 0) < 0)
            return;
    }
}

/* Failure and success notices (one DSN for all of a message's recipients that owe one, once
 * none is in flight), then the one delay warning. NOTIFY decides who is in them (dsn.h). */
static void dispatch_bounces(struct queue *q, struct qmsg *m, uint64_t now, uint32_t *idx)
{
    Postmesh__StoredMessage *rec = m->rec;
    if (m->bounce_inflight || now < m->bounce_retry_at)
        return;
    size_t n = 0, deferred = 0, inflight = 0;
    for (size_t i = 0; i < rec->n_recipients; i++) {
        const Rcpt *r = rec->recipients[i];
        inflight += m->inflight[i];
        if (r->state == ST(FAILED) || (r->state == ST(DELIVERED) && r->success_owed))
            idx[n++] = (uint32_t)i;
        else if (r->state == ST(DEFERRED))
            deferred++;
    }
    if (n && !inflight) {
        /* Never bounce a bounce: a failed null-sender message ends in the log. Nor a failure
         * whose NOTIFY does not ask for one (NEVER, SUCCESS or DELAY only). */
        size_t k = 0;
        int changed = 0;
        for (size_t i = 0; i < n; i++) {
            Rcpt *r = rec->recipients[idx[i]];
            const char *why = NULL;
            if (!rec->sender[0] || rec->is_dsn)
                why = "null_sender";
            else if (r->state == ST(FAILED) && !queue_dsn_wants(notify_of(r), QUEUE_DSN_FAILED))
                why = "notify";
            if (!why) {
                idx[k++] = idx[i];
                continue;
            }
            changed = 1;
            if (r->state != ST(FAILED)) {
                r->success_owed = 0;
                continue;
            }
            r->state = ST(BOUNCED);
            char to[PM_LOGV_SIZE], dsn[PM_LOGV_SIZE];
            pm_log(strcmp(why, "null_sender") == 0 ? PM_WARN : PM_INFO,
                   "event=bounce_suppressed id=%s to=%s dsn=%s reason=%s", rec->queue_id, PM_LOGV(to, r->address),
                   PM_LOGV(dsn, r->dsn_status), why);
        }
        if (changed)
            queue_msg_mark_dirty(q, m);
        struct worker *w = k ? pick_worker(q, POSTMESH__WORKER_KIND__WORKER_BOUNCER, NULL) : NULL;
        if (w)
            send_job(q, w, m, POSTMESH__WORKER_KIND__WORKER_BOUNCER, idx, k, 0);
        return;
    }
    if (deferred && !rec->delay_warned && q->cfg->queue.delay_warning > 0 && rec->sender[0] && !rec->is_dsn &&
        now >= rec->arrival_time + (uint64_t)q->cfg->queue.delay_warning) {
        n = 0;
        for (size_t i = 0; i < rec->n_recipients; i++)
            if (rec->recipients[i]->state == ST(DEFERRED) &&
                queue_dsn_wants(notify_of(rec->recipients[i]), QUEUE_DSN_DELAYED))
                idx[n++] = (uint32_t)i;
        if (!n) { /* no deferred recipient's NOTIFY asks for DELAY: the warning is done with */
            rec->delay_warned = 1;
            queue_msg_mark_dirty(q, m);
            pm_log(PM_INFO, "event=delay_notice_suppressed id=%s reason=notify", rec->queue_id);
            return;
        }
        struct worker *w = pick_worker(q, POSTMESH__WORKER_KIND__WORKER_BOUNCER, NULL);
        if (w)
            send_job(q, w, m, POSTMESH__WORKER_KIND__WORKER_BOUNCER, idx, n, 1);
    }
}

static int any_credit(const struct queue *q)
{
    for (size_t i = 0; i < q->nworkers; i++)
        if (q->workers[i].credits > 0)
            return 1;
    return 0;
}

/* When this message next needs attention: 0 = now, UINT64_MAX = only after an event (the
 * same rule as its stored entry's: index.c). */
static uint64_t next_due(const struct queue *q, const struct qmsg *m)
{
    return queue_due_rule(q->cfg, m->rec, m->inflight, m->bounce_inflight, m->bounce_retry_at, 0);
}

/* Walks the active set (at most queue.active_limit messages; those not due are in the store
 * only, index.c) handing due work to workers with credit. Messages that need nothing before
 * next_due (in flight) are skipped cheaply; without any credit left the walk stops
 * (unless full: the periodic pass also expires, finishes and bounces without workers). */
static void dispatch_walk(struct queue *q, int full)
{
    uint64_t now = queue_now();
    struct walk wk = {0};
    /* With due messages left in the store for lack of room, messages still due after the walk
     * (no worker of their kind with credit, their destination at mta.max_per_domain) go back
     * to the store, at most a quarter of the set per full walk: the loader brings in others
     * (it goes round: index.c), so one stalled destination cannot keep the set for itself.
     * Without any credit at all the walk would only churn: nothing rotates then. */
    size_t rotate = full && q->backlog && any_credit(q) ? q->active_limit / 4 + 1 : 0;
    for (struct qmsg *m = q->head, *next; m; m = next) {
        next = m->next;
        if (!m->committed || m->next_due > now)
            continue;
        if (!full && !any_credit(q))
            break;
        queue_expire_msg(q, m, now); /* held messages expire too */
        if (m->rec->hold) {
            queue_msg_maybe_evict(q, m, now); /* (shown or found by id): back to the store */
            continue;
        }
        if (m->rec->n_recipients + 1 > wk.cap) {
            uint32_t *idx = realloc(wk.idx, (m->rec->n_recipients + 1) * sizeof *idx);
            uint8_t *seen = idx ? realloc(wk.seen, m->rec->n_recipients + 1) : NULL;
            if (idx)
                wk.idx = idx;
            if (!seen)
                break; /* out of memory: the next walk tries again */
            wk.seen = seen;
            wk.cap = m->rec->n_recipients + 1;
        }
        dispatch_deliveries(q, m, now, &wk);
        dispatch_bounces(q, m, now, wk.idx);
        if (queue_msg_finished(m)) {
            pm_log(PM_INFO, "event=removed id=%s reason=done", m->rec->queue_id);
            queue_msg_remove(q, m);
            continue;
        }
        m->next_due = next_due(q, m);
        /* Still due now means it waits for credit: look again when credit comes. Not due
         * and nothing in flight: back to the store only (index.c). */
        if (m->next_due > now)
            queue_msg_maybe_evict(q, m, now);
        else if (rotate && queue_msg_evict_blocked(q, m))
            rotate--;
    }
    free(wk.idx);
    free(wk.seen);
}

void queue_dispatch(struct queue *q) { dispatch_walk(q, 0); }
void queue_dispatch_full(struct queue *q) { dispatch_walk(q, 1); }

/* The outstanding job a result names: this run's epoch and the job id. */
static struct job **find_job(struct queue *q, uint64_t epoch, uint64_t job_id)
{
    if (epoch != q->epoch)
        return NULL;
    for (struct job **p = &q->jobs; *p; p = &(*p)->next)
        if ((*p)->job_id == job_id)
            return p;
    return NULL;
}

static int job_holds(const struct job *j, uint32_t index)
{
    if (j->kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER)
        return index == 0; /* a bouncer answers for its one DSN recipient, the sender */
    for (size_t k = 0; k < j->nrcpts; k++)
        if (j->rcpts[k] == index)
            return 1;
    return 0;
}

/* Whether r is a result for j and nothing else: same message, same kind, and only
 * recipients the job holds. Anything else is a peer's bug (or worse) and changes nothing. */
static int result_fits(const struct job *j, const Postmesh__JobResult *r)
{
    if (r->kind != j->kind || strcmp(r->queue_id, j->msg->rec->queue_id) != 0)
        return 0;
    for (size_t x = 0; x < r->n_results; x++)
        if (!job_holds(j, r->results[x]->index))
            return 0;
    return 1;
}

static void free_job(struct queue *q, struct job *j)
{
    for (size_t i = 0; i < q->nworkers; i++)
        if (q->workers[i].serial == j->worker) { /* serials are unique */
            if (q->workers[i].outstanding)
                q->workers[i].outstanding--;
            break;
        }
    if (j->domain)
        domjobs_add(q, j->worker, j->domain, -1);
    queue_msg_release(q, j->msg);
    free(j->rcpts);
    free(j);
}


/* Applies one recipient's outcome to the stored record. */
static void apply_result(struct queue *q, struct qmsg *m, uint32_t i, const Postmesh__RecipientResult *res)
{
    Rcpt *r = m->rec->recipients[i];
    uint64_t now = queue_now();
    char text[PM_LOGV_SIZE], to[PM_LOGV_SIZE], dsn[PM_LOGV_SIZE], relay[PM_LOGV_SIZE];
    queue_count_result(r->local ? "local" : "remote", res);
    if (res && res->status == POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED) {
        /* Not attempted (worker busy or stopping): due again now, no attempt counted. A
         * message handed back again and again still ends at queue.max_lifetime. */
        pm_log(PM_INFO, "event=rcpt_returned id=%s to=%s reason=%s", m->rec->queue_id, PM_LOGV(to, r->address),
               PM_LV(text, res->text));
        if (now >= m->rec->arrival_time + (uint64_t)q->cfg->queue.max_lifetime &&
            (r->state == ST(PENDING) || r->state == ST(DEFERRED)))
            queue_expire_rcpt(m, r, now);
        return;
    }
    r->last_attempt = now;
    r->attempts++;
    queue_set_str(&r->last_error, res ? res->text : "4.3.0 worker gave no result");
    queue_set_str(&r->dsn_status, res && res->dsn_status[0] ? res->dsn_status : "4.3.0");
    queue_set_str(&r->remote_mta, res ? res->remote_mta : "");
    Postmesh__RecipientResult__Status st = res ? res->status : POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL;
    if (st == POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED) {
        r->state = ST(DELIVERED);
        /* RFC 3461 5.2.2: delivered here, or relayed to a next hop without DSN, is ours to
         * report to a NOTIFY=SUCCESS sender; a next hop with DSN got NOTIFY and reports. */
        enum queue_dsn_event ev = r->local ? QUEUE_DSN_DELIVERED_LOCAL
                                  : res->relayed ? QUEUE_DSN_RELAYED
                                                 : QUEUE_DSN_PASSED_ON;
        r->relayed = ev == QUEUE_DSN_RELAYED;
        r->success_owed = m->rec->sender[0] && !m->rec->is_dsn && queue_dsn_wants(notify_of(r), ev);
        pm_log(PM_INFO, "event=rcpt_delivered id=%s to=%s relay=%s", m->rec->queue_id, PM_LOGV(to, r->address),
               r->remote_mta[0] ? PM_LOGV(relay, r->remote_mta) : "local");
    } else if (st == POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL) {
        r->state = ST(FAILED);
        pm_log(PM_INFO, "event=rcpt_failed id=%s to=%s dsn=%s reason=%s", m->rec->queue_id, PM_LOGV(to, r->address),
               PM_LOGV(dsn, r->dsn_status), PM_LV(text, r->last_error));
    } else if (now >= m->rec->arrival_time + (uint64_t)q->cfg->queue.max_lifetime) {
        queue_expire_rcpt(m, r, now);
    } else {
        r->state = ST(DEFERRED);
        uint64_t delay = queue_retry_delay(r->attempts, (uint64_t)q->cfg->queue.retry_min,
                                           (uint64_t)q->cfg->queue.retry_max);
        r->next_attempt = now + delay;
        pm_log(PM_INFO, "event=rcpt_deferred id=%s to=%s dsn=%s delay=%llu reason=%s", m->rec->queue_id,
               PM_LOGV(to, r->address), PM_LOGV(dsn, r->dsn_status), (unsigned long long)delay,
               PM_LV(text, r->last_error));
    }
}

static void apply_bounce_result(struct queue *q, struct qmsg *m, struct job *j, const Postmesh__JobResult *r)
{
    int ok = r->n_results > 0 && r->results[0]->status == POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED;
    int perm = r->n_results > 0 && r->results[0]->status == POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL;
    m->bounce_inflight = 0;
    queue_count_result("bounce", r->n_results > 0 ? r->results[0] : NULL);
    if (r->n_results > 0 && r->results[0]->status == POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED)
        return; /* not attempted: due again at once */
    if (perm) {
        /* The notice itself cannot be delivered: it ends in the log, never in a loop. */
        for (size_t i = 0; i < j->nrcpts && !j->delay_notice; i++) {
            Rcpt *rc = m->rec->recipients[j->rcpts[i]];
            if (rc->state == ST(FAILED))
                rc->state = ST(BOUNCED);
            else if (rc->state == ST(DELIVERED))
                rc->success_owed = 0;
        }
        if (j->delay_notice)
            m->rec->delay_warned = 1;
        char text[PM_LOGV_SIZE], notify[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=bounce_failed id=%s notify=%s reason=%s", m->rec->queue_id,
               PM_LOGV_PATH(notify, m->rec->sender), PM_LV(text, r->results[0]->text));
        return;
    }
    if (!ok) {
        m->bounce_retry_at = queue_now() + (uint64_t)q->cfg->queue.retry_min;
        pm_log(PM_WARN, "event=dsn_deferred id=%s", m->rec->queue_id);
        return;
    }
    if (j->delay_notice) {
        m->rec->delay_warned = 1;
        char to[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=delay_notice_sent id=%s to=%s", m->rec->queue_id, PM_LOGV_PATH(to, m->rec->sender));
    } else {
        for (size_t i = 0; i < j->nrcpts; i++) {
            Rcpt *rc = m->rec->recipients[j->rcpts[i]];
            if (rc->state == ST(FAILED)) {
                rc->state = ST(BOUNCED);
                char to[PM_LOGV_SIZE], dsn[PM_LOGV_SIZE], notify[PM_LOGV_SIZE];
                pm_log(PM_INFO, "event=bounced id=%s to=%s dsn=%s notify=%s", m->rec->queue_id,
                       PM_LOGV(to, rc->address), PM_LOGV(dsn, rc->dsn_status), PM_LOGV_PATH(notify, m->rec->sender));
            } else if (rc->state == ST(DELIVERED) && rc->success_owed) {
                rc->success_owed = 0;
                char to[PM_LOGV_SIZE], notify[PM_LOGV_SIZE];
                pm_log(PM_INFO, "event=success_notice_sent id=%s to=%s action=%s notify=%s", m->rec->queue_id,
                       PM_LOGV(to, rc->address), rc->relayed ? "relayed" : "delivered",
                       PM_LOGV_PATH(notify, m->rec->sender));
            }
        }
    }
}

/* A result for no outstanding job of this run: sent before a queue restart, or after its
 * lease ran out and the job went out again. Its verdicts are still true of the message it
 * names, so a final one (delivered, failed) settles a recipient of that message that is
 * waiting and not in flight (deliveries are idempotent); it is never applied to anything
 * else, and never to a DSN job (whose recipient is not an envelope recipient). */
static void settle_late_result(struct queue *q, const Postmesh__JobResult *r)
{
    struct qmsg *m = queue_msg_find(q, r->queue_id);
    int kind_ok = r->kind == POSTMESH__WORKER_KIND__WORKER_DELIVERY || r->kind == POSTMESH__WORKER_KIND__WORKER_MTA;
    size_t settled = 0;
    for (size_t x = 0; m && !m->removed && kind_ok && x < r->n_results; x++) {
        const Postmesh__RecipientResult *res = r->results[x];
        if (res->index >= m->rec->n_recipients || m->inflight[res->index])
            continue;
        Rcpt *rc = m->rec->recipients[res->index];
        int local_kind = r->kind == POSTMESH__WORKER_KIND__WORKER_DELIVERY;
        if (rc->local != local_kind || (rc->state != ST(PENDING) && rc->state != ST(DEFERRED)))
            continue;
        if (res->status != POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED &&
            res->status != POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL)
            continue;
        apply_result(q, m, res->index, res);
        settled++;
    }
    pm_log(PM_WARN, "event=late_result id=%s job=%llu epoch=%016llx this_epoch=%s settled=%zu",
           r->queue_id, (unsigned long long)r->job_id, (unsigned long long)r->epoch,
           r->epoch == q->epoch ? "yes" : "no", settled);
    if (settled) {
        queue_msg_mark_dirty(q, m);
        m->next_due = 0;
    }
}

/* Validated at the edge (bus_rules.c): r names a job and a well-formed queue id. */
void queue_on_result(struct queue *q, const Postmesh__JobResult *r)
{
    struct job **pj = find_job(q, r->epoch, r->job_id);
    if (!pj) {
        /* TLS sessions only with the answer to a job this run sent: a late or made-up result
         * could name any domain and rua, and be replayed (tlsrpt.h). */
        queue_tlsrpt_refuse(q, r, r->epoch == q->epoch ? "no_job" : "other_epoch");
        settle_late_result(q, r);
        queue_dispatch(q);
        return;
    }
    struct job *j = *pj;
    if (!result_fits(j, r)) {
        /* The job stays out; its lease brings it back if no fitting answer comes. */
        pm_log(PM_WARN, "event=bus_drop reason=result_mismatch job=%llu id=%s kind=%s job_id=%s job_kind=%s",
               (unsigned long long)r->job_id, r->queue_id, pm_worker_kind_name(r->kind),
               j->msg->rec->queue_id, pm_worker_kind_name(j->kind));
        queue_tlsrpt_refuse(q, r, "result_mismatch");
        return;
    }
    queue_tlsrpt_apply(q, r, j->domain); /* before free_job: j->domain is in the message's record */
    *pj = j->next;
    struct qmsg *m = j->msg;
    if (!m->removed) {
        if (j->kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER) {
            apply_bounce_result(q, m, j, r);
        } else {
            for (size_t k = 0; k < j->nrcpts; k++) {
                uint32_t i = j->rcpts[k];
                const Postmesh__RecipientResult *res = NULL;
                for (size_t x = 0; x < r->n_results; x++)
                    if (r->results[x]->index == i)
                        res = r->results[x];
                m->inflight[i] = 0;
                apply_result(q, m, i, res);
            }
        }
        queue_msg_mark_dirty(q, m);
        m->next_due = 0;
    }
    free_job(q, j);
    queue_dispatch(q);
}

void queue_expire_leases(struct queue *q, uint64_t now)
{
    uint64_t now_ms = pm_mono_ms();
    for (struct job **p = &q->jobs; *p;) {
        struct job *j = *p;
        if (j->deadline_ms > now_ms) {
            p = &j->next;
            continue;
        }
        *p = j->next;
        pm_log(PM_WARN, "event=lease_expired id=%s job=%llu kind=%s", j->msg->rec->queue_id,
               (unsigned long long)j->job_id, pm_worker_kind_name(j->kind));
        if (j->kind == POSTMESH__WORKER_KIND__WORKER_BOUNCER)
            j->msg->bounce_inflight = 0;
        else
            for (size_t i = 0; i < j->nrcpts; i++)
                j->msg->inflight[j->rcpts[i]] = 0;
        j->msg->next_due = 0;
        free_job(q, j);
    }
    for (size_t i = 0; i < q->nworkers;) {
        if (q->workers[i].last_seen + WORKER_SILENCE < now)
            drop_worker(q, i, "silent");
        else
            i++;
    }
}

void queue_tick(struct queue *q)
{
    queue_expire_leases(q, queue_now());
    if (q->dirty)
        queue_schedule_commit(q);
    queue_load_due(q); /* what became due in the store since the last tick */
    queue_dispatch_full(q);
    static unsigned ticks;
    if (++ticks % 40 == 0)
        queue_store_trim(q); /* every 10 s: the map's pages read since (store.c) */
}
