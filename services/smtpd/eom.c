/* The end-of-message stages (eom.h). */
#include "eom.h"

#include <event2/buffer.h>
#include <stdio.h>

#include "authres.h"
#include "log.h"
#include "logvalue.h"
#include "metrics.h"
#include "milter.h"
#include "session.h"
#include "submit.h"

/* In order. A stage's row is all it takes to put it in the path. */
static const struct smtpd_eom_stage stages[] = {
    {"authres", smtpd_authres_wanted, smtpd_authres_start, smtpd_authres_cancel},
    {"milters", smtpd_milter_eom_wanted, smtpd_milter_eom_start, smtpd_milter_eom_cancel},
};
#define NSTAGES (sizeof stages / sizeof stages[0])

/* Back to commands after the message is settled; pipelined commands wait in the input. A
 * stage that finished inside smtpd_eom_start is still in the caller's input loop, which
 * goes on by itself. */
static void settle(struct smtpd_session *s)
{
    s->eom_running = NULL;
    s->state = SMTPD_ST_COMMAND;
    if (!s->eom_inline) {
        smtpd_session_reading(s, 1);
        smtpd_session_resume(s);
    }
}

static void run_next(struct smtpd_session *s)
{
    while (s->eom_next < NSTAGES) {
        const struct smtpd_eom_stage *st = &stages[s->eom_next++];
        if (!st->start || (st->wanted && !st->wanted(s)))
            continue;
        s->eom_running = st;
        st->start(s);
        return;
    }
    struct evbuffer *msg = s->eom_msg;
    s->eom_msg = NULL;
    s->eom_running = NULL;
    s->state = SMTPD_ST_COMMAND;
    int was_inline = s->eom_inline;
    smtpd_submit_message(s, msg);
    /* Submit waits in SMTPD_ST_QUEUE and resumes by itself; if it answered at once (a send
     * failure) and we had been waiting, the pipelined input must be picked up here. */
    if (!was_inline && s->state == SMTPD_ST_COMMAND) {
        smtpd_session_reading(s, 1);
        smtpd_session_resume(s);
    }
}

void smtpd_eom_start(struct smtpd_session *s, struct evbuffer *msg)
{
    s->eom_msg = msg;
    s->eom_next = 0;
    s->state = SMTPD_ST_CHECKS;
    smtpd_session_reading(s, 0);
    s->eom_inline = 1;
    run_next(s);
    s->eom_inline = 0;
}

void smtpd_eom_continue(struct smtpd_session *s)
{
    s->eom_running = NULL;
    run_next(s);
}

static void drop(struct smtpd_session *s)
{
    if (s->eom_msg)
        evbuffer_free(s->eom_msg);
    s->eom_msg = NULL;
    smtpd_body_release(s);
    smtpd_txn_reset(&s->txn);
}

void smtpd_eom_refuse(struct smtpd_session *s, const char *reason, const char *reply)
{
    char from[PM_LOGV_SIZE], code[16];
    const struct smtpd_eom_stage *st = s->eom_running;
    pm_log(PM_INFO, "event=reject client=%s stage=eom check=%s reason=%s from=%s nrcpt=%d", s->peer,
           st ? st->name : "-", reason, PM_LOGV_PATH(from, s->txn.sender), s->txn.nrcpt);
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "rejected", pm_metric_reason(reply, code, sizeof code));
    drop(s);
    smtpd_reply_error(s, "%s", reply);
    settle(s);
}

void smtpd_eom_discard(struct smtpd_session *s, const char *reason)
{
    char from[PM_LOGV_SIZE];
    const struct smtpd_eom_stage *st = s->eom_running;
    pm_log(PM_INFO, "event=discard client=%s check=%s reason=%s from=%s nrcpt=%d", s->peer, st ? st->name : "-",
           reason, PM_LOGV_PATH(from, s->txn.sender), s->txn.nrcpt);
    pm_metric_add(PM_M_SMTPD_MESSAGES, 1, "discarded", "2.0.0");
    drop(s);
    s->messages++;
    smtpd_reply(s, "250 2.0.0 Ok: discarded");
    settle(s);
}

void smtpd_eom_cancel(struct smtpd_session *s)
{
    const struct smtpd_eom_stage *st = s->eom_running;
    s->eom_running = NULL;
    if (st && st->cancel)
        st->cancel(s);
    if (s->eom_msg) {
        evbuffer_free(s->eom_msg);
        s->eom_msg = NULL;
        smtpd_body_release(s);
    }
}
