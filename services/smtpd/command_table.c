/* The SMTP commands smtpd knows, one row each (command_table.h), and what is read from
 * them: the checks before a handler, the EHLO keywords and the HELP reply. Every 2xx/4xx/5xx
 * reply carries an enhanced status code (RFC 2034), except the greeting and the EHLO/HELO
 * answer, where RFC 2034 leaves it out. */
#include "command_table.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy.h"
#include "session.h"

static void size_params(const struct smtpd_session *s, char *dst, size_t size)
{
    snprintf(dst, size, " %lld", s->srv->cfg->smtpd.max_message_size);
}

static int tls_active(const struct smtpd_session *s)
{
    return s->tls;
}

/* In HELP order; EHLO offers the commands' keywords in this order too, after the
 * extensions (HELP last: clients and tests wait for "250 HELP"). */
const struct smtpd_cmd_row smtpd_cmd_table[] = {
    {.verb = "HELO", .id = SMTPD_CMD_HELO, .phases = SMTPD_PH_ANY, .needs = SMTPD_NEEDS_ARG,
     .syntax = "HELO hostname", .help = "HELO", .handler = smtpd_cmd_helo},
    {.verb = "EHLO", .id = SMTPD_CMD_EHLO, .phases = SMTPD_PH_ANY, .needs = SMTPD_NEEDS_ARG,
     .syntax = "EHLO hostname", .help = "EHLO", .handler = smtpd_cmd_ehlo},
    {.verb = "MAIL", .id = SMTPD_CMD_MAIL, .phases = SMTPD_PH_GREETED, .needs = SMTPD_NEEDS_AUTH_ON_SUBMISSION,
     .flags = SMTPD_CMD_ENVELOPE, .syntax = "MAIL FROM:<address>", .help = "MAIL",
     .reply = {[SMTPD_REFUSE_IN_TXN] = "503 5.5.1 Error: nested MAIL command"}, .handler = smtpd_cmd_mail,
     .line_extra = 110 + 11}, /* DSN's RET and ENVID, " REQUIRETLS" */
    {.verb = "RCPT", .id = SMTPD_CMD_RCPT, .phases = SMTPD_PH_MAIL, .flags = SMTPD_CMD_ENVELOPE,
     .syntax = "RCPT TO:<address>", .help = "RCPT", .handler = smtpd_cmd_rcpt, .line_extra = 530},
    {.verb = "DATA", .id = SMTPD_CMD_DATA, .phases = SMTPD_PH_MAIL, .needs = SMTPD_NEEDS_NO_ARG,
     .flags = SMTPD_CMD_BODY_FOLLOWS, .syntax = "DATA", .help = "DATA", .handler = smtpd_cmd_data},
    /* RFC 3030: every refusal, the table's too, reads the chunk first (bdat.h). */
    {.verb = "BDAT", .id = SMTPD_CMD_BDAT, .phases = SMTPD_PH_MAIL, .needs = SMTPD_NEEDS_ARG,
     .flags = SMTPD_CMD_CHUNK_FOLLOWS, .syntax = "BDAT size [LAST]", .help = "BDAT", .handler = smtpd_cmd_bdat},
    {.verb = "RSET", .id = SMTPD_CMD_RSET, .phases = SMTPD_PH_ANY, .needs = SMTPD_NEEDS_NO_ARG,
     .syntax = "RSET", .help = "RSET", .handler = smtpd_cmd_rset},
    {.verb = "NOOP", .id = SMTPD_CMD_NOOP, .phases = SMTPD_PH_ANY, .syntax = "NOOP", .help = "NOOP",
     .handler = smtpd_cmd_noop},
    {.verb = "QUIT", .id = SMTPD_CMD_QUIT, .phases = SMTPD_PH_ANY, .syntax = "QUIT", .help = "QUIT",
     .handler = smtpd_cmd_quit},
    {.verb = "VRFY", .id = SMTPD_CMD_VRFY, .phases = SMTPD_PH_ANY, .needs = SMTPD_NEEDS_ARG,
     .syntax = "VRFY address", .help = "VRFY", .handler = smtpd_cmd_vrfy},
    /* Not offered (it would list who is behind an alias): not in HELP, answered 502. */
    {.verb = "EXPN", .id = SMTPD_CMD_EXPN, .phases = SMTPD_PH_ANY, .flags = SMTPD_CMD_COUNTS_AS_ERROR,
     .syntax = "EXPN list", .handler = smtpd_cmd_expn},
    /* Not inside a transaction (as Postfix): the reset RFC 3207 asks for would otherwise
     * have to take a half-received BDAT message with it. */
    {.verb = "STARTTLS", .id = SMTPD_CMD_STARTTLS, .phases = SMTPD_PH_INIT | SMTPD_PH_GREETED,
     .needs = SMTPD_NEEDS_TLS_CONFIG | SMTPD_NEEDS_NO_TLS | SMTPD_NEEDS_NO_ARG, .syntax = "STARTTLS",
     .help = "STARTTLS", .ehlo = {"STARTTLS", NULL}, .handler = smtpd_cmd_starttls},
    /* Never offered in the clear; its refusals are logged (password guessing shows there). */
    {.verb = "AUTH", .id = SMTPD_CMD_AUTH, .phases = SMTPD_PH_EHLO,
     .needs = SMTPD_NEEDS_TLS_CONFIG | SMTPD_NEEDS_TLS | SMTPD_NEEDS_EHLO | SMTPD_NEEDS_NO_AUTH,
     .flags = SMTPD_CMD_LOG_REFUSALS | SMTPD_CMD_LONG_LINE, .syntax = "AUTH mechanism", .help = "AUTH",
     .ehlo = {"AUTH PLAIN LOGIN", NULL},
     .reply = {[SMTPD_REFUSE_NO_TLS_CONFIG] = "503 5.5.1 Error: authentication not enabled"},
     .handler = smtpd_cmd_auth},
    /* RFC 1985: for the clients that may relay (whose mail it is that waits here). */
    {.verb = "ETRN", .id = SMTPD_CMD_ETRN, .phases = SMTPD_PH_GREETED, .needs = SMTPD_NEEDS_TRUST | SMTPD_NEEDS_ARG,
     .syntax = "ETRN domain", .help = "ETRN", .ehlo = {"ETRN", NULL}, .handler = smtpd_cmd_etrn},
    {.verb = "HELP", .id = SMTPD_CMD_HELP, .phases = SMTPD_PH_ANY, .syntax = "HELP", .help = "HELP",
     .ehlo = {"HELP", NULL}, .handler = smtpd_cmd_help},
};
const size_t smtpd_cmd_table_size = sizeof smtpd_cmd_table / sizeof smtpd_cmd_table[0];

/* EHLO keywords that name no command, first in the EHLO reply. */
const struct smtpd_extension smtpd_extensions[] = {
    {{"PIPELINING", NULL}, NULL},          /* RFC 2920 */
    {{"SIZE", size_params}, NULL},         /* RFC 1870: MAIL SIZE= */
    {{"8BITMIME", NULL}, NULL},            /* RFC 6152: MAIL BODY= */
    {{"ENHANCEDSTATUSCODES", NULL}, NULL}, /* RFC 2034 */
    {{"SMTPUTF8", NULL}, NULL},            /* RFC 6531: MAIL SMTPUTF8 */
    {{"DSN", NULL}, NULL},                 /* RFC 3461: RET, ENVID, NOTIFY, ORCPT (dsn_params.c) */
    {{"CHUNKING", NULL}, NULL},            /* RFC 3030: BDAT (its row); BINARYMIME is not offered */
    {{"REQUIRETLS", NULL}, tls_active},    /* RFC 8689: MAIL REQUIRETLS, only over TLS */
};
const size_t smtpd_extensions_size = sizeof smtpd_extensions / sizeof smtpd_extensions[0];

/* The default replies; "%s" is the verb, or the row's syntax for the argument checks. */
static const struct {
    const char *reply;
    int logged; /* a policy refusal: always logged */
} refusals[SMTPD_REFUSE_COUNT] = {
    [SMTPD_REFUSE_NO_TLS_CONFIG] = {"502 5.5.1 Error: %s not available", 0},
    [SMTPD_REFUSE_UNTRUSTED] = {"502 5.7.0 Error: %s not available", 1},
    [SMTPD_REFUSE_TLS_ACTIVE] = {"503 5.5.1 Error: TLS already active", 0},
    [SMTPD_REFUSE_NEED_TLS] = {"530 5.7.0 Must issue a STARTTLS command first", 1},
    [SMTPD_REFUSE_AUTHENTICATED] = {"503 5.5.1 Error: already authenticated", 0},
    [SMTPD_REFUSE_ARG] = {"501 5.5.4 Syntax: %s", 0},
    [SMTPD_REFUSE_NO_ARG] = {"501 5.5.4 Syntax: %s", 0},
    [SMTPD_REFUSE_IN_TXN] = {"503 5.5.1 Error: MAIL transaction in progress", 0},
    [SMTPD_REFUSE_NEED_MAIL] = {"503 5.5.1 Error: need MAIL command", 0},
    [SMTPD_REFUSE_NEED_EHLO] = {"503 5.5.1 Error: send EHLO first", 0},
    [SMTPD_REFUSE_NEED_HELO] = {"503 5.5.1 Error: send HELO/EHLO first", 0},
    [SMTPD_REFUSE_AUTH_REQUIRED] = {"530 5.7.0 Authentication required", 1},
};

const struct smtpd_cmd_row *smtpd_cmd_find(const char *verb, size_t len)
{
    for (size_t i = 0; i < smtpd_cmd_table_size; i++)
        if (strlen(smtpd_cmd_table[i].verb) == len && strncasecmp(verb, smtpd_cmd_table[i].verb, len) == 0)
            return &smtpd_cmd_table[i];
    return NULL;
}

unsigned smtpd_session_phase(const struct smtpd_session *s)
{
    if (s->txn.active)
        return SMTPD_PH_MAIL;
    if (!s->helo)
        return SMTPD_PH_INIT;
    return s->esmtp ? SMTPD_PH_EHLO : SMTPD_PH_HELO;
}

/* Does check r hold for s (an argument of arglen octets)? */
static int holds(const struct smtpd_session *s, enum smtpd_refusal r, size_t arglen)
{
    switch (r) {
    case SMTPD_REFUSE_NO_TLS_CONFIG:
        return s->srv->tls != NULL;
    case SMTPD_REFUSE_UNTRUSTED:
        return smtpd_policy_may_relay(s);
    case SMTPD_REFUSE_TLS_ACTIVE:
        return !s->tls;
    case SMTPD_REFUSE_NEED_TLS:
        return s->tls;
    case SMTPD_REFUSE_NEED_EHLO:
        return s->esmtp;
    case SMTPD_REFUSE_AUTHENTICATED:
        return s->auth_user == NULL;
    case SMTPD_REFUSE_ARG:
        return arglen == 0;
    case SMTPD_REFUSE_NO_ARG:
        return arglen > 0;
    case SMTPD_REFUSE_AUTH_REQUIRED:
        return s->mode == SMTPD_MODE_SMTP || s->auth_user != NULL;
    default:
        return 1;
    }
}

/* Why a command allowed in phases is refused in phase ph: what would make it allowed. */
static enum smtpd_refusal phase_refusal(unsigned phases, unsigned ph)
{
    if (phases & ph)
        return SMTPD_REFUSE_NONE;
    if (ph == SMTPD_PH_MAIL)
        return SMTPD_REFUSE_IN_TXN;
    if (phases == SMTPD_PH_MAIL)
        return SMTPD_REFUSE_NEED_MAIL;
    return phases & SMTPD_PH_HELO ? SMTPD_REFUSE_NEED_HELO : SMTPD_REFUSE_NEED_EHLO;
}

enum smtpd_refusal smtpd_cmd_refusal(const struct smtpd_session *s, const struct smtpd_command *c)
{
    const struct smtpd_cmd_row *row = c->row;
    for (int r = SMTPD_REFUSE_NO_TLS_CONFIG; r <= SMTPD_REFUSE_NO_ARG; r++)
        if ((row->needs & SMTPD_NEED(r)) && !holds(s, (enum smtpd_refusal)r, c->arglen))
            return (enum smtpd_refusal)r;
    enum smtpd_refusal r = phase_refusal(row->phases, smtpd_session_phase(s));
    if (r != SMTPD_REFUSE_NONE)
        return r;
    if ((row->needs & SMTPD_NEEDS_AUTH_ON_SUBMISSION) && !holds(s, SMTPD_REFUSE_AUTH_REQUIRED, c->arglen))
        return SMTPD_REFUSE_AUTH_REQUIRED;
    return SMTPD_REFUSE_NONE;
}

void smtpd_cmd_refusal_reply(const struct smtpd_cmd_row *row, enum smtpd_refusal r, char *dst, size_t size)
{
    if (row->reply[r]) {
        snprintf(dst, size, "%s", row->reply[r]);
        return;
    }
    const char *what = r == SMTPD_REFUSE_ARG || r == SMTPD_REFUSE_NO_ARG ? row->syntax : row->verb;
    snprintf(dst, size, refusals[r].reply, what);
}

int smtpd_cmd_refusal_logged(const struct smtpd_cmd_row *row, enum smtpd_refusal r)
{
    return refusals[r].logged || (row->flags & SMTPD_CMD_LOG_REFUSALS);
}

int smtpd_cmd_available(const struct smtpd_session *s, const struct smtpd_cmd_row *row)
{
    for (int r = SMTPD_REFUSE_NO_TLS_CONFIG; r <= SMTPD_REFUSE_AUTHENTICATED; r++)
        if (r != SMTPD_REFUSE_NEED_EHLO && (row->needs & SMTPD_NEED(r)) && !holds(s, (enum smtpd_refusal)r, 0))
            return 0;
    return !(row->needs & SMTPD_NEEDS_AUTH_ON_SUBMISSION) || holds(s, SMTPD_REFUSE_AUTH_REQUIRED, 0);
}

static void keyword(const struct smtpd_session *s, const struct smtpd_keyword *k, char *dst)
{
    size_t n = (size_t)snprintf(dst, SMTPD_KEYWORD_SIZE, "%s", k->name);
    if (k->params && n < SMTPD_KEYWORD_SIZE)
        k->params(s, dst + n, SMTPD_KEYWORD_SIZE - n);
}

int smtpd_ehlo_keywords(const struct smtpd_session *s, char (*kw)[SMTPD_KEYWORD_SIZE], int max)
{
    int n = 0;
    for (size_t i = 0; i < smtpd_extensions_size && n < max; i++)
        if (!smtpd_extensions[i].offered || smtpd_extensions[i].offered(s))
            keyword(s, &smtpd_extensions[i].keyword, kw[n++]);
    for (size_t i = 0; i < smtpd_cmd_table_size && n < max; i++)
        if (smtpd_cmd_table[i].ehlo.name && smtpd_cmd_available(s, &smtpd_cmd_table[i]))
            keyword(s, &smtpd_cmd_table[i].ehlo, kw[n++]);
    return n;
}

void smtpd_help_text(char *dst, size_t size)
{
    size_t n = (size_t)snprintf(dst, size, "Commands:");
    for (size_t i = 0; i < smtpd_cmd_table_size && n < size; i++)
        if (smtpd_cmd_table[i].help)
            n += (size_t)snprintf(dst + n, size - n, " %s", smtpd_cmd_table[i].help);
}
