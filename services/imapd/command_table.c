/* imapd's command table (command_table.h): the rows, the rules that refuse a verb in a
 * state or a session it is not for, CAPABILITY made from the session's view, and the
 * dispatcher. The handlers are in the files command_table.h names. */
#include "command_table.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mailfront_loop.h"
#include "session_int.h"

#define NOTAUTH IMAP_S_NOTAUTH
#define LOGGED IMAP_S_LOGGED_IN
#define SELECTED IMAP_S_SELECTED
#define ANY IMAP_S_ANY
#define CLEAR_TLS (IMAP_F_CLEAR | IMAP_F_TLS_PAIR)
#define BY_UID IMAP_F_UID
#define QUIET IMAP_F_NO_EXPUNGE

/* In RFC 9051 §6's order. */
const struct imap_command_row imap_commands[] = {
    /* name          states    flags                       handler */
    {"CAPABILITY",   ANY,      0,                          imap_cmd_capability},
    {"NOOP",         ANY,      0,                          imap_cmd_noop},
    {"LOGOUT",       ANY,      IMAP_F_NO_UPDATES,          imap_cmd_logout},
    {"ID",           ANY,      0,                          imap_cmd_id},
    {"STARTTLS",     NOTAUTH,  CLEAR_TLS,                  imap_cmd_starttls},
    {"AUTHENTICATE", NOTAUTH,  IMAP_F_SECURE,              imap_cmd_authenticate},
    {"LOGIN",        NOTAUTH,  IMAP_F_SECURE,              imap_cmd_login},
    {"ENABLE",       LOGGED,   0,                          imap_cmd_enable},
    {"SELECT",       LOGGED,   0,                          imap_cmd_select},
    {"EXAMINE",      LOGGED,   0,                          imap_cmd_examine},
    {"NAMESPACE",    LOGGED,   0,                          imap_cmd_namespace},
    {"CREATE",       LOGGED,   0,                          imap_cmd_create},
    {"DELETE",       LOGGED,   0,                          imap_cmd_delete},
    {"RENAME",       LOGGED,   0,                          imap_cmd_rename},
    {"SUBSCRIBE",    LOGGED,   0,                          imap_cmd_subscribe},
    {"UNSUBSCRIBE",  LOGGED,   0,                          imap_cmd_unsubscribe},
    {"LIST",         LOGGED,   0,                          imap_cmd_list},
    {"LSUB",         LOGGED,   0,                          imap_cmd_lsub},
    {"STATUS",       LOGGED,   0,                          imap_cmd_status},
    {"APPEND",       LOGGED,   IMAP_F_APPEND,              imap_cmd_append},
    {"IDLE",         LOGGED,   0,                          imap_cmd_idle},
    {"CHECK",        SELECTED, 0,                          imap_cmd_check},
    {"CLOSE",        SELECTED, 0,                          imap_cmd_close},
    {"UNSELECT",     SELECTED, 0,                          imap_cmd_unselect},
    {"EXPUNGE",      SELECTED, BY_UID,                     imap_cmd_expunge},
    {"SEARCH",       SELECTED, BY_UID | QUIET,             imap_cmd_search},
    {"FETCH",        SELECTED, BY_UID | QUIET,             imap_cmd_fetch},
    {"STORE",        SELECTED, BY_UID | QUIET,             imap_cmd_store},
    {"COPY",         SELECTED, BY_UID,                     imap_cmd_copy},
    {"MOVE",         SELECTED, BY_UID,                     imap_cmd_move},
};
const size_t imap_ncommands = sizeof imap_commands / sizeof imap_commands[0];

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* What a verb that needs a later state is told in an earlier one: what is missing first. */
#define NOT_YET_LOGIN "Log in first"
#define NOT_YET_SELECTED "No mailbox selected"
#define NOT_ANY_MORE "Already logged in"

/* The rules of the flags, checked in this order once the state allows the verb. */
static int is_tls(const struct imap_rules_view *v) { return v->tls; }
static int no_pair(const struct imap_rules_view *v) { return !v->tls_pair; }
static int not_secure(const struct imap_rules_view *v) { return !v->secure; }

static const struct {
    unsigned flag;
    int (*refuses)(const struct imap_rules_view *v);
    const char *status, *text;
} rules[] = {
    {IMAP_F_CLEAR, is_tls, "BAD", "TLS is already active"},
    {IMAP_F_TLS_PAIR, no_pair, "BAD", "TLS is not available"},
    {IMAP_F_SECURE, not_secure, "NO",
     "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections"},
};

const struct imap_command_row *imap_command_find(const char *name, size_t len)
{
    for (size_t i = 0; i < imap_ncommands; i++)
        if (strlen(imap_commands[i].name) == len && strncasecmp(imap_commands[i].name, name, len) == 0)
            return &imap_commands[i];
    return NULL;
}

const char *imap_command_refusal(const struct imap_command_row *row, int uid, const struct imap_rules_view *v,
                                 const char **status)
{
    *status = "BAD";
    if (uid && !(row->flags & IMAP_F_UID))
        return "Unknown command";
    if (!(row->states & v->state)) {
        if (v->state == IMAP_S_NOTAUTH && (row->states & IMAP_S_LOGGED_IN))
            return NOT_YET_LOGIN;
        return row->states & IMAP_S_SELECTED ? NOT_YET_SELECTED : NOT_ANY_MORE;
    }
    for (size_t i = 0; i < NELEM(rules); i++)
        if ((row->flags & rules[i].flag) && rules[i].refuses(v)) {
            *status = rules[i].status;
            return rules[i].text;
        }
    return NULL;
}

/* What every session is told, in this order; then what depends on the state. */
static const char base_capabilities[] = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT "
                                        "SPECIAL-USE LIST-EXTENDED LIST-STATUS CHILDREN";

void imap_capability_list(const struct imap_rules_view *v, char *dst, size_t size)
{
    /* Before login: STARTTLS while it can run, and the mechanisms where a password may be
     * sent (RFC 9051 §6.2.3 LOGINDISABLED elsewhere); after login nothing of that. */
    int before = v->state == IMAP_S_NOTAUTH;
    int n = snprintf(dst, size, "%s%s%s", base_capabilities,
                     before && !v->tls && v->tls_pair ? " STARTTLS" : "",
                     !before ? "" : v->secure ? " AUTH=PLAIN AUTH=LOGIN" : " LOGINDISABLED");
    if (n < 0 || (size_t)n >= size)
        dst[0] = '\0';
}

static struct imap_rules_view view_of(const struct imap_session *s)
{
    unsigned state = !s->login ? IMAP_S_NOTAUTH : s->sel ? IMAP_S_SELECTED : IMAP_S_AUTH;
    return (struct imap_rules_view){.state = state, .tls = s->tls, .tls_pair = s->srv->loop->tls != NULL,
                                    .secure = imap_auth_allowed(s)};
}

void imap_session_capabilities(const struct imap_session *s, char *dst, size_t size)
{
    struct imap_rules_view v = view_of(s);
    imap_capability_list(&v, dst, size);
}

const char *imap_session_refusal(const struct imap_session *s, const struct imap_command_row *row, int uid,
                                 const char **status)
{
    struct imap_rules_view v = view_of(s);
    return imap_command_refusal(row, uid, &v, status);
}

void imap_dispatch(struct imap_session *s, const struct imap_command *cmd)
{
    const struct imap_command_row *row = imap_command_find(cmd->verb, strlen(cmd->verb));
    if (!row) {
        imap_bad(s, cmd, "Unknown command");
        return;
    }
    const char *status;
    const char *refused = imap_session_refusal(s, row, cmd->uid, &status);
    if (refused) {
        if (strcmp(status, "BAD") == 0) {
            imap_bad(s, cmd, refused);
        } else {
            s->errors++;
            imap_tagged(s, cmd, status, "%s", refused);
        }
        return;
    }
    pm_log(PM_DEBUG, "event=command session=%llu verb=%s%s", s->id, cmd->uid ? "UID " : "", cmd->verb);
    s->row = row;
    row->handler(s, cmd);
}
