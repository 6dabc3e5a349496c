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
#include "config_tls_policy.h"
#include "dane.h"
#include "log.h"
#include "policy.h"
#include "resolve.h"
#include "smtpc.h"
#include "smtpc_conn.h"
#include "smtpc_dotstuff.h"
#include "sts.h"
#include "targets.h"
#include "tls.h"
#include "tlsrpt.h"
#include "verdicts.h"

#define MAX_ADDRESS_LEN 512
#define LOCAL_RETRY_MS 50 /* first wait after a connect failed locally (doubles to 16x) */

#define TEMPFAIL POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL
#define PERMFAIL POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL
#define RETURNED POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED

/* The TLSA records of one MX host (all its addresses share them). */
struct host_tlsa {
    struct mta_outbound *o;
    char host[256];
    uint64_t handle; /* the lookup in flight, 0 none */
    enum mta_tlsa_state state;
    struct mta_tlsa_set set;
    char why[200];
};

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
    /* TLS policy (policy.h): the destination's inputs, the lookups they need, the decision
     * for the connection in progress. */
    struct mta_policy_in pin;
    struct mta_policy_decision dec;
    uint64_t sts_handle, rpt_handle;
    int mx_done;     /* the MX answer is in and the targets made */
    int waiting;     /* lookups besides the MX still out (MTA-STS, TLSRPT TXT, TLSA) */
    struct mta_sts_policy sts; /* a copy of the domain's MTA-STS policy (pin.sts points here) */
    char *sts_text;
    struct host_tlsa hosts[MTA_MAX_TARGETS];
    int nhosts;
    struct mta_tlsrpt *tlsrpt;
    Postmesh__TlsSession__PolicyType rpt_type; /* the strongest policy that applied so far */
    int decided;     /* dec holds a decision (for the log of recipients never connected) */
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

static void cancel_lookups(struct mta_outbound *o)
{
    if (o->resolve_handle)
        mta_resolve_cancel(o->env.resolver, o->resolve_handle);
    if (o->rpt_handle)
        mta_resolve_cancel(o->env.resolver, o->rpt_handle);
    if (o->sts_handle && o->env.sts)
        mta_sts_cancel(o->env.sts, o->sts_handle);
    for (int i = 0; i < o->nhosts; i++)
        if (o->hosts[i].handle)
            mta_resolve_cancel(o->env.resolver, o->hosts[i].handle);
    for (int i = 0; i < o->nhosts; i++)
        o->hosts[i].handle = 0;
    o->resolve_handle = o->rpt_handle = o->sts_handle = 0;
}

static struct host_tlsa *host_of(struct mta_outbound *o, const char *host)
{
    for (int i = 0; i < o->nhosts; i++)
        if (strcmp(o->hosts[i].host, host) == 0)
            return &o->hosts[i];
    return NULL;
}

/* The log's TLS words of a recipient with no connection of its own (skipped, or the lookups
 * failed): the policy, and that nothing was encrypted. */
static void tls_fields_none(const struct mta_outbound *o, char *buf, size_t size)
{
    /* dane=failed: the MX was skipped for its TLSA (lookup failed or bogus, none usable under
     * dane-only); a destination without TLSA records is dane=no. */
    const char *rt = o->decided && o->dec.mode == MTA_TLS_MODE_SKIP ? o->dec.result_type : NULL;
    int failed = rt && (strcmp(rt, "dnssec-invalid") == 0 || strcmp(rt, "tlsa-invalid") == 0);
    snprintf(buf, size, "tls=none dane=%s sts=%s policy=%s cipher=none", failed ? "failed" : "no",
             mta_sts_applied_name(o->dec.sts), mta_tls_level_name(o->decided ? o->dec.level : o->pin.level));
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
    cancel_lookups(o);
    event_del(o->kick);
    event_del(o->deadline);
    end_conn(o);
    char fields[160];
    tls_fields_none(o, fields, sizeof fields);
    for (int i = 0; i < o->nrcpts; i++)
        if (!o->rcpts[i].tls[0])
            snprintf(o->rcpts[i].tls, sizeof o->rcpts[i].tls, "%s", fields);
    struct mta_result r;
    mta_result_build(&r, o->rcpts, o->nrcpts, o->job);
    mta_tlsrpt_attach(o->tlsrpt, &r.res);
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
    /* tls=verified|encrypted|none dane= sts= policy= cipher=: what this connection had. */
    SSL *ssl = pm_smtpc_conn_ssl(o->conn);
    int dane = ssl && o->dec.mode == MTA_TLS_MODE_DANE && mta_tls_dane_usage(ssl) >= 0;
    /* dane=failed: DANE was required and the server did not pass (no STARTTLS, a handshake
     * or TLSA match that failed); a connection that never got that far is dane=no. */
    int dane_failed = !dane && o->dec.mode == MTA_TLS_MODE_DANE &&
                      (pm_smtpc_conn_tls_failed(o->conn) || strcmp(sm->error_dsn, "4.7.4") == 0);
    char fields[160];
    snprintf(fields, sizeof fields, "tls=%s dane=%s sts=%s policy=%s cipher=%s%s%s",
             !ssl ? "none" : mta_tls_verified(ssl) ? "verified" : "encrypted",
             dane ? "yes" : dane_failed ? "failed" : "no",
             mta_sts_applied_name(o->dec.sts), mta_tls_level_name(o->dec.level), ssl ? SSL_get_cipher_name(ssl) : "none",
             ssl ? " protocol=" : "", ssl ? SSL_get_version(ssl) : "");
    mta_rcpts_fold(o->rcpts, o->smap, sm, t->host, t->best, relay, fields, looptext);
    if (sm->loop) {
        char dom[PM_LOGV_SIZE], rel[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=mail_loop id=%s domain=%s relay=%s reason=%s best_mx=%s", o->job->queue_id,
               PM_LOGV(dom, o->domain), PM_LOGV(rel, relay), PM_LOGV(why, sm->error), t->best ? "yes" : "no");
    }
}

/* RFC 8460 4.3 result type of a handshake that broke. */
static const char *tls_result_type(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "certificate-expired";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "certificate-host-mismatch";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return "certificate-not-trusted";
    default:
        return "validation-failure";
    }
}

/* One TLS session as TLSRPT counts it: established (success), broken, or not offered to a
 * policy that wanted it. Connections that never got to TLS are not sessions. */
static void report_session(struct mta_outbound *o, struct pm_smtpc_conn *c, const struct mta_target *t)
{
    if (!o->tlsrpt || o->dec.mode == MTA_TLS_MODE_NONE)
        return;
    const char *mx = t->host, *ip = t->ip, *ours = pm_smtpc_conn_local_ip(c);
    const char *helo = o->smtp.peer_helo;
    if (o->dec.result_type) {
        /* MTA-STS testing: delivered as may, reported as enforce would have judged it. */
        mta_tlsrpt_session(o->tlsrpt, 0, o->dec.result_type, mx, ip, ours, helo, "MX host not in the MTA-STS policy");
    } else if (pm_smtpc_conn_ssl(c)) {
        mta_tlsrpt_session(o->tlsrpt, 1, NULL, mx, ip, ours, helo, NULL);
    } else if (pm_smtpc_conn_tls_failed(c)) {
        mta_tlsrpt_session(o->tlsrpt, 0, tls_result_type(pm_smtpc_conn_verify_result(c)), mx, ip, ours, helo,
                           o->smtp.error);
    } else if (strcmp(o->smtp.error_dsn, "4.7.4") == 0 ||
               (o->smtp.step >= PM_SMTPC_STEP_MAIL && !o->smtp.tls_active && o->smtp.tls_allowed)) {
        mta_tlsrpt_session(o->tlsrpt, 0, "starttls-not-supported", mx, ip, ours, helo, NULL);
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
    report_session(o, c, t);
    /* Opportunistic TLS only: a policy that requires TLS never continues in the clear. */
    int retry_plain = pm_smtpc_conn_tls_failed(c) && !t->plain && o->dec.plaintext_retry;
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
                 o->resolve_handle ? " waiting for the MX lookup"
                 : o->waiting      ? " waiting for the TLS policy lookups (MTA-STS, TLSA)"
                                   : "");
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

/* The STARTTLS hook of the shared client: the connection as the decision says (tls.h). */
static SSL *tls_new(const char *host, void *arg)
{
    struct mta_outbound *o = arg;
    const struct host_tlsa *h = host_of(o, host);
    return mta_tls_session(o->env.tls, host, o->domain, &o->dec, h ? &h->set : NULL);
}

/* TLSRPT's policy of the domain: the strongest that applied to any MX of this job. */
static void report_policy(struct mta_outbound *o, const char *host)
{
    if (!o->tlsrpt)
        return;
    if (o->dec.dane || o->dec.tlsa_unusable) {
        const struct host_tlsa *h = host_of(o, host);
        if (o->rpt_type != POSTMESH__TLS_SESSION__POLICY_TYPE__TLSA && h) {
            o->rpt_type = POSTMESH__TLS_SESSION__POLICY_TYPE__TLSA;
            mta_tlsrpt_set_policy(o->tlsrpt, o->rpt_type, (const char *const *)h->set.text, (size_t)h->set.total,
                                  NULL, 0);
        }
    } else if (o->dec.sts != MTA_STS_APPLIED_NO && o->rpt_type == POSTMESH__TLS_SESSION__POLICY_TYPE__NO_POLICY_FOUND) {
        o->rpt_type = POSTMESH__TLS_SESSION__POLICY_TYPE__STS;
        const char *lines[64], *mx[MTA_STS_MAX_MX];
        size_t n = 0;
        for (char *p = o->sts_text, *save = NULL, *l = p ? strtok_r(p, "\r\n", &save) : NULL; l && n < 64;
             l = strtok_r(NULL, "\r\n", &save))
            lines[n++] = l;
        for (int i = 0; i < o->sts.nmx; i++)
            mx[i] = o->sts.mx[i];
        mta_tlsrpt_set_policy(o->tlsrpt, o->rpt_type, lines, n, mx, (size_t)o->sts.nmx);
    }
}

/* The decision for target t (policy.h). */
static void decide(struct mta_outbound *o, const struct mta_target *t)
{
    const struct host_tlsa *h = host_of(o, t->host);
    struct mta_policy_mx mx = {
        .host = t->host,
        .secure = t->secure,
        .tlsa = h ? h->state : MTA_TLSA_NOT_ASKED,
        .tlsa_why = h ? h->why : NULL,
    };
    mta_policy_decide(&o->pin, &mx, &o->dec);
    o->decided = 1;
    report_policy(o, t->host);
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
    decide(o, t);
    if (o->dec.mode == MTA_TLS_MODE_SKIP) {
        /* Not this MX now (no usable DANE under dane-only, a TLSA lookup that failed, not in
         * the MTA-STS policy, REQUIRETLS that cannot be met): its reason stays for the
         * recipients if no other MX takes them. */
        char host[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=mx_skipped id=%s host=%s ip=%s policy=%s reason=%s", o->job->queue_id,
               PM_LOGV(host, t->host), t->ip, mta_tls_level_name(o->dec.level), PM_LOGV(why, o->dec.why));
        mta_rcpts_skip(o->rcpts, o->nrcpts, o->dec.dsn, o->dec.why);
        if (o->tlsrpt && o->dec.result_type)
            mta_tlsrpt_session(o->tlsrpt, 0, o->dec.result_type, t->host, t->ip, NULL, NULL, o->dec.why);
        o->cur++;
        kick(o);
        return;
    }
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
    o->smtp.tls_allowed = o->env.tls && o->dec.mode != MTA_TLS_MODE_NONE && !t->plain;
    o->smtp.tls_required = o->dec.tls_required; /* without a context: the handshake "fails" */
    /* RFC 8689: REQUIRETLS on MAIL, and a server without it given up (5.7.30, final once no
     * MX is left: verdicts.h); a notice from <> carries it only where it is offered (5). */
    o->smtp.requiretls = !o->job->requiretls ? PM_SMTPC_REQUIRETLS_NO
                         : o->job->sender[0] ? PM_SMTPC_REQUIRETLS_MUST
                                             : PM_SMTPC_REQUIRETLS_IF_OFFERED;
    o->smtp.self_name = o->env.cfg->hostname;
    pm_smtpc_init(&o->smtp);
    struct pm_smtpc_conn_params p = {
        .base = o->env.base,
        .tls_new = tls_new,
        .tls_arg = o,
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
    pm_log(PM_DEBUG, "event=connecting id=%s host=%s ip=%s port=%d rcpts=%d tls=%s policy=%s", o->job->queue_id,
           PM_LOGV(host, t->host), PM_LOGV(ip, t->ip), p.port, n,
           o->smtp.tls_required ? "required" : o->smtp.tls_allowed ? "may" : "no", mta_tls_level_name(o->dec.level));
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

/* Every answer the policy needs is in: the first connection. */
static void maybe_go(struct mta_outbound *o)
{
    if (o->mx_done && o->waiting == 0 && !o->completed)
        next_attempt(o);
}

static void on_tlsa(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    struct host_tlsa *h = arg;
    struct mta_outbound *o = h->o;
    h->handle = 0;
    o->waiting--;
    h->state = mta_tlsa_from_reply(reply, error, &h->set, h->why, sizeof h->why);
    char host[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
    static const char *const names[] = {"insecure", "none", "usable", "unusable", "failed"};
    pm_log(PM_DEBUG, "event=tlsa id=%s host=%s state=%s usable=%d records=%d%s%s", o->job->queue_id,
           PM_LOGV(host, h->host), names[h->state], h->set.n, h->set.total, h->why[0] ? " reason=" : "",
           h->why[0] ? PM_LOGV(why, h->why) : "");
    maybe_go(o);
}

/* The TLSA records of each MX host whose MX answer and addresses were secure, when the
 * level uses DANE (RFC 7672 2.2): "_<port>._tcp.<host>", all hosts at once. */
static void ask_tlsa(struct mta_outbound *o)
{
    for (int i = 0; i < o->targets.n; i++) {
        const struct mta_target *t = &o->targets.v[i];
        if (!mta_policy_wants_tlsa(&o->pin, t->secure) || host_of(o, t->host) || o->nhosts >= MTA_MAX_TARGETS)
            continue;
        struct host_tlsa *h = &o->hosts[o->nhosts++];
        h->o = o;
        size_t hl = strnlen(t->host, sizeof h->host - 1); /* both ours: GCC cannot tell they differ */
        memcpy(h->host, t->host, hl);
        h->host[hl] = '\0';
        char name[300];
        snprintf(name, sizeof name, "_%lld._tcp.%s", o->env.cfg->mta.remote_port, t->host);
        o->waiting++;
        h->handle = mta_resolve(o->env.resolver, POSTMESH__RESOLVE_REQUEST__KIND__TLSA, name, on_tlsa, h);
    }
}

static void on_sts(const struct mta_sts_result *r, void *arg)
{
    struct mta_outbound *o = arg;
    o->sts_handle = 0;
    o->waiting--;
    if (r->status == MTA_STS_POLICY && r->policy) {
        o->sts = *r->policy;
        o->sts.text = NULL;
        free(o->sts_text);
        o->sts_text = r->policy->text ? strdup(r->policy->text) : NULL;
        o->pin.sts = &o->sts;
    } else if (r->status == MTA_STS_FAILED) {
        /* Delivery goes on as without MTA-STS (RFC 8461 5.1), but a REQUIRETLS message
         * that needed the policy waits for it (policy.c); the report hears of it. */
        o->pin.sts_failed = 1;
        char dom[PM_LOGV_SIZE], why[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=mta_sts_failed id=%s domain=%s result=%s reason=%s", o->job->queue_id,
               PM_LOGV(dom, o->domain), r->result_type, PM_LOGV(why, r->why));
        if (o->tlsrpt) {
            o->rpt_type = POSTMESH__TLS_SESSION__POLICY_TYPE__STS;
            mta_tlsrpt_set_policy(o->tlsrpt, o->rpt_type, NULL, 0, NULL, 0);
            mta_tlsrpt_session(o->tlsrpt, 0, r->result_type, NULL, NULL, NULL, NULL, r->why);
        }
    }
    maybe_go(o);
}

static void on_tlsrpt_txt(const Postmesh__ResolveReply *reply, const char *error, void *arg)
{
    (void)error;
    struct mta_outbound *o = arg;
    o->rpt_handle = 0;
    o->waiting--;
    if (reply && reply->status == POSTMESH__RESOLVE_REPLY__STATUS__OK && o->tlsrpt)
        mta_tlsrpt_set_record(o->tlsrpt, (const char *const *)reply->texts, reply->n_texts);
    char dom[PM_LOGV_SIZE];
    pm_log(PM_DEBUG, "event=tlsrpt_record id=%s domain=%s records=%zu%s%s", o->job->queue_id, PM_LOGV(dom, o->domain),
           reply ? reply->n_texts : 0, reply ? "" : " error=", reply ? "" : error);
    maybe_go(o);
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
    o->mx_done = 1;
    ask_tlsa(o);
    maybe_go(o);
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

    const struct pm_config *cfg = env->cfg;
    o->pin.domain = o->domain;
    o->pin.row = pm_tls_policy_find(&cfg->mta.tls_policy, o->domain);
    o->pin.level = mta_policy_level(o->pin.row, cfg->mta.tls_level, cfg->mta.tls_verify);
    /* RFC 8689 4.2.1: REQUIRETLS binds a message with a return path; 4.1: with it, the header
     * does not count. */
    o->pin.requiretls = o->job->requiretls && o->job->sender[0];
    o->pin.tls_required_no = !o->job->requiretls && mta_tls_required_no(o->job->body.data, o->job->body.len);
    o->rpt_type = POSTMESH__TLS_SESSION__POLICY_TYPE__NO_POLICY_FOUND;

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
        if (any) {
            o->resolve_handle = mta_resolve_mx(env->resolver, o->domain, on_resolved, o);
            /* With the MX, in parallel: the MTA-STS policy and the TLSRPT record, when a
             * policy from DNS may apply to this destination at all. */
            if (mta_policy_wants_sts(&o->pin) && env->sts && env->cfg->mta.mta_sts) {
                o->waiting++;
                o->sts_handle = mta_sts_lookup(env->sts, o->domain, on_sts, o);
            }
            if (mta_policy_wants_tlsrpt(&o->pin) && env->cfg->mta.tlsrpt) {
                o->tlsrpt = mta_tlsrpt_new(o->domain);
                char name[300];
                snprintf(name, sizeof name, "_smtp._tls.%s", o->domain);
                o->waiting++;
                o->rpt_handle = mta_resolve(env->resolver, POSTMESH__RESOLVE_REQUEST__KIND__TXT, name, on_tlsrpt_txt, o);
            }
        } else {
            kick(o);
        }
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
    cancel_lookups(o);
    end_conn(o);
    for (int i = 0; i < o->nhosts; i++)
        mta_tlsa_set_free(&o->hosts[i].set);
    free(o->sts_text);
    mta_tlsrpt_free(o->tlsrpt);
    if (o->kick)
        event_free(o->kick);
    if (o->deadline)
        event_free(o->deadline);
    free(o->rcpts);
    postmesh__bus_message__free_unpacked(o->msg, NULL);
    free(o);
}
