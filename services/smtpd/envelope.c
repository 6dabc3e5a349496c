/* MAIL and RCPT: the envelope of a transaction. Whether a local recipient exists and
 * whether an authenticated user owns an alias it sends from are questions for the
 * privileged parent (authdb.h): the session stops reading (state LOOKUP) until the answer
 * comes back, then finishes the command and goes on with pipelined input.
 *
 * A second RCPT for an address the transaction holds already is answered 250 at once, not
 * asked of the parent again (1,000 RCPTs naming one alias were 1,000 lookups behind the
 * password checks). It is still kept and counts towards smtpd.max_recipients, as in
 * Postfix, whose cleanup drops the repeats: here the queue keeps each final address once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authdb.h"
#include "command_table.h"
#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "logvalue.h"
#include "parser.h"
#include "policy.h"
#include "session.h"

static void refuse(struct smtpd_session *s, const char *stage, const char *reply, const char *addr)
{
    char v[PM_LOGV_SIZE], a[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=reject client=%s stage=%s address=%s reply=%s", s->peer, stage, PM_LOGV(a, addr ? addr : ""),
           PM_LOGV(v, reply));
    pm_metric_add(PM_M_SMTPD_ENVELOPE_REJECTS, 1, stage, pm_metric_reason(reply, v, sizeof v));
    smtpd_reply_error(s, "%s", reply);
}

/* MAIL's RET and ENVID are in the transaction already (set when it was parsed). */
static void accept_mail(struct smtpd_session *s, const char *sender, int smtputf8, int body_8bit)
{
    s->txn.active = 1;
    s->txn.sender = strdup(sender);
    s->txn.smtputf8 = smtputf8;
    s->txn.body_8bit = body_8bit;
    if (smtpd_milter_mail(s)) /* the milters answer it (milter.h) */
        return;
    smtpd_reply(s, "250 2.1.0 Ok");
}

/* Takes final (malloc'd); its NOTIFY and ORCPT are txn.dsn_pending (NULL: none). */
static void accept_rcpt(struct smtpd_session *s, char *final)
{
    if (smtpd_milter_rcpt(s, &final, accept_rcpt)) /* the milters ask first, then call back */
        return;
    static const struct smtpd_dsn_rcpt none;
    const struct smtpd_dsn_rcpt *d = s->txn.dsn_pending ? s->txn.dsn_pending : &none;
    char *orcpt = d->has_orcpt ? strdup(d->orcpt) : NULL;
    if (s->txn.nrcpt == s->txn.cap) {
        int cap = s->txn.cap ? s->txn.cap * 2 : 4;
        char **v = realloc(s->txn.rcpt, (size_t)cap * sizeof *v);
        if (v)
            s->txn.rcpt = v;
        struct smtpd_rcpt_dsn *dv = v ? realloc(s->txn.rcpt_dsn, (size_t)cap * sizeof *dv) : NULL;
        if (dv)
            s->txn.rcpt_dsn = dv;
        if (!v || !dv) {
            free(final);
            free(orcpt);
            smtpd_reply_error(s, "452 4.3.0 Error: insufficient resources");
            return;
        }
        s->txn.cap = cap;
    }
    if (d->has_orcpt && !orcpt) {
        free(final);
        smtpd_reply_error(s, "452 4.3.0 Error: insufficient resources");
        return;
    }
    s->txn.rcpt_dsn[s->txn.nrcpt] = (struct smtpd_rcpt_dsn){d->notify, orcpt};
    s->txn.any_rcpt_dsn |= d->notify || d->has_orcpt;
    s->txn.rcpt[s->txn.nrcpt++] = final;
    smtpd_reply(s, "250 2.1.5 Ok");
}

static void lookup_done(struct smtpd_session *s)
{
    s->lookup = NULL;
    free(s->lookup_addr);
    s->lookup_addr = NULL;
    if (s->state == SMTPD_ST_LOOKUP)
        s->state = SMTPD_ST_COMMAND;
}

/* What MAIL and RCPT do with the parent's answer; the rest of an answer is answered(). */
struct lookup_stage {
    const char *verb;
    const char *tempfail;                                /* the parent could not say */
    void (*yes)(struct smtpd_session *s, char **addr); /* may take *addr (sets it NULL) */
    void (*no)(const struct smtpd_session *s, const char *addr, char *reply, size_t size);
};

static void mail_yes(struct smtpd_session *s, char **sender)
{
    accept_mail(s, *sender, s->lookup_smtputf8, s->lookup_8bit);
}

static void rcpt_yes(struct smtpd_session *s, char **rcpt)
{
    accept_rcpt(s, *rcpt);
    *rcpt = NULL;
}

static void rcpt_no(const struct smtpd_session *s, const char *rcpt, char *reply, size_t size)
{
    (void)s;
    smtpd_policy_rcpt_unknown(rcpt, reply, size);
}

static const struct lookup_stage mail_stage = {"MAIL", "451 4.3.0 Error: sender check temporarily unavailable",
                                               mail_yes, smtpd_policy_sender_refused};
static const struct lookup_stage rcpt_stage = {"RCPT", "451 4.3.0 Error: recipient check temporarily unavailable",
                                               rcpt_yes, rcpt_no};

/* result: 1 yes, 0 no, else the parent could not say. */
static void answered(struct smtpd_session *s, const struct lookup_stage *stage, int result)
{
    char reply[400];
    char *addr = s->lookup_addr;
    s->lookup_addr = NULL;
    lookup_done(s);
    if (result == 1) {
        stage->yes(s, &addr);
    } else if (result == 0) {
        stage->no(s, addr, reply, sizeof reply);
        refuse(s, stage->verb, reply, addr);
    } else {
        refuse(s, stage->verb, stage->tempfail, addr);
    }
    free(addr);
    smtpd_session_resume(s);
    smtpd_session_settle(s);
}

static void mail_answered(void *arg, int result)
{
    answered(arg, &mail_stage, result);
}

static void rcpt_answered(void *arg, int result)
{
    answered(arg, &rcpt_stage, result);
}

/* Waits for req (NULL: could not ask, answered at once as a temporary failure). Takes addr. */
static void wait_for_parent(struct smtpd_session *s, struct smtpd_authdb_req *req, char *addr, const char *stage)
{
    if (!req) {
        free(addr);
        refuse(s, stage, "451 4.3.0 Error: temporary lookup failure", NULL);
        return;
    }
    s->lookup = req;
    s->lookup_addr = addr;
    s->state = SMTPD_ST_LOOKUP;
    smtpd_session_reading(s, 0);
}

/* After HELO, outside a transaction, authenticated on a submission port: the table's. */
void smtpd_cmd_mail(struct smtpd_session *s, const struct smtpd_command *c)
{
    const struct pm_config *cfg = s->srv->cfg;
    char reply[400];
    struct pm_addr addr;
    struct smtpd_mail_params p;
    if (smtpd_parse_mail(c->arg, c->arglen, &addr, &p, reply, sizeof reply) < 0) {
        refuse(s, "MAIL", reply, NULL);
        return;
    }
    smtpd_milter_args(s, c->arg, c->arglen);
    if (!s->esmtp && (p.has_size || p.body_8bit || p.smtputf8 || p.requiretls || p.dsn.ret || p.dsn.has_envid)) {
        refuse(s, "MAIL", "555 5.5.4 Error: MAIL parameters need EHLO", addr.address);
        return;
    }
    /* RFC 8689 2: REQUIRETLS only in a session that is itself TLS (it is offered only
     * there); in the clear the sender's demand cannot have been met on this hop. */
    if (p.requiretls && !s->tls) {
        refuse(s, "MAIL", "530 5.7.10 Error: REQUIRETLS needs a TLS session (STARTTLS first)", addr.address);
        return;
    }
    /* Outside a transaction: the next MAIL replaces them. */
    s->txn.requiretls = p.requiretls;
    s->txn.dsn_ret = p.dsn.ret;
    free(s->txn.dsn_envid);
    s->txn.dsn_envid = p.dsn.has_envid ? strdup(p.dsn.envid) : NULL;
    if (p.dsn.has_envid && !s->txn.dsn_envid) {
        refuse(s, "MAIL", "452 4.3.0 Error: insufficient resources", addr.address);
        return;
    }
    if (p.has_size && p.size > (unsigned long long)cfg->smtpd.max_message_size) {
        refuse(s, "MAIL", "552 5.3.4 Error: message size exceeds fixed limit", addr.address);
        return;
    }
    switch (smtpd_policy_sender(s, &addr, reply, sizeof reply)) {
    case SMTPD_REJECT:
        refuse(s, "MAIL", reply, addr.address);
        return;
    case SMTPD_ACCEPT:
        accept_mail(s, addr.address, p.smtputf8, p.body_8bit);
        return;
    case SMTPD_ASK:
        s->lookup_smtputf8 = p.smtputf8;
        s->lookup_8bit = p.body_8bit;
        wait_for_parent(s, smtpd_authdb_sender_ok(s->srv, s->auth_user, addr.address, mail_answered, s),
                        strdup(addr.address), "MAIL");
        return;
    }
}

/* Does the transaction hold final already? Case-insensitive, as users and aliases are. A
 * scan: the list is at most smtpd.max_recipients long, and each entry costs an RCPT. */
static int have_rcpt(const struct smtpd_session *s, const char *final)
{
    for (int i = 0; i < s->txn.nrcpt; i++)
        if (strcasecmp(s->txn.rcpt[i], final) == 0)
            return 1;
    return 0;
}

/* Inside a transaction: the table's. */
void smtpd_cmd_rcpt(struct smtpd_session *s, const struct smtpd_command *c)
{
    char reply[400];
    s->txn.rcpt_tries++;
    if (s->txn.nrcpt >= s->srv->cfg->smtpd.max_recipients) {
        /* Not counted as an error: the client sends the rest in another transaction. */
        smtpd_reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    struct pm_addr addr;
    struct smtpd_dsn_rcpt dsn;
    if (smtpd_parse_rcpt_dsn(c->arg, c->arglen, s->txn.smtputf8, &addr, &dsn, reply, sizeof reply) < 0) {
        refuse(s, "RCPT", reply, NULL);
        return;
    }
    smtpd_milter_args(s, c->arg, c->arglen);
    if (!s->esmtp && (dsn.notify || dsn.has_orcpt)) {
        refuse(s, "RCPT", "555 5.5.4 Error: RCPT parameters need EHLO", addr.address);
        return;
    }
    /* Kept through the recipient's look-up and the milters (accept_rcpt takes it). */
    free(s->txn.dsn_pending);
    s->txn.dsn_pending = NULL;
    if (dsn.notify || dsn.has_orcpt) {
        s->txn.dsn_pending = malloc(sizeof dsn);
        if (!s->txn.dsn_pending) {
            refuse(s, "RCPT", "452 4.3.0 Error: insufficient resources", addr.address);
            return;
        }
        *s->txn.dsn_pending = dsn;
    }
    char *final;
    enum smtpd_verdict v = smtpd_policy_rcpt(s, &addr, &final, reply, sizeof reply);
    if (v == SMTPD_ASK && have_rcpt(s, final))
        v = SMTPD_ACCEPT; /* the parent said yes to it already */
    switch (v) {
    case SMTPD_REJECT:
        refuse(s, "RCPT", reply, addr.address);
        return;
    case SMTPD_ACCEPT:
        accept_rcpt(s, final);
        return;
    case SMTPD_ASK:
        wait_for_parent(s, smtpd_authdb_rcpt_exists(s->srv, final, rcpt_answered, s), final, "RCPT");
        return;
    }
}

void smtpd_envelope_cancel(struct smtpd_session *s)
{
    smtpd_authdb_cancel(s->lookup);
    lookup_done(s);
}
