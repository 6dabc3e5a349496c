/* ETRN's handler and its wait for the queue shards (etrn.h). */
#include "etrn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "addr.h"
#include "command_table.h"
#include "log.h"
#include "queueset.h"
#include "session.h"

#define MAX_NODE 256 /* "@" and a domain of at most 255 octets */

struct smtpd_etrn {
    char node[MAX_NODE + 1]; /* as the client gave it */
    int shards, waiting;     /* asked, not answered yet */
    int started, nothing, failed;
    unsigned long long messages;
    long long start_ms;
    struct smtpd_pending req[]; /* one per shard */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Why the node may not be started (a 459 reason), or NULL. domain: without the "@". */
static const char *not_allowed(const struct pm_config *cfg, const char *domain)
{
    /* Our own mail is delivered here, never queued for a client to fetch. */
    if (pm_config_is_local_domain(cfg, domain))
        return "mail for it is delivered here";
    if (cfg->smtpd.etrn_domains.n == 0)
        return NULL;
    for (int i = 0; i < cfg->smtpd.etrn_domains.n; i++)
        if (strcasecmp(cfg->smtpd.etrn_domains.v[i], domain) == 0)
            return NULL;
    return "not an ETRN domain here";
}

/* Every shard answered or will not: the client's reply, and back to commands. */
static void finish(struct smtpd_session *s)
{
    struct smtpd_etrn *e = s->etrn;
    char node[MAX_NODE + 1], v[PM_LOGV_SIZE];
    /* RFC 1985 5: some shard started the node's mail, every shard had none, or not all of
     * them could say (a shard that is down holds what it holds until it is back). */
    const char *result = e->started ? "started" : e->failed ? "failed" : "nothing";
    pm_log(e->started || !e->failed ? PM_INFO : PM_WARN,
           "event=etrn client=%s node=%s result=%s messages=%llu shards=%d failed=%d ms=%lld", s->peer,
           PM_LOGV(v, e->node), result, e->messages, e->shards, e->failed, now_ms() - e->start_ms);
    snprintf(node, sizeof node, "%s", e->node);
    int started = e->started, failed = e->failed;
    smtpd_etrn_forget(s);
    smtpd_session_cancel_timer(s);
    if (started)
        smtpd_reply(s, "250 2.0.0 Queuing for node %s started", node);
    else if (!failed)
        smtpd_reply(s, "251 2.0.0 No messages waiting for node %s", node);
    else
        smtpd_reply_error(s, "458 4.3.0 Unable to queue messages for node %s", node);
    if (s->state == SMTPD_ST_QUEUE) { /* it waited: go on with what the client sent meanwhile */
        s->state = SMTPD_ST_COMMAND;
        smtpd_session_resume(s);
    }
}

/* 0 and the node's domain in dom (without a leading "@"), or -1: not the syntax. */
static int node_domain(const char *arg, size_t len, char *dom)
{
    size_t at = len && arg[0] == '@';
    if (len > MAX_NODE || len - at == 0 || memchr(arg, ' ', len) || memchr(arg, '\t', len) ||
        pm_addr_check_domain(arg + at, len - at, 0) != PM_ADDR_OK)
        return -1;
    memcpy(dom, arg + at, len - at);
    dom[len - at] = '\0';
    return 0;
}

void smtpd_cmd_etrn(struct smtpd_session *s, const struct smtpd_command *c)
{
    struct smtpd_server *srv = s->srv;
    char dom[MAX_NODE + 1];
    if (c->arg[0] == '#') {
        smtpd_reply_error(s, "458 4.5.4 Unable to queue messages: queue names (#) are not supported");
        return;
    }
    if (node_domain(c->arg, c->arglen, dom) < 0) {
        smtpd_reply_error(s, "501 5.5.4 Syntax: %s", c->row->syntax);
        return;
    }
    const char *why = not_allowed(srv->cfg, dom);
    if (why) {
        char node[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=etrn client=%s node=%s result=refused reason=\"%s\"", s->peer,
               PM_LOGV(node, dom), why);
        smtpd_reply_error(s, "459 4.7.1 Node %.*s not allowed: %s", (int)c->arglen, c->arg, why);
        return;
    }
    int n = pm_queueset_size(srv->queues);
    struct smtpd_etrn *e = calloc(1, sizeof *e + (size_t)n * sizeof e->req[0]);
    if (!e) {
        smtpd_reply_error(s, "458 4.3.0 Unable to queue messages for node %.*s", (int)c->arglen, c->arg);
        return;
    }
    memcpy(e->node, c->arg, c->arglen);
    e->shards = n;
    e->start_ms = now_ms();
    s->etrn = e;
    Postmesh__Etrn et = POSTMESH__ETRN__INIT;
    et.domain = e->node;
    Postmesh__BusMessage bm = POSTMESH__BUS_MESSAGE__INIT;
    bm.body_case = POSTMESH__BUS_MESSAGE__BODY_ETRN;
    bm.etrn = &et;
    /* Every shard: each holds its own share of the node's mail. */
    uint64_t base = smtpd_pending_base(srv);
    for (int i = 0; i < n; i++) {
        bm.request_id = base | (uint64_t)i;
        if (pm_queueset_send_to(srv->queues, i, &bm) == 0) {
            smtpd_pending_link(srv, &e->req[i], bm.request_id, s, &smtpd_etrn_kind);
            e->waiting++;
        } else {
            e->failed++;
        }
    }
    if (!e->waiting) {
        finish(s);
        return;
    }
    s->state = SMTPD_ST_QUEUE;
    smtpd_session_reading(s, 0);
    smtpd_session_set_timer(s, SMTPD_TIMER_ETRN, (long)(srv->cfg->smtpd.submit_timeout * 1000));
}

static void one_less(struct smtpd_session *s)
{
    if (--s->etrn->waiting == 0)
        finish(s);
    smtpd_session_settle(s);
}

static void answered(struct smtpd_pending *p, const Postmesh__BusMessage *m)
{
    struct smtpd_session *s = p->s;
    struct smtpd_etrn *e = s->etrn;
    const Postmesh__EtrnReply *r = m->etrn_reply;
    if (r->status == POSTMESH__ETRN_REPLY__STATUS__STARTED) {
        e->started++;
        e->messages += r->messages;
    } else if (r->status == POSTMESH__ETRN_REPLY__STATUS__NOTHING) {
        e->nothing++;
    } else {
        char v[PM_LOGV_SIZE];
        pm_log(PM_WARN, "event=etrn_tempfail client=%s endpoint=%s text=%s", s->peer,
               pm_queueset_endpoint(s->srv->queues, SMTPD_SHARD_OF(m->request_id)), PM_LV(v, r->text));
        e->failed++;
    }
    one_less(s);
}

static void lost(struct smtpd_pending *p)
{
    struct smtpd_session *s = p->s;
    smtpd_pending_unlink(s->srv, p);
    s->etrn->failed++;
    one_less(s);
}

static void late(struct smtpd_server *srv, int shard, const Postmesh__BusMessage *m)
{
    pm_log(PM_INFO, "event=etrn_late request_id=%llu status=%d messages=%u endpoint=%s",
           (unsigned long long)m->request_id, (int)m->etrn_reply->status, m->etrn_reply->messages,
           pm_queueset_endpoint(srv->queues, shard));
}

const struct smtpd_pending_kind smtpd_etrn_kind = {
    .reply = POSTMESH__BUS_MESSAGE__BODY_ETRN_REPLY, .answered = answered, .lost = lost, .late = late,
};

void smtpd_etrn_timeout(struct smtpd_session *s)
{
    struct smtpd_etrn *e = s->etrn;
    if (!e)
        return;
    for (int i = 0; i < e->shards; i++)
        if (e->req[i].id) {
            pm_log(PM_WARN, "event=etrn_timeout client=%s endpoint=%s timeout=%lld", s->peer,
                   pm_queueset_endpoint(s->srv->queues, i), s->srv->cfg->smtpd.submit_timeout);
            smtpd_pending_unlink(s->srv, &e->req[i]);
            e->failed++;
        }
    finish(s);
}

void smtpd_etrn_forget(struct smtpd_session *s)
{
    struct smtpd_etrn *e = s->etrn;
    if (!e)
        return;
    for (int i = 0; i < e->shards; i++)
        smtpd_pending_unlink(s->srv, &e->req[i]);
    free(e);
    s->etrn = NULL;
}
