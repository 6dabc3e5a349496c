#include "verdicts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "tlsrpt.h"

#define DELIVERED POSTMESH__RECIPIENT_RESULT__STATUS__DELIVERED
#define TEMPFAIL POSTMESH__RECIPIENT_RESULT__STATUS__TEMPFAIL
#define PERMFAIL POSTMESH__RECIPIENT_RESULT__STATUS__PERMFAIL

void mta_rcpt_final(struct mta_rcpt *r, mta_status st, const char *dsn, const char *text)
{
    char d[sizeof r->dsn], t[sizeof r->text];
    snprintf(d, sizeof d, "%s", dsn);
    snprintf(t, sizeof t, "%s", text);
    r->final = 1;
    r->status = st;
    memcpy(r->dsn, d, sizeof d);
    memcpy(r->text, t, sizeof t);
}

void mta_rcpts_fail_all(struct mta_rcpt *rcpts, int n, mta_status st, const char *dsn, const char *text)
{
    for (int i = 0; i < n; i++)
        if (!rcpts[i].final)
            mta_rcpt_final(&rcpts[i], st, dsn, text);
}

/* A reason to keep while another server may still take the mail. */
static void reason(struct mta_rcpt *r, const char *dsn, const char *text)
{
    r->temp_reason |= dsn[0] != '5';
    snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
    snprintf(r->text, sizeof r->text, "%s", text);
}

void mta_rcpts_skip(struct mta_rcpt *rcpts, int n, const char *dsn, const char *text)
{
    for (int i = 0; i < n; i++)
        if (!rcpts[i].final)
            reason(&rcpts[i], dsn, text);
}

static void fold_one(struct mta_rcpt *r, const struct pm_smtpc *sm, const struct pm_smtpc_rcpt *sr)
{
    switch (sr->state) {
    case PM_SMTPC_RCPT_DELIVERED:
        mta_rcpt_final(r, DELIVERED, sr->dsn, sr->text);
        /* RFC 3461 5.2.2.1: a next hop without DSN cannot report success; we say "relayed". */
        r->relayed = !sr->peer_dsn && r->rcpt_dsn && (r->rcpt_dsn->notify & POSTMESH__DSN_NOTIFY__DSN_NOTIFY_SUCCESS);
        break;
    case PM_SMTPC_RCPT_PERMFAIL:
        mta_rcpt_final(r, PERMFAIL, sr->dsn, sr->text);
        break;
    case PM_SMTPC_RCPT_TEMPFAIL: /* another server may take it */
        reason(r, sr->dsn, sr->text);
        break;
    case PM_SMTPC_RCPT_ACCEPTED:
        if (sm->dot_sent) {
            /* The body went out and no verdict came back: maybe delivered. Not another
             * server now (a second copy); the queue retries later. */
            mta_rcpt_final(r, TEMPFAIL, sm->error_dsn[0] ? sm->error_dsn : "4.4.2",
                           sm->error[0] ? sm->error : "no reply after end of data");
            break;
        }
        /* fall through */
    case PM_SMTPC_RCPT_PENDING:
        if (sm->error_perm)
            mta_rcpt_final(r, PERMFAIL, sm->error_dsn, sm->error);
        else
            reason(r, sm->error_dsn[0] ? sm->error_dsn : "4.4.2", sm->error[0] ? sm->error : "connection ended early");
        break;
    }
}

void mta_rcpts_fold(struct mta_rcpt *rcpts, const int *map, const struct pm_smtpc *sm, const char *host, int best,
                    const char *relay, const char *tls, const char *looptext)
{
    for (int j = 0; j < sm->nrcpts; j++) {
        struct mta_rcpt *r = &rcpts[map[j]];
        snprintf(r->relay, sizeof r->relay, "%s", relay);
        snprintf(r->tls, sizeof r->tls, "%s", tls);
        snprintf(r->remote_mta, sizeof r->remote_mta, "%s", sm->replied ? host : "");
        if (!sm->loop)
            fold_one(r, sm, &sm->rcpts[j]);
        else if (best) /* the best MX is us under another name: nowhere else to go */
            mta_rcpt_final(r, PERMFAIL, "5.4.6", looptext);
        else /* a lesser one that is us leaves the better ones (Postfix: 5.4.6 / 4.4.6) */
            reason(r, "4.4.6", looptext);
    }
}

static void log_result(const Postmesh__Job *job, const struct mta_rcpt *r)
{
    char to[PM_LOGV_SIZE], reply[PM_LOGV_SIZE], relay[PM_LOGV_SIZE], dsn[PM_LOGV_SIZE];
    double delay = job->arrival_time ? difftime(time(NULL), (time_t)job->arrival_time) : 0;
    const char *event = r->status == DELIVERED                                    ? "delivered"
                        : r->status == TEMPFAIL                                   ? "deferred"
                        : r->status == POSTMESH__RECIPIENT_RESULT__STATUS__RETURNED ? "returned"
                                                                                  : "bounced";
    /* r->tls: "tls=verified dane=yes sts=no policy=dane cipher=..." (outbound.c), tokens
     * without spaces or quotes. */
    pm_log(PM_INFO, "event=%s id=%s to=%s relay=%s dsn=%s delay=%.0f%s%s reply=%s", event, job->queue_id,
           PM_LV(to, r->address), r->relay[0] ? PM_LOGV(relay, r->relay) : "none", PM_LOGV(dsn, r->dsn), delay,
           r->tls[0] ? " " : "", r->tls, PM_LV(reply, r->text));
}

void mta_result_build(struct mta_result *r, struct mta_rcpt *rcpts, int n, const Postmesh__Job *job)
{
    postmesh__job_result__init(&r->res);
    r->res.job_id = job->job_id;
    r->res.queue_id = job->queue_id;
    r->rr = calloc((size_t)n + 1, sizeof *r->rr);
    r->rp = calloc((size_t)n + 1, sizeof *r->rp);
    if (!r->rr || !r->rp)
        abort();
    for (int i = 0; i < n; i++) {
        struct mta_rcpt *x = &rcpts[i];
        if (!x->final && x->dsn[0] == '5' && !x->temp_reason) {
            /* Every address was given up for good reasons only (a server without REQUIRETLS
             * for a REQUIRETLS message, RFC 8689 4.2.1): the last one stands. */
            mta_rcpt_final(x, PERMFAIL, x->dsn, x->text);
        } else if (!x->final) { /* never reached a server that decided: try again later */
            if (x->dsn[0] == '5') {
                /* a permanent reason from one MX, a temporary one from another: the text that
                 * starts with the code says the same class */
                if (strncmp(x->text, x->dsn, strlen(x->dsn)) == 0)
                    x->text[0] = '4';
                x->dsn[0] = '4';
            }
            mta_rcpt_final(x, TEMPFAIL, x->dsn[0] ? x->dsn : "4.4.1",
                           x->text[0] ? x->text : "no mail exchanger could be reached");
        }
        log_result(job, x);
        postmesh__recipient_result__init(&r->rr[i]);
        r->rr[i].index = x->index;
        r->rr[i].status = x->status;
        r->rr[i].dsn_status = x->dsn;
        r->rr[i].text = x->text;
        r->rr[i].remote_mta = x->remote_mta;
        r->rr[i].relayed = x->status == DELIVERED && x->relayed;
        r->rp[i] = &r->rr[i];
    }
    r->res.results = r->rp;
    r->res.n_results = (size_t)n;
}

void mta_result_free(struct mta_result *r)
{
    mta_tlsrpt_release(&r->res); /* the TLS sessions outbound.c attached (tlsrpt.h) */
    free(r->rr);
    free(r->rp);
    r->rr = NULL;
    r->rp = NULL;
}
