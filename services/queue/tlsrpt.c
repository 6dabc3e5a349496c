/* TLSRPT in the queue (tlsrpt.h): the day records in the store's "tlsrpt" database, the
 * records changed since the last commit, the reports waiting for their commit, the timer. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logvalue.h"
#include "tlsrpt.h"
#include "tlsrpt_record.h"

#define TOUCHED_MAX 4096       /* changed records waiting for a commit (a burst's worth) */
#define REPORTS_PER_ROUND 1000 /* reports one `queue tlsrpt` or timer round queues at most */
#define TIMER_S 60             /* the timer looks for finished days this often */
#define FIRST_TIMER_S 2        /* ... and soon after a start: a queue that was down at the hour */
#define STORE_SHARE 8          /* the counts may take 1/8 of the store's map at most: sessions are
                                * what an mta says about the jobs it was sent, the messages come first */

struct touched {
    char key[TLSRPT_KEY_SIZE];
    size_t klen;
    json_object *rec;
};

/* The report waiting for its commit: the Submit it is, and the day record it replaces. */
struct sending {
    const Postmesh__BusMessage *bm;
    char key[TLSRPT_KEY_SIZE];
    size_t klen;
    char domain[256], day[16];
    long long ok, failed;
    int nto, done;
};

struct queue_tlsrpt {
    struct touched *t;
    size_t nt;
    struct sending report; /* one at a time: each report is committed before the next */
    int reporting;
    struct event *timer;
    unsigned long long dropped; /* sessions not counted (bounds), for the log */
    size_t pending_bytes;       /* what the touched records may add at the next commit (estimate) */
};

static int db_ready(struct queue *q) { return q->env && q->tlsrpt; }

/* The day the counts and the reports go by. A test build may move it (a finished day without
 * waiting for one): POSTMESH_TEST_TLSRPT_CLOCK=<seconds to add>. */
static long long clock_offset;

static time_t tlsrpt_now(void) { return time(NULL) + (time_t)clock_offset; }

/* The record of key as it will be after the pending commit: the changed copy, else the
 * stored one, else a new one. NULL: no room or no memory. */
static struct touched *touch(struct queue *q, const char *key, size_t klen)
{
    struct queue_tlsrpt *s = q->tlsrpt;
    for (size_t i = 0; i < s->nt; i++)
        if (s->t[i].klen == klen && memcmp(s->t[i].key, key, klen) == 0)
            return &s->t[i];
    if (s->nt >= TOUCHED_MAX)
        return NULL;
    json_object *rec = NULL;
    MDB_txn *txn;
    if (queue_store_txn(q, MDB_RDONLY, &txn) == 0) {
        MDB_val k = {klen, (void *)key}, v;
        if (mdb_get(txn, q->db_tlsrpt, &k, &v) == 0 && v.mv_size <= TLSRPT_MAX_RECORD) {
            json_tokener *tok = json_tokener_new();
            rec = tok ? json_tokener_parse_ex(tok, v.mv_data, (int)v.mv_size) : NULL;
            json_tokener_free(tok);
            if (rec && !json_object_is_type(rec, json_type_object)) {
                json_object_put(rec);
                rec = NULL;
            }
            if (!rec)
                pm_log(PM_WARN, "event=tlsrpt_corrupt key=\"%.*s\"", (int)klen, key);
        }
        mdb_txn_abort(txn);
    }
    if (!rec && !(rec = queue_tlsrpt_record_new()))
        return NULL;
    struct touched *grown = realloc(s->t, (s->nt + 1) * sizeof *s->t);
    if (!grown) {
        json_object_put(rec);
        return NULL;
    }
    s->t = grown;
    struct touched *t = &s->t[s->nt++];
    memcpy(t->key, key, klen);
    t->klen = klen;
    t->rec = rec;
    return t;
}

/* Octets the "tlsrpt" database takes in the store now (its B-tree's pages). */
static size_t stored_bytes(struct queue *q)
{
    MDB_txn *txn;
    MDB_stat st;
    size_t used = 0;
    if (queue_store_txn(q, MDB_RDONLY, &txn) != 0)
        return (size_t)-1;
    if (mdb_stat(txn, q->db_tlsrpt, &st) == 0)
        used = (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * (size_t)st.ms_psize;
    mdb_txn_abort(txn);
    return used;
}

/* At most what one session adds to a record's JSON (its strings, quoted, and the members). */
static size_t session_bytes(const Postmesh__TlsSession *s)
{
    size_t n = 512 + strlen(s->policy_domain);
    for (size_t i = 0; i < s->n_policy_strings; i++)
        n += strlen(s->policy_strings[i]) * 2 + 8; /* json-c may escape */
    for (size_t i = 0; i < s->n_mx_host; i++)
        n += strlen(s->mx_host[i]) + 8;
    for (size_t i = 0; i < s->n_rua; i++)
        n += strlen(s->rua[i]) + 8;
    const char *f[] = {s->result_type, s->sending_ip, s->receiving_mx_hostname, s->receiving_ip,
                       s->receiving_mx_helo, s->additional_info, s->failure_reason_code};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        n += (f[i] ? strlen(f[i]) * 2 : 0) + 32;
    return n;
}

void queue_tlsrpt_refuse(struct queue *q, const Postmesh__JobResult *r, const char *reason)
{
    if (r->n_tls_sessions == 0)
        return;
    if (q->tlsrpt)
        q->tlsrpt->dropped += r->n_tls_sessions;
    pm_log(PM_WARN, "event=tlsrpt_refused id=%s reason=%s sessions=%zu job=%llu kind=%s", r->queue_id, reason,
           r->n_tls_sessions, (unsigned long long)r->job_id, pm_worker_kind_name(r->kind));
}

void queue_tlsrpt_apply(struct queue *q, const Postmesh__JobResult *r, const char *job_domain)
{
    if (!db_ready(q) || r->n_tls_sessions == 0)
        return;
    if (r->kind != POSTMESH__WORKER_KIND__WORKER_MTA || !job_domain || !job_domain[0]) {
        queue_tlsrpt_refuse(q, r, "not_mta");
        return;
    }
    time_t now = tlsrpt_now();
    size_t counted = 0, full = 0, foreign = 0;
    size_t limit = ((size_t)q->cfg->queue.map_size_mb << 20) / STORE_SHARE, used = stored_bytes(q);
    for (size_t i = 0; i < r->n_tls_sessions; i++) {
        const Postmesh__TlsSession *s = r->tls_sessions[i];
        if (!queue_tlsrpt_session_for(s, job_domain)) {
            foreign++; /* the job was not for it: no mta may report on a domain it was not sent to */
            q->tlsrpt->dropped++;
            continue;
        }
        size_t add = session_bytes(s);
        if (used > limit || q->tlsrpt->pending_bytes + add > limit - used) {
            full++;
            q->tlsrpt->dropped++;
            continue;
        }
        char key[TLSRPT_KEY_SIZE];
        int klen = queue_tlsrpt_key(key, now, s->policy_domain);
        struct touched *t = klen > 0 ? touch(q, key, (size_t)klen) : NULL;
        if (t && queue_tlsrpt_merge(t->rec, s) == 0) {
            counted++;
            q->tlsrpt->pending_bytes += add;
        } else {
            q->tlsrpt->dropped++;
        }
    }
    char dom[PM_LOGV_SIZE];
    if (foreign)
        pm_log(PM_WARN, "event=tlsrpt_refused id=%s reason=other_domain sessions=%zu job=%llu job_domain=%s",
               r->queue_id, foreign, (unsigned long long)r->job_id, PM_LOGV(dom, job_domain));
    if (full)
        pm_log(PM_WARN, "event=tlsrpt_full id=%s sessions=%zu limit_octets=%zu stored_octets=%zu", r->queue_id, full,
               limit, used);
    pm_log(counted + foreign == r->n_tls_sessions ? PM_DEBUG : PM_WARN,
           "event=tlsrpt_sessions id=%s domain=%s sessions=%zu counted=%zu uncounted_total=%llu", r->queue_id,
           PM_LOGV(dom, job_domain), r->n_tls_sessions, counted, q->tlsrpt->dropped);
    if (counted)
        queue_schedule_commit(q);
}

int queue_tlsrpt_pending(const struct queue *q) { return q->tlsrpt && q->tlsrpt->nt > 0; }

/* The counts touched since the last commit: written (committed) or lost (unsaved). */
static void drop_pending(struct queue_tlsrpt *s)
{
    for (size_t i = 0; i < s->nt; i++)
        json_object_put(s->t[i].rec);
    free(s->t);
    s->t = NULL;
    s->nt = 0;
    s->pending_bytes = 0;
}

int queue_tlsrpt_stage(struct queue *q, MDB_txn *txn, struct qmsg **list, size_t n)
{
    struct queue_tlsrpt *s = q->tlsrpt;
    if (!s)
        return 0;
    /* The counts in a transaction of their own inside the commit's: a store that cannot take
     * them (full, a record too large) loses the counts, never the messages of the commit. */
    MDB_txn *child = NULL;
    int rc = s->nt ? mdb_txn_begin(q->env, txn, 0, &child) : 0;
    for (size_t i = 0; i < s->nt && !rc; i++) {
        const char *js = json_object_to_json_string_ext(s->t[i].rec, JSON_C_TO_STRING_PLAIN);
        if (!js) {
            rc = ENOMEM;
        } else if (strlen(js) > TLSRPT_MAX_RECORD) { /* would not be read back: the stored one stays */
            pm_log(PM_WARN, "event=tlsrpt_dropped key=\"%.*s\" reason=record_too_large", (int)s->t[i].klen, s->t[i].key);
        } else {
            MDB_val k = {s->t[i].klen, s->t[i].key}, v = {strlen(js), (void *)js};
            rc = mdb_put(child, q->db_tlsrpt, &k, &v, 0);
        }
    }
    if (child && !rc)
        rc = mdb_txn_commit(child); /* into the parent: durable with it */
    else if (child)
        mdb_txn_abort(child);
    if (rc) {
        pm_log(PM_WARN, "event=tlsrpt_unsaved records=%zu error=\"%s\"", s->nt, mdb_strerror(rc));
        drop_pending(s);
    }
    if (!s->reporting)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (list[i]->pending_submit == s->report.bm) {
            MDB_val k = {s->report.klen, s->report.key};
            int rc = mdb_del(txn, q->db_tlsrpt, &k, NULL);
            return rc == MDB_NOTFOUND ? 0 : rc;
        }
    return 0;
}

void queue_tlsrpt_committed(struct queue *q, struct qmsg **list, size_t n)
{
    struct queue_tlsrpt *s = q->tlsrpt;
    if (!s)
        return;
    drop_pending(s);
    if (!s->reporting)
        return;
    for (size_t i = 0; i < n; i++)
        if (list[i]->pending_submit == s->report.bm) {
            char dom[PM_LOGV_SIZE];
            pm_log(PM_INFO, "event=tlsrpt_report id=%s domain=%s day=%s rcpts=%d successful=%lld failed=%lld",
                   list[i]->rec->queue_id, PM_LOGV(dom, s->report.domain), s->report.day, s->report.nto,
                   s->report.ok, s->report.failed);
            s->report.done = 1;
        }
}

/* A Submit of the report: null sender, originating (DKIM-signed when our key exists). */
static Postmesh__BusMessage *make_submit(char *body, size_t len, char to[][256], int nto)
{
    Postmesh__BusMessage *bm = malloc(sizeof *bm);
    Postmesh__Submit *sub = malloc(sizeof *sub);
    char **rcpts = calloc((size_t)nto, sizeof *rcpts);
    if (!bm || !sub || !rcpts) {
        free(bm);
        free(sub);
        free(rcpts);
        return NULL;
    }
    postmesh__bus_message__init(bm);
    postmesh__submit__init(sub);
    bm->body_case = POSTMESH__BUS_MESSAGE__BODY_SUBMIT;
    bm->submit = sub;
    sub->recipients = rcpts;
    for (int i = 0; i < nto; i++)
        if ((rcpts[sub->n_recipients] = strdup(to[i])))
            sub->n_recipients++;
    sub->sender = strdup("");
    sub->client_address = strdup("local");
    sub->helo = strdup("");
    sub->auth_user = strdup("");
    sub->origin_id = strdup("");
    sub->hold_reason = strdup("");
    sub->dsn_envid = strdup("");
    sub->originating = 1;
    sub->body.data = (uint8_t *)body;
    sub->body.len = len;
    if (!sub->sender || !sub->client_address || !sub->helo || !sub->auth_user || !sub->origin_id ||
        !sub->hold_reason || !sub->dsn_envid || sub->n_recipients != (size_t)nto) {
        postmesh__bus_message__free_unpacked(bm, NULL); /* frees body too */
        return NULL;
    }
    return bm;
}

/* The report of one day record: built, admitted and committed with the record's deletion.
 * Returns 1 (queued), 0 (nothing to send: the record was dropped) or -1 (failed). */
static int send_one(struct queue *q, const char *key, size_t klen, json_object *rec, time_t day_start, time_t now)
{
    struct queue_tlsrpt *s = q->tlsrpt;
    struct sending *r = &s->report;
    memset(r, 0, sizeof *r);
    memcpy(r->key, key, klen);
    r->klen = klen;
    snprintf(r->day, sizeof r->day, "%.10s", key);
    snprintf(r->domain, sizeof r->domain, "%.*s", (int)(klen - 11), key + 11);
    queue_tlsrpt_totals(rec, &r->ok, &r->failed);
    char to[PM_TLSRPT_MAX_RUA][256];
    r->nto = queue_tlsrpt_rua(rec, to, PM_TLSRPT_MAX_RUA);
    const char *host = q->cfg->hostname;
    char contact[300], report_id[400], rid[QUEUE_ID_LEN + 1];
    snprintf(contact, sizeof contact, "postmaster@%s", host);
    queue_new_id(rid);
    snprintf(report_id, sizeof report_id, "%s.%.4s%.2s%.2s@%s", rid, key, key + 5, key + 8, host);
    time_t end = day_start + 86399;
    struct tlsrpt_meta meta = {
        .organization = q->cfg->queue.tlsrpt_organization && q->cfg->queue.tlsrpt_organization[0]
                            ? q->cfg->queue.tlsrpt_organization
                            : host,
        .submitter = host,
        .contact = contact,
        .report_id = report_id,
        .domain = r->domain,
        .start = day_start,
        .end = end < now ? end : now, /* today's, asked for now: up to now */
        .now = now,
    };
    char *json = r->nto > 0 && (r->ok || r->failed) ? queue_tlsrpt_json(rec, &meta) : NULL;
    size_t len = 0;
    char *body = json ? queue_tlsrpt_message(&meta, json, to, r->nto, &len) : NULL;
    free(json);
    Postmesh__BusMessage *bm = body ? make_submit(body, len, to, r->nto) : NULL;
    if (!bm) {
        free(body);
        char dom[PM_LOGV_SIZE];
        if (r->nto > 0 && (r->ok || r->failed)) {
            pm_log(PM_ERR, "event=tlsrpt_error domain=%s day=%s error=\"out of memory\"", PM_LOGV(dom, r->domain), r->day);
            return -1;
        }
        /* No address to send to, or nothing counted: the record goes without a report. */
        MDB_txn *txn;
        int rc = queue_store_txn(q, 0, &txn);
        MDB_val k = {klen, (void *)key};
        if (!rc && (rc = mdb_del(txn, q->db_tlsrpt, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            mdb_txn_abort(txn);
        else if (!rc)
            rc = mdb_txn_commit(txn);
        pm_log(PM_WARN, "event=tlsrpt_dropped domain=%s day=%s reason=%s", PM_LOGV(dom, r->domain), r->day,
               r->nto ? "empty" : "no_rua");
        return rc ? -1 : 0;
    }
    static const uint8_t no_peer[1]; /* ours: nobody waits for the reply */
    r->bm = bm;
    s->reporting = 1;
    queue_submit_admit(q, bm, no_peer, 0, 1, NULL);
    queue_commit_now(q); /* no other event runs in between: the record read is the record deleted */
    s->reporting = 0;
    r->bm = NULL;
    return r->done ? 1 : -1;
}

int queue_tlsrpt_send(struct queue *q, int all, char *text, size_t size)
{
    if (!db_ready(q)) {
        snprintf(text, size, "TLS reports are not kept");
        return -1;
    }
    if (queue_tlsrpt_pending(q))
        queue_commit_now(q); /* what was counted, stored first: the reports read the store */
    if (queue_tlsrpt_pending(q)) {
        snprintf(text, size, "the store refused the TLS report counts; try again later");
        return -1;
    }
    time_t now = tlsrpt_now();
    int sent = 0, failed = 0, dropped = 0;
    char after[TLSRPT_KEY_SIZE];
    size_t alen = 0;
    for (int round = 0; round < REPORTS_PER_ROUND; round++) {
        /* The next record due after the last one looked at, read in a transaction of its own
         * (the send commits before the next read). */
        MDB_txn *txn;
        MDB_cursor *cur;
        if (queue_store_txn(q, MDB_RDONLY, &txn) != 0)
            break;
        if (mdb_cursor_open(txn, q->db_tlsrpt, &cur) != 0) {
            mdb_txn_abort(txn);
            break;
        }
        MDB_val k = {alen, after}, v;
        int rc = mdb_cursor_get(cur, &k, &v, alen ? MDB_SET_RANGE : MDB_FIRST);
        if (rc == 0 && alen && k.mv_size == alen && memcmp(k.mv_data, after, alen) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        json_object *rec = NULL;
        time_t day = 0;
        for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            const char *dom;
            size_t dlen;
            if (k.mv_size >= sizeof after)
                continue;
            memcpy(after, k.mv_data, k.mv_size);
            alen = k.mv_size;
            if (queue_tlsrpt_key_parse(after, alen, &day, &dom, &dlen) < 0)
                continue;
            if (!all && !queue_tlsrpt_due(day, now, (int)q->cfg->queue.tlsrpt_hour))
                continue;
            json_tokener *tok = json_tokener_new();
            rec = tok && v.mv_size <= TLSRPT_MAX_RECORD ? json_tokener_parse_ex(tok, v.mv_data, (int)v.mv_size) : NULL;
            json_tokener_free(tok);
            if (!rec || !json_object_is_type(rec, json_type_object)) {
                json_object_put(rec);
                rec = queue_tlsrpt_record_new(); /* unreadable: dropped below (no rua) */
            }
            break;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (!rec)
            break;
        int r = send_one(q, after, alen, rec, day, now);
        json_object_put(rec);
        if (r > 0)
            sent++;
        else if (r == 0)
            dropped++;
        else
            failed++;
    }
    snprintf(text, size, "%d TLS reports queued%s", sent, failed ? " (some failed: see the log)" : "");
    if (sent || failed || dropped)
        pm_log(PM_INFO, "event=tlsrpt_round queued=%d failed=%d dropped=%d all=%d", sent, failed, dropped, all);
    return failed && !sent ? -1 : sent;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct queue *q = arg;
    char text[128];
    queue_tlsrpt_send(q, 0, text, sizeof text);
    struct timeval tv = {TIMER_S, 0};
    event_add(q->tlsrpt->timer, &tv);
}

int queue_tlsrpt_init(struct queue *q)
{
    q->tlsrpt = calloc(1, sizeof *q->tlsrpt);
    if (!q->tlsrpt)
        return -1;
#ifndef POSTMESH_NO_TEST_HOOKS
    const char *off = getenv("POSTMESH_TEST_TLSRPT_CLOCK");
    clock_offset = off ? strtoll(off, NULL, 10) : 0;
#endif
    q->tlsrpt->timer = event_new(q->base, -1, 0, on_timer, q);
    struct timeval tv = {FIRST_TIMER_S, 0};
    if (!q->tlsrpt->timer || event_add(q->tlsrpt->timer, &tv) < 0)
        return -1;
    return 0;
}

void queue_tlsrpt_free(struct queue *q)
{
    struct queue_tlsrpt *s = q->tlsrpt;
    if (!s)
        return;
    if (s->nt)
        pm_log(PM_WARN, "event=tlsrpt_unsaved records=%zu", s->nt);
    drop_pending(s);
    if (s->timer)
        event_free(s->timer);
    free(s);
    q->tlsrpt = NULL;
}
