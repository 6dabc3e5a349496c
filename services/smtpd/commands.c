/* The SMTP commands (RFC 5321 4.1, with ESMTP extensions): sequencing, replies and the
 * transaction (MAIL and RCPT, which may wait for the privileged parent, are envelope.c's).
 * Every 2xx/4xx/5xx reply carries an enhanced status code (RFC 2034), except the greeting
 * and the EHLO/HELO answer, where RFC 2034 leaves it out. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parser.h"
#include "session.h"
#include "testhook.h"

void smtpd_greet(struct smtpd_session *s) { smtpd_reply(s, "220 %s ESMTP Postmesh", s->srv->cfg->hostname); }

static void cmd_helo(struct smtpd_session *s, const struct smtpd_command *c, int esmtp)
{
    const struct pm_config *cfg = s->srv->cfg;
    if (!smtpd_helo_valid(c->arg, c->arglen)) {
        smtpd_reply_error(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    free(s->helo);
    s->helo = strndup(c->arg, c->arglen);
    s->esmtp = esmtp;
    smtpd_txn_reset(&s->txn); /* RFC 5321 4.1.4: EHLO/HELO also resets */
    if (!esmtp) {
        smtpd_reply(s, "250 %s", cfg->hostname);
        return;
    }
    char size[48];
    snprintf(size, sizeof size, "SIZE %lld", cfg->smtpd.max_message_size);
    const char *ext[10];
    int n = 0;
    ext[n++] = "PIPELINING";
    ext[n++] = size;
    ext[n++] = "8BITMIME";
    ext[n++] = "ENHANCEDSTATUSCODES";
    ext[n++] = "SMTPUTF8";
    if (s->srv->tls && !s->tls)
        ext[n++] = "STARTTLS";
    if (s->tls && !s->auth_user)
        ext[n++] = "AUTH PLAIN LOGIN"; /* never offered in the clear */
    ext[n++] = "HELP";
    smtpd_reply(s, "250-%s", cfg->hostname);
    for (int i = 0; i < n; i++)
        smtpd_reply(s, "250%c%s", i == n - 1 ? ' ' : '-', ext[i]);
}

static void cmd_data(struct smtpd_session *s, const struct smtpd_command *c)
{
    const char *reply = NULL;
    if (c->arglen)
        reply = "501 5.5.4 Syntax: DATA";
    else if (!s->txn.active)
        reply = "503 5.5.1 Error: need MAIL command";
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
    /* A client that sent its message without waiting for 354 (RFC 2920 forbids it) would
     * now have that text run as commands: hang up instead. */
    if (evbuffer_get_length(bufferevent_get_input(s->bev)) && s->state != SMTPD_ST_CLOSING) {
        pm_log(PM_WARN, "event=reject client=%s reason=pipelining_after_refused_data", s->peer);
        smtpd_reply(s, "421 4.5.0 %s Error: SMTP protocol synchronization", s->srv->cfg->hostname);
        smtpd_session_close(s, "protocol_synchronization");
    }
}

static void cmd_starttls(struct smtpd_session *s, const struct smtpd_command *c)
{
    if (!s->srv->tls)
        smtpd_reply_error(s, "502 5.5.1 Error: STARTTLS not available");
    else if (s->tls)
        smtpd_reply_error(s, "503 5.5.1 Error: TLS already active");
    else if (c->arglen)
        smtpd_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
    else
        smtpd_session_starttls(s);
}

void smtpd_command(struct smtpd_session *s, const char *line, size_t len)
{
    struct smtpd_command c;
    smtpd_parse_command(line, len, &c);
    switch (c.verb) {
    case SMTPD_CMD_HELO:
        cmd_helo(s, &c, 0);
        break;
    case SMTPD_CMD_EHLO:
        cmd_helo(s, &c, 1);
        break;
    case SMTPD_CMD_MAIL:
        smtpd_envelope_mail(s, &c);
        break;
    case SMTPD_CMD_RCPT:
        smtpd_envelope_rcpt(s, &c);
        break;
    case SMTPD_CMD_DATA:
        cmd_data(s, &c);
        break;
    case SMTPD_CMD_RSET:
        if (c.arglen) {
            smtpd_reply_error(s, "501 5.5.4 Syntax: RSET");
            break;
        }
        smtpd_txn_reset(&s->txn);
        smtpd_reply(s, "250 2.0.0 Ok");
        break;
    case SMTPD_CMD_NOOP:
        smtpd_reply(s, "250 2.0.0 Ok");
        break;
    case SMTPD_CMD_QUIT:
        smtpd_reply(s, "221 2.0.0 Bye");
        smtpd_session_close(s, "quit");
        break;
    case SMTPD_CMD_VRFY:
        if (!c.arglen)
            smtpd_reply_error(s, "501 5.5.4 Syntax: VRFY address");
        else
            smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case SMTPD_CMD_EXPN:
        smtpd_reply_error(s, "502 5.5.1 Error: EXPN not supported");
        break;
    case SMTPD_CMD_HELP:
        smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
        break;
    case SMTPD_CMD_STARTTLS:
        cmd_starttls(s, &c);
        break;
    case SMTPD_CMD_AUTH:
        smtpd_auth_command(s, c.arg, c.arglen);
        break;
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
