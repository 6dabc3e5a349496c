/* The milters' session glue and end-of-message stage (milter.h).
 *
 * A step (connect, HELO, MAIL, RCPT, eom) asks the milters one after another: for each, a
 * short script of packets (for HELO and MAIL: ABORT of an unfinished transaction first:
 * milter_send.c); each packet waits for its reply unless the milter negotiated not to
 * answer it (SMFIP_NR_*) or not to get it at all (SMFIP_NO*). The first refusal ends the
 * step. The connect step opens every milter's connection at once (their negotiations
 * overlap), then asks them in order. */
#include "milter.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "eom.h"
#include "log.h"
#include "logvalue.h"
#include "milter_addr.h"
#include "milter_conn.h"
#include "milter_edit.h"
#include "milter_int.h"
#include "milter_proto.h"
#include "session.h"

#define TEMPFAIL_REPLY "451 4.7.1 Service unavailable - try again later"
#define REJECT_REPLY "550 5.7.1 Command rejected"

static unsigned long long id_counter;

/* ------------------------------------------------------------------ helpers */

static long timeout_ms(const struct smtpd_milters *ms, const struct slot *sl)
{
    long long t = sl->cfg->timeout ? sl->cfg->timeout : ms->s->srv->cfg->smtpd.milter_timeout;
    return (long)(t * 1000);
}

static int default_accept(const struct smtpd_milters *ms, const struct slot *sl)
{
    const char *a = sl->cfg->default_action ? sl->cfg->default_action : ms->s->srv->cfg->smtpd.milter_default_action;
    return a && strcmp(a, "accept") == 0;
}

static void log_decision(struct smtpd_milters *ms, const struct slot *sl, const char *action, const char *reply)
{
    char r[PM_LOGV_SIZE], a[PM_LOGV_SIZE];
    const char *stage = sl->state == SL_DEAD && sl->failed_at ? sl->failed_at : milter_part_names[ms->part];
    pm_log(PM_INFO, "event=milter client=%s milter=%s stage=%s action=%s reply=%s", ms->s->peer,
           PM_LOGV(a, sl->cfg->address), stage, action, PM_LOGV(r, reply ? reply : ""));
}

static struct smtpd_milters *milters_of(struct smtpd_session *s)
{
    if (s->milters)
        return s->milters;
    int n = s->srv->cfg->smtpd.milters.n;
    if (n == 0)
        return NULL;
    struct smtpd_milters *ms = calloc(1, sizeof *ms + (size_t)n * sizeof ms->slot[0]);
    if (!ms)
        return NULL;
    ms->s = s;
    ms->n = n;
    snprintf(ms->id, sizeof ms->id, "%llX%llX", (unsigned long long)pm_mono_ms() & 0xffffffffffULL, ++id_counter);
    for (int i = 0; i < n; i++) {
        ms->slot[i].cfg = &s->srv->cfg->smtpd.milters.v[i];
        ms->slot[i].ms = ms;
    }
    s->milters = ms;
    return ms;
}

/* The ESMTP arguments after the path of "FROM:<...> A=b C=d" (a quoted local part may hold
 * '>'), space-separated. */
void smtpd_milter_args(struct smtpd_session *s, const char *arg, size_t len)
{
    struct smtpd_milters *ms = milters_of(s);
    if (!ms)
        return;
    size_t i = 0;
    while (i < len && arg[i] != '<' && arg[i] != ' ')
        i++;
    if (i < len && arg[i] == '<') {
        int quoted = 0;
        for (i++; i < len && (quoted || arg[i] != '>'); i++) {
            if (arg[i] == '\\' && i + 1 < len)
                i++;
            else if (arg[i] == '"')
                quoted = !quoted;
        }
        i++;
    }
    while (i < len && arg[i] == ' ')
        i++;
    char **dst = strncasecmp(arg, "FROM:", 5) == 0 ? &ms->mail_args : &ms->rcpt_args;
    free(*dst);
    *dst = i < len ? strndup(arg + i, len - i) : NULL;
}


/* The parts of a step, in order: from first_part to last_part, those part_of says. */
static enum part first_part(enum step st)
{
    switch (st) {
    case STEP_CONNECT:
        return P_CONNECT;
    case STEP_HELO:
    case STEP_MAIL:
        return P_ABORT;
    case STEP_RCPT:
        return P_RCPT;
    default:
        return P_DATA;
    }
}

static enum part last_part(enum step st)
{
    switch (st) {
    case STEP_CONNECT:
        return P_CONNECT;
    case STEP_HELO:
        return P_HELO;
    case STEP_MAIL:
        return P_MAIL;
    case STEP_RCPT:
        return P_RCPT;
    default:
        return P_EOM;
    }
}

static int part_of(enum step st, enum part p)
{
    switch (st) {
    case STEP_HELO:
        return p == P_ABORT || p == P_HELO;
    case STEP_MAIL:
        return p == P_ABORT || p == P_MAIL;
    default:
        return p >= first_part(st) && p <= last_part(st);
    }
}

/* The next milter starts the step's script from its beginning (headers and body too). */
static void next_slot(struct smtpd_milters *ms)
{
    ms->cur++;
    ms->part = first_part(ms->step);
    ms->hidx = 0;
    ms->body_off = 0;
}


/* ------------------------------------------------------------------ the step's end */

static void finish_step(struct smtpd_milters *ms, int verdict, const char *reply);

enum verdict { V_OK, V_REFUSE, V_DISCARD };

static void conn_cb(void *arg, enum milter_event ev, const struct milter_reply *r, const char *reason);

static void mark_dead(struct smtpd_milters *ms, struct slot *sl, const char *reason);

/* Opens the slot's connection (the negotiation's answer continues the step); a failure
 * here only marks the slot dead, the caller's loop applies the default action. */
static void open_slot(struct smtpd_milters *ms, struct slot *sl)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char why[256];
    if (pm_milter_addr_parse(sl->cfg->address, &ss, &len, why, sizeof why) < 0) {
        mark_dead(ms, sl, "bad_address");
        return;
    }
    sl->state = SL_OPENING;
    sl->mc = milter_conn_open(ms->s->srv->base, (struct sockaddr *)&ss, len, timeout_ms(ms, sl), conn_cb, sl, why,
                              sizeof why);
    if (!sl->mc)
        mark_dead(ms, sl, why);
}

/* Asks the slots from ms->cur on; returns when one has to answer (the step goes on in
 * conn_cb) or the step is over. */
static void advance(struct smtpd_milters *ms)
{
    while (ms->step != STEP_NONE && ms->cur < ms->n) {
        struct slot *sl = &ms->slot[ms->cur];
        if (sl->state == SL_NEW) /* not opened at connect (no memory then): its default action */
            mark_dead(ms, sl, "not_connected");
        if (sl->state == SL_OPENING) {
            ms->async = 1;
            return;
        }
        if (sl->state == SL_DEAD && sl->tempfail) { /* down (now or earlier): its default action */
            log_decision(ms, sl, "default_tempfail", TEMPFAIL_REPLY);
            finish_step(ms, V_REFUSE, TEMPFAIL_REPLY);
            return;
        }
        /* (accepting a transaction spares the milter its rest, not the next HELO or MAIL) */
        if (sl->state != SL_READY || (sl->txn_accepted && (ms->step == STEP_RCPT || ms->step == STEP_EOM))) {
            next_slot(ms);
            continue;
        }
        int wait = 0;
        while (ms->part <= last_part(ms->step) &&
               !(wait = part_of(ms->step, ms->part) ? milter_send_part(ms, sl, ms->part) : 0))
            ms->part++;
        if (wait == 1) {
            milter_conn_expect(sl->mc);
            ms->async = 1;
            return;
        }
        if (wait == 2) {
            ms->async = 1;
            return;
        }
        next_slot(ms); /* this slot is done with the step */
    }
    if (ms->step != STEP_NONE)
        finish_step(ms, ms->discard && ms->step == STEP_EOM ? V_DISCARD : V_OK, NULL);
}

/* The slot cannot be asked any more: dead for the rest of the session. */
static void mark_dead(struct smtpd_milters *ms, struct slot *sl, const char *reason)
{
    sl->failed_at = sl->state != SL_READY ? "negotiate"
                    : ms->step == STEP_NONE ? "idle"
                                            : milter_part_names[ms->part];
    sl->mc = NULL;
    sl->state = SL_DEAD;
    int accept = default_accept(ms, sl);
    sl->tempfail = !accept;
    char v[PM_LOGV_SIZE], a[PM_LOGV_SIZE];
    pm_log(PM_WARN, "event=milter_error client=%s milter=%s stage=%s reason=%s default_action=%s", ms->s->peer,
           PM_LOGV(a, sl->cfg->address), sl->failed_at, PM_LOGV(v, reason), accept ? "accept" : "tempfail");
}

/* ... and if it was being asked, its default action decides the step. */
static void slot_failed(struct smtpd_milters *ms, struct slot *sl, const char *reason)
{
    mark_dead(ms, sl, reason);
    if (ms->step == STEP_NONE || &ms->slot[ms->cur] != sl)
        return; /* it failed between steps: the next step sees it */
    if (ms->step == STEP_EOM)
        milter_msg_body_drop(&ms->msg);
    if (sl->tempfail) {
        advance(ms); /* refuses with the default action */
        return;
    }
    log_decision(ms, sl, "default_accept", NULL);
    next_slot(ms);
    advance(ms);
}

/* A reply line of the milter's REPLYCODE, as one line ("550-..." multi-line: the first). */
static void reply_line(const char *text, char *out, size_t size)
{
    snprintf(out, size, "%s", text);
    out[strcspn(out, "\r\n")] = '\0';
    if (strlen(out) > 3 && out[3] == '-')
        out[3] = ' ';
}

/* A modification at the end of the message: 0, or -1 if the milter may not do it. */
static int modify(struct smtpd_milters *ms, struct slot *sl, const struct milter_reply *r)
{
    uint32_t act = milter_conn_actions(sl->mc);
    struct smtpd_session *s = ms->s;
    /* Headers a milter adds count towards the message's size limit: memory stays bounded. */
    size_t max = (size_t)s->srv->cfg->smtpd.max_message_size;
    if (r->name && milter_msg_size(&ms->msg) + strlen(r->name) + strlen(r->value) + 4 > max)
        return -1;
    switch (r->code) {
    case SMFIR_ADDHEADER:
        return (act & SMFIF_ADDHDRS) ? milter_msg_add(&ms->msg, r->name, r->value) : -1;
    case SMFIR_INSHEADER:
        return (act & SMFIF_ADDHDRS) ? milter_msg_insert(&ms->msg, r->index, r->name, r->value) : -1;
    case SMFIR_CHGHEADER:
        return (act & SMFIF_CHGHDRS) ? milter_msg_change(&ms->msg, r->name, r->index, r->value) : -1;
    case SMFIR_REPLBODY:
        return (act & SMFIF_CHGBODY) ? milter_msg_body_chunk(&ms->msg, r->body, r->body_len, max) : -1;
    case SMFIR_QUARANTINE:
        if (!(act & SMFIF_QUARANTINE))
            return -1;
        s->txn.hold = 1;
        free(s->txn.hold_reason);
        s->txn.hold_reason = strdup(r->text);
        log_decision(ms, sl, "quarantine", r->text);
        return 0;
    }
    return -1;
}

static void on_reply(struct smtpd_milters *ms, struct slot *sl, const struct milter_reply *r)
{
    if (ms->step == STEP_NONE || &ms->slot[ms->cur] != sl) {
        milter_conn_close(sl->mc);
        slot_failed(ms, sl, "protocol_error_unasked");
        return;
    }
    if (!milter_reply_is_final(r->code)) {
        if (ms->part != P_EOM || modify(ms, sl, r) < 0) {
            milter_conn_close(sl->mc);
            slot_failed(ms, sl, "protocol_error_action");
        }
        return; /* the final reply is still due */
    }
    char line[MILTER_MAX_REPLY_TEXT + 1];
    int at_connect = ms->part == P_CONNECT || ms->part == P_HELO;
    switch (r->code) {
    case SMFIR_CONTINUE:
        if (ms->part == P_EOM) {
            milter_msg_body_commit(&ms->msg);
            sl->in_txn = 0;
            log_decision(ms, sl, "continue", NULL);
        }
        if (ms->part == P_HEADERS && ms->hidx < ms->msg.n)
            break; /* the next header */
        if (ms->part == P_BODY && ms->msg.body && ms->body_off < evbuffer_get_length(ms->msg.body))
            break; /* the next chunk */
        ms->part++;
        break;
    case SMFIR_SKIP:
        if (ms->part != P_BODY) {
            milter_conn_close(sl->mc);
            slot_failed(ms, sl, "protocol_error_skip");
            return;
        }
        sl->skip_body = 1;
        ms->part = P_EOM;
        break;
    case SMFIR_ACCEPT:
        log_decision(ms, sl, "accept", NULL);
        if (ms->part == P_EOM)
            milter_msg_body_commit(&ms->msg);
        else
            milter_msg_body_drop(&ms->msg);
        if (at_connect) {
            sl->state = SL_ACCEPTED; /* nothing more for this session: the milter may go */
            milter_conn_close(sl->mc);
            sl->mc = NULL;
        } else {
            sl->txn_accepted = 1;
            if (ms->part >= P_DATA)
                sl->in_txn = ms->part != P_EOM;
        }
        next_slot(ms);
        break;
    case SMFIR_DISCARD:
        log_decision(ms, sl, "discard", NULL);
        if (ms->part == P_RCPT) {
            finish_step(ms, V_DISCARD, NULL);
            return;
        }
        if (at_connect) { /* not meaningful before MAIL: as a refusal */
            finish_step(ms, V_REFUSE, REJECT_REPLY);
            return;
        }
        if (ms->step == STEP_EOM && ms->part != P_EOM)
            sl->in_txn = 1;
        else if (ms->part == P_EOM)
            sl->in_txn = 0;
        ms->discard = 1; /* the message goes nowhere; the others need not see it */
        if (ms->step == STEP_EOM) {
            finish_step(ms, V_DISCARD, NULL);
            return;
        }
        sl->txn_accepted = 1;
        next_slot(ms);
        break;
    case SMFIR_REJECT:
    case SMFIR_TEMPFAIL:
    case SMFIR_REPLYCODE: {
        if (r->code == SMFIR_REPLYCODE)
            reply_line(r->text, line, sizeof line);
        else
            snprintf(line, sizeof line, "%s", r->code == SMFIR_REJECT ? REJECT_REPLY : TEMPFAIL_REPLY);
        log_decision(ms, sl, line[0] == '5' ? "reject" : "tempfail", line);
        if (ms->part == P_EOM || ms->part == P_MAIL || at_connect)
            sl->in_txn = 0;
        finish_step(ms, V_REFUSE, line);
        return;
    }
    }
    advance(ms);
}

static void conn_cb(void *arg, enum milter_event ev, const struct milter_reply *r, const char *reason)
{
    struct slot *sl = arg;
    struct smtpd_milters *ms = sl->ms;
    switch (ev) {
    case MILTER_EV_READY:
        sl->state = SL_READY;
        if (ms->step != STEP_NONE && &ms->slot[ms->cur] == sl)
            advance(ms);
        return;
    case MILTER_EV_REPLY:
        on_reply(ms, sl, r);
        return;
    case MILTER_EV_DRAINED:
        if (ms->step == STEP_EOM && &ms->slot[ms->cur] == sl)
            advance(ms);
        return;
    case MILTER_EV_FAIL:
        slot_failed(ms, sl, reason);
        return;
    }
}

/* ------------------------------------------------------------------ MAIL and RCPT */

static void start_step(struct smtpd_milters *ms, enum step st)
{
    ms->step = st;
    ms->cur = 0;
    ms->part = first_part(st);
    ms->hidx = 0;
    ms->body_off = 0;
    ms->async = 0;
    for (int i = 0; st == STEP_CONNECT && i < ms->n; i++)
        if (ms->slot[i].state == SL_NEW)
            open_slot(ms, &ms->slot[i]);
    advance(ms);
}

/* Any slot that would be asked? (No work and no refusal: answer at once.) */
static int any_live(const struct smtpd_milters *ms)
{
    for (int i = 0; i < ms->n; i++)
        if (ms->slot[i].state != SL_ACCEPTED && !(ms->slot[i].state == SL_DEAD && !ms->slot[i].tempfail))
            return 1;
    return 0;
}

static void log_refusal(struct smtpd_session *s, const char *stage, const char *reply)
{
    char v[PM_LOGV_SIZE];
    pm_log(PM_INFO, "event=reject client=%s stage=%s check=milter reply=%s", s->peer, stage, PM_LOGV(v, reply));
}

static void envelope_refused(struct smtpd_session *s, const char *stage, const char *reply)
{
    log_refusal(s, stage, reply);
    smtpd_reply_error(s, "%s", reply);
}

/* ------------------------------------------------------------------ connect and HELO */

int smtpd_milter_connect(struct smtpd_session *s)
{
    struct smtpd_milters *ms = milters_of(s);
    if (!ms || ms->connect_done)
        return 0;
    if (ms->step == STEP_CONNECT)
        return 1; /* started at connect, still asked */
    start_step(ms, STEP_CONNECT); /* no session callback from in here: ms stays */
    return !ms->connect_done;
}

int smtpd_milter_greet(struct smtpd_session *s)
{
    struct smtpd_milters *ms = s->milters;
    const char *r = ms && !ms->conn_reply_helo ? ms->conn_reply : NULL;
    if (!r || (r[0] == '4' && strncmp(r, "421", 3) != 0))
        return 0; /* 220; a tempfail answers MAIL (as Postfix) */
    log_refusal(s, "CONNECT", r);
    if (r[0] == '4') { /* 421: the milter closes the session */
        smtpd_reply(s, "%s", r);
        smtpd_session_close(s, "milter");
        return 1;
    }
    /* A greeting is 220 or 554 (RFC 5321 4.3.2): the milter's text with 554. */
    if (strcmp(r, REJECT_REPLY) == 0)
        smtpd_reply(s, "554 5.7.1 %s ESMTP not accepting connections", s->srv->cfg->hostname);
    else
        smtpd_reply(s, "554%s", r + 3);
    s->dnsbl_refused = 1; /* as for a listed client: 503 to everything but QUIT (dnsbl.c) */
    return 1;
}

int smtpd_milter_helo(struct smtpd_session *s)
{
    struct smtpd_milters *ms = s->milters;
    if (!ms || ms->step != STEP_NONE)
        return 0;
    if (ms->conn_reply) { /* refused at HELO: again; at connect: HELO passes, MAIL is refused */
        if (!ms->conn_reply_helo)
            return 0;
        free(s->helo);
        s->helo = NULL;
        s->esmtp = 0;
        envelope_refused(s, "HELO", ms->conn_reply);
        return 1;
    }
    if (!any_live(ms))
        return 0;
    s->state = SMTPD_ST_LOOKUP;
    start_step(ms, STEP_HELO);
    return 1;
}

/* The connect or HELO step is over: a refusal is kept for the session. */
static void finish_connect_helo(struct smtpd_milters *ms, enum step st, int verdict, const char *reply)
{
    struct smtpd_session *s = ms->s;
    int async = ms->async;
    if (verdict == V_REFUSE) {
        free(ms->conn_reply);
        ms->conn_reply = strdup(reply);
        ms->conn_reply_helo = st == STEP_HELO;
    }
    if (st == STEP_CONNECT) {
        ms->connect_done = 1;
        if (async)
            smtpd_session_milter_connected(s); /* may free ms */
        return;
    }
    if (s->state == SMTPD_ST_LOOKUP)
        s->state = SMTPD_ST_COMMAND;
    if (verdict == V_REFUSE) {
        free(s->helo);
        s->helo = NULL;
        s->esmtp = 0;
        envelope_refused(s, "HELO", reply);
    } else {
        smtpd_helo_answer(s);
    }
    if (async) {
        smtpd_session_resume(s);
        smtpd_session_settle(s);
    }
}

int smtpd_milter_mail(struct smtpd_session *s)
{
    struct smtpd_milters *ms = milters_of(s);
    if (!ms)
        return 0;
    ms->discard = 0;
    if (ms->conn_reply) {
        envelope_refused(s, "MAIL", ms->conn_reply);
        smtpd_txn_reset(&s->txn);
        return 1;
    }
    if (!any_live(ms))
        return 0;
    s->state = SMTPD_ST_LOOKUP;
    start_step(ms, STEP_MAIL);
    return 1;
}

int smtpd_milter_rcpt(struct smtpd_session *s, char **final, void (*finish)(struct smtpd_session *s, char *final))
{
    struct smtpd_milters *ms = s->milters;
    if (!ms || ms->passing || !any_live(ms))
        return 0;
    ms->rcpt = *final;
    *final = NULL;
    ms->rcpt_finish = finish;
    s->state = SMTPD_ST_LOOKUP;
    start_step(ms, STEP_RCPT);
    return 1;
}

static void finish_envelope(struct smtpd_milters *ms, enum step st, int verdict, const char *reply)
{
    struct smtpd_session *s = ms->s;
    int async = ms->async;
    char *rcpt = ms->rcpt;
    ms->rcpt = NULL;
    if (s->state == SMTPD_ST_LOOKUP)
        s->state = SMTPD_ST_COMMAND;
    if (st == STEP_MAIL) {
        if (verdict == V_REFUSE) {
            smtpd_txn_reset(&s->txn);
            envelope_refused(s, "MAIL", reply);
        } else {
            smtpd_reply(s, "250 2.1.0 Ok");
        }
    } else if (verdict == V_REFUSE) {
        envelope_refused(s, "RCPT", reply);
        free(rcpt);
    } else if (verdict == V_DISCARD) {
        char a[PM_LOGV_SIZE];
        pm_log(PM_INFO, "event=discard client=%s stage=RCPT check=milter address=%s", s->peer, PM_LOGV(a, rcpt));
        free(rcpt);
        smtpd_reply(s, "250 2.1.5 Ok");
    } else {
        ms->passing = 1;
        ms->rcpt_finish(s, rcpt);
        if (s->milters) /* (a reply that closed the session has freed ms) */
            s->milters->passing = 0;
    }
    if (async) {
        smtpd_session_resume(s);
        smtpd_session_settle(s);
    }
}

static void finish_step(struct smtpd_milters *ms, int verdict, const char *reply)
{
    enum step st = ms->step;
    ms->step = STEP_NONE;
    ms->part = P_DONE;
    if (st == STEP_CONNECT || st == STEP_HELO) {
        finish_connect_helo(ms, st, verdict, reply);
        return;
    }
    if (st == STEP_MAIL || st == STEP_RCPT) {
        finish_envelope(ms, st, verdict, reply);
        return;
    }
    /* STEP_EOM */
    struct smtpd_session *s = ms->s;
    ms->have_msg = 0;
    if (verdict == V_OK) {
        s->eom_msg = milter_msg_build(&ms->msg);
        if (!s->eom_msg) {
            smtpd_eom_refuse(s, "milter_no_memory", "451 4.3.0 Error: insufficient resources");
            return;
        }
        smtpd_eom_continue(s);
        return;
    }
    milter_msg_free(&ms->msg);
    if (verdict == V_DISCARD)
        smtpd_eom_discard(s, "milter");
    else
        smtpd_eom_refuse(s, "milter", reply);
}

/* ------------------------------------------------------------------ end of message */

int smtpd_milter_eom_wanted(const struct smtpd_session *s)
{
    const struct smtpd_milters *ms = s->milters;
    return ms && (any_live(ms) || ms->discard);
}

void smtpd_milter_eom_start(struct smtpd_session *s)
{
    struct smtpd_milters *ms = s->milters;
    struct evbuffer *msg = s->eom_msg;
    s->eom_msg = NULL;
    if (milter_msg_parse(&ms->msg, msg) < 0) {
        smtpd_eom_refuse(s, "milter_no_memory", "451 4.3.0 Error: insufficient resources");
        return;
    }
    ms->have_msg = 1;
    if (ms->discard) { /* discarded at MAIL: nobody needs to see it */
        ms->step = STEP_EOM;
        finish_step(ms, V_DISCARD, NULL);
        return;
    }
    start_step(ms, STEP_EOM);
}

void smtpd_milter_eom_cancel(struct smtpd_session *s) { smtpd_milter_end(s); }

void smtpd_milter_end(struct smtpd_session *s)
{
    struct smtpd_milters *ms = s->milters;
    if (!ms)
        return;
    s->milters = NULL;
    for (int i = 0; i < ms->n; i++) {
        milter_conn_close(ms->slot[i].mc);
    }
    if (ms->have_msg)
        milter_msg_free(&ms->msg);
    free(ms->rcpt);
    free(ms->mail_args);
    free(ms->rcpt_args);
    free(ms->conn_reply);
    free(ms);
}
