/* One command line in state COMMAND: the dispatch through the command table (its checks,
 * then the row's handler), and the handlers of the commands that need nothing but the
 * session: HELO/EHLO, DATA's start, RSET, NOOP, QUIT, VRFY, EXPN, HELP, STARTTLS. MAIL and
 * RCPT are envelope.c's, AUTH auth.c's, ETRN etrn.c's. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command_table.h"
#include "log.h"
#include "logvalue.h"
#include "metrics.h"
#include "milter.h"
#include "parser.h"
#include "session.h"
#include "testhook.h"

void smtpd_greet(struct smtpd_session *s)
{
    if (smtpd_milter_connect(s)) {
        s->state = SMTPD_ST_MILTER; /* smtpd_session_milter_connected greets */
        return;
    }
    if (!smtpd_milter_greet(s))
        smtpd_reply(s, "220 %s ESMTP Postmesh", s->srv->cfg->hostname);
}

/* 0 once the client is greeted (its name kept, the transaction reset), -1 if refused. */
static int greeted(struct smtpd_session *s, const struct smtpd_command *c, int esmtp)
{
    if (!smtpd_helo_valid(c->arg, c->arglen)) {
        smtpd_reply_error(s, "501 5.5.4 Syntax: %s", c->row->syntax);
        return -1;
    }
    free(s->helo);
    s->helo = strndup(c->arg, c->arglen);
    s->esmtp = esmtp;
    smtpd_message_discard(s); /* a partial BDAT message */
    smtpd_txn_reset(&s->txn); /* RFC 5321 4.1.4: EHLO/HELO also resets */
    return 0;
}

void smtpd_helo_answer(struct smtpd_session *s)
{
    if (!s->esmtp) {
        smtpd_reply(s, "250 %s", s->srv->cfg->hostname);
        return;
    }
    char kw[SMTPD_MAX_KEYWORDS][SMTPD_KEYWORD_SIZE];
    int n = smtpd_ehlo_keywords(s, kw, SMTPD_MAX_KEYWORDS);
    smtpd_reply(s, "250%c%s", n ? '-' : ' ', s->srv->cfg->hostname);
    for (int i = 0; i < n; i++)
        smtpd_reply(s, "250%c%s", i == n - 1 ? ' ' : '-', kw[i]);
}

/* The milters are told each HELO/EHLO and may refuse it (milter.h). */
void smtpd_cmd_helo(struct smtpd_session *s, const struct smtpd_command *c)
{
    if (greeted(s, c, 0) == 0 && !smtpd_milter_helo(s))
        smtpd_helo_answer(s);
}

void smtpd_cmd_ehlo(struct smtpd_session *s, const struct smtpd_command *c)
{
    if (greeted(s, c, 1) == 0 && !smtpd_milter_helo(s))
        smtpd_helo_answer(s);
}

/* DATA was refused: a client that sent its message without waiting for 354 (RFC 2920
 * forbids it) would now have that text run as commands. Hang up instead. */
static void body_not_awaited(struct smtpd_session *s)
{
    if (evbuffer_get_length(bufferevent_get_input(s->bev)) && s->state != SMTPD_ST_CLOSING) {
        pm_log(PM_WARN, "event=reject client=%s reason=pipelining_after_refused_data", s->peer);
        smtpd_reply(s, "421 4.5.0 %s Error: SMTP protocol synchronization", s->srv->cfg->hostname);
        smtpd_session_close(s, "protocol_synchronization");
    }
}

void smtpd_cmd_data(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    const char *reply = NULL;
    if (s->txn.chunked)
        reply = "503 5.5.1 Error: DATA after BDAT"; /* RFC 3030 2: one or the other */
    else if (s->txn.nrcpt == 0)
        reply = s->txn.rcpt_tries ? "554 5.5.1 Error: no valid recipients" : "503 5.5.1 Error: need RCPT command";
    else if (smtpd_body_budget_exhausted(s->srv)) {
        pm_log(PM_WARN, "event=reject client=%s stage=DATA reason=memory_budget used=%llu budget=%llu", s->peer,
               s->srv->body_used, s->srv->body_budget);
        reply = "452 4.3.1 Insufficient system storage";
    }
    if (!reply) {
        smtpd_data_begin(s);
        return;
    }
    smtpd_reply_error(s, "%s", reply);
    body_not_awaited(s);
}

void smtpd_cmd_rset(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    smtpd_message_discard(s); /* the chunks so far of a BDAT message */
    smtpd_txn_reset(&s->txn);
    smtpd_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_noop(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    smtpd_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_quit(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    smtpd_reply(s, "221 2.0.0 Bye");
    smtpd_session_close(s, "quit");
}

void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

void smtpd_cmd_expn(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    smtpd_reply(s, "502 5.5.1 Error: EXPN not supported"); /* counted as an error by its row */
}

void smtpd_cmd_help(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    char text[256];
    smtpd_help_text(text, sizeof text);
    smtpd_reply(s, "214 2.0.0 %s", text);
}

void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtpd_command *c)
{
    (void)c;
    smtpd_session_starttls(s);
}

/* A check of the table refused the command: the reply, and the log line if it is one to log. */
static void refuse(struct smtpd_session *s, const struct smtpd_command *c, enum smtpd_refusal r)
{
    const struct smtpd_cmd_row *row = c->row;
    char reply[256], v[PM_LOGV_SIZE], a[PM_LOGV_SIZE];
    smtpd_cmd_refusal_reply(row, r, reply, sizeof reply);
    if (smtpd_cmd_refusal_logged(row, r) && (row->flags & SMTPD_CMD_ENVELOPE)) {
        pm_log(PM_INFO, "event=reject client=%s stage=%s address=%s reply=%s", s->peer, row->verb, PM_LOGV(a, ""),
               PM_LOGV(v, reply));
        pm_metric_add(PM_M_SMTPD_ENVELOPE_REJECTS, 1, row->verb, pm_metric_reason(reply, v, sizeof v));
    } else if (smtpd_cmd_refusal_logged(row, r)) {
        pm_log(PM_INFO, "event=reject client=%s stage=%s reply=%s", s->peer, row->verb, PM_LOGV(v, reply));
    }
    if (row->flags & SMTPD_CMD_CHUNK_FOLLOWS) {
        smtpd_bdat_refused(s, c->arg, c->arglen, reply); /* answered once its chunk is read */
        return;
    }
    smtpd_reply_error(s, "%s", reply);
    if (row->flags & SMTPD_CMD_BODY_FOLLOWS)
        body_not_awaited(s);
}

/* Only a command whose row says so may use the long line RFC 4954 allows AUTH, or the
 * octets its extensions add (DSN's on MAIL and RCPT). Judged by the first word alone,
 * before anything else is looked at. */
static int may_be_long(const char *line, size_t len, size_t total)
{
    size_t v = 0;
    while (v < len && line[v] != ' ')
        v++;
    const struct smtpd_cmd_row *row = smtpd_cmd_find(line, v);
    return row && ((row->flags & SMTPD_CMD_LONG_LINE) || total <= SMTPD_MAX_COMMAND_LINE + row->line_extra);
}

void smtpd_command(struct smtpd_session *s, const char *line, size_t len, size_t total)
{
    if (total > SMTPD_MAX_COMMAND_LINE && !may_be_long(line, len, total)) {
        smtpd_session_line_too_long(s);
        return;
    }
    s->commands++;
    struct smtpd_command c;
    smtpd_parse_command(line, len, &c);
    if (c.row) {
        enum smtpd_refusal r = smtpd_cmd_refusal(s, &c);
        if (r != SMTPD_REFUSE_NONE) {
            refuse(s, &c, r);
            return;
        }
        c.row->handler(s, &c);
        if (c.row->flags & SMTPD_CMD_COUNTS_AS_ERROR)
            smtpd_session_error(s);
        return;
    }
    switch (c.verb) {
    case SMTPD_CMD_BADCHAR:
        pm_log(PM_INFO, "event=reject client=%s reason=bad_characters", s->peer);
        smtpd_reply_error(s, "500 5.5.2 Error: bad characters in command");
        break;
    case SMTPD_CMD_FORBIDDEN:
        /* An HTTP or proxy request: somebody is abusing a browser or proxy against us. */
        pm_log(PM_WARN, "event=reject client=%s reason=non_smtp_command", s->peer);
        smtpd_reply_error(s, "502 5.5.2 Error: command not recognized");
        smtpd_session_close(s, "non_smtp_command");
        break;
    default:
        if (smtpd_testhook_command(s, line, len))
            break;
        smtpd_reply_error(s, "502 5.5.2 Error: command not recognized");
        break;
    }
}
