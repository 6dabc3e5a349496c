#include "outbound.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "resolve.h"
#include "smtpc.h"
#include "smtpc_conn.h"
#include "smtpc_dotstuff.h"
#include "targets.h"
#include "tls.h"
#include "verdicts.h"

#define MAX_ADDRESS_LEN 512
#define LOCAL_RETRY_MS 50 /* first wait after a connect failed locally (doubles to 16x) */

#define TEMPFAIL POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL
#define PERMFAIL POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL
#define RETURNED POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED

struct mta_outbound {
    struct mta_env env;
    Postmesh__BusMessage *msg;
    const Postmesh__Job *job;
    char domain[256];
    mta_outbound_done done;
    void *arg;
    struct mta_rcpt *rcpts;
    int nrcpts;
    struct mta_targets targets;
    int cur; /* the target being tried */
    uint64_t resolve_handle;
    struct event *kick, *deadline;
    uint64_t deadline_ms;
    int completed;
    int local_waits; /* connects in a row that failed for want of a local resource */
    /* the connection in progress and its view of the recipients */
    struct pm_smtpc_conn *conn;
    struct pm_smtpc smtp;
    struct pm_smtpc_rcpt *srcpts;
    int *smap; /* connection's recipient -> rcpts index */
};

const char *mta_outbound_domain(const struct mta_outbound *o) { return o->domain; }

/* Safe to put between <> on an SMTP command line: no controls, no brackets, bounded. */
static int address_ok(const char *a, int allow_empty)
{
    size_t len = strlen(a);
    if ((!len && !allow_empty) || len > MAX_ADDRESS_LEN)
        return 0;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == '<' || *p == '>')
            return 0;
    return 1;
}

static int is_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 1;
    return 0;
}

static void fail_all(struct mta_outbound *o, mta_status st, const char *dsn, const char *text)
{
    mta_rcpts_fail_all(o->rcpts, o->nrcpts, st, dsn, text);
}

static void end_conn(struct mta_outbound *o)
{
    pm_smtpc_conn_free(o->conn);
    o->conn = NULL;
    free(o->srcpts);
    free(o->smap);
    o->srcpts = NULL;
    o->smap = NULL;
}

/* Every recipient has its verdict: report them all. */
static void complete(struct mta_outbound *o)
{
    if (o->completed)
        return;
    o->completed = 1;
    if (o->resolve_handle)
        mta_resolve_cancel(o->env.resolver, o->resolve_handle);
    o->resolve_handle = 0;
    event_del(o->kick);
    event_del(o->deadline);
    end_conn(o);
    struct mta_result r;
    mta_result_build(&r, o->rcpts, o->nrcpts, o->job);
    o->done(o, &r.res, o->arg);
    mta_result_free(&r);
}

static void kick(struct mta_outbound *o)
{
    struct timeval tv = {0, 0};
    event_add(o->kick, &tv);
}

/* "mail for <domain> loops back to myself", Postfix's words, with the class of dsn. */
static void loop_text(const struct mta_outbound *o, const char *dsn, char *text, size_t size)
{
    snprintf(text, size, "%s mail for %s loops back to myself", dsn, o->domain);
}

/* What the connection in progress decided, folded into the job's recipients. */
static void fold_conn(struct mta_outbound *o)
{
    struct mta_target *t = &o->targets.v[o->cur];
    const struct pm_smtpc *sm = &o->smtp;
    const char *relay = pm_smtpc_conn_relay(o->conn);
    char looptext[PM_SMTPC_TEXT_MAX];
    loop_text(o, t->best ? "5.4.6" : "4.4.6", looptext, sizeof looptext);
    mta_rcpts_fold(o->rcpts, o->smap, sm, t->host, t->best, relay, pm_smtpc_conn_tls(o->conn), looptext);
    if (sm->loop) {
        char dom[PM_LOGV_SIZE], rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s reason=%s best_mx=%s", o->job->queue_id,
               PM_LOGV(dom, o->domain), PM_LOGV(rel, relay), PM_LOGV(why, sm->error), t->best ? "yes" : "no");
    }
}

static void on_conn_done(struct pm_smtpc_conn *c, void *arg)
{
    struct mta_outbound *o = arg;
    struct mta_target *t = &o->targets.v[o->cur];
    const char *relay = pm_smtpc_conn_relay(c);
    if (pm_smtpc_conn_local_failure(c)) {
        /* We are short of descriptors or ports, not the server of anything: the same
         * address again soon, holding our slot meanwhile (the queue sends no more than the
         * slots), rather than a deferral or the next MX for nothing. */
        int ms = LOCAL_RETRY_MS << (o->local_waits < 4 ? o->local_waits : 4);
        if (o->local_waits++ == 0) {
            char rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
            pm_log(PM_WARN, "event=local_resources id=%s relay=%s reason=%s retry_ms=%d", o->job->queue_id,
                   PM_LOGV(rel, relay), PM_LOGV(why, o->smtp.error), ms);
        }
        end_conn(o);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_add(o->kick, &tv);
        return;
    }
    o->local_waits = 0;
    fold_conn(o);
    int retry_plain = pm_smtpc_conn_tls_failed(c) && !t->plain && !o->env.cfg->mta.tls_verify;
    if (o->smtp.error[0]) {
        char rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=attempt_failed id=%s relay=%s reason=%s%s", o->job->queue_id, PM_LOGV(rel, relay),
               PM_LOGV(why, o->smtp.error), retry_plain ? " retry=plaintext" : "");
    }
    end_conn(o);
    if (retry_plain)
        t->plain = 1; /* same address again, in the clear */
    else
        o->cur++;
    kick(o);
}

/* The job's time is up: close whatever is open and report. What the server already decided
 * stands; everything else waits for the queue's next try. */
static void deadline_reached(struct mta_outbound *o)
{
    char text[PM_SMTPC_TEXT_MAX];
    if (!o->conn && o->local_waits) {
        /* The whole time went on waiting for our own resources: handed back, not deferred. */
        char dom[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=deadline id=%s domain=%s tried=%d reason=local_resources", o->job->queue_id,
               PM_LOGV(dom, o->domain), o->cur);
        fail_all(o, RETURNED, "4.3.2", "4.3.2 mta short of local resources");
        complete(o);
        return;
    }
    if (o->conn) {
        const struct pm_smtpc *sm = &o->smtp;
        snprintf(text, sizeof text, "4.4.7 delivery time limit reached %s%s with %s",
                 sm->dot_sent ? "waiting for the reply to " : "in ", pm_smtpc_stage(sm),
                 pm_smtpc_conn_relay(o->conn));
        pm_smtpc_fail(&o->smtp, "4.4.7", "%s", text);
        fold_conn(o);
    } else {
        snprintf(text, sizeof text, "4.4.7 delivery time limit reached%s",
                 o->resolve_handle ? " waiting for the MX lookup" : "");
    }
    char dom[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=deadline id=%s domain=%s tried=%d reason=%s", o->job->queue_id, PM_LOGV(dom, o->domain),
           o->cur, PM_LOGV(why, text));
    fail_all(o, TEMPFAIL, "4.4.7", text);
    complete(o);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_outbound *o = arg;
    if (!o->completed)
        deadline_reached(o);
}

/* The STARTTLS hook of the shared client: the mta's TLS policy (tls.h). */
static SSL *tls_new(const char *host, void *arg)
{
    const struct mta_env *env = arg;
    return mta_tls_new(env->tls_ctx, host, (int)env->cfg->mta.tls_verify);
}

/* Opens a connection to the next address for the recipients still without a verdict. */
static void next_attempt(struct mta_outbound *o)
{
    int left = 0;
    for (int i = 0; i < o->nrcpts; i++)
        left += !o->rcpts[i].final;
    if (left == 0 || o->cur >= o->targets.n) {
        complete(o);
        return;
    }
    if (pm_mono_ms() >= o->deadline_ms) {
        deadline_reached(o); /* the timer may not have run yet */
        return;
    }
    struct mta_target *t = &o->targets.v[o->cur];
    o->srcpts = calloc((size_t)left, sizeof *o->srcpts);
    o->smap = calloc((size_t)left, sizeof *o->smap);
    if (!o->srcpts || !o->smap)
        abort();
    int n = 0, utf8 = is_8bit(o->job->sender);
    for (int i = 0; i < o->nrcpts; i++) {
        if (o->rcpts[i].final)
            continue;
        o->srcpts[n].address = o->rcpts[i].address;
        o->srcpts[n].dsn_notify = o->rcpts[i].rcpt_dsn ? o->rcpts[i].rcpt_dsn->notify : 0;
        o->srcpts[n].dsn_orcpt = o->rcpts[i].rcpt_dsn ? o->rcpts[i].rcpt_dsn->orcpt : NULL;
        o->smap[n++] = i;
        utf8 |= is_8bit(o->rcpts[i].address);
    }
    memset(&o->smtp, 0, sizeof o->smtp);
    o->smtp.helo_name = o->env.cfg->hostname;
    o->smtp.sender = o->job->sender;
    o->smtp.rcpts = o->srcpts;
    o->smtp.nrcpts = n;
    o->smtp.body_size = o->job->body.len;
    o->smtp.body_8bit = pm_smtpc_body_is_8bit(o->job->body.data, o->job->body.len);
    o->smtp.need_smtputf8 = utf8;
    o->smtp.dsn_ret = (int)o->job->dsn_ret;
    o->smtp.dsn_envid = o->job->dsn_envid;
    o->smtp.tls_allowed = o->env.tls_ctx && !t->plain;
    o->smtp.self_name = o->env.cfg->hostname;
    pm_smtpc_init(&o->smtp);
    struct pm_smtpc_conn_params p = {
        .base = o->env.base,
        .tls_new = tls_new,
        .tls_arg = &o->env,
        .log_id = o->job->queue_id,
        .host = t->host,
        .ip = t->ip,
        .port = (int)o->env.cfg->mta.remote_port,
        .connect_timeout = (int)o->env.cfg->mta.connect_timeout,
        .command_timeout = (int)o->env.cfg->mta.command_timeout,
        .smtp = &o->smtp,
        .body = o->job->body.data,
        .body_len = o->job->body.len,
        .done = on_conn_done,
        .arg = o,
    };
    char host[PM_LOGV_SIZE], ip[PM_LOGV_SIZE];
    pm_log(PM_DEBUG, "event=connecting id=%s host=%s ip=%s port=%d rcpts=%d tls=%s", o->job->queue_id,
           PM_LOGV(host, t->host), PM_LOGV(ip, t->ip), p.port, n, o->smtp.tls_allowed ? "may" : "no");
    o->conn = pm_smtpc_conn_start(&p);
    if (!o->conn)
        abort();
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    next_attempt(arg);
}

/* reply is a ResolveReply validated at the edge (bus_rules.c), or NULL with error. */
static void on_resolved(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    struct mta_outbound *o = arg;
    o->resolve_handle = 0;
    if (!reply && strcmp(error, MTA_RESOLVER_BUSY) == 0) {
        /* Our own resolver was congested for the whole wait: nothing was learnt about the
         * domain. Handed back, not deferred: local overload must not cost a retry delay. */
        char text[PM_SMTPC_TEXT_MAX];
        snprintf(text, sizeof text, "4.3.2 MX lookup for %s: %s", o->domain, MTA_RESOLVER_BUSY);
        fail_all(o, RETURNED, "4.3.2", text);
        complete(o);
        return;
    }
    if (!reply) {
        char text[PM_SMTPC_TEXT_MAX];
        snprintf(text, sizeof text, "4.4.3 MX lookup for %s: %s", o->domain, error);
        fail_all(o, TEMPFAIL, "4.4.3", text);
        complete(o);
        return;
    }
    if (reply->status != POSTMESH__RESOLVE_REPLY__STATUS__OK) {
        int perm = reply->status == POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL;
        const char *dsn = reply->dsn_status[0] ? reply->dsn_status : perm ? "5.1.2" : "4.4.3";
        char text[PM_SMTPC_TEXT_MAX];
        snprintf(text, sizeof text, "%s %s", dsn, reply->text);
        fail_all(o, perm ? PERMFAIL : TEMPFAIL, dsn, text);
        complete(o);
        return;
    }
    const char *domain = o->domain;
    switch (mta_targets_mx(&o->targets, reply, o->env.self, (int)o->env.cfg->mta.remote_port, o->job->queue_id, domain)) {
    case MTA_TARGETS_OK:
        break;
    case MTA_TARGETS_LOOP: {
        char text[PM_SMTPC_TEXT_MAX];
        loop_text(o, "5.4.6", text, sizeof text);
        fail_all(o, PERMFAIL, "5.4.6", text);
        complete(o);
        return;
    }
    case MTA_TARGETS_NO_PRIMARY: {
        char text[PM_SMTPC_TEXT_MAX];
        snprintf(text, sizeof text, "4.4.4 unable to find primary relay for %s", domain);
        fail_all(o, TEMPFAIL, "4.4.4", text);
        break;
    }
    case MTA_TARGETS_EMPTY:
        fail_all(o, TEMPFAIL, "4.4.3", "4.4.3 the resolver returned no address to try");
        break;
    }
    next_attempt(o);
}

/* msg is a Job validated at the edge (bus_rules.c): at least one recipient, strings set. */
struct mta_outbound *mta_outbound_start(const struct mta_env *env, Postmesh__BusMessage *msg, uint64_t deadline_ms,
                                        mta_outbound_done done, void *arg)
{
    struct mta_outbound *o = calloc(1, sizeof *o);
    if (!o)
        abort();
    o->env = *env;
    o->msg = msg;
    o->job = msg->job;
    o->done = done;
    o->arg = arg;
    o->deadline_ms = deadline_ms;
    o->kick = evtimer_new(env->base, on_kick, o);
    o->deadline = evtimer_new(env->base, on_deadline, o);
    o->nrcpts = (int)o->job->n_recipients;
    o->rcpts = calloc((size_t)o->nrcpts + 1, sizeof *o->rcpts);
    if (!o->kick || !o->deadline || !o->rcpts)
        abort();
    uint64_t now = pm_mono_ms(), left = deadline_ms > now ? deadline_ms - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(o->deadline, &tv);

    const char *dom = o->job->domain;
    if (!*dom) /* the queue always sets it; be forgiving about the contract */
        dom = pm_addr_domain(o->job->recipients[0]->address);
    snprintf(o->domain, sizeof o->domain, "%s", dom);
    for (char *p = o->domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);

    for (int i = 0; i < o->nrcpts; i++) {
        const Postmesh__JobRecipient *jr = o->job->recipients[i];
        o->rcpts[i].index = jr->index;
        o->rcpts[i].address = jr->address;
        o->rcpts[i].rcpt_dsn = jr->dsn;
        if (!address_ok(o->rcpts[i].address, 0))
            mta_rcpt_final(&o->rcpts[i], PERMFAIL, "5.1.3", "5.1.3 recipient address cannot be sent over SMTP");
    }
    if (!address_ok(o->job->sender, 1))
        fail_all(o, PERMFAIL, "5.1.7", "5.1.7 sender address cannot be sent over SMTP");

    char ip[64];
    if (!o->domain[0]) {
        fail_all(o, PERMFAIL, "5.1.2", "5.1.2 no destination domain");
        kick(o);
    } else if (mta_domain_literal(o->domain, ip, sizeof ip)) {
        if (mta_targets_literal(&o->targets, o->domain, ip, env->self, (int)env->cfg->mta.remote_port,
                                o->job->queue_id) == MTA_TARGETS_LOOP) {
            char text[PM_SMTPC_TEXT_MAX];
            loop_text(o, "5.4.6", text, sizeof text);
            fail_all(o, PERMFAIL, "5.4.6", text);
        }
        kick(o);
    } else {
        int any = 0;
        for (int i = 0; i < o->nrcpts; i++)
            any |= !o->rcpts[i].final;
        if (any)
            o->resolve_handle = mta_resolve_mx(env->resolver, o->domain, on_resolved, o);
        else
            kick(o);
    }
    return o;
}

void mta_outbound_abort(struct mta_outbound *o)
{
    if (o->completed)
        return;
    if (o->conn) {
        pm_smtpc_fail(&o->smtp, "4.3.2", "4.3.2 mta shutting down");
        fold_conn(o); /* what the server decided stands */
    }
    /* Handed back, not failed: the queue dispatches it again at once (to another mta, or
     * to this one restarted) instead of waiting out a retry delay. */
    fail_all(o, RETURNED, "4.3.2", "4.3.2 mta shutting down");
    complete(o);
}

int mta_outbound_awaiting_verdict(const struct mta_outbound *o)
{
    return !o->completed && o->conn && o->smtp.dot_sent;
}

void mta_outbound_free(struct mta_outbound *o)
{
    if (!o)
        return;
    if (o->resolve_handle)
        mta_resolve_cancel(o->env.resolver, o->resolve_handle);
    end_conn(o);
    if (o->kick)
        event_free(o->kick);
    if (o->deadline)
        event_free(o->deadline);
    free(o->rcpts);
    postmesh__bus_message__free_unpacked(o->msg, NULL);
    free(o);
}
