/* pop3d's command table (command_table.h): the rows, the rules that refuse a verb in a
 * state or a session it is not for, CAPA made from the rows, and the dispatcher. The
 * handlers are session_auth.c's (AUTHORIZATION) and session_trans.c's (TRANSACTION, QUIT);
 * NOOP and CAPA, which have nothing of their own, are here. */
#include "command_table.h"

#include <strings.h>

#include "mailfront_loop.h"
#include "sasl.h"
#include "session_int.h"

static void cmd_noop(struct pop3_session *s, const struct pop3_command *cmd);
static void cmd_capa(struct pop3_session *s, const struct pop3_command *cmd);

#define AUTHZ POP3_S_AUTHORIZATION

/* In RFC 1939's order. */
const struct pop3_command_row pop3_commands[] = {
    /* name  verb         args  states        flags                               capa       handler */
    {"USER", POP3_USER, 1, 1, AUTHZ,        POP3_F_SECURE | POP3_F_ARG_LONG,      "USER",    pop3_cmd_user},
    {"PASS", POP3_PASS, 1, 1, POP3_S_USER,  POP3_F_ARG_REST,                      NULL,      pop3_cmd_pass},
    {"APOP", POP3_APOP, 2, 2, AUTHZ,        0,                                    NULL,      pop3_cmd_apop},
    {"AUTH", POP3_AUTH, 0, 2, AUTHZ,        POP3_F_CAPA_SECURE | POP3_F_ARG_LONG, "SASL " POP3_SASL_MECHANISMS,
     pop3_cmd_auth},
    {"STLS", POP3_STLS, 0, 0, AUTHZ,        POP3_F_CLEAR | POP3_F_TLS_PAIR,       "STLS",    pop3_cmd_stls},
    {"STAT", POP3_STAT, 0, 0, POP3_S_TRANS, 0,                                    NULL,      pop3_cmd_stat},
    {"LIST", POP3_LIST, 0, 1, POP3_S_TRANS, 0,                                    NULL,      pop3_cmd_list},
    {"RETR", POP3_RETR, 1, 1, POP3_S_TRANS, 0,                                    NULL,      pop3_cmd_retr},
    {"DELE", POP3_DELE, 1, 1, POP3_S_TRANS, 0,                                    NULL,      pop3_cmd_dele},
    {"RSET", POP3_RSET, 0, 0, POP3_S_TRANS, 0,                                    NULL,      pop3_cmd_rset},
    {"TOP",  POP3_TOP,  2, 2, POP3_S_TRANS, 0,                                    "TOP",     pop3_cmd_top},
    {"UIDL", POP3_UIDL, 0, 1, POP3_S_TRANS, 0,                                    "UIDL",    pop3_cmd_uidl},
    {"NOOP", POP3_NOOP, 0, 0, POP3_S_ANY,   0,                                    NULL,      cmd_noop},
    {"CAPA", POP3_CAPA, 0, 0, POP3_S_ANY,   0,                                    NULL,      cmd_capa},
    {"QUIT", POP3_QUIT, 0, 0, POP3_S_ANY,   0,                                    NULL,      pop3_cmd_quit},
};
const size_t pop3_ncommands = sizeof pop3_commands / sizeof pop3_commands[0];

/* Capabilities of the server rather than of a verb (RFC 2449; AUTH-RESP-CODE: RFC 3206). */
static const char *const server_capa[] = {"RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION Postmesh"};

/* What a verb that needs a state is told in an earlier one. */
static const struct {
    unsigned state;
    const char *not_yet;
} states[] = {
    {POP3_S_AUTH, NULL},
    {POP3_S_USER, "-ERR send USER first"},
    {POP3_S_TRANS, "-ERR not allowed before login"},
};
/* ... and in a later one: after login nothing of AUTHORIZATION comes back. */
#define NOT_ANY_MORE "-ERR not allowed after login"

/* The rules of the flags, checked in this order once the state allows the verb. */
static int not_secure(const struct pop3_view *v) { return !v->secure; }
static int is_tls(const struct pop3_view *v) { return v->tls; }
static int no_pair(const struct pop3_view *v) { return !v->tls_pair; }

static const struct {
    unsigned flag;
    int (*refuses)(const struct pop3_view *v);
    const char *reply;
} rules[] = {
    {POP3_F_CLEAR, is_tls, "-ERR TLS is already active"},
    {POP3_F_TLS_PAIR, no_pair, "-ERR TLS is not available"},
    {POP3_F_SECURE, not_secure, "-ERR [AUTH] plaintext login requires TLS (use STLS)"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const struct pop3_command_row *pop3_command_find(const char *name, size_t len)
{
    for (size_t i = 0; i < pop3_ncommands; i++)
        if (strlen(pop3_commands[i].name) == len && strncasecmp(pop3_commands[i].name, name, len) == 0)
            return &pop3_commands[i];
    return NULL;
}

/* The first rule of row's flags that v breaks, NULL if none. */
static const char *broken_rule(const struct pop3_command_row *row, const struct pop3_view *v)
{
    for (size_t i = 0; i < NELEM(rules); i++)
        if ((row->flags & rules[i].flag) && rules[i].refuses(v))
            return rules[i].reply;
    return NULL;
}

const char *pop3_command_refusal(const struct pop3_command_row *row, const struct pop3_view *v)
{
    if (row->states & v->state)
        return broken_rule(row, v);
    /* The first later state the verb is allowed in says what is missing. */
    for (size_t i = 0; i < NELEM(states); i++)
        if (states[i].state > v->state && (row->states & states[i].state))
            return states[i].not_yet;
    return NOT_ANY_MORE;
}

void pop3_capa_lines(const struct pop3_view *v, void (*line)(void *arg, const char *text), void *arg)
{
    unsigned now_or_later = ~(v->state - 1); /* the state bits from v->state on */
    for (size_t i = 0; i < pop3_ncommands; i++) {
        const struct pop3_command_row *row = &pop3_commands[i];
        if (!row->capa || !(row->states & now_or_later) || broken_rule(row, v))
            continue;
        if ((row->flags & POP3_F_CAPA_SECURE) && !v->secure)
            continue;
        line(arg, row->capa);
    }
    for (size_t i = 0; i < NELEM(server_capa); i++)
        line(arg, server_capa[i]);
}

static struct pop3_view view_of(const struct pop3_session *s)
{
    unsigned state = s->state == ST_TRANSACTION ? POP3_S_TRANS : s->have_user ? POP3_S_USER : POP3_S_AUTH;
    return (struct pop3_view){.state = state, .tls = s->tls, .tls_pair = s->srv->loop->tls != NULL,
                              .secure = pop3_auth_allowed(s)};
}

void pop3_dispatch(struct pop3_session *s, const struct pop3_command *cmd)
{
    struct pop3_view v = view_of(s);
    const char *refused = pop3_command_refusal(cmd->row, &v);
    if (refused)
        pop3_bad_command(s, refused);
    else
        cmd->row->handler(s, cmd);
}

static void cmd_noop(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    pop3_reply(s, "+OK");
}

static void capa_line(void *arg, const char *text) { pop3_reply(arg, "%s", text); }

static void cmd_capa(struct pop3_session *s, const struct pop3_command *cmd)
{
    (void)cmd;
    struct pop3_view v = view_of(s);
    pop3_reply(s, "+OK capability list follows");
    pop3_capa_lines(&v, capa_line, s);
    pop3_reply(s, ".");
}
