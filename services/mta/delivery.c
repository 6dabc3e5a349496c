#include "delivery.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "dotstuff.h"
#include "log.h"
#include "resolve.h"
#include "self.h"
#include "session.h"
#include "smtp.h"

#define MAX_TARGETS 10      /* addresses tried per job (Postfix: smtp_mx_address_limit) */
#define MAX_ADDRESS_LEN 512
#define LOCAL_RETRY_MS 50   /* first wait after a connect failed locally (doubles to 16x) */

typedef Postmesh__RecipientResult__Status Status;
#define DELIVERED POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED
#define TEMPFAIL POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL
#define PERMFAIL POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL

struct rcpt {
    uint32_t index;
    const char *address;
    int final;
    Status status;
    char dsn[16];
    char text[MTA_TEXT_MAX];
    char remote_mta[256]; /* the host that gave the verdict or the last error, "" if none */
    char relay[360];
    char tls[160];
};

struct target {
    char host[256];
    char ip[64];
    int plain; /* retry without STARTTLS after a broken handshake */
    int best;  /* a host of the lowest preference: a loop found here is final (Postfix) */
};

struct mta_delivery {
    struct mta_env env;
    Postmesh__BusMessage *msg;
    const Postmesh__Job *job;
    char domain[256];
    mta_delivery_done done;
    void *arg;
    struct rcpt *rcpts;
    int nrcpts;
    struct target targets[MAX_TARGETS];
    int ntargets, cur;
    uint64_t resolve_handle;
    struct event *kick, *deadline;
    uint64_t deadline_ms;
    int completed;
    int local_waits; /* connects in a row that failed for want of a local resource */
    /* the session in progress and its view of the recipients */
    struct mta_session *session;
    struct mta_smtp smtp;
    struct mta_smtp_rcpt *srcpts;
    int *smap; /* session recipient -> rcpts index */
};

const char *mta_delivery_domain(const struct mta_delivery *d) { return d->domain; }

const char *mta_domain_literal(const char *domain, char *ip, size_t size)
{
    size_t len = strlen(domain);
    if (len < 3 || domain[0] != '[' || domain[len - 1] != ']' || len - 2 >= size)
        return NULL;
    const char *inner = domain + 1;
    size_t n = len - 2;
    int v6 = 0;
    if (n > 5 && strncasecmp(inner, "IPv6:", 5) == 0)
        inner += 5, n -= 5, v6 = 1;
    memcpy(ip, inner, n);
    ip[n] = '\0';
    unsigned char bin[16];
    return inet_pton(v6 ? AF_INET6 : AF_INET, ip, bin) == 1 ? ip : NULL;
}

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

static void set_final(struct rcpt *r, Status st, const char *dsn, const char *text)
{
    /* dsn/text may be r's own fields (the last temporary reason becoming final). */
    char d[sizeof r->dsn], t[sizeof r->text];
    snprintf(d, sizeof d, "%s", dsn);
    snprintf(t, sizeof t, "%s", text);
    r->final = 1;
    r->status = st;
    memcpy(r->dsn, d, sizeof d);
    memcpy(r->text, t, sizeof t);
}

static void fail_all(struct mta_delivery *d, Status st, const char *dsn, const char *text)
{
    for (int i = 0; i < d->nrcpts; i++)
        if (!d->rcpts[i].final)
            set_final(&d->rcpts[i], st, dsn, text);
}

static void log_result(const struct mta_delivery *d, const struct rcpt *r)
{
    char to[PM_LOGV_SIZE], reply[PM_LOGV_SIZE], relay[PM_LOGV_SIZE], dsn[PM_LOGV_SIZE];
    double delay = d->job->arrival_time ? difftime(time(NULL), (time_t)d->job->arrival_time) : 0;
    const char *event = r->status == DELIVERED                                    ? "delivered"
                        : r->status == TEMPFAIL                                   ? "deferred"
                        : r->status == POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED ? "returned"
                                                                                  : "bounced";
    pm_log(PM_INFO, "event=%s id=%s to=%s relay=%s dsn=%s delay=%.0f%s%s%s reply=%s", event, d->job->queue_id,
           PM_LV(to, r->address), r->relay[0] ? PM_LOGV(relay, r->relay) : "none", PM_LOGV(dsn, r->dsn), delay,
           r->tls[0] ? " tls=\"" : "", r->tls, r->tls[0] ? "\"" : "", PM_LV(reply, r->text));
}

static void end_session(struct mta_delivery *d)
{
    mta_session_free(d->session);
    d->session = NULL;
    free(d->srcpts);
    free(d->smap);
    d->srcpts = NULL;
    d->smap = NULL;
}

/* Every recipient has its verdict: report them all. */
static void complete(struct mta_delivery *d)
{
    if (d->completed)
        return;
    d->completed = 1;
    if (d->resolve_handle)
        mta_resolve_cancel(d->env.resolver, d->resolve_handle);
    d->resolve_handle = 0;
    event_del(d->kick);
    event_del(d->deadline);
    end_session(d);
    Postmesh__JobResult res = POSTMESH__JOB_RESULT__INIT;
    res.job_id = d->job->job_id;
    res.queue_id = d->job->queue_id;
    Postmesh__RecipientResult *rr = calloc((size_t)d->nrcpts + 1, sizeof *rr);
    Postmesh__RecipientResult **rp = calloc((size_t)d->nrcpts + 1, sizeof *rp);
    if (!rr || !rp)
        abort();
    for (int i = 0; i < d->nrcpts; i++) {
        struct rcpt *r = &d->rcpts[i];
        if (!r->final) /* never reached a server that decided: try again later */
            set_final(r, TEMPFAIL, r->dsn[0] ? r->dsn : "4.4.1",
                      r->text[0] ? r->text : "no mail exchanger could be reached");
        log_result(d, r);
        postmesh__recipient_result__init(&rr[i]);
        rr[i].index = r->index;
        rr[i].status = r->status;
        rr[i].dsn_status = r->dsn;
        rr[i].text = r->text;
        rr[i].remote_mta = r->remote_mta;
        rp[i] = &rr[i];
    }
    res.results = rp;
    res.n_results = (size_t)d->nrcpts;
    d->done(d, &res, d->arg);
    free(rr);
    free(rp);
}

static void kick(struct mta_delivery *d)
{
    struct timeval tv = {0, 0};
    event_add(d->kick, &tv);
}

/* "mail for <domain> loops back to myself", Postfix's words, with the class of dsn. */
static void loop_text(const struct mta_delivery *d, const char *dsn, char *text, size_t size)
{
    snprintf(text, size, "%s mail for %s loops back to myself", dsn, d->domain);
}

/* What the session in progress decided, folded into the job's recipients. */
static void fold_session(struct mta_delivery *d)
{
    struct target *t = &d->targets[d->cur];
    const struct mta_smtp *sm = &d->smtp;
    const char *relay = mta_session_relay(d->session);
    char looptext[MTA_TEXT_MAX];
    loop_text(d, t->best ? "5.4.6" : "4.4.6", looptext, sizeof looptext);
    for (int j = 0; j < sm->nrcpts; j++) {
        const struct mta_smtp_rcpt *sr = &sm->rcpts[j];
        struct rcpt *r = &d->rcpts[d->smap[j]];
        snprintf(r->relay, sizeof r->relay, "%s", relay);
        snprintf(r->tls, sizeof r->tls, "%s", mta_session_tls(d->session));
        snprintf(r->remote_mta, sizeof r->remote_mta, "%s", sm->replied ? t->host : "");
        if (sm->loop) {
            /* The best MX is us under another name: nowhere else to go. A lesser one that
             * is us leaves the better ones (Postfix: 5.4.6 / 4.4.6). */
            if (t->best) {
                set_final(r, PERMFAIL, "5.4.6", looptext);
            } else {
                snprintf(r->dsn, sizeof r->dsn, "4.4.6");
                snprintf(r->text, sizeof r->text, "%s", looptext);
            }
            continue;
        }
        switch (sr->state) {
        case MTA_RCPT_DELIVERED:
            set_final(r, DELIVERED, sr->dsn, sr->text);
            break;
        case MTA_RCPT_PERMFAIL:
            set_final(r, PERMFAIL, sr->dsn, sr->text);
            break;
        case MTA_RCPT_TEMPFAIL: /* another server may take it */
            snprintf(r->dsn, sizeof r->dsn, "%s", sr->dsn);
            snprintf(r->text, sizeof r->text, "%s", sr->text);
            break;
        case MTA_RCPT_ACCEPTED:
            if (sm->dot_sent) {
                /* The body went out and no verdict came back: maybe delivered. Not
                 * another server now (a second copy); the queue retries later. */
                set_final(r, TEMPFAIL, sm->error_dsn[0] ? sm->error_dsn : "4.4.2",
                          sm->error[0] ? sm->error : "no reply after end of data");
                break;
            }
            /* fall through */
        case MTA_RCPT_PENDING:
            if (sm->error_perm) {
                set_final(r, PERMFAIL, sm->error_dsn, sm->error);
            } else {
                snprintf(r->dsn, sizeof r->dsn, "%s", sm->error_dsn[0] ? sm->error_dsn : "4.4.2");
                snprintf(r->text, sizeof r->text, "%s", sm->error[0] ? sm->error : "connection ended early");
            }
            break;
        }
    }
    if (sm->loop) {
        char dom[PM_LOGV_SIZE], rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s reason=%s best_mx=%s", d->job->queue_id,
               PM_LOGV(dom, d->domain), PM_LOGV(rel, relay), PM_LOGV(why, sm->error), t->best ? "yes" : "no");
    }
}

static void on_session_done(struct mta_session *s, void *arg)
{
    struct mta_delivery *d = arg;
    struct target *t = &d->targets[d->cur];
    const char *relay = mta_session_relay(s);
    if (mta_session_local_failure(s)) {
        /* We are short of descriptors or ports, not the server of anything: the same
         * address again soon, holding our slot meanwhile (the queue sends no more than the
         * slots), rather than a deferral or the next MX for nothing. */
        int ms = LOCAL_RETRY_MS << (d->local_waits < 4 ? d->local_waits : 4);
        if (d->local_waits++ == 0) {
            char rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
            pm_log(PM_WARN, "event=local_resources id=%s relay=%s reason=%s retry_ms=%d", d->job->queue_id,
                   PM_LOGV(rel, relay), PM_LOGV(why, d->smtp.error), ms);
        }
        end_session(d);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_add(d->kick, &tv);
        return;
    }
    d->local_waits = 0;
    fold_session(d);
    int retry_plain = mta_session_tls_failed(s) && !t->plain && !d->env.cfg->mta.tls_verify;
    if (d->smtp.error[0]) {
        char rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=attempt_failed id=%s relay=%s reason=%s%s", d->job->queue_id, PM_LOGV(rel, relay),
               PM_LOGV(why, d->smtp.error), retry_plain ? " retry=plaintext" : "");
    }
    end_session(d);
    if (retry_plain)
        t->plain = 1; /* same address again, in the clear */
    else
        d->cur++;
    kick(d);
}

/* The job's time is up: close whatever is open and report. What the server already decided
 * stands; everything else waits for the queue's next try. */
static void deadline_reached(struct mta_delivery *d)
{
    char text[MTA_TEXT_MAX];
    if (!d->session && d->local_waits) {
        /* The whole time went on waiting for our own resources: handed back, not deferred. */
        char dom[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=deadline id=%s domain=%s tried=%d reason=local_resources", d->job->queue_id,
               PM_LOGV(dom, d->domain), d->cur);
        fail_all(d, POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED, "4.3.2", "4.3.2 mta short of local resources");
        complete(d);
        return;
    }
    if (d->session) {
        const struct mta_smtp *sm = &d->smtp;
        snprintf(text, sizeof text, "4.4.7 delivery time limit reached %s%s with %s",
                 sm->dot_sent ? "waiting for the reply to " : "in ", mta_smtp_step_name(sm->step),
                 mta_session_relay(d->session));
        mta_smtp_fail(&d->smtp, "4.4.7", "%s", text);
        fold_session(d);
    } else {
        snprintf(text, sizeof text, "4.4.7 delivery time limit reached%s",
                 d->resolve_handle ? " waiting for the MX lookup" : "");
    }
    char dom[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=deadline id=%s domain=%s tried=%d reason=%s", d->job->queue_id, PM_LOGV(dom, d->domain),
           d->cur, PM_LOGV(why, text));
    fail_all(d, TEMPFAIL, "4.4.7", text);
    complete(d);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mta_delivery *d = arg;
    if (!d->completed)
        deadline_reached(d);
}

/* Opens a session to the next address for the recipients still without a verdict. */
static void next_attempt(struct mta_delivery *d)
{
    int left = 0;
    for (int i = 0; i < d->nrcpts; i++)
        left += !d->rcpts[i].final;
    if (left == 0 || d->cur >= d->ntargets) {
        complete(d);
        return;
    }
    if (pm_mono_ms() >= d->deadline_ms) {
        deadline_reached(d); /* the timer may not have run yet */
        return;
    }
    struct target *t = &d->targets[d->cur];
    d->srcpts = calloc((size_t)left, sizeof *d->srcpts);
    d->smap = calloc((size_t)left, sizeof *d->smap);
    if (!d->srcpts || !d->smap)
        abort();
    int n = 0, utf8 = is_8bit(d->job->sender);
    for (int i = 0; i < d->nrcpts; i++) {
        if (d->rcpts[i].final)
            continue;
        d->srcpts[n].address = d->rcpts[i].address;
        d->smap[n++] = i;
        utf8 |= is_8bit(d->rcpts[i].address);
    }
    memset(&d->smtp, 0, sizeof d->smtp);
    d->smtp.helo_name = d->env.cfg->hostname;
    d->smtp.sender = d->job->sender;
    d->smtp.rcpts = d->srcpts;
    d->smtp.nrcpts = n;
    d->smtp.body_size = d->job->body.len;
    d->smtp.body_8bit = mta_body_is_8bit(d->job->body.data, d->job->body.len);
    d->smtp.need_smtputf8 = utf8;
    d->smtp.tls_allowed = d->env.tls_ctx && !t->plain;
    d->smtp.self_name = d->env.cfg->hostname;
    mta_smtp_init(&d->smtp);
    struct mta_session_params p = {
        .base = d->env.base,
        .tls_ctx = d->env.tls_ctx,
        .tls_verify = d->env.cfg->mta.tls_verify,
        .queue_id = d->job->queue_id,
        .host = t->host,
        .ip = t->ip,
        .port = (int)d->env.cfg->mta.remote_port,
        .connect_timeout = (int)d->env.cfg->mta.connect_timeout,
        .command_timeout = (int)d->env.cfg->mta.command_timeout,
        .smtp = &d->smtp,
        .body = d->job->body.data,
        .body_len = d->job->body.len,
        .done = on_session_done,
        .arg = d,
    };
    char host[PM_LOGV_SIZE], ip[PM_LOGV_SIZE];
    pm_log(PM_DEBUG, "event=connecting id=%s host=%s ip=%s port=%d rcpts=%d tls=%s", d->job->queue_id,
           PM_LOGV(host, t->host), PM_LOGV(ip, t->ip), p.port, n, d->smtp.tls_allowed ? "may" : "no");
    d->session = mta_session_start(&p);
    if (!d->session)
        abort();
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    next_attempt(arg);
}

static void on_resolved(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    struct mta_delivery *d = arg;
    d->resolve_handle = 0;
    if (!reply && strcmp(error, MTA_RESOLVER_BUSY) == 0) {
        /* Our own resolver was congested for the whole wait: nothing was learnt about the
         * domain. Handed back, not deferred: local overload must not cost a retry delay. */
        char text[MTA_TEXT_MAX];
        snprintf(text, sizeof text, "4.3.2 MX lookup for %s: %s", d->domain, MTA_RESOLVER_BUSY);
        fail_all(d, POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED, "4.3.2", text);
        complete(d);
        return;
    }
    if (!reply) {
        char text[MTA_TEXT_MAX];
        snprintf(text, sizeof text, "4.4.3 MX lookup for %s: %s", d->domain, error);
        fail_all(d, TEMPFAIL, "4.4.3", text);
        complete(d);
        return;
    }
    if (reply->status != POSTMESH__RESOLVE_REPLY__STATUS__OK) {
        int perm = reply->status == POSTMESH__RESOLVE_REPLY__STATUS__PERMFAIL;
        const char *dsn = reply->dsn_status && reply->dsn_status[0] ? reply->dsn_status : perm ? "5.1.2" : "4.4.3";
        char text[MTA_TEXT_MAX];
        snprintf(text, sizeof text, "%s %s", dsn, reply->text ? reply->text : "");
        fail_all(d, perm ? PERMFAIL : TEMPFAIL, dsn, text);
        complete(d);
        return;
    }
    /* Postfix smtp_find_self + smtp_truncate_self: the first of our own listeners in the
     * list ends it at its preference; only more preferred hosts may take the mail. */
    int port = (int)d->env.cfg->mta.remote_port;
    size_t usable = reply->n_hosts;
    for (size_t h = 0; h < usable; h++) {
        const Postmesh__MxHost *m = reply->hosts[h];
        for (size_t a = 0; a < m->n_addresses; a++) {
            if (!mta_self_is_listener(d->env.self, m->addresses[a], port))
                continue;
            char dom[PM_LOGV_SIZE], rel[PM_LOGV_SIZE], relv[PM_LOGV_SIZE];
            snprintf(rel, sizeof rel, "%s[%s]:%d", m->name, m->addresses[a], port);
            pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s preference=%u reason=our_listener",
                   d->job->queue_id, PM_LOGV(dom, d->domain), PM_LOGV(relv, rel), m->preference);
            while (usable > 0 && reply->hosts[usable - 1]->preference >= m->preference)
                usable--;
            break;
        }
    }
    if (usable < reply->n_hosts && usable == 0) {
        char text[MTA_TEXT_MAX];
        loop_text(d, "5.4.6", text, sizeof text);
        fail_all(d, PERMFAIL, "5.4.6", text);
        complete(d);
        return;
    }
    uint32_t best = usable ? reply->hosts[0]->preference : 0;
    for (size_t h = 0; h < usable && d->ntargets < MAX_TARGETS; h++) {
        const Postmesh__MxHost *m = reply->hosts[h];
        for (size_t a = 0; a < m->n_addresses && d->ntargets < MAX_TARGETS; a++) {
            struct target *t = &d->targets[d->ntargets];
            if (strlen(m->addresses[a]) >= sizeof t->ip || strlen(m->name) >= sizeof t->host)
                continue;
            snprintf(t->host, sizeof t->host, "%s", m->name);
            snprintf(t->ip, sizeof t->ip, "%s", m->addresses[a]);
            t->best = m->preference == best;
            d->ntargets++;
        }
    }
    if (d->ntargets == 0 && usable < reply->n_hosts) {
        char text[MTA_TEXT_MAX];
        snprintf(text, sizeof text, "4.4.4 unable to find primary relay for %s", d->domain);
        fail_all(d, TEMPFAIL, "4.4.4", text);
    } else if (d->ntargets == 0) {
        fail_all(d, TEMPFAIL, "4.4.3", "4.4.3 the resolver returned no address to try");
    }
    next_attempt(d);
}

struct mta_delivery *mta_delivery_start(const struct mta_env *env, Postmesh__BusMessage *msg, uint64_t deadline_ms,
                                        mta_delivery_done done, void *arg)
{
    struct mta_delivery *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->env = *env;
    d->msg = msg;
    d->job = msg->job;
    d->done = done;
    d->arg = arg;
    d->deadline_ms = deadline_ms;
    d->kick = evtimer_new(env->base, on_kick, d);
    d->deadline = evtimer_new(env->base, on_deadline, d);
    d->nrcpts = (int)d->job->n_recipients;
    d->rcpts = calloc((size_t)d->nrcpts + 1, sizeof *d->rcpts);
    if (!d->kick || !d->deadline || !d->rcpts)
        abort();
    uint64_t now = pm_mono_ms(), left = deadline_ms > now ? deadline_ms - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(d->deadline, &tv);

    const char *dom = d->job->domain;
    if (!dom || !*dom) { /* the queue always sets it; be forgiving about the contract */
        const char *at = d->nrcpts ? strrchr(d->job->recipients[0]->address, '@') : NULL;
        dom = at ? at + 1 : "";
    }
    snprintf(d->domain, sizeof d->domain, "%s", dom);
    for (char *p = d->domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);

    for (int i = 0; i < d->nrcpts; i++) {
        const Postmesh__JobRecipient *jr = d->job->recipients[i];
        d->rcpts[i].index = jr->index;
        d->rcpts[i].address = jr->address ? jr->address : "";
        if (!address_ok(d->rcpts[i].address, 0))
            set_final(&d->rcpts[i], PERMFAIL, "5.1.3", "5.1.3 recipient address cannot be sent over SMTP");
    }
    if (!address_ok(d->job->sender ? d->job->sender : "", 1))
        fail_all(d, PERMFAIL, "5.1.7", "5.1.7 sender address cannot be sent over SMTP");

    char ip[64];
    if (d->nrcpts == 0 || !d->domain[0]) {
        fail_all(d, PERMFAIL, "5.1.2", "5.1.2 no destination domain");
        kick(d);
    } else if (mta_domain_literal(d->domain, ip, sizeof ip)) {
        if (mta_self_is_listener(env->self, ip, (int)env->cfg->mta.remote_port)) {
            char text[MTA_TEXT_MAX];
            loop_text(d, "5.4.6", text, sizeof text);
            char dom[PM_LOGV_SIZE];
            pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s:%lld reason=our_listener", d->job->queue_id,
                   PM_LOGV(dom, d->domain), ip, env->cfg->mta.remote_port);
            fail_all(d, PERMFAIL, "5.4.6", text);
        } else {
            snprintf(d->targets[0].host, sizeof d->targets[0].host, "%s", d->domain);
            snprintf(d->targets[0].ip, sizeof d->targets[0].ip, "%s", ip);
            d->targets[0].best = 1;
            d->ntargets = 1;
        }
        kick(d);
    } else {
        int any = 0;
        for (int i = 0; i < d->nrcpts; i++)
            any |= !d->rcpts[i].final;
        if (any)
            d->resolve_handle = mta_resolve_mx(env->resolver, d->domain, on_resolved, d);
        else
            kick(d);
    }
    return d;
}

void mta_delivery_abort(struct mta_delivery *d)
{
    if (d->completed)
        return;
    if (d->session) {
        mta_smtp_fail(&d->smtp, "4.3.2", "4.3.2 mta shutting down");
        fold_session(d); /* what the server decided stands */
    }
    /* Handed back, not failed: the queue dispatches it again at once (to another mta, or
     * to this one restarted) instead of waiting out a retry delay. */
    fail_all(d, POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED, "4.3.2", "4.3.2 mta shutting down");
    complete(d);
}

int mta_delivery_awaiting_verdict(const struct mta_delivery *d)
{
    return !d->completed && d->session && d->smtp.dot_sent;
}

void mta_delivery_free(struct mta_delivery *d)
{
    if (!d)
        return;
    if (d->resolve_handle)
        mta_resolve_cancel(d->env.resolver, d->resolve_handle);
    end_session(d);
    if (d->kick)
        event_free(d->kick);
    if (d->deadline)
        event_free(d->deadline);
    free(d->rcpts);
    postmesh__bus_message__free_unpacked(d->msg, NULL);
    free(d);
}
